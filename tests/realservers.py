"""Real loopback servers for the proxy tests: squid, tinyproxy and uvicorn origins.

All fixtures are session-scoped, start their server as a subprocess on free
loopback ports, wait (bounded) until it really serves, and stop it by PID
(SIGTERM, then SIGKILL after a grace period) in a ``finally`` -- also when the
readiness check fails -- so no process outlives the session. Configurations
follow ``../shared/REAL_COMPONENTS.md`` (sections 1, 2, 4 and 7).

Fixture names (import the ``*_fixture`` functions into a test module)::

    squid         SquidProxy: one process, ports ``open`` (no auth), ``auth``
                  (Basic) and ``tls`` (https_port, Basic; certificate for
                  ``localhost`` only, from the conftest's ``tls_ca``)
    tinyproxy     ProxyServer: two processes, an open one and a BasicAuth one
    tls_origin    Origin: uvicorn + tests/stream_app.py over TLS (certificate
                  for ``127.0.0.1`` only, from ``tls_ca``)
    plain_origin  Origin: the same app over plain HTTP

The proxy certificate names only ``localhost`` and the origin certificate
only ``127.0.0.1``: a client that checked one certificate against the other
peer's name fails every https-proxy test.

squid and tinyproxy come from the OS (``apt-get install squid tinyproxy``).
When they are missing the tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import pytest
import trustme

__all__ = [
    "KEEPALIVE_SECONDS",
    "PROXY_PASSWORD",
    "PROXY_USER",
    "SQUID_PASSWORD",
    "TINYPROXY_PASSWORD",
    "WRONG_PASSWORD",
    "Origin",
    "ProxyServer",
    "SquidProxy",
    "closed_port",
    "keepalive_origin_fixture",
    "keepalive_tls_origin_fixture",
    "plain_origin_fixture",
    "squid_fixture",
    "stock_squid_fixture",
    "tinyproxy_fixture",
    "tls_origin_443_fixture",
    "tls_origin_fixture",
]

IN_CI = os.environ.get("CI") == "true"
TESTS_DIR = Path(__file__).resolve().parent

PROXY_USER = "user"
# Characters that must be percent-encoded in a URL (@ : %), to prove the
# client percent-decodes the credentials before sending them.
SQUID_PASSWORD = "Sq1d-p@ss:w%rd"
# `openssl passwd -apr1 'Sq1d-p@ss:w%rd'`, fixed so the tests need no openssl
# binary (and Python's crypt module is gone in 3.13).
_SQUID_PASSWORD_APR1 = "$apr1$KFHitUjF$kM9h1HR/irUfF/Q9Pyj091"
# tinyproxy's config parser takes the password verbatim on a `BasicAuth` line:
# keep it to characters that need no quoting there.
TINYPROXY_PASSWORD = "tiny-s3cret-77"
WRONG_PASSWORD = "wr0ng-Pa55-99"
PROXY_PASSWORD = SQUID_PASSWORD  # the default for helpers that do not care which proxy

READY_TIMEOUT = 15.0  # seconds a server may take to come up before the fixture gives up
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before SIGKILL (squid needs ~2 s)

Auth = Literal["open", "right", "wrong", "missing"]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ProxyServer:
    """A CONNECT proxy with an open port and a Basic-auth port on 127.0.0.1."""

    kind: str
    open_port: int
    auth_port: int
    username: str
    password: str
    workdir: Path

    def url(self, auth: Auth, *, scheme: str = "http", port: int | None = None) -> str:
        """The proxy URL for one auth case.

        ``open``: the open port, no credentials. ``right``/``wrong``/``missing``:
        the auth port with the right password, a wrong one, or none.
        """
        if auth == "open":
            return f"{scheme}://127.0.0.1:{port or self.open_port}"
        host_port = f"127.0.0.1:{port or self.auth_port}"
        if auth == "missing":
            return f"{scheme}://{host_port}"
        password = self.password if auth == "right" else WRONG_PASSWORD
        return f"{scheme}://{quote(self.username, safe='')}:{quote(password, safe='')}@{host_port}"

    def secrets(self) -> list[str]:
        """Every form of the passwords that must never show in a message."""
        out = []
        for password in (self.password, WRONG_PASSWORD):
            out += [password, quote(password, safe="")]
        return out


@dataclass(frozen=True)
class SquidProxy(ProxyServer):
    """squid, plus an ``https_port`` (TLS to the proxy, Basic auth required)."""

    tls_port: int = 0
    tls_host: str = "localhost"  # the only name on the proxy's certificate

    def tls_url(
        self, auth: Literal["right", "wrong", "missing"], *, host: str | None = None
    ) -> str:
        """An ``https://`` proxy URL for squid's TLS port."""
        url = self.url(auth, scheme="https", port=self.tls_port)
        return url.replace("127.0.0.1", host or self.tls_host)


@dataclass(frozen=True)
class Origin:
    """A uvicorn server running tests/stream_app.py."""

    scheme: str
    port: int
    host: str = "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path


# --------------------------------------------------------------------------- helpers


def _require(binary: str) -> str:
    """The path of an OS binary; skip (or fail under CI=true) when it is missing."""
    path = shutil.which(binary)
    if path is None:
        for directory in ("/usr/sbin", "/usr/bin", "/usr/local/sbin"):
            candidate = os.path.join(directory, binary)
            if os.access(candidate, os.X_OK):
                path = candidate
                break
    if path is None:
        message = (
            f"{binary} not installed: apt-get install squid tinyproxy (or run .ci/run as root)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (for servers that need a number)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    return _free_ports(1)[0]


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError as exc:
        return f"<no log: {exc}>"


def _wait_listening(ports: list[int], proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll until every port accepts a TCP connection; bounded by READY_TIMEOUT."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(ports)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5).close()
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"port {pending[0]} not listening after {READY_TIMEOUT} s:\n{_log_tail(log)}"
                ) from None
            time.sleep(0.01)
        else:
            pending.pop(0)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, then SIGKILL: the process is always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _popen(
    args: list[str], log: Path, *, pass_fds: tuple[int, ...] = (), cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    # The parent's copy of the log file is closed at once (-W error: ResourceWarning).
    with open(log, "wb") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            cwd=cwd,
        )


# --------------------------------------------------------------------------- squid

_SQUID_CONF = """\
http_port 127.0.0.1:{open_port} name=open
http_port 127.0.0.1:{auth_port} name=auth
https_port 127.0.0.1:{tls_port} name=tls tls-cert={d}/proxy.pem tls-key={d}/proxy.key
visible_hostname localhost
pid_filename none
cache_log {d}/cache.log
access_log stdio:{d}/access.log
cache deny all
cache_mem 8 MB
coredump_dir {d}
pinger_enable off
shutdown_lifetime 0 seconds
auth_param basic program /usr/lib/squid/basic_ncsa_auth {d}/passwd
auth_param basic children 2 startup=1 idle=1
auth_param basic realm test
acl open_port myportname open
acl authed proxy_auth REQUIRED
http_access deny !localhost
http_access allow open_port
http_access allow authed
http_access deny all
"""


@pytest.fixture(scope="session", name="squid")
def squid_fixture(tls_ca: trustme.CA) -> Iterator[SquidProxy]:
    """One squid: ``open`` (no auth), ``auth`` (Basic) and ``tls`` (https_port, Basic)."""
    binary = _require("squid")
    helper = Path("/usr/lib/squid/basic_ncsa_auth")
    if not helper.exists():
        _require(str(helper))  # skip/fail with the same install hint
    # Not tmp_path_factory: its 0700 parent would keep the `proxy` user out.
    d = Path(tempfile.mkdtemp(prefix="acytoo-squid-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        open_port, auth_port, tls_port = _free_ports(3)
        (d / "passwd").write_text(f"{PROXY_USER}:{_SQUID_PASSWORD_APR1}\n")
        cert = tls_ca.issue_cert("localhost")
        cert.cert_chain_pems[0].write_to_path(str(d / "proxy.pem"))
        cert.private_key_pem.write_to_path(str(d / "proxy.key"))
        (d / "squid.conf").write_text(
            _SQUID_CONF.format(open_port=open_port, auth_port=auth_port, tls_port=tls_port, d=d)
        )
        if os.geteuid() == 0:  # squid drops to `proxy` and must write its logs here
            for path in [d, *d.iterdir()]:
                shutil.chown(path, "proxy", "proxy")
        proc = _popen([binary, "-N", "-d", "1", "-f", str(d / "squid.conf")], d / "squid.out")
        _wait_listening([open_port, auth_port, tls_port], proc, d / "squid.out")
        yield SquidProxy(
            kind="squid",
            open_port=open_port,
            auth_port=auth_port,
            username=PROXY_USER,
            password=SQUID_PASSWORD,
            workdir=d,
            tls_port=tls_port,
        )
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- tinyproxy

_TINYPROXY_CONF = """\
Port {port}
Listen 127.0.0.1
Timeout 30
MaxClients 64
Allow 127.0.0.1
LogLevel Info
DisableViaHeader Yes
"""


@pytest.fixture(scope="session", name="tinyproxy")
def tinyproxy_fixture() -> Iterator[ProxyServer]:
    """Two tinyproxy processes: an open one and a BasicAuth one (one auth mode each)."""
    binary = _require("tinyproxy")
    d = Path(tempfile.mkdtemp(prefix="acytoo-tinyproxy-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        open_port, auth_port = _free_ports(2)
        # No ConnectPort line: CONNECT is allowed to every port.
        (d / "open.conf").write_text(_TINYPROXY_CONF.format(port=open_port))
        (d / "auth.conf").write_text(
            _TINYPROXY_CONF.format(port=auth_port)
            + f"BasicAuth {PROXY_USER} {TINYPROXY_PASSWORD}\n"
        )
        for name, port in (("open", open_port), ("auth", auth_port)):
            log = d / f"{name}.log"
            proc = _popen([binary, "-d", "-c", str(d / f"{name}.conf")], log)
            procs.append(proc)
            _wait_listening([port], proc, log)
        yield ProxyServer(
            kind="tinyproxy",
            open_port=open_port,
            auth_port=auth_port,
            username=PROXY_USER,
            password=TINYPROXY_PASSWORD,
            workdir=d,
        )
    finally:
        for proc in procs:
            _stop(proc)
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- uvicorn


def _wait_http_ready(
    port: int,
    proc: subprocess.Popen[bytes],
    log: Path,
    ctx: ssl.SSLContext | None,
    host: str = "127.0.0.1",
) -> None:
    """One real request: uvicorn's inherited socket accepts TCP before the app runs."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n{_log_tail(log)}")
        conn: http.client.HTTPConnection
        if ctx is None:
            conn = http.client.HTTPConnection(host, port, timeout=1.0)
        else:
            conn = http.client.HTTPSConnection(host, port, timeout=1.0, context=ctx)
        try:
            conn.request("GET", "/status/204")
            response = conn.getresponse()
            response.read()
            if response.status == 204:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"uvicorn not serving after {READY_TIMEOUT} s:\n{_log_tail(log)}")
        time.sleep(0.02)


def _uvicorn(
    tls_ca: trustme.CA | None, *extra: str, host: str = "127.0.0.1", port: int = 0
) -> Iterator[Origin]:
    d = Path(tempfile.mkdtemp(prefix="acytoo-uvicorn-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        args = [
            sys.executable, "-m", "uvicorn", "stream_app:app",
            "--app-dir", str(TESTS_DIR),
            "--http", "h11", "--loop", "asyncio", "--lifespan", "off",
            "--no-access-log", "--log-level", "warning",
            "--timeout-graceful-shutdown", "2",
            *extra,
        ]  # fmt: skip
        ctx: ssl.SSLContext | None = None
        if tls_ca is not None:
            cert = tls_ca.issue_cert(host)
            cert.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
            cert.private_key_pem.write_to_path(str(d / "server.key"))
            args += [
                "--ssl-certfile",
                str(d / "server.pem"),
                "--ssl-keyfile",
                str(d / "server.key"),
            ]
            ctx = ssl.create_default_context()
            tls_ca.configure_trust(ctx)
        # The fixture owns the listening socket: no port race.
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(128)
            port = listener.getsockname()[1]
            fd = listener.fileno()
            proc = _popen([*args, "--fd", str(fd)], d / "uvicorn.log", pass_fds=(fd,), cwd=d)
        _wait_http_ready(port, proc, d / "uvicorn.log", ctx, host)
        yield Origin("https" if tls_ca is not None else "http", port, host)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session", name="tls_origin")
def tls_origin_fixture(tls_ca: trustme.CA) -> Iterator[Origin]:
    """uvicorn serving stream_app over TLS, certificate for 127.0.0.1 from ``tls_ca``."""
    yield from _uvicorn(tls_ca)


@pytest.fixture(scope="session", name="plain_origin")
def plain_origin_fixture() -> Iterator[Origin]:
    """uvicorn serving stream_app over plain HTTP."""
    yield from _uvicorn(None)


# uvicorn's idle keep-alive timeout for the pool tests: short, so a test can
# outwait it (the default is 5 s).
KEEPALIVE_SECONDS = 1


@pytest.fixture(scope="session", name="keepalive_origin")
def keepalive_origin_fixture() -> Iterator[Origin]:
    """uvicorn over plain HTTP that closes idle keep-alive connections after 1 s."""
    yield from _uvicorn(None, "--timeout-keep-alive", str(KEEPALIVE_SECONDS))


@pytest.fixture(scope="session", name="keepalive_tls_origin")
def keepalive_tls_origin_fixture(tls_ca: trustme.CA) -> Iterator[Origin]:
    """The same over TLS (certificate for 127.0.0.1 from ``tls_ca``)."""
    yield from _uvicorn(tls_ca, "--timeout-keep-alive", str(KEEPALIVE_SECONDS))


# --------------------------------------------------------------------------- stock squid

# The access rules of Debian 12's /etc/squid/squid.conf, verbatim: what users
# of a stock squid have. CONNECT only to port 443; plain HTTP forwarded to
# port 80 and 1025-65535.
_STOCK_SQUID_CONF = """\
acl SSL_ports port 443
acl Safe_ports port 80
acl Safe_ports port 21
acl Safe_ports port 443
acl Safe_ports port 70
acl Safe_ports port 210
acl Safe_ports port 1025-65535
acl Safe_ports port 280
acl Safe_ports port 488
acl Safe_ports port 591
acl Safe_ports port 777
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access allow localhost
http_access deny all
http_port 127.0.0.1:{port}
visible_hostname localhost
pid_filename none
cache_log {d}/cache.log
access_log stdio:{d}/access.log
cache deny all
cache_mem 8 MB
coredump_dir {d}
pinger_enable off
shutdown_lifetime 0 seconds
"""


@pytest.fixture(scope="session", name="stock_squid")
def stock_squid_fixture() -> Iterator[ProxyServer]:
    """A squid with Debian's stock access rules (no auth)."""
    binary = _require("squid")
    d = Path(tempfile.mkdtemp(prefix="acytoo-stock-squid-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        (port,) = _free_ports(1)
        (d / "squid.conf").write_text(_STOCK_SQUID_CONF.format(port=port, d=d))
        if os.geteuid() == 0:
            for path in [d, *d.iterdir()]:
                shutil.chown(path, "proxy", "proxy")
        proc = _popen([binary, "-N", "-d", "1", "-f", str(d / "squid.conf")], d / "squid.out")
        _wait_listening([port], proc, d / "squid.out")
        yield ProxyServer(
            kind="squid", open_port=port, auth_port=port, username="", password="", workdir=d
        )
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(d, ignore_errors=True)


# Stock squid tunnels only to port 443: this origin listens there, on its own
# loopback address so it can't clash with anything on 127.0.0.1:443.
PORT_443_HOST = "127.0.0.2"


@pytest.fixture(scope="session", name="tls_origin_443")
def tls_origin_443_fixture(tls_ca: trustme.CA) -> Iterator[Origin]:
    """uvicorn over TLS on 127.0.0.2:443 (root only; certificate for 127.0.0.2)."""
    if os.geteuid() != 0:
        (pytest.fail if IN_CI else pytest.skip)("binding port 443 needs root")
    yield from _uvicorn(tls_ca, host=PORT_443_HOST, port=443)
