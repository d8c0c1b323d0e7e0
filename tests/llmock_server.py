"""A real OpenAI-compatible server for the tests: llmock, on free loopback ports.

llmock (PyPI, pinned by the test extra) is a mock of the OpenAI API (and
others) on FastAPI/uvicorn that runs offline without model weights: with
``--response-style echo`` it streams ``"Hello! You said: <last user
message>"``, and its ``--stream-fault KIND=1.0`` and ``--error-rate
STATUS=1.0`` options break every streamed answer the same way.

``run_llmock_servers({name: extra_args, ...})`` starts one ``llmock serve``
per configuration, all at once (each takes 2-4 s to start, mostly imports),
waits (bounded) until each answers a real HTTP request, yields
``{name: LlmockServer}``, and stops them in a ``finally``, also when start-up
fails: SIGTERM to every process, then a bounded wait each, then SIGKILL.
uvicorn's graceful shutdown waits for requests still running (a stalled
stream sleeps through its stall), so keep ``--stream-stall-seconds`` short.
A test module wraps it in one session fixture::

    @pytest.fixture(scope="session")
    def llmock() -> Iterator[dict[str, LlmockServer]]:
        with run_llmock_servers(CONFIGS) as servers:
            yield servers

When llmock is missing the test is skipped, or failed under ``CI=true``
(pytest is imported only then).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LlmockServer", "find_llmock", "require_llmock", "run_llmock_servers"]

IN_CI = os.environ.get("CI") == "true"

# Start-up takes 2-4 s alone; several booting at once on a busy 2-core machine take longer.
READY_TIMEOUT = 60.0
# After SIGTERM uvicorn finishes running requests (a stall sleeps); then SIGKILL.
STOP_TIMEOUT = 10.0
# A free port can be taken between choosing and binding it.
START_ATTEMPTS = 3
# One readiness probe must not hang on a half-started server.
PROBE_TIMEOUT = 2.0

# Fixed arguments of every server: loopback only, the deterministic echo answer, quiet logs.
BASE_ARGS = ("--host", "127.0.0.1", "--response-style", "echo", "--log-level", "warning")


@dataclass(frozen=True)
class LlmockServer:
    """A running ``llmock serve`` on ``host:port``, started with ``args`` after the base ones."""

    port: int
    args: tuple[str, ...]
    host: str = "127.0.0.1"

    @property
    def base_url(self) -> str:
        """The OpenAI API root, as the openai SDK takes it: ``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"


def find_llmock() -> str | None:
    """The llmock command: next to this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("llmock")
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("llmock")


def require_llmock() -> str:
    """The llmock command; skip the test (fail under ``CI=true``) when it is missing."""
    path = find_llmock()
    if path is None:
        import pytest  # only here: the module itself does not need pytest

        message = "llmock not installed (pip install -e '.[test]' installs llmock==0.2.2)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError as exc:
        return f"<no log: {exc}>"


def _environment() -> dict[str, str]:
    # LLMOCK_* variables would change the server under the tests; colours clutter the log.
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLMOCK_")}
    env.update(NO_COLOR="1", TERM="dumb")
    return env


@dataclass
class _Process:
    name: str
    args: tuple[str, ...]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    attempts: int = 0


def _launch(binary: str, process: _Process) -> None:
    process.port = _free_port()
    process.attempts += 1
    command = [binary, "serve", *BASE_ARGS, "--port", str(process.port), *process.args]
    # The parent's copy of the log file is closed at once (-W error: ResourceWarning).
    with open(process.log, "ab") as out:
        process.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment(),
        )


def _answers(port: int) -> bool:
    """True when ``port`` answers an HTTP request (any status: a 429 server is ready too)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
    try:
        connection.request("GET", "/v1/models")
        reply = connection.getresponse()
        reply.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a process already sent SIGTERM; SIGKILL it after the grace period."""
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _terminate(processes: Sequence[_Process]) -> None:
    """SIGTERM every process first (they shut down in parallel), then reap each."""
    running = [p.proc for p in processes if p.proc is not None and p.proc.poll() is None]
    for proc in running:
        with suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    for process in processes:
        if process.proc is not None:
            _stop(process.proc)


@contextmanager
def run_llmock_servers(configs: Mapping[str, Sequence[str]]) -> Iterator[dict[str, LlmockServer]]:
    """Run one llmock per ``{name: extra arguments}`` for the ``with`` block, started in parallel.

    Raises:
        RuntimeError: a server exited at start-up :data:`START_ATTEMPTS` times.
        TimeoutError: a server did not answer within :data:`READY_TIMEOUT`.
    """
    binary = require_llmock()
    workdir = Path(tempfile.mkdtemp(prefix="acytoo-llmock-"))
    processes = [
        _Process(name, tuple(args), workdir / f"{index}.log")
        for index, (name, args) in enumerate(configs.items())
    ]
    try:
        for process in processes:
            _launch(binary, process)
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = list(processes)
        while waiting:
            for process in list(waiting):
                proc = process.proc
                assert proc is not None
                if proc.poll() is not None:  # Exited: most likely its port was taken.
                    if process.attempts >= START_ATTEMPTS:
                        raise RuntimeError(
                            f"llmock {process.name!r} exited at start-up {process.attempts} "
                            f"times:\n{_log_tail(process.log)}"
                        )
                    _launch(binary, process)
                elif _answers(process.port) and proc.poll() is None:
                    waiting.remove(process)
            if waiting:
                if time.monotonic() > deadline:
                    names = ", ".join(p.name for p in waiting)
                    tails = "\n".join(_log_tail(p.log) for p in waiting)
                    raise TimeoutError(f"llmock {names} not ready in {READY_TIMEOUT} s:\n{tails}")
                time.sleep(0.1)
        yield {
            process.name: LlmockServer(port=process.port, args=process.args)
            for process in processes
        }
    finally:
        _terminate(processes)
        shutil.rmtree(workdir, ignore_errors=True)
