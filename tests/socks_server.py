"""A real SOCKS5 server for the tests: microsocks on a free loopback port.

``run_microsocks()`` starts ``microsocks -i 127.0.0.1 -p PORT [-u USER -P PASS]``
(Debian package ``microsocks``), waits (bounded) until it accepts TCP
connections, yields a :class:`SocksServer`, and stops it by PID (SIGTERM, then
SIGKILL after a grace period) in a ``finally``, also when start-up fails. A
test module wraps it in a fixture::

    @pytest.fixture(scope="session")
    def socks_auth() -> Iterator[SocksServer]:
        with run_microsocks(username=SOCKS_USER, password=SOCKS_PASSWORD) as server:
            yield server

When the binary is missing the test is skipped, or failed under ``CI=true``
(pytest is imported only then). ``-1`` (authenticate once per IP, then let
that IP in without a password) is never used: it would make the
wrong-password tests depend on test order.

Observed microsocks 1.0.3 replies (../shared/REAL_COMPONENTS.md section 8):
bound address all zeros; a wrong password ``01 02`` then close; a client
offering no acceptable method ``05 ff``; an unresolvable name ``05 01``; a
refused target ``05 05``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

__all__ = [
    "MICROSOCKS",
    "SOCKS_PASSWORD",
    "SOCKS_USER",
    "WRONG_SOCKS_PASSWORD",
    "SocksServer",
    "require_microsocks",
    "run_microsocks",
]

IN_CI = os.environ.get("CI") == "true"
MICROSOCKS = "/usr/bin/microsocks"

SOCKS_USER = "socks-user"
# Characters a URL must percent-encode (@ : %), so a client that forgets to
# decode the credentials of socks5://user:pass@host fails against it.
SOCKS_PASSWORD = "S0cks-p@ss:w%rd"
WRONG_SOCKS_PASSWORD = "wr0ng-S0cks-99"

READY_TIMEOUT = 10.0  # seconds microsocks may take to listen (it takes a few ms)
STOP_TIMEOUT = 5.0  # seconds after SIGTERM before SIGKILL (it exits at once)
START_ATTEMPTS = 3  # a free port can be taken between choosing and binding it

Auth = Literal["open", "right", "wrong", "missing"]


@dataclass(frozen=True)
class SocksServer:
    """A running microsocks on ``host:port``; credentials are None when it needs none."""

    port: int
    username: str | None
    password: str | None
    host: str = "127.0.0.1"

    def url(self, auth: Auth = "open", *, scheme: str = "socks5") -> str:
        """A proxy URL: ``open`` without credentials, ``right``/``wrong`` password, ``missing``.

        ``right`` and ``wrong`` need a server started with credentials.
        """
        host_port = f"{self.host}:{self.port}"
        if auth in ("open", "missing"):
            return f"{scheme}://{host_port}"
        if self.username is None or self.password is None:
            raise ValueError(f"this microsocks has no credentials, cannot build a {auth!r} URL")
        password = self.password if auth == "right" else WRONG_SOCKS_PASSWORD
        user = quote(self.username, safe="")
        return f"{scheme}://{user}:{quote(password, safe='')}@{host_port}"

    def secrets(self) -> list[str]:
        """Every form of the passwords that must never show in a message."""
        out: list[str] = []
        for password in (SOCKS_PASSWORD, WRONG_SOCKS_PASSWORD):
            out += [password, quote(password, safe="")]
        return out


def require_microsocks() -> str:
    """The microsocks binary; skip the test (fail under ``CI=true``) when it is missing."""
    path = MICROSOCKS if os.access(MICROSOCKS, os.X_OK) else shutil.which("microsocks")
    if path is None:
        import pytest  # only here: the module itself does not need pytest

        message = "microsocks not installed (apt-get install microsocks)"
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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, then SIGKILL: the process is always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    """True once ``port`` accepts a connection; False if microsocks exited (port taken?)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"microsocks not listening on {port} after {READY_TIMEOUT} s:\n{_log_tail(log)}"
                ) from None
            time.sleep(0.01)
        else:
            # A connect can succeed on a port someone else just took: make sure it is ours.
            return proc.poll() is None


@contextmanager
def run_microsocks(
    *, username: str | None = None, password: str | None = None
) -> Iterator[SocksServer]:
    """Run microsocks on a free 127.0.0.1 port for the ``with`` block.

    With ``username`` and ``password`` it requires RFC 1929 authentication
    (``-u``/``-P``); without, it accepts any client.
    """
    if (username is None) != (password is None):
        raise ValueError("give both username and password, or neither")
    binary = require_microsocks()
    workdir = Path(tempfile.mkdtemp(prefix="acytoo-microsocks-"))
    log = workdir / "microsocks.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(START_ATTEMPTS):
            port = _free_port()
            args = [binary, "-i", "127.0.0.1", "-p", str(port)]
            if username is not None and password is not None:
                args += ["-u", username, "-P", password]
            # The parent's copy of the log file is closed at once (-W error: ResourceWarning).
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                )
            if _wait_listening(port, proc, log):
                break
            _stop(proc)
            proc = None
        else:
            raise RuntimeError(
                f"microsocks did not start in {START_ATTEMPTS} attempts:\n{_log_tail(log)}"
            )
        yield SocksServer(port=port, username=username, password=password)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
