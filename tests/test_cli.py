"""The command line: chat, serve, demo; one clear error line, quiet Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from acytoo_raw.__main__ import _summary, main
from tests.threaded import threaded_server

BOUND = 20.0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "acytoo_raw", *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_chat_streams_the_answer_to_stdout(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded_server() as base:
        status = main(
            ["--backend", backend, "chat", "Hi 🌍 there", "--base-url", base, "--no-proxy"]
        )
    assert status == 0
    assert capsys.readouterr().out == "Hi 🌍 there\n"


def test_chat_error_is_one_line_without_traceback() -> None:
    result = run_cli("chat", "hi", "--base-url", "http://127.0.0.1:1", "--no-proxy")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("acytoo-raw: ConnectError: ")


def test_chat_bad_url_is_one_line() -> None:
    result = run_cli("chat", "hi", "--base-url", "ftp://x", "--no-proxy")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "LocalProtocolError" in result.stderr


def test_demo_streams_and_prints_a_summary() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert "Привет, 你好 and 👋 arrive whole." in out[0]
    assert out[-1].startswith("pieces: ")
    assert "first piece:" in out[-1]
    assert "gap p99:" in out[-1]


def test_serve_answers_and_ctrl_c_exits_quietly() -> None:
    port_probe = subprocess.Popen(
        [sys.executable, "-m", "acytoo_raw", "serve", "--port", "0", "--delay", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert port_probe.stderr is not None
        line = port_probe.stderr.readline()  # "serving http://127.0.0.1:PORT/api/completions ..."
        assert line.startswith("serving http://127.0.0.1:")
        url = line.split()[1]
        base = url.removesuffix("/api/completions")
        result = run_cli("chat", "ping pong", "--base-url", base, "--no-proxy")
        assert result.stdout == "ping pong\n"
        port_probe.send_signal(signal.SIGINT)
        assert port_probe.wait(timeout=BOUND) == 130
        assert "Traceback" not in port_probe.stderr.read()
    finally:
        port_probe.kill()
        port_probe.wait()
        if port_probe.stderr is not None:
            port_probe.stderr.close()


def test_summary_reports_pieces_bytes_first_piece_and_gaps() -> None:
    start = time.perf_counter()
    line = _summary(start, [start + 0.010, start + 0.020, start + 0.040], 12)
    assert line.startswith("pieces: 3  bytes: 12  first piece: 10.0 ms")
    assert "gap median: 15.0 ms" in line
    assert "gap p99: 20.0 ms" in line
    assert _summary(start, [], 0) == "received no pieces"


@pytest.mark.parametrize(
    "args",
    [
        ("chat", "hi", "--timeout", "-1"),
        ("chat", "hi", "--timeout", "nan"),
        ("chat", "hi", "--temperature", "inf"),
        ("serve", "--delay", "-1"),
        ("serve", "--piece-size", "0"),
    ],
)
def test_bad_option_values_are_usage_errors_without_traceback(args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: argument" in result.stderr


def test_unreadable_cafile_names_the_file() -> None:
    result = run_cli("chat", "hi", "--cafile", "/no/such/ca.pem", "--base-url", "https://x")
    assert result.returncode == 1
    assert "/no/such/ca.pem" in result.stderr
    assert "Traceback" not in result.stderr


CTRL_C_DURING_CREATE_COMPLETION = """
import sys
from acytoo_raw import Acytoo
from tests.threaded import threaded_server
with threaded_server(delay=5.0) as base:
    try:
        for piece in Acytoo.create_completion("m", [{"role": "user", "content": "a b"}],
                                              base_url=base):
            print("piece", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


def test_ctrl_c_during_create_completion_is_a_keyboard_interrupt() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_DURING_CREATE_COMPLETION],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "piece\n"  # Now blocked waiting for the next piece.
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=BOUND)
    finally:
        child.kill()
        child.wait()
    assert out == "interrupted\n", err
    assert "RuntimeError" not in err
