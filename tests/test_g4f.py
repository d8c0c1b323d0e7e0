"""The real g4f (gpt4free 8.x) drives ``acytoo_raw.Acytoo``, offline.

g4f runs in one subprocess (tests/g4f_runner.py) that enters a network
namespace with only loopback when it can, refuses every non-loopback lookup
and connection at the socket module, and turns g4f's version check off; it
serves the loopback server and a raw peer answering 500 itself, runs every
case and reports JSON. Each test here checks one part of that report.

Needs the ``g4f`` extra (``pip install -e .[g4f]``): skipped without it,
failed without it when ``CI=true``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.g4f_runner import ERROR_BODY, HELLO

ROOT = Path(__file__).resolve().parent.parent
# g4f and the runner start in about a second; the bound is for a loaded CI machine.
RUNNER_BOUND = 180.0

ANSWER_CASES = [
    "chat_create",
    "chat_create_stream",
    "chat_create_async",
    "chat_create_async_stream",
    "chat_create_retry_provider",
    "client",
    "client_stream",
    "async_client",
    "async_client_stream",
]
STREAMED_CASES = [case for case in ANSWER_CASES if case.endswith("_stream")]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if importlib.util.find_spec("g4f") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("g4f is not installed: pip install -e .[g4f]")
        pytest.skip("g4f is not installed (pip install -e .[g4f])")
    home = tmp_path_factory.mktemp("g4f_home")
    # g4f writes usage logs and caches under its config and cache directories:
    # keep them in the test's temp dir; and no proxy from the environment.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith("G4F_")
    }
    env.update(
        HOME=str(home),
        G4F_CONFIG_DIR=str(home / "config"),
        G4F_CACHE_DIR=str(home / "cache"),
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.g4f_runner", "--netns"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUNNER_BOUND,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def _text(case: dict[str, Any]) -> str:
    return "".join(piece for piece in case["pieces"] if isinstance(piece, str))


def test_nothing_left_the_machine(report: dict[str, Any]) -> None:
    assert report["guard_works"] is True
    assert report["outbound"] == []
    if report["namespace"] in ("netns", "user+netns"):
        assert report["interfaces"] == ["lo"]
    else:
        # No namespace here (not root, no user namespaces): the socket guards
        # alone kept everything on loopback.
        assert report["namespace"].startswith("unavailable")


def test_the_package_never_imports_g4f(report: dict[str, Any]) -> None:
    assert report["acytoo_raw_imports_g4f"] is False


def test_the_runner_drove_g4f_8(report: dict[str, Any]) -> None:
    assert report["g4f_version"].split(".")[0] == "8"


@pytest.mark.parametrize("name", ANSWER_CASES)
def test_every_g4f_entry_point_gets_the_whole_answer(report: dict[str, Any], name: str) -> None:
    case = report["cases"][name]
    assert case["ok"] is True, case
    assert _text(case) == HELLO


@pytest.mark.parametrize("name", STREAMED_CASES)
def test_streamed_entry_points_get_the_answer_in_pieces(report: dict[str, Any], name: str) -> None:
    pieces = [piece for piece in report["cases"][name]["pieces"] if isinstance(piece, str)]
    assert len(pieces) > 1


def test_async_client_reports_the_provider_from_get_dict(report: dict[str, Any]) -> None:
    assert report["cases"]["async_client"]["provider"] == "Acytoo"


@pytest.mark.parametrize("name", ANSWER_CASES)
def test_an_http_error_raises_through_every_entry_point(report: dict[str, Any], name: str) -> None:
    case = report["error_cases"][name]
    assert case["ok"] is False, case
    assert case["error"] == "HTTPStatusError"
    assert case["error_module"].startswith("acytoo_raw")
    assert "500" in case["message"]
    # Nothing was handed out as text, neither the status nor the error body.
    assert _text(case) == ""
    assert ERROR_BODY.decode() not in json.dumps(case["pieces"])


def test_media_is_refused_not_dropped(report: dict[str, Any]) -> None:
    case = report["cases"]["chat_create_with_image"]
    assert case["ok"] is False
    assert case["error"] == "LocalProtocolError"
    assert case["pieces"] == []


def test_g4f_refuses_the_provider_as_not_working_by_default(report: dict[str, Any]) -> None:
    case = report["not_working"]
    assert case["error"] == "ProviderNotWorkingError"
    assert "Acytoo" in case["message"]


def test_a_name_registered_with_g4f_resolves_to_the_class(report: dict[str, Any]) -> None:
    assert report["registry_by_name"] is True


def test_g4f_counts_answers_on_the_class(report: dict[str, Any]) -> None:
    # g4f's Client paths do `provider.live += 1` (or -= 1): it wrote an int on the class.
    assert isinstance(report["live"], int)


def test_parameters_as_g4f_serves_them(report: dict[str, Any]) -> None:
    assert report["get_parameters"] == ["messages", "model", "temperature", "timeout"]
    assert report["get_parameters_json"]["provider"] == "Acytoo"
    assert report["get_parameters_json"]["model"] == "gpt-3.5-turbo"
    assert report["get_parameters_json"]["temperature"] == 0.5


def test_no_resource_leaks_or_unraisable_errors(report: dict[str, Any]) -> None:
    assert [w for w in report["warnings"] if "ResourceWarning" in w] == []
    assert report["unraisable"] == []
