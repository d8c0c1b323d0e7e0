"""The CONNECT path against hand-written proxies on real loopback sockets.

Real squid and tinyproxy are in test_proxy_real.py; these cover answers a real
proxy won't give on demand (garbage, early close, a stall, bytes past the head).
"""

from __future__ import annotations

import base64
import ssl
from contextlib import aclosing, suppress

import anyio
import pytest
from anyio.abc import ByteStream

import acytoo_raw
from acytoo_raw import (
    ConnectTimeout,
    LocalProtocolError,
    ProxyError,
    Timeout,
)
from acytoo_raw._network import connect_tcp
from acytoo_raw._proxy import Tunnel
from acytoo_raw._urls import parse_proxy_url, parse_url
from acytoo_raw.server import serve
from tests.peers import Handler, PeerLog, read_request, response, script, scripted_server

pytestmark = pytest.mark.anyio

BOUND = 10.0
PAYLOAD = {"messages": [{"role": "user", "content": "through the tunnel ✓"}]}
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


async def collect_text(url: str, **kwargs: object) -> str:
    with anyio.fail_after(BOUND):
        async with aclosing(acytoo_raw.stream_text(url, **kwargs)) as pieces:  # type: ignore[arg-type]
            return "".join([piece async for piece in pieces])


def forwarding_proxy(log: PeerLog) -> Handler:
    """A working CONNECT proxy: answers 200, then pipes bytes both ways."""

    async def handle(client: ByteStream) -> None:
        request = await read_request(client)
        log.requests.append(request)
        authority = request.split(b" ")[1].decode()
        host, _, port = authority.rpartition(":")
        async with await anyio.connect_tcp(host.strip("[]"), int(port)) as upstream:
            await client.send(ESTABLISHED)

            async def pipe(source: ByteStream, sink: ByteStream) -> None:
                with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    while True:
                        await sink.send(await source.receive())
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    await sink.send_eof()

            async with anyio.create_task_group() as tg:
                tg.start_soon(pipe, client, upstream)
                tg.start_soon(pipe, upstream, client)

    return handle


async def test_plain_http_goes_to_the_proxy_in_absolute_form_with_its_credentials() -> None:
    # RFC 9112 section 3.2.2, as curl, httpx and aiohttp do: stock squid allows
    # CONNECT to port 443 only, but forwards absolute-form requests.
    async with scripted_server(script(response(b"hello"))) as (proxy, proxy_log):
        proxy_url = proxy.replace("http://", "http://alice:p%40ss%3Aword@")
        assert await collect_text("http://example.invalid:8000/api?x=1", proxy=proxy_url) == (
            "hello"
        )
    request = proxy_log.requests[0]
    assert request.startswith(b"POST http://example.invalid:8000/api?x=1 HTTP/1.1\r\n")
    assert b"host: example.invalid:8000\r\n" in request.lower()
    token = base64.b64encode(b"alice:p@ss:word")
    assert b"proxy-authorization: Basic " + token in request


async def test_https_origin_goes_through_connect_with_credentials_only_to_the_proxy(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with (
        serve(ssl_context=server_ssl_context) as origin,
        scripted_server(forwarding_proxy) as (proxy, proxy_log),
    ):
        proxy_url = proxy.replace("http://", "http://alice:secret@")
        text = await collect_text(
            f"{origin}/api/completions",
            json=PAYLOAD,
            proxy=proxy_url,
            ssl_context=client_ssl_context,
        )
    assert text == "through the tunnel ✓"
    connect = proxy_log.requests[0]
    authority = origin.removeprefix("https://").encode()
    assert connect.startswith(b"CONNECT " + authority + b" HTTP/1.1\r\n")
    assert b"host: " + authority in connect.lower()
    assert b"proxy-authorization: Basic " + base64.b64encode(b"alice:secret") in connect


async def test_proxy_authentication_refused_in_absolute_form_is_proxy_error() -> None:
    refusal = response(
        b"auth!",
        status=b"407 Proxy Authentication Required",
        headers=(b'Proxy-Authenticate: Basic realm="x"',),
    )
    async with scripted_server(script(refusal)) as (proxy, _):
        with pytest.raises(ProxyError) as caught:
            await collect_text("http://example.invalid/", proxy=proxy.replace("//", "//u:pw@"))
    assert caught.value.status_code == 407
    assert "pw" not in str(caught.value)


async def test_tls_origin_through_tunnel_checks_the_origins_certificate(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with (
        serve(ssl_context=server_ssl_context, delay=0.01) as origin,
        scripted_server(forwarding_proxy) as (proxy, _),
    ):
        text = await collect_text(
            f"{origin}/api/completions",
            json=PAYLOAD,
            proxy=proxy,
            ssl_context=client_ssl_context,
        )
        assert text == "through the tunnel ✓"
        with pytest.raises(acytoo_raw.TLSError, match="certificate"):
            await collect_text(f"{origin}/api/completions", json=PAYLOAD, proxy=proxy)


async def test_bytes_after_the_proxys_head_belong_to_the_tunnel() -> None:
    # The proxy's 200 and the first tunnelled bytes arrive in one segment.
    steps = script(ESTABLISHED + b"already here", hang=True)
    async with scripted_server(steps) as (proxy, _):
        proxy_url = parse_proxy_url(proxy)
        with anyio.fail_after(BOUND):
            socket = await connect_tcp(proxy_url.host, proxy_url.port)
            async with socket:
                tunnel = Tunnel(parse_url("https://example.invalid/"), proxy_url)
                stream = await tunnel.open(socket)
                assert await stream.receive() == b"already here"


async def test_refusal_is_proxy_error_with_status_and_no_password() -> None:
    refusal = (
        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
        b'Proxy-Authenticate: Basic realm="x"\r\ncontent-length: 100000\r\n\r\n'
    )
    async with scripted_server(script(refusal, hang=True)) as (proxy, _):
        proxy_url = proxy.replace("http://", "http://bob:hunter2@")
        with pytest.raises(ProxyError) as caught:
            await collect_text("https://example.invalid/", proxy=proxy_url)
    error = caught.value
    assert error.status_code == 407
    assert error.reason == "Proxy Authentication Required"
    assert "407" in str(error)
    assert "hunter2" not in str(error)
    assert "hunter2" not in repr(error.args)


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param((b"SSH-2.0-OpenSSH\r\n\r\n",), id="garbage"),
        pytest.param((), id="closes-at-once"),
        pytest.param((b"HTTP/1.1 200 Conn",), id="closes-mid-head"),
        pytest.param((b"HTTP/1.1 200 OK\r\nx: " + b"a" * 65536 + b"\r\n\r\n",), id="big-head"),
    ],
)
async def test_broken_proxy_is_proxy_error(steps: tuple[bytes, ...]) -> None:
    async with scripted_server(script(*steps)) as (proxy, _):
        with pytest.raises(ProxyError):
            await collect_text("https://example.invalid/", proxy=proxy)


async def test_stalled_proxy_is_connect_timeout() -> None:
    async with scripted_server(script(hang=True)) as (proxy, _):
        with pytest.raises(ConnectTimeout):
            await collect_text(
                "https://example.invalid/", proxy=proxy, timeout=Timeout(connect=0.2)
            )


async def test_unreachable_proxy_is_proxy_error() -> None:
    with pytest.raises(ProxyError, match="cannot reach the proxy"):
        await collect_text("http://example.invalid/", proxy="http://127.0.0.1:1")


@pytest.mark.parametrize(
    "proxy", ["socks4://127.0.0.1:1080", "http://", "http://127.0.0.1:8080/path", "ftp://x:1"]
)
async def test_bad_proxy_url_is_refused_before_connecting(proxy: str) -> None:
    async with scripted_server(script(response(b"x"))) as (origin, log):
        with pytest.raises(LocalProtocolError):
            await collect_text(origin, proxy=proxy)
    assert log.connections == 0


async def test_trust_env_uses_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async with scripted_server(script(response(b"via env"))) as (proxy, log):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert await collect_text("http://example.invalid/", trust_env=True) == "via env"
        assert log.requests[0].startswith(b"POST http://example.invalid/ HTTP/1.1")


async def test_no_proxy_and_explicit_choice_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with scripted_server(script(response(b"direct"))) as (origin, origin_log):
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert await collect_text(origin, trust_env=True) == "direct"
        monkeypatch.delenv("NO_PROXY")
        # Without trust_env the environment is not read at all.
        assert await collect_text(origin) == "direct"
    assert origin_log.connections == 2


async def test_stalled_forwarding_proxy_is_named_in_the_read_timeout() -> None:
    async with scripted_server(script(hang=True)) as (proxy, _):
        port = proxy.rsplit(":", 1)[1]
        with pytest.raises(acytoo_raw.ReadTimeout, match=f"from proxy 127.0.0.1:{port}"):
            await collect_text("http://example.invalid/", proxy=proxy, timeout=Timeout(read=0.2))
