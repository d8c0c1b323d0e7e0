# Two commands do all set-up (see README): `make demo` and `make test`.
# The demo installs only the library; the test and bench targets add their extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench bench-quick clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,g4f]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m acytoo_raw demo

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m mypy --strict acytoo_raw

test: lint
	$(PY) -X dev -m pytest -W error

bench: $(VENV)/.installed-bench
	$(PY) -m benchmarks

bench-quick: $(VENV)/.installed-bench
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
