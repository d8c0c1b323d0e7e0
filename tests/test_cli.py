"""The command line: chat, serve, demo; one clear stderr line and a documented exit status for
every way out (usage 2, errors 1, Ctrl-C 130, closed pipe 141), never a traceback, and
nothing from a server reaching the terminal unescaped."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme
from anyio.abc import ByteStream
from anyio.from_thread import start_blocking_portal
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

import acytoo_raw
import acytoo_raw.__main__ as cli
from acytoo_raw import Acytoo, ConnectError, HTTPStatusError
from acytoo_raw.__main__ import _parser, _summary, _timings_line, main
from acytoo_raw._cli_format import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    MAX_BODY_EXCERPT_CHARS,
    MAX_LINE_CHARS,
    REDACTED,
    Output,
    describe_error,
    printable,
    redact,
)
from acytoo_raw._response import Timings
from tests.peers import Handler, PeerLog, read_request, response, script, scripted_server
from tests.threaded import threaded_server

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup, ExceptionGroup
else:
    from exceptiongroup import (  # type: ignore[import-not-found, unused-ignore]
        BaseExceptionGroup,
        ExceptionGroup,
    )

BOUND = 20.0
WORDS = " ".join(f"word{n}" for n in range(40))  # An answer long enough to interrupt.
# Characters no line on stderr may hold raw: C0, DEL, C1, bidi controls, line separators.
CONTROL = {
    *map(chr, range(0x20)),
    *map(chr, range(0x7F, 0xA0)),
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\u2028",
    "\u2029",
}
CLI = [sys.executable, "-m", "acytoo_raw"]
# Runs the CLI and says "started" on stdout from inside main(): a Ctrl-C after that line
# lands in main()'s hands, not in the imports before it (Python's own traceback).
STARTED_CLI = """
import sys, acytoo_raw.__main__ as cli
parse = cli._parse
def started(argv):
    print("started", flush=True)
    return parse(argv)
cli._parse = started
sys.exit(cli.main(sys.argv[1:]))
"""


# Variables of the machine that would change what the CLI does; tests set them explicitly.
CLI_VARIABLES = ("ACYTOO_RAW_DEBUG", "ACYTOO_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLI_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    # Buffered stdout, as users have it: a failed flush then keeps its buffer for the
    # interpreter's last flush at exit, which must not fail again.
    env.pop("PYTHONUNBUFFERED", None)
    for name in CLI_VARIABLES:
        env.pop(name, None)
    return {**env, **extra}


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=BOUND, env=child_env(**env)
    )


def assert_one_error_line(stderr: str, start: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(start), stderr
    assert "Traceback" not in stderr


@contextmanager
def child(*args: str, stdout: int = subprocess.PIPE) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(args, stdout=stdout, stderr=subprocess.PIPE, env=child_env())
    try:
        yield process
    finally:
        process.kill()
        process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def read_at_least(process: subprocess.Popen[bytes], size: int) -> bytes:
    """Bytes from the child's stdout as they come, until ``size`` of them (bounded)."""
    assert process.stdout is not None
    data = b""
    deadline = time.monotonic() + BOUND
    while len(data) < size and time.monotonic() < deadline:
        piece = os.read(process.stdout.fileno(), 4096)
        if not piece:
            break
        data += piece
    return data


def finish(process: subprocess.Popen[bytes]) -> tuple[bytes, str]:
    """The rest of stdout and all of stderr once the child has exited."""
    out, err = process.communicate(timeout=BOUND)
    return out or b"", err.decode("utf-8", "replace")


@contextmanager
def threaded_peer(*steps: bytes | float) -> Iterator[str]:
    """A hand-written peer (tests/peers.py) on its own event loop thread; yields its base URL."""
    with threaded_handler(script(*steps)) as (base, _):
        yield base


@contextmanager
def threaded_handler(make: Callable[[PeerLog], Handler]) -> Iterator[tuple[str, PeerLog]]:
    """A peer running ``make(log)``'s handler on its own event loop thread."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(scripted_server(make)) as (base, log),
    ):
        yield base, log


def bearer(request: bytes) -> str | None:
    """The key of the request's ``authorization: Bearer`` header, or ``None``."""
    head = request.partition(b"\r\n\r\n")[0]
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return value.strip().decode("ascii").removeprefix("Bearer ")
    return None


def answering(answer: Callable[[str | None], bytes]) -> Callable[[PeerLog], Handler]:
    """A peer that answers each request with ``answer(<the key it was sent>)``."""

    def make(log: PeerLog) -> Handler:
        async def handle(stream: ByteStream) -> None:
            request = await read_request(stream)
            log.requests.append(request)
            await stream.send(answer(bearer(request)))

        return handle

    return make


def sse(*chunks: object, done: bool = True) -> bytes:
    """A whole event-stream answer: one ``data:`` event per chunk, then ``[DONE]``."""
    events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    body = b"".join(events) + (b"data: [DONE]\n\n" if done else b"")
    return response(body, headers=(b"content-type: text/event-stream",))


def delta(content: str | None = None, finish: str | None = None) -> dict[str, object]:
    text = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": text, "finish_reason": finish}]}


def timings_pairs(stderr: str) -> dict[str, str]:
    """The one ``timings:`` line of ``stderr`` as name -> value; checks its shape."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("timings: "), stderr
    assert not CONTROL.intersection(lines[0])
    pairs = [pair.split("=") for pair in lines[0].removeprefix("timings: ").split(" ")]
    assert all(len(pair) == 2 for pair in pairs), stderr
    parsed = dict(pairs)
    assert len(parsed) == len(pairs), stderr  # No name twice.
    return parsed


def ms(value: str) -> float:
    assert value.endswith("ms"), value
    return float(value.removesuffix("ms"))


# --- chat, serve, demo work as before ------------------------------------------------------


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
    assert result.returncode == EXIT_ERROR
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "acytoo-raw: ConnectError: ")


def test_http_error_line_shows_the_start_of_the_error_body(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with threaded_server() as base:  # /nowhere/api/completions: the server's 404 with its JSON.
        status = main(["chat", "hi", "--base-url", base + "/nowhere", "--no-proxy"])
    assert status == EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_error_line(captured.err, "acytoo-raw: HTTPStatusError: server answered 404")
    assert '(body: {"msg": ' in captured.err


def test_default_base_url_failure_says_the_public_service_is_offline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ACYTOO_BASE_URL", raising=False)
    monkeypatch.setattr(Acytoo, "url", "http://127.0.0.1:1")  # Stands in for the dead host.
    assert main(["chat", "hi", "--no-proxy"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert_one_error_line(err, "acytoo-raw: ConnectError: ")
    assert "public Acytoo service is offline" in err
    assert "--base-url http://127.0.0.1:8000" in err


def test_socks_proxy_from_the_environment_is_used_and_no_proxy_cidr_bypasses_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1")  # Refused: nothing listens there.
    with threaded_server() as base:
        assert main(["chat", "hi", "--base-url", base]) == EXIT_ERROR
        assert_one_error_line(capsys.readouterr().err, "acytoo-raw: ProxyError: ")
        monkeypatch.setenv("NO_PROXY", "10.0.0.0/8,127.0.0.0/8")
        assert main(["chat", "hi", "--base-url", base]) == 0
        assert capsys.readouterr().out == "hi\n"


def test_demo_streams_both_dialects_and_prints_their_summaries() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert len(out) == 4, result.stdout
    assert out[0] == out[2] == cli.DEMO_PROMPT  # The echo, through each dialect.
    for summary in (out[1], out[3]):
        assert summary.startswith("pieces: ")
        assert "first piece:" in summary
        assert "gap p99:" in summary
    assert "finish reason: stop" in out[3]
    assert re.search(r"usage: \d+ prompt \+ \d+ completion tokens", out[3])
    err = result.stderr.splitlines()
    assert len(err) == 2, result.stderr
    assert err[0].startswith("loopback server at http://127.0.0.1:")
    assert "POST /api/completions" in err[0]
    assert "POST /v1/chat/completions" in err[1]


def test_serve_answers_and_ctrl_c_exits_quietly() -> None:
    with child(*CLI, "serve", "--port", "0", "--delay", "0", stdout=subprocess.DEVNULL) as server:
        assert server.stderr is not None
        line = server.stderr.readline().decode()  # "serving http://127.0.0.1:PORT/api/..."
        assert line.startswith("serving http://127.0.0.1:")
        base = line.split()[1].removesuffix("/api/completions")
        result = run_cli("chat", "ping pong", "--base-url", base, "--no-proxy")
        assert result.stdout == "ping pong\n"
        server.send_signal(signal.SIGINT)
        _, err = finish(server)
        assert server.returncode == EXIT_INTERRUPTED
        assert err == ""


def test_summary_reports_pieces_bytes_first_piece_and_gaps() -> None:
    start = time.perf_counter()
    line = _summary(start, [start + 0.010, start + 0.020, start + 0.040], 12)
    assert line.startswith("pieces: 3  bytes: 12  first piece: 10.0 ms")
    assert "gap median: 15.0 ms" in line
    assert "gap p99: 20.0 ms" in line
    assert _summary(start, [], 0) == "received no pieces"


# --- chat --api openai ----------------------------------------------------------------------

PHASES = ["connected", "tunnel", "tls", "sent", "head", "first_piece", "first_token", "end"]
KEY = "sk-test-0123456789abcdefghijklmnopqrstuvwxyz"
# A key with what JSON and repr escape, a slash some servers escape, and a double space a
# whitespace-folding excerpt would squeeze.
ODD_KEY = "sk-odd/\"\\  key's-end"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_openai_chat_streams_the_echo_reply(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded_server() as base:
        args = ["chat", "Hi 🌍 there", "--api", "openai", "--base-url", base + "/v1", "--no-proxy"]
        assert main(["--backend", backend, *args]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("Hi 🌍 there\n", "")


def test_openai_chat_in_a_real_run_and_from_openai_base_url() -> None:
    with threaded_server(delay=0.01) as base:
        result = run_cli("chat", "one two three", "--api", "openai", "--base-url", base + "/v1")
        assert (result.returncode, result.stdout, result.stderr) == (0, "one two three\n", "")
        result = run_cli("chat", "from env", "--api", "openai", OPENAI_BASE_URL=base + "/v1")
        assert (result.returncode, result.stdout, result.stderr) == (0, "from env\n", "")


def test_openai_chat_sends_model_temperature_and_no_key_by_default() -> None:
    answer = sse(delta("ok"), delta(finish="stop"))
    with threaded_handler(answering(lambda key: answer)) as (base, log):
        result = run_cli("chat", "hi", "--api", "openai", "--base-url", base + "/v1")
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
        args = ["--model", "local-model", "--temperature", "0.25"]
        result = run_cli("chat", "hi", "--api", "openai", "--base-url", base + "/v1", *args)
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    first, second = (json.loads(request.partition(b"\r\n\r\n")[2]) for request in log.requests)
    assert log.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert first == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    assert (second["model"], second["temperature"]) == ("local-model", 0.25)
    assert [bearer(request) for request in log.requests] == [None, None]


def test_openai_api_key_comes_from_the_option_else_the_environment() -> None:
    answer = sse(delta("ok"), delta(finish="stop"))
    with threaded_handler(answering(lambda key: answer)) as (base, log):
        chat = ["chat", "hi", "--api", "openai", "--base-url", base + "/v1"]
        for extra in ([], ["--api-key", "sk-option"], ["--api-key", ""]):
            result = run_cli(*chat, *extra, OPENAI_API_KEY="sk-from-env")
            assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
        result = run_cli(*chat, OPENAI_API_KEY="  ")  # Blank counts as unset.
        assert result.returncode == 0, result.stderr
    keys = [bearer(request) for request in log.requests]
    assert keys == ["sk-from-env", "sk-option", None, None]


def test_openai_404_at_a_server_root_says_to_add_v1() -> None:
    with threaded_server() as base:  # The loopback server's root: /chat/completions is a 404.
        result = run_cli("chat", "hi", "--api", "openai", "--base-url", base, "--timings")
    assert result.returncode == EXIT_ERROR
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "acytoo-raw: HTTPStatusError: server answered 404")
    assert f"for {base}/chat/completions" in result.stderr
    assert f"answer below /v1: try --base-url {base}/v1" in result.stderr
    assert "timings:" not in result.stderr  # No timings after an error.


def test_acytoo_404_at_a_v1_base_url_says_to_pass_api_openai() -> None:
    with threaded_server() as base:
        result = run_cli("chat", "hi", "--base-url", base + "/v1")
    assert result.returncode == EXIT_ERROR
    assert_one_error_line(result.stderr, "acytoo-raw: HTTPStatusError: server answered 404")
    assert "pass --api openai" in result.stderr


def test_openai_401_without_a_key_says_how_to_send_one() -> None:
    body = json.dumps({"error": {"message": "You didn't provide an API key."}}).encode()
    answer = response(body, status=b"401 Unauthorized")
    with threaded_handler(answering(lambda key: answer)) as (base, _):
        chat = ["chat", "hi", "--api", "openai", "--base-url", base + "/v1"]
        for extra, env in (([], {}), (["--api-key", ""], {"OPENAI_API_KEY": "sk-env"})):
            result = run_cli(*chat, *extra, **env)
            assert result.returncode == EXIT_ERROR
            assert_one_error_line(result.stderr, "acytoo-raw: HTTPStatusError: server answered 401")
            assert "You didn't provide an API key." in result.stderr
            assert "no API key was sent: set $OPENAI_API_KEY or pass --api-key" in result.stderr


def test_openai_chat_goes_through_the_proxy(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--api", "openai", "--base-url", "http://127.0.0.1:9/v1"]
    assert main(["chat", "hi", *args, "--proxy", "socks5://127.0.0.1:1"]) == EXIT_ERROR
    assert_one_error_line(capsys.readouterr().err, "acytoo-raw: ProxyError: ")


# --- the API key is never shown -------------------------------------------------------------


def echoed_in_an_error_body(key: str | None) -> bytes:
    """401 with the key in the reason, the JSON message, across both excerpt cuts, and raw."""
    key = key or ""
    body = json.dumps(
        {
            "error": {"message": f"Incorrect API key provided: {key}", "type": "auth"},
            "near": "x" * (MAX_BODY_EXCERPT_CHARS - 60) + key,  # Across the excerpt's end.
            "far": "y" * 700 + key,  # Across the first 800 bytes.
        }
    ).encode()
    raw = f"\n\tkey: {key}".encode()
    return response(body + raw, status=b"401 " + key.encode())


def echoed_after_blanks(key: str | None) -> bytes:
    """The key across the 800th byte, after blanks an excerpt folds into one space."""
    return response(b" " * 790 + (key or "").encode(), status=b"401 Unauthorized")


def echoed_in_the_stream(key: str | None) -> bytes:
    error = {"error": {"message": f"key {key} revoked", "type": "auth", "code": key}}
    return sse(delta("hi"), error, done=False)


def echoed_as_finish_reason(key: str | None) -> bytes:
    return sse(delta("hi"), delta(finish=key), {"choices": [], "usage": {"note": key}})


@pytest.mark.parametrize("key", [KEY, ODD_KEY])
# From the option without a traceback, from the environment with ACYTOO_RAW_DEBUG's.
@pytest.mark.parametrize(("given", "debug"), [("option", ""), ("environment", "1")])
@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (echoed_in_an_error_body, EXIT_ERROR),
        (echoed_after_blanks, EXIT_ERROR),
        (echoed_in_the_stream, EXIT_ERROR),
        (echoed_as_finish_reason, 0),
    ],
)
def test_api_key_is_never_printed_even_when_the_server_echoes_it(
    key: str, given: str, answer: Callable[[str | None], bytes], status: int, debug: str
) -> None:
    with threaded_handler(answering(answer)) as (base, log):
        args = ["chat", "hi", "--api", "openai", "--base-url", base + "/v1", "--timings"]
        env = {"ACYTOO_RAW_DEBUG": debug}
        if given == "option":
            args += ["--api-key", key]
        else:
            env["OPENAI_API_KEY"] = key
        result = run_cli(*args, **env)
    assert [bearer(request) for request in log.requests] == [key]  # It was sent.
    assert result.returncode == status, result.stderr
    shown = result.stdout + result.stderr
    for form in (key, json.dumps(key)[1:-1], repr(key)[1:-1], quote(key, safe="")):
        assert form not in shown, shown
        assert " ".join(form.split()) not in shown, shown  # Whitespace folded.
    for part in ("0123456789abcdef", "sk-odd", "s-end"):  # Nor a piece of one.
        assert part not in shown, shown
    assert REDACTED in shown or "<api key>" in shown or "%3Chidden%3E" in shown
    if not debug:
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_api_key_not_shown_in_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "chat", "hi", "--api-key", "sk-secret-value")
    assert "argument --api-key: only with --api openai (the Acytoo API takes no key)" in line
    line = usage_error(capsys, "chat", "hi", "--api", "openai", "--api-key", "sk-secret\x00")
    assert "must be printable ASCII" in line
    assert "sk-secret" not in capsys.readouterr().err + line


def test_bad_api_key_in_the_environment_names_the_variable_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret\u00e9")
    line = usage_error(capsys, "chat", "hi", "--api", "openai")
    assert "$OPENAI_API_KEY: must be printable ASCII" in line
    assert "sk-secret" not in line


def test_model_is_refused_with_acytoo(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "chat", "hi", "--model", "gpt-4")
    assert "argument --model: only with --api openai" in line
    assert "gpt-3.5-turbo" in line


def test_openai_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    args = cli._parse(["chat", "hi", "--api", "openai"])
    assert (args.base_url, args.model, args.api_key) == (
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        None,
    )
    assert args.temperature is None  # Not sent: the server's default applies.
    assert cli._parse(["chat", "hi"]).temperature == 0.5  # The Acytoo payload's.
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000")
    with pytest.raises(SystemExit):
        cli._parse(["chat", "hi", "--api", "openai"])


def test_redact_cuts_every_form_of_a_secret() -> None:
    assert redact("a sk-1 b sk-1", ["sk-1"]) == f"a {REDACTED} b {REDACTED}"
    assert redact('{"k": "a\\"b\\/c"}', ['a"b/c']) == f'{{"k": "{REDACTED}"}}'
    assert redact("x", []) == redact("x", [""]) == "x"
    out = Output()
    out.hide(None)
    out.hide("")
    assert not out.hidden
    out.hide("k1")
    assert out.hidden == ("k1",)


def test_describe_error_cuts_the_key_before_shortening_the_body() -> None:
    key = "sk-" + "z" * 40
    body = ("a " * (MAX_BODY_EXCERPT_CHARS // 2 - 10)).encode() + key.encode()
    error = HTTPStatusError(
        f"server answered 401 {key}", status_code=401, reason=key, headers=[], body=body
    )
    assert "zzzz" in describe_error(error)  # Unredacted, a prefix of the key shows...
    line = describe_error(error, [key])
    assert "zzzz" not in line  # ...redacted, no part of it.
    assert line.startswith(f"HTTPStatusError: server answered 401 {REDACTED} (body: a a ")


# --- --timings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["acytoo", "openai"])
def test_timings_line_is_on_stderr_only_and_parseable(api: str) -> None:
    with threaded_server(delay=0.01) as base:
        url = base + "/v1" if api == "openai" else base
        result = run_cli("chat", "one two three", "--api", api, "--base-url", url, "--timings")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "one two three\n"  # Stdout holds the answer and nothing else.
    pairs = timings_pairs(result.stderr)
    names = [*PHASES, "pieces", "gap_median", "gap_p99", "reused", "tls_resumed"]
    if api == "openai":
        names.append("finish_reason")
    assert list(pairs) == names
    assert (pairs["tunnel"], pairs["tls"]) == ("-", "-")  # Plain HTTP, no proxy.
    times = [ms(pairs[name]) for name in PHASES if name not in ("tunnel", "tls")]
    assert times == sorted(times)  # connected <= sent <= head <= first piece <= token <= end.
    assert times[0] > 0
    assert pairs["pieces"] == "3"
    assert 0 < ms(pairs["gap_median"]) <= ms(pairs["gap_p99"])
    assert (pairs["reused"], pairs["tls_resumed"]) == ("no", "no")
    if api == "openai":
        assert pairs["finish_reason"] == "stop"
        assert ms(pairs["first_piece"]) < ms(pairs["first_token"])  # The role chunk came first.
    else:
        assert pairs["first_piece"] == pairs["first_token"]


def test_timings_line_escapes_what_the_server_sent(capsys: pytest.CaptureFixture[str]) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": True}  # A bool is no count.
    answer = sse(delta("hi"), delta(finish="\x1b[31m stop\u202e"), {"choices": [], "usage": usage})
    with threaded_peer(answer) as base:
        args = ["chat", "hi", "--api", "openai", "--base-url", base + "/v1", "--timings"]
        assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == "hi\n"
    pairs = timings_pairs(captured.err)
    assert pairs["finish_reason"] == "%1B%5B31m%20stop%E2%80%AE"
    assert pairs["prompt_tokens"] == "3"
    assert "completion_tokens" not in pairs


class FakeReply:
    """What _timings_line reads of a reply."""

    def __init__(self, timings: Timings | None, **fields: object) -> None:
        self.timings = timings
        self.first_token_time = fields.get("first_token_time")
        self.finish_reason = fields.get("finish_reason")
        self.usage = fields.get("usage")

    def __aiter__(self) -> AsyncIterator[str]:
        raise NotImplementedError


def test_timings_line_format() -> None:
    timings = Timings(100.0)
    timings.connected, timings.sent, timings.head = 0.0004, 0.0006, 0.0012
    timings.first_piece, timings.end = 0.0013, 0.052
    timings.reused = True
    reply = FakeReply(
        timings,
        first_token_time=0.0019,
        finish_reason="stop",
        usage={"prompt_tokens": 5, "completion_tokens": 2},
    )
    arrivals = [100.002, 100.004, 100.0075, 100.010]  # Gaps 2.0, 2.0, 3.5 ... 2.5 ms.
    assert _timings_line(reply, arrivals) == (  # type: ignore[arg-type]
        "timings: connected=0.40ms tunnel=- tls=- sent=0.60ms head=1.20ms first_piece=1.30ms "
        "first_token=1.90ms end=52.00ms pieces=4 gap_median=2.50ms gap_p99=3.50ms "
        "reused=yes tls_resumed=no finish_reason=stop prompt_tokens=5 completion_tokens=2"
    )
    one = _timings_line(FakeReply(None), [5.0])  # type: ignore[arg-type]
    assert one == (
        "timings: connected=- tunnel=- tls=- sent=- head=- first_piece=- first_token=- end=- "
        "pieces=1 gap_median=- gap_p99=-"
    )
    hidden = _timings_line(FakeReply(None, finish_reason="k3y!"), [], ["k3y"])  # type: ignore[arg-type]
    assert hidden.endswith("finish_reason=%3Chidden%3E%21")


# --- usage errors: status 2, argparse's usage line and one error line ----------------------


def usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``main(args)``, check it is a usage error, return its error line."""
    assert main(list(args)) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    error_lines = [line for line in captured.err.splitlines() if ": error: " in line]
    assert len(error_lines) == 1, captured.err
    return error_lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("chat", "hi", "--timeout", "-1"),
        ("chat", "hi", "--timeout", "nan"),
        ("chat", "hi", "--temperature", "inf"),
        ("serve", "--delay", "-1"),
        ("serve", "--piece-size", "0"),
        ("serve", "--port", "99999"),
        ("serve", "--port", "65536"),
        ("serve", "--port", "-1"),
        ("serve", "--port", "http"),
        ("--backend", "curio", "demo"),
    ],
)
def test_bad_option_values_are_usage_errors(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert "error: argument" in usage_error(capsys, *args)


def test_port_out_of_range_is_a_usage_error_in_a_real_run() -> None:
    result = run_cli("serve", "--port", "99999")  # Was an OverflowError traceback from bind().
    assert result.returncode == EXIT_USAGE
    assert "argument --port: must be a port from 0 to 65535" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["", "127.0.0.1:8000", "ftp://x", "http://", "http://h/?q"])
def test_bad_base_url_says_what_is_expected(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "chat", "hi", "--base-url", url)
    assert "argument --base-url: expected a URL like http://127.0.0.1:8000" in line


def test_scheme_less_base_url_names_the_schemes(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "chat", "hi", "--base-url", "127.0.0.1:8000")
    assert "http:// or https://" in line


@pytest.mark.parametrize("proxy", ["127.0.0.1:3128", "", "ftp://h:1", "socks4://h:1"])
def test_bad_proxy_says_which_schemes_are_expected(
    proxy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = usage_error(capsys, "chat", "hi", "--proxy", proxy)
    assert "argument --proxy: expected a URL like http://127.0.0.1:3128" in line
    assert "http://, https://, socks5:// or socks5h://" in line


def test_bad_proxy_message_hides_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "chat", "hi", "--proxy", "http://user:s3cret@h:99999")
    assert "s3cret" not in line


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "socks5h://u:p@localhost"])
def test_socks_proxies_pass_the_option_check(proxy: str) -> None:
    args = cli._parse(["chat", "hi", "--proxy", proxy])
    assert args.proxy == proxy


def test_proxy_and_no_proxy_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "chat", "hi", "--proxy", "http://h:1", "--no-proxy")
    assert "not allowed with argument --proxy" in line


def test_bad_base_url_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACYTOO_BASE_URL", "localhost:8000")
    line = usage_error(capsys, "chat", "hi")
    assert "$ACYTOO_BASE_URL: expected a URL like http://127.0.0.1:8000" in line


def test_base_url_comes_from_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACYTOO_BASE_URL", "http://127.0.0.1:9")
    assert cli._parse(["chat", "hi"]).base_url == "http://127.0.0.1:9"
    assert cli._parse(["chat", "hi", "--base-url", "https://h"]).base_url == "https://h"
    monkeypatch.setenv("ACYTOO_BASE_URL", "  ")  # Blank counts as unset.
    assert cli._parse(["chat", "hi"]).base_url == Acytoo.url


def test_keyfile_without_certfile_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "serve", "--keyfile", "key.pem")
    assert "argument --keyfile: needs --certfile" in line


def test_usage_errors_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "chat", "hi", "\x1b[2J\u202e")  # Quoted raw by argparse.
    assert "unrecognized arguments" in line
    assert not CONTROL.intersection(line)
    assert "\\x1b[2J\\u202e" in line


def test_backend_trio_without_trio_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "trio", None)  # `import trio` now fails as if not installed.
    line = usage_error(capsys, "--backend", "trio", "chat", "hi", "--base-url", "http://h")
    assert "the trio package is not installed" in line
    assert "pip install 'acytoo_raw[trio]'" in line


def test_every_option_and_command_has_help() -> None:
    parsers = [_parser()]
    seen = 0
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            assert action.help, (parser.prog, action.dest)
            assert action.help is not argparse.SUPPRESS
            seen += 1
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
                for choice in action._choices_actions:
                    assert choice.help, (parser.prog, choice.dest)
    assert seen > 15  # Walked into the subcommands.


def test_help_lists_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for status in ("0 ", "1 ", "2 ", "130", "141"):
        assert f"  {status}" in out


def test_version_prints_name_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"acytoo-raw {acytoo_raw.__version__}\n"


# --- serve: TLS options and the listening address ------------------------------------------


@pytest.fixture
def pem_files(tmp_path: Path, tls_server_cert: trustme.LeafCert) -> dict[str, Path]:
    paths = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "other_key", "junk")}
    tls_server_cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    tls_server_cert.private_key_pem.write_to_path(str(paths["key"]))
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(paths["other_key"]))
    paths["junk"].write_text("not a PEM file\n")
    key = serialization.load_pem_private_key(tls_server_cert.private_key_pem.bytes(), None)
    paths["encrypted_key"] = tmp_path / "encrypted.pem"
    paths["encrypted_key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return paths


def serve_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["serve", "--port", "0", *args]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, "acytoo-raw: ")
    return captured.err


@pytest.mark.parametrize("option", ["--certfile", "--keyfile"])
def test_missing_cert_or_key_file_is_named(
    option: str, pem_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = {"--certfile": str(pem_files["cert"]), "--keyfile": str(pem_files["key"])}
    paths[option] = "/no/such/file.pem"
    err = serve_error(capsys, "--certfile", paths["--certfile"], "--keyfile", paths["--keyfile"])
    assert f"cannot read {option} /no/such/file.pem: No such file or directory" in err


def test_bad_pem_files_are_one_line_each(
    pem_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key, junk = str(pem_files["cert"]), str(pem_files["key"]), str(pem_files["junk"])
    assert "no PEM certificate" in serve_error(capsys, "--certfile", junk, "--keyfile", key)
    assert "--keyfile" in serve_error(capsys, "--certfile", cert, "--keyfile", junk)
    assert "pass its key with --keyfile" in serve_error(capsys, "--certfile", cert)
    mismatch = serve_error(capsys, "--certfile", cert, "--keyfile", str(pem_files["other_key"]))
    assert "does not match --certfile" in mismatch
    encrypted = serve_error(
        capsys, "--certfile", cert, "--keyfile", str(pem_files["encrypted_key"])
    )
    assert "the private key is encrypted" in encrypted


def test_serve_with_certfile_and_keyfile_serves_https(
    pem_files: dict[str, Path], ca_file: str
) -> None:
    args = ["serve", "--port", "0", "--delay", "0"]
    tls = ["--certfile", str(pem_files["cert"]), "--keyfile", str(pem_files["key"])]
    with child(*CLI, *args, *tls, stdout=subprocess.DEVNULL) as server:
        assert server.stderr is not None
        line = server.stderr.readline().decode()
        assert line.startswith("serving https://127.0.0.1:")
        base = line.split()[1].removesuffix("/api/completions")
        result = run_cli("chat", "over tls", "--base-url", base, "--no-proxy", "--cafile", ca_file)
        assert (result.stdout, result.returncode) == ("over tls\n", 0), result.stderr
        # The OpenAI dialect over the same TLS, with the handshake in its timings.
        args = ["--api", "openai", "--base-url", base + "/v1", "--cafile", ca_file, "--timings"]
        result = run_cli("chat", "over tls", "--no-proxy", *args)
        assert (result.stdout, result.returncode) == ("over tls\n", 0), result.stderr
        pairs = timings_pairs(result.stderr)
        assert 0 < ms(pairs["connected"]) <= ms(pairs["tls"]) <= ms(pairs["sent"])
        assert pairs["tls_resumed"] == "no"


def test_address_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert_one_error_line(err, f"acytoo-raw: cannot listen on 127.0.0.1:{port}: ")


def test_unknown_host_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "no-such-host.invalid", "--port", "0"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert_one_error_line(err, "acytoo-raw: cannot listen on no-such-host.invalid:0: ")


def test_unreadable_cafile_names_the_file() -> None:
    result = run_cli("chat", "hi", "--cafile", "/no/such/ca.pem", "--base-url", "https://x")
    assert result.returncode == EXIT_ERROR
    assert "/no/such/ca.pem" in result.stderr
    assert "Traceback" not in result.stderr


# --- standard output: closed, broken pipe, full, Ctrl-C ------------------------------------


@pytest.mark.parametrize("command", ["chat", "demo"])
def test_closed_stdout_is_one_line_before_connecting(command: str) -> None:
    # A refused port: had chat connected first, the line would be a ConnectError.
    args = ["chat", "hi", "--base-url", "http://127.0.0.1:1"] if command == "chat" else ["demo"]
    result = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *CLI, *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env=child_env(),
    )
    assert result.returncode == EXIT_ERROR
    assert_one_error_line(result.stderr, "acytoo-raw: standard output is closed")


def test_closed_stderr_keeps_errors_off_stdout() -> None:
    result = subprocess.run(
        [
            "sh",
            "-c",
            'exec "$@" 2>&-',
            "sh",
            *CLI,
            "chat",
            "hi",
            "--base-url",
            "http://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env=child_env(),
    )
    assert (result.returncode, result.stdout) == (EXIT_ERROR, "")


@pytest.mark.parametrize("command", ["chat", "demo"])
def test_reader_closing_the_pipe_ends_quietly_with_141(command: str) -> None:
    with threaded_server(delay=0.02) as base:
        args = ["chat", WORDS, "--base-url", base, "--no-proxy"] if command == "chat" else ["demo"]
        with child(*CLI, *args) as process:
            assert len(read_at_least(process, 10)) >= 10  # As `| head -c 10` does.
            assert process.stdout is not None
            process.stdout.close()
            _, err = finish(process)
    assert process.returncode == EXIT_BROKEN_PIPE
    lines = err.splitlines()
    if command == "demo":
        assert lines[0].startswith("loopback server at http://127.0.0.1:")
        lines = lines[1:]
    assert lines == []  # No "Broken pipe", no "Exception ignored".


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_into_a_closed_pipe_ends_quietly_with_141(option: str) -> None:
    with child(*CLI, option) as process:
        assert process.stdout is not None
        process.stdout.close()  # Before the child writes: its flush meets EPIPE.
        _, err = finish(process)
    assert (process.returncode, err) == (EXIT_BROKEN_PIPE, "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_on_stdout_is_one_line() -> None:
    with threaded_server() as base, open("/dev/full", "wb") as full:
        result = subprocess.run(
            [*CLI, "chat", "hi there", "--base-url", base, "--no-proxy"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=BOUND,
            env=child_env(),
        )
    assert result.returncode == EXIT_ERROR
    assert_one_error_line(result.stderr, "acytoo-raw: cannot write to standard output: ")


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("snow ☃", b"snow \n"),  # The open line is finished.
        ("☃ snow", b""),  # Refused before a byte was written: no stray newline.
    ],
)
def test_unencodable_answer_is_one_line(message: str, shown: bytes) -> None:
    with threaded_server(delay=0.2) as base:  # The two words arrive apart.
        result = subprocess.run(
            [*CLI, "chat", message, "--base-url", base, "--no-proxy"],
            capture_output=True,
            timeout=BOUND,
            env=child_env(PYTHONIOENCODING="ascii"),
        )
    assert result.returncode == EXIT_ERROR
    assert result.stdout == shown
    assert_one_error_line(result.stderr.decode(), "acytoo-raw: cannot write the answer")
    assert b"PYTHONIOENCODING=utf-8" in result.stderr


@pytest.mark.parametrize("api", ["acytoo", "openai"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ctrl_c_mid_stream_finishes_the_line_and_exits_130(backend: str, api: str) -> None:
    url = "{}/v1" if api == "openai" else "{}"
    with (
        threaded_server(delay=0.5) as base,
        child(
            *CLI,
            *["--backend", backend, "chat", WORDS, "--api", api, "--timings"],
            *["--base-url", url.format(base), "--no-proxy"],
        ) as proc,
    ):
        first = read_at_least(proc, 1)
        assert first.startswith(b"word0")
        proc.send_signal(signal.SIGINT)
        rest, err = finish(proc)
    assert proc.returncode == EXIT_INTERRUPTED
    out = (first + rest).decode()
    assert out.endswith("\n")
    assert out.count("\n") == 1
    assert out.strip() != WORDS  # Cut short.
    assert err == ""


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05])
def test_ctrl_c_during_start_up_exits_130(command: str, backend: str, delay: float) -> None:
    args = ["--backend", backend, command, *(["--port", "0"] if command == "serve" else [])]
    with child(sys.executable, "-c", STARTED_CLI, *args) as process:
        assert read_at_least(process, len(b"started\n")).startswith(b"started\n")
        time.sleep(delay)  # Parsing, importing trio, building the loop, binding.
        process.send_signal(signal.SIGINT)
        _, err = finish(process)
    assert process.returncode == EXIT_INTERRUPTED, err
    # What start-up says, and nothing else: no traceback, no unclosed-loop warning.
    for line in err.splitlines():
        assert line.startswith(("serving http://", "loopback server at http://")), err


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ctrl_c_while_chat_connects_to_a_stalled_peer_exits_130(backend: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as stalled:
        stalled.settimeout(BOUND)
        base = f"https://127.0.0.1:{stalled.getsockname()[1]}"  # Never answers the TLS hello.
        args = ["--backend", backend, "chat", "hi", "--base-url", base, "--no-proxy"]
        with child(*CLI, *args) as process:
            connection, _ = stalled.accept()
            with connection:
                connection.settimeout(BOUND)
                assert connection.recv(1)  # The client hello: the client is mid-connect.
                process.send_signal(signal.SIGINT)
                out, err = finish(process)
    assert process.returncode == EXIT_INTERRUPTED, err
    assert (out, err) == (b"", "")


class InterruptedStdout:
    """Standard output where Ctrl-C lands right after the first piece went out."""

    def __init__(self) -> None:
        self.written = ""
        self.interrupted = False

    def write(self, text: str) -> int:
        self.written += text
        return len(text)

    def flush(self) -> None:
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt


def test_importing_the_cli_leaves_the_engine_for_main() -> None:
    # Whatever loads before main() runs is a window where Ctrl-C is Python's traceback.
    script = "import sys, acytoo_raw.__main__; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=BOUND, check=True
    ).stdout.split()
    assert "acytoo_raw.__main__" in loaded
    for heavy in ("anyio", "ssl", "h11", "idna", "acytoo_raw._client", "acytoo_raw.server"):
        assert heavy not in loaded, heavy


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ctrl_c_right_after_a_write_still_finishes_the_line(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = InterruptedStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    with threaded_server() as base:
        status = main(["--backend", backend, "chat", "hello", "--base-url", base, "--no-proxy"])
    assert (status, stdout.written) == (EXIT_INTERRUPTED, "hello\n")


def sigint_blocked() -> bool:
    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, ())


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_ctrl_c_is_held_back_until_the_loop_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, bool] = {}
    parse, completion = cli._parse, cli._completion

    def recording_parse(argv: list[str]) -> argparse.Namespace:
        seen["parse"] = sigint_blocked()  # Imports (trio) and checks: held.
        return parse(argv)

    def recording_completion(args: argparse.Namespace) -> object:
        seen["loop"] = sigint_blocked()  # The loop handles Ctrl-C itself: let through.
        return completion(args)

    monkeypatch.setattr(cli, "_parse", recording_parse)
    monkeypatch.setattr(cli, "_completion", recording_completion)
    assert not sigint_blocked()
    with threaded_server() as base:
        assert main(["chat", "hi", "--base-url", base, "--no-proxy"]) == 0
    assert seen == {"parse": True, "loop": False}
    assert not sigint_blocked()  # Let through again at the end.
    assert capsys.readouterr().out == "hi\n"


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
    process = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_DURING_CREATE_COMPLETION],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "piece\n"  # Now blocked waiting for the next piece.
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=BOUND)
    finally:
        process.kill()
        process.wait()
    assert out == "interrupted\n", err
    assert "RuntimeError" not in err


# --- what reaches the terminal --------------------------------------------------------------


def test_control_bytes_from_a_server_reach_stderr_escaped() -> None:
    body = b'{"msg": "\x1b]0;owned\x07 \xe2\x80\xae reversed \xc2\x9b2J"}'
    answer = response(body, status=b"500 \x9b[31mred")  # C1 CSI in the reason phrase.
    with threaded_peer(answer) as base:
        result = subprocess.run(
            [*CLI, "chat", "hi", "--base-url", base, "--no-proxy"],
            capture_output=True,
            timeout=BOUND,
            env=child_env(),
        )
    assert result.returncode == EXIT_ERROR
    err = result.stderr.decode("utf-8")
    assert_one_error_line(err, "acytoo-raw: HTTPStatusError: server answered 500 ")
    assert not CONTROL.intersection(err.removesuffix("\n"))
    assert "\\x9b[31mred" in err  # Shown, not obeyed.
    assert "\\x1b]0;owned\\x07" in err
    assert "\\u202e reversed" in err


def test_printable_escapes_each_kind_of_control() -> None:
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("\x00\t\n\r\x7f") == "\\x00\\x09\\x0a\\x0d\\x7f"
    assert printable("\x80\x9b\x9f") == "\\x80\\x9b\\x9f"
    assert printable("\u202a\u202e\u2066\u2069") == "\\u202a\\u202e\\u2066\\u2069"
    assert printable("\u2028\u2029\udcff") == "\\u2028\\u2029\\udcff"


def test_printable_keeps_ordinary_text() -> None:
    text = "Привет, 你好 👋 C:\\path \xa0é \u200d \u2065 \u206a"
    assert printable(text) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_printable_output_holds_no_control_and_one_line(text: str) -> None:
    shown = printable(text)
    assert not CONTROL.intersection(shown)
    assert len(shown.splitlines()) <= 1
    if not CONTROL.intersection(text) and not any("\ud800" <= c <= "\udfff" for c in text):
        assert shown == text


def test_describe_error_is_bounded() -> None:
    line = describe_error(ConnectError("x" * 100_000))
    assert len(line) == MAX_LINE_CHARS
    assert describe_error(ConnectError()) == "ConnectError"


# --- any exception: one line, status 1; a traceback only on request --------------------------


def broken_completion(exc: BaseException) -> object:
    @asynccontextmanager
    async def opened(args: argparse.Namespace) -> AsyncIterator[object]:
        raise exc
        yield  # An async context manager, like _completion's.

    return opened


@pytest.mark.parametrize(
    ("exc", "start"),
    [
        (UnicodeDecodeError("utf-16", b"\xff", 0, 1, "truncated data"), "unexpected "),
        (RuntimeError("boom\x1b[2J"), "unexpected RuntimeError: boom\\x1b[2J"),
        (ConnectError("refused"), "ConnectError: refused"),
        (ExceptionGroup("group", [ConnectError("inside")]), "ConnectError: inside"),
        (OSError(5, "Input/output error"), "OSError: [Errno 5] Input/output error"),
    ],
)
def test_any_exception_is_one_line_and_status_1(
    exc: BaseException,
    start: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("ACYTOO_RAW_DEBUG", raising=False)
    monkeypatch.setattr(cli, "_completion", broken_completion(exc))
    assert main(["chat", "hi", "--base-url", "http://127.0.0.1:9"]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_error_line(captured.err, "acytoo-raw: " + start)
    if start.startswith("unexpected"):
        assert "please report it; ACYTOO_RAW_DEBUG=1 shows the traceback" in captured.err


def test_debug_variable_adds_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACYTOO_RAW_DEBUG", "1")
    monkeypatch.setattr(cli, "_completion", broken_completion(RuntimeError("boom")))
    assert main(["chat", "hi", "--base-url", "http://127.0.0.1:9"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1].startswith("acytoo-raw: unexpected RuntimeError: boom")


def test_keyboard_interrupt_inside_a_group_is_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    group = BaseExceptionGroup("group", [ConnectError("x"), KeyboardInterrupt()])
    monkeypatch.setattr(cli, "_completion", broken_completion(group))
    assert main(["chat", "hi", "--base-url", "http://127.0.0.1:9"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == ""
