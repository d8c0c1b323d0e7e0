"""The client through a real SOCKS5 proxy (microsocks): socks5:// and socks5h://, with and
without a password, plain and TLS origins, pooled per (proxy, target), from the environment."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import anyio
import anyio.abc
import pytest

import acytoo_raw
from acytoo_raw import Client, ConnectTimeout, ProxyError, Timeout
from acytoo_raw.server import serve
from tests.peers import scripted_server, wait_for_close
from tests.socks_server import SOCKS_PASSWORD, SOCKS_USER, SocksServer, run_microsocks

pytestmark = pytest.mark.anyio

BOUND = 10.0
MESSAGES = [{"role": "user", "content": "through SOCKS ✓"}]


@pytest.fixture(scope="session")
def socks_open() -> Iterator[SocksServer]:
    with run_microsocks() as server:
        yield server


@pytest.fixture(scope="session")
def socks_auth() -> Iterator[SocksServer]:
    with run_microsocks(username=SOCKS_USER, password=SOCKS_PASSWORD) as server:
        yield server


async def ask(url: str, **kwargs: Any) -> str:
    with anyio.fail_after(BOUND):
        pieces = acytoo_raw.stream_text(
            f"{url}/api/completions", json={"messages": MESSAGES}, **kwargs
        )
        async with aclosing(pieces):
            return "".join([piece async for piece in pieces])


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
@pytest.mark.parametrize("auth", ["open", "right"])
async def test_plain_origin_through_microsocks(
    socks_open: SocksServer, socks_auth: SocksServer, scheme: str, auth: str
) -> None:
    server = socks_open if auth == "open" else socks_auth
    async with serve() as origin:
        # socks5h sends the name: "localhost" is resolved by the proxy.
        origin = origin.replace("127.0.0.1", "localhost") if scheme == "socks5h" else origin
        assert await ask(origin, proxy=server.url(auth, scheme=scheme)) == "through SOCKS ✓"  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_tls_origin_through_microsocks_with_password(
    socks_auth: SocksServer,
    scheme: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    async with serve(ssl_context=server_ssl_context) as origin:
        text = await ask(
            origin, proxy=socks_auth.url("right", scheme=scheme), ssl_context=client_ssl_context
        )
    assert text == "through SOCKS ✓"


@pytest.mark.parametrize("auth", ["wrong", "missing"])
async def test_refused_credentials_are_proxy_errors_without_secrets(
    socks_auth: SocksServer, auth: str
) -> None:
    async with serve() as origin:
        with pytest.raises(ProxyError) as caught:
            await ask(origin, proxy=socks_auth.url(auth))  # type: ignore[arg-type]
    error = caught.value
    assert error.status_code is None
    assert f"127.0.0.1:{socks_auth.port}" in str(error)
    for secret in socks_auth.secrets():
        assert secret not in str(error)
        assert secret not in repr(error)


async def test_refused_target_is_proxy_error(socks_open: SocksServer) -> None:
    async with serve() as origin:
        port = int(origin.rsplit(":", 1)[1])
    # The server is gone: microsocks answers "connection refused".
    with pytest.raises(ProxyError, match="refused"):
        await ask(f"http://127.0.0.1:{port}", proxy=socks_open.url())


async def test_client_pools_socks_connections_per_target(socks_auth: SocksServer) -> None:
    async with serve() as one, serve() as two, Client(proxy=socks_auth.url("right")) as client:
        for _ in range(2):
            for origin in (one, two):
                with anyio.fail_after(BOUND):
                    async with client.open_stream(
                        f"{origin}/api/completions", json={"messages": MESSAGES}
                    ) as r:
                        assert (await r.aread()).decode() == "through SOCKS ✓"
                        reused = r.timings.reused
                        assert r.timings.tunnel is not None or reused
        assert reused is True
        assert client._pool.idle_connections == 2


async def test_all_proxy_from_the_environment_may_name_socks(
    socks_open: SocksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", socks_open.url())
    async with serve() as origin:
        assert await ask(origin, trust_env=True) == "through SOCKS ✓"


async def test_stalled_socks_proxy_is_a_connect_timeout_naming_the_proxy() -> None:
    async def stall(stream: anyio.abc.ByteStream) -> None:
        await wait_for_close(stream)

    async with scripted_server(lambda log: stall) as (proxy, _):
        socks = proxy.replace("http://", "socks5://")
        with pytest.raises(ConnectTimeout, match="SOCKS5 handshake with proxy"):
            await ask("http://127.0.0.1:9", proxy=socks, timeout=Timeout(connect=0.2))


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_socks5h_leaves_the_name_to_the_proxy(
    socks_open: SocksServer, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_local_resolver(*args: object, **kwargs: object) -> object:
        raise OSError("no resolver here")

    async with serve() as origin:
        monkeypatch.setattr(anyio, "getaddrinfo", no_local_resolver)
        url = origin.replace("127.0.0.1", "localhost")
        if scheme == "socks5h":
            assert await ask(url, proxy=socks_open.url(scheme=scheme)) == "through SOCKS ✓"
        else:
            with pytest.raises(acytoo_raw.ConnectError, match="resolve 'localhost'"):
                await ask(url, proxy=socks_open.url(scheme=scheme))
