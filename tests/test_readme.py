"""Every Python example in README.md runs as written against the loopback server.

The README's examples talk to ``acytoo-raw serve --port 8000``; here each one
runs in a fresh interpreter against a loopback server started by the test on a
free port (the only change made to the example's text). The g4f example needs
the g4f extra (installed by ``make test``): it fails in CI without it, and is
skipped elsewhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
IN_CI = os.environ.get("CI") == "true"
# Generous: an example streams a few words from loopback.
EXAMPLE_TIMEOUT = 120.0

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The loopback server as a subprocess, the way the README starts it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "acytoo_raw", "serve", "--port", "0", "--delay", "0.001"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        line = ""
        while "http://" not in line:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server did not start: {line!r}")
            line = proc.stderr.readline()
        url = re.search(r"http://[\d.]+:\d+", line)
        assert url is not None, line
        yield url.group(0)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_the_readme_has_examples() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 8
    assert all("127.0.0.1:8000" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index: int, server_url: str, tmp_path: Path) -> None:
    code = python_blocks()[index].replace("http://127.0.0.1:8000", server_url)
    if "import g4f" in code:
        try:
            import g4f  # noqa: F401
        except ImportError:
            (pytest.fail if IN_CI else pytest.skip)("g4f not installed (pip install '.[g4f]')")
    script = tmp_path / f"example_{index}.py"
    script.write_text(code, encoding="utf-8")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy")  # The examples assume no proxy.
    }
    env["HOME"] = str(tmp_path)  # g4f writes its config and logs under the home directory.
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, f"example {index} failed:\n{code}\n{result.stderr}"
    assert result.stdout.strip(), f"example {index} printed nothing"
