"""The proxy path against real servers: squid, tinyproxy and uvicorn origins (issue 4).

Every async test runs on asyncio and trio (the ``anyio_backend`` fixture).
The servers come from :mod:`tests.realservers` (session-scoped: one squid, two
tinyproxies, a TLS and a plain uvicorn origin); without squid/tinyproxy these
tests skip, or fail when ``CI=true``.

Certificates (all from the conftest's one ``tls_ca``): the origin's names
only ``127.0.0.1``, squid's ``https_port`` certificate names only
``localhost``. So every https-proxy test that succeeds also proves each
certificate was checked against its own peer's name.

IPv6 CONNECT targets are a sans-IO unit test elsewhere; not repeated here.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

import acytoo_raw
from acytoo_raw import (
    ConnectError,
    LocalProtocolError,
    ProxyError,
    TLSError,
)
from tests.realservers import (
    Origin,
    ProxyServer,
    SquidProxy,
    closed_port,
    plain_origin_fixture,  # noqa: F401  (fixture "plain_origin")
    squid_fixture,  # noqa: F401  (fixture "squid")
    tinyproxy_fixture,  # noqa: F401  (fixture "tinyproxy")
    tls_origin_fixture,  # noqa: F401  (fixture "tls_origin")
)
from tests.stream_app import SLOW_DELAY, expected_text, piece

REPO = Path(__file__).resolve().parent.parent
TEST_TIMEOUT = 20.0  # seconds for one whole exchange; generous, the real ones take < 1 s
REQUEST_TIMEOUT = acytoo_raw.Timeout(connect=10.0, read=10.0, write=10.0, total=TEST_TIMEOUT)
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")

Auth = Literal["open", "right", "wrong", "missing"]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(params=["squid", "tinyproxy"])
def any_proxy(request: pytest.FixtureRequest) -> ProxyServer:
    proxy: ProxyServer = request.getfixturevalue(str(request.param))
    return proxy


@pytest.fixture(params=["plain_origin", "tls_origin"])
def any_origin(request: pytest.FixtureRequest) -> Origin:
    origin: Origin = request.getfixturevalue(str(request.param))
    return origin


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may pick up a developer's proxy settings by accident."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def collect_text(url: str, **kwargs: Any) -> str:
    """The whole body of ``stream_text(url, **kwargs)``, bounded in time."""
    kwargs.setdefault("timeout", REQUEST_TIMEOUT)
    with anyio.fail_after(TEST_TIMEOUT):
        async with aclosing(acytoo_raw.stream_text(url, **kwargs)) as pieces:
            return "".join([p async for p in pieces])


async def collect_bytes(url: str, **kwargs: Any) -> bytes:
    kwargs.setdefault("timeout", REQUEST_TIMEOUT)
    with anyio.fail_after(TEST_TIMEOUT):
        async with aclosing(acytoo_raw.stream_bytes(url, **kwargs)) as pieces:
            return b"".join([p async for p in pieces])


async def drain(gen: AsyncGenerator[str, None]) -> str:
    """Join an async generator of text, bounded in time, closing it in any case."""
    with anyio.fail_after(TEST_TIMEOUT):
        async with aclosing(gen):
            return "".join([p async for p in gen])


async def timed_pieces(pieces: AsyncIterator[str]) -> list[tuple[float, str]]:
    """Each piece with its arrival time (anyio clock)."""
    out = []
    with anyio.fail_after(TEST_TIMEOUT):
        async for p in pieces:
            out.append((anyio.current_time(), p))
    return out


def assert_no_secret(exc: BaseException, proxy: ProxyServer) -> None:
    """Neither password, raw or percent-encoded, shows in the error or its cause chain."""
    shown = [str(exc), repr(exc), str(getattr(exc, "reason", ""))]
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        shown += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    for secret in proxy.secrets():
        for text in shown:
            assert secret not in text, f"password leaked into {text!r}"


def assert_streamed_in_time(arrivals: list[tuple[float, str]], n: int) -> None:
    """The pieces arrived spread over time, not all at once at the end."""
    text = "".join(p for _, p in arrivals)
    assert text == expected_text(n)
    first_time, first = arrivals[0]
    last_time = arrivals[-1][0]
    # The origin sleeps SLOW_DELAY between n pieces: (n-1)*SLOW_DELAY = 0.75 s
    # end to end. Half of that is a generous lower bound for a real stream; a
    # buffering client would deliver everything within a few milliseconds.
    assert last_time - first_time >= (n - 1) * SLOW_DELAY * 0.5, arrivals
    assert first.startswith(piece(0)[:5]), arrivals
    assert piece(n - 1) not in first, "the first piece already held the last one"
    assert len(arrivals) >= 2


# --------------------------------------------------------------------------- the matrix


@pytest.mark.anyio
@pytest.mark.parametrize("auth", ["open", "right", "wrong", "missing"])
async def test_connect_matrix(
    any_proxy: ProxyServer,
    any_origin: Origin,
    auth: Auth,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """{squid, tinyproxy} x {plain, TLS origin} x {open, right, wrong, missing auth}."""
    url = any_origin.url("/api/completions")
    proxy = any_proxy.url(auth)
    if auth in ("open", "right"):
        text = await collect_text(url, proxy=proxy, ssl_context=client_ssl_context)
        assert text == expected_text()
        return

    if any_proxy.kind == "tinyproxy" and auth == "wrong" and any_origin.scheme == "http":
        # tinyproxy 1.11.1 (Debian 12) answers a WRONG password with
        # "401 Unauthorized" instead of 407 (bug #532, see below). For a
        # forwarded plain-HTTP request a 401 can't be told from the origin's
        # own answer, so it stays an HTTPStatusError.
        with pytest.raises((ProxyError, acytoo_raw.HTTPStatusError)) as refused:
            await collect_text(url, proxy=proxy, ssl_context=client_ssl_context)
        assert getattr(refused.value, "status_code", None) in (401, 407)
        assert_no_secret(refused.value, any_proxy)
        return
    with pytest.raises(ProxyError) as info:
        await collect_text(url, proxy=proxy, ssl_context=client_ssl_context)
    exc = info.value
    if any_proxy.kind == "tinyproxy" and auth == "wrong":
        # tinyproxy 1.11.1 (Debian 12) answers a WRONG password with
        # "401 Unauthorized" + WWW-Authenticate instead of 407: tinyproxy bug
        # #532, fixed upstream by PR #549 (see shared/REAL_COMPONENTS.md, s. 2).
        # The client must still surface it as a ProxyError keeping the status.
        assert exc.status_code in (401, 407)
    else:
        assert exc.status_code == 407
    assert exc.reason  # the proxy's reason phrase is kept
    assert str(exc.status_code) in str(exc)
    assert_no_secret(exc, any_proxy)


# --------------------------------------------------------------------------- https:// proxy


@pytest.mark.anyio
@pytest.mark.parametrize("origin_name", ["tls_origin", "plain_origin"])
async def test_https_proxy_right_credentials(
    squid: SquidProxy,
    origin_name: str,
    request: pytest.FixtureRequest,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """TLS to squid, CONNECT inside it, then the origin's TLS inside the tunnel (TLS in TLS).

    The plain origin case: the tunnel through the TLS proxy carries plain HTTP.
    """
    origin: Origin = request.getfixturevalue(origin_name)
    text = await collect_text(
        origin.url("/api/completions"),
        proxy=squid.tls_url("right"),
        proxy_ssl_context=client_ssl_context,
        ssl_context=client_ssl_context,
    )
    assert text == expected_text()


@pytest.mark.anyio
@pytest.mark.parametrize("auth", ["wrong", "missing"])
async def test_https_proxy_refuses_credentials(
    squid: SquidProxy,
    tls_origin: Origin,
    auth: Literal["wrong", "missing"],
    client_ssl_context: ssl.SSLContext,
) -> None:
    with pytest.raises(ProxyError) as info:
        await collect_text(
            tls_origin.url("/api/completions"),
            proxy=squid.tls_url(auth),
            proxy_ssl_context=client_ssl_context,
            ssl_context=client_ssl_context,
        )
    assert info.value.status_code == 407
    assert_no_secret(info.value, squid)


@pytest.mark.anyio
@pytest.mark.parametrize("trust", ["system", "empty"])
async def test_https_proxy_untrusted_certificate(
    squid: SquidProxy,
    tls_origin: Origin,
    trust: str,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """The proxy's certificate is verified: default (system) or empty trust -> TLSError.

    The origin's context trusts the test CA, so only the proxy check can fail.
    """
    proxy_ctx = None if trust == "system" else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(TLSError) as info:
        await collect_text(
            tls_origin.url("/api/completions"),
            proxy=squid.tls_url("right"),
            proxy_ssl_context=proxy_ctx,
            ssl_context=client_ssl_context,
        )
    assert_no_secret(info.value, squid)


@pytest.mark.anyio
async def test_https_proxy_certificate_checked_against_proxy_name(
    squid: SquidProxy, tls_origin: Origin, client_ssl_context: ssl.SSLContext
) -> None:
    """squid's certificate names only ``localhost``: reached as 127.0.0.1 it must fail."""
    with pytest.raises(TLSError):
        await collect_text(
            tls_origin.url("/api/completions"),
            proxy=squid.tls_url("right", host="127.0.0.1"),
            proxy_ssl_context=client_ssl_context,
            ssl_context=client_ssl_context,
        )


@pytest.mark.anyio
async def test_origin_certificate_checked_against_origin_name(
    squid: SquidProxy, tls_origin: Origin, client_ssl_context: ssl.SSLContext
) -> None:
    """The origin's certificate names only 127.0.0.1: asked as ``localhost`` through the
    proxy (whose own certificate does name localhost) the origin check must fail."""
    with pytest.raises(TLSError):
        await collect_text(
            f"https://localhost:{tls_origin.port}/api/completions",
            proxy=squid.tls_url("right"),
            proxy_ssl_context=client_ssl_context,
            ssl_context=client_ssl_context,
        )


# --------------------------------------------------------------------------- failures


@pytest.mark.anyio
async def test_origin_unreachable_through_proxy(
    any_proxy: ProxyServer, client_ssl_context: ssl.SSLContext
) -> None:
    """CONNECT to a closed port: squid answers 503, tinyproxy "500 Unable to connect"."""
    url = f"https://127.0.0.1:{closed_port()}/api/completions"
    with pytest.raises(ProxyError) as info:
        await collect_text(url, proxy=any_proxy.url("open"), ssl_context=client_ssl_context)
    assert info.value.status_code == (503 if any_proxy.kind == "squid" else 500)


@pytest.mark.anyio
async def test_proxy_unreachable(tls_origin: Origin, client_ssl_context: ssl.SSLContext) -> None:
    """Nothing listens at the proxy's address: a typed error, promptly."""
    with pytest.raises((ProxyError, ConnectError)):
        await collect_text(
            tls_origin.url("/api/completions"),
            proxy=f"http://127.0.0.1:{closed_port()}",
            ssl_context=client_ssl_context,
        )


@pytest.mark.anyio
async def test_http_proxy_url_at_tls_port(
    squid: SquidProxy, tls_origin: Origin, client_ssl_context: ssl.SSLContext
) -> None:
    """``http://`` at squid's https_port: squid answers the plain CONNECT with a TLS
    alert and a reset -- garbage, not HTTP -- which is a ProxyError without status."""
    with pytest.raises(ProxyError) as info:
        await collect_text(
            tls_origin.url("/api/completions"),
            proxy=squid.url("right", port=squid.tls_port),
            ssl_context=client_ssl_context,
        )
    assert info.value.status_code is None
    assert_no_secret(info.value, squid)


@pytest.mark.anyio
async def test_https_proxy_url_at_plain_port(
    squid: SquidProxy, tls_origin: Origin, client_ssl_context: ssl.SSLContext
) -> None:
    """``https://`` at a plain http_port: squid answers the ClientHello with an HTTP 400
    page, so the TLS handshake with the proxy fails (WRONG_VERSION_NUMBER)."""
    with pytest.raises(TLSError) as info:
        await collect_text(
            tls_origin.url("/api/completions"),
            proxy=squid.url("right", scheme="https"),
            proxy_ssl_context=client_ssl_context,
            ssl_context=client_ssl_context,
        )
    assert_no_secret(info.value, squid)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "proxy_template",
    ["socks4://127.0.0.1:{port}", "ftp://127.0.0.1:{port}", "http://", "http://:{port}"],
)
async def test_bad_proxy_url_fails_before_connecting(proxy_template: str) -> None:
    """Unsupported scheme or no host: LocalProtocolError, and no connection attempted."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        with pytest.raises(LocalProtocolError):
            await collect_text(
                f"http://127.0.0.1:{port}/api/completions",
                proxy=proxy_template.format(port=port),
            )
        with pytest.raises(BlockingIOError):  # nobody connected, to proxy or origin
            listener.accept()


# --------------------------------------------------------------------------- what the origin sees


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("proxy_name", "scheme", "origin_name"),
    [
        ("squid", "http", "plain_origin"),
        ("squid", "http", "tls_origin"),
        ("squid", "https", "tls_origin"),
        ("tinyproxy", "http", "plain_origin"),
    ],
)
async def test_origin_never_sees_proxy_credentials(
    proxy_name: str,
    scheme: str,
    origin_name: str,
    request: pytest.FixtureRequest,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """Proxy-Authorization goes on the CONNECT only; the request inside the tunnel is the
    client's own (origin-form target, the origin's Host, the caller's headers)."""
    proxy: ProxyServer = request.getfixturevalue(proxy_name)
    origin: Origin = request.getfixturevalue(origin_name)
    if scheme == "https":
        assert isinstance(proxy, SquidProxy)
        proxy_url = proxy.tls_url("right")
    else:
        proxy_url = proxy.url("right")
    raw = await collect_bytes(
        origin.url("/headers"),
        content=b"hi",
        headers={"x-acytoo-test": "yes"},
        proxy=proxy_url,
        proxy_ssl_context=client_ssl_context,
        ssl_context=client_ssl_context,
    )
    seen = json.loads(raw)
    names = [name.lower() for name, _ in seen["headers"]]
    assert "proxy-authorization" not in names
    assert "proxy-connection" not in names
    assert seen["method"] == "POST"
    assert seen["path"] == "/headers"
    assert seen["body"] == "hi"
    assert dict(seen["headers"])["host"] == f"127.0.0.1:{origin.port}"
    assert dict(seen["headers"])["x-acytoo-test"] == "yes"
    for secret in proxy.secrets():
        assert secret not in raw.decode()
    # The Basic token itself must not travel either.
    token = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
    assert token not in raw.decode()


# --------------------------------------------------------------------------- streaming


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("proxy_name", "scheme"), [("squid", "http"), ("squid", "https"), ("tinyproxy", "http")]
)
async def test_streaming_through_proxy_really_streams(
    proxy_name: str,
    scheme: str,
    request: pytest.FixtureRequest,
    tls_origin: Origin,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """Pieces the origin sends SLOW_DELAY apart reach the caller spread out in time."""
    proxy: ProxyServer = request.getfixturevalue(proxy_name)
    if scheme == "https":
        assert isinstance(proxy, SquidProxy)
        proxy_url = proxy.tls_url("right")
    else:
        proxy_url = proxy.url("right")
    pieces = acytoo_raw.stream_text(
        tls_origin.url("/slow/api/completions"),
        proxy=proxy_url,
        proxy_ssl_context=client_ssl_context,
        ssl_context=client_ssl_context,
        timeout=REQUEST_TIMEOUT,
    )
    async with aclosing(pieces):
        arrivals = await timed_pieces(pieces)
    assert_streamed_in_time(arrivals, 4)


# --------------------------------------------------------------------------- environment


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("env_auth", "no_proxy", "explicit", "trust_env", "succeeds"),
    [
        ("right", None, False, True, True),  # HTTPS_PROXY is used ...
        ("wrong", None, False, True, False),  # ... really (wrong password -> 407)
        ("wrong", "127.0.0.1", False, True, True),  # NO_PROXY bypasses it
        ("wrong", "*", False, True, True),
        ("wrong", None, True, True, True),  # an explicit proxy= wins
        ("wrong", None, False, False, True),  # opt-in: ignored without trust_env
    ],
    ids=["env", "env-used", "no-proxy-host", "no-proxy-star", "explicit-wins", "opt-in"],
)
async def test_trust_env(
    squid: SquidProxy,
    tls_origin: Origin,
    client_ssl_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
    env_auth: Literal["right", "wrong"],
    no_proxy: str | None,
    explicit: bool,
    trust_env: bool,
    succeeds: bool,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", squid.url(env_auth))
    if no_proxy is not None:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    kwargs: dict[str, Any] = {"trust_env": trust_env, "ssl_context": client_ssl_context}
    if explicit:
        kwargs["proxy"] = squid.url("right")
    url = tls_origin.url("/api/completions")
    if succeeds:
        assert await collect_text(url, **kwargs) == expected_text()
    else:
        with pytest.raises(ProxyError) as info:
            await collect_text(url, **kwargs)
        assert info.value.status_code == 407
        assert_no_secret(info.value, squid)


# --------------------------------------------------------------------------- the provider


MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_provider_through_squid(
    squid: SquidProxy, tls_origin: Origin, client_ssl_context: ssl.SSLContext, scheme: str
) -> None:
    proxy = squid.url("right") if scheme == "http" else squid.tls_url("right")
    gen = acytoo_raw.Acytoo.create_async_generator(
        "gpt-3.5-turbo",
        MESSAGES,
        proxy,
        base_url=tls_origin.base_url,
        ssl_context=client_ssl_context,
        proxy_ssl_context=client_ssl_context,
        timeout=REQUEST_TIMEOUT,
    )
    assert await drain(gen) == expected_text()


@pytest.mark.anyio
async def test_provider_wrong_password(
    squid: SquidProxy, tls_origin: Origin, client_ssl_context: ssl.SSLContext
) -> None:
    gen = acytoo_raw.Acytoo.create_async_generator(
        "gpt-3.5-turbo",
        MESSAGES,
        proxy=squid.url("wrong"),
        base_url=tls_origin.base_url,
        ssl_context=client_ssl_context,
        timeout=REQUEST_TIMEOUT,
    )
    with pytest.raises(ProxyError) as info:
        await drain(gen)
    assert info.value.status_code == 407
    assert_no_secret(info.value, squid)


# --------------------------------------------------------------------------- the CLI


def cli_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in (*PROXY_ENV, "ACYTOO_BASE_URL", "PYTHONPATH")
    }
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.mark.anyio
async def test_cli_streams_through_squid(
    squid: SquidProxy, tls_origin: Origin, ca_file: str
) -> None:
    """``python -m acytoo_raw chat "Hello" --proxy http://user:pass@... --base-url https://...``
    prints the answer, and prints it as it streams (not all at exit)."""
    args = [
        sys.executable, "-m", "acytoo_raw", "chat", "Hello",
        "--proxy", squid.url("right"),
        "--base-url", tls_origin.url("/slow"),
        "--cafile", ca_file,
    ]  # fmt: skip
    arrivals: list[tuple[float, str]] = []
    with anyio.fail_after(TEST_TIMEOUT):
        async with await anyio.open_process(args, env=cli_env(), cwd=REPO) as proc:
            assert proc.stdout is not None
            assert proc.stderr is not None
            async for chunk in proc.stdout:
                arrivals.append((anyio.current_time(), chunk.decode()))
            stderr = b"".join([c async for c in proc.stderr]).decode()
            await proc.wait()
    assert proc.returncode == 0, stderr
    assert arrivals, stderr
    out = "".join(c for _, c in arrivals)
    assert expected_text() in out
    # The pieces go to stdout as they arrive: flushed, not block-buffered until exit.
    assert arrivals[-1][0] - arrivals[0][0] >= 3 * SLOW_DELAY * 0.5, arrivals


def test_cli_wrong_password_one_line(squid: SquidProxy, tls_origin: Origin, ca_file: str) -> None:
    """A wrong proxy password: non-zero exit, one stderr line naming the 407, no traceback,
    no password."""
    args = [
        sys.executable, "-m", "acytoo_raw", "chat", "Hello",
        "--proxy", squid.url("wrong"),
        "--base-url", tls_origin.base_url,
        "--cafile", ca_file,
    ]  # fmt: skip
    result = subprocess.run(
        args, env=cli_env(), cwd=REPO, capture_output=True, text=True, timeout=TEST_TIMEOUT
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "407" in lines[0]
    assert "Traceback" not in result.stderr
    for secret in squid.secrets():
        assert secret not in result.stderr
        assert secret not in result.stdout
    assert expected_text() not in result.stdout
