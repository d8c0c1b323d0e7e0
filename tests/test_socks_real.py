"""The sans-IO SOCKS5 handshake against a real SOCKS5 server (microsocks).

A tiny driver here (connect to microsocks, send ``start()``, then receive ->
``receive_data`` -> send until done) stands in for the connection layer; an
HTTP/1.0 request then goes through the tunnel to a loopback anyio origin
started in the test. Every async test runs on asyncio, uvloop and trio. The
servers come from :mod:`tests.socks_server`: without microsocks these tests
skip, or fail when ``CI=true``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from acytoo_raw._exceptions import ProxyError
from acytoo_raw._socks import Socks5Handshake
from tests.socks_server import (
    SOCKS_PASSWORD,
    SOCKS_USER,
    WRONG_SOCKS_PASSWORD,
    SocksServer,
    run_microsocks,
)

pytestmark = pytest.mark.anyio

TEST_TIMEOUT = 10.0  # seconds for one whole test's network part; real runs take a few ms
# The longest handshake is 2 + 2 + 262 reply bytes: even one byte per read ends well before.
MAX_HANDSHAKE_READS = 300
MAX_RESPONSE_BYTES = 64 * 1024  # the origin's answers are tiny; stop a runaway peer
BANNER = b"220 origin speaks first\r\n"


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def socks_open() -> Iterator[SocksServer]:
    with run_microsocks() as server:
        yield server


@pytest.fixture(scope="session")
def socks_auth() -> Iterator[SocksServer]:
    with run_microsocks(username=SOCKS_USER, password=SOCKS_PASSWORD) as server:
        yield server


async def _http_handler(stream: SocketStream) -> None:
    """Answer one HTTP/1.0 request: the request line and the client's port, then close."""
    async with stream:
        head = b""
        with anyio.move_on_after(TEST_TIMEOUT):
            while b"\r\n\r\n" not in head and len(head) < MAX_RESPONSE_BYTES:
                try:
                    head += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
            request_line = head.split(b"\r\n", 1)[0]
            peer_port = stream.extra(SocketAttribute.remote_port)
            body = b"you asked: " + request_line + b"\npeer port: %d\n" % peer_port
            await stream.send(
                b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n"
                % len(body)
                + body
            )


async def _banner_handler(stream: SocketStream) -> None:
    """A server-speaks-first origin: the banner leaves as soon as the tunnel connects."""
    async with stream:
        await stream.send(BANNER)


@asynccontextmanager
async def _origin(host: str = "127.0.0.1", *, banner: bool = False) -> AsyncIterator[int]:
    """A loopback origin on every address of ``host`` (one port); yields the port."""
    listener = await anyio.create_tcp_listener(local_host=host)
    port: int = listener.extra(SocketAttribute.local_port)
    handler = _banner_handler if banner else _http_handler
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


# --------------------------------------------------------------------------- driver


async def _socks_connect(
    server: SocksServer,
    host: str,
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
) -> tuple[SocketStream, bytes]:
    """The handshake over a real socket; returns the tunnel stream and its first bytes."""
    handshake = Socks5Handshake(host, port, username=username, password=password)
    stream = await anyio.connect_tcp(server.host, server.port)
    try:
        await stream.send(handshake.start())
        for _ in range(MAX_HANDSHAKE_READS):
            if handshake.done:
                break
            try:
                data = await stream.receive()
            except anyio.EndOfStream:
                data = b""  # the handshake's EOF signal
            reply = handshake.receive_data(data)
            if reply:
                await stream.send(reply)
        else:
            pytest.fail(f"handshake not done after {MAX_HANDSHAKE_READS} reads")
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    return stream, handshake.trailing_data


async def _read_to_eof(stream: SocketStream, first: bytes) -> bytes:
    data = first
    while len(data) < MAX_RESPONSE_BYTES:
        try:
            data += await stream.receive()
        except anyio.EndOfStream:
            return data
    pytest.fail("the origin's answer did not end")


async def _http_through(
    server: SocksServer,
    host: str,
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
) -> None:
    stream, trailing = await _socks_connect(
        server, host, port, username=username, password=password
    )
    async with stream:
        local_port = stream.extra(SocketAttribute.local_port)
        await stream.send(
            b"GET /through/socks HTTP/1.0\r\nhost: %s:%d\r\n\r\n" % (host.encode(), port)
        )
        answer = await _read_to_eof(stream, trailing)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"content-length: %d" % len(body) in head
    assert body.startswith(b"you asked: GET /through/socks HTTP/1.0\npeer port: ")
    # The origin saw another connection than ours: the proxy's.
    assert int(body.rsplit(b": ", 1)[1]) != local_port


# --------------------------------------------------------------------------- tests


async def test_no_auth(socks_open: SocksServer) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with _origin() as port:
            await _http_through(socks_open, "127.0.0.1", port)


async def test_username_password(socks_auth: SocksServer) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with _origin() as port:
            await _http_through(
                socks_auth, "127.0.0.1", port, username=SOCKS_USER, password=SOCKS_PASSWORD
            )


async def test_credentials_offered_to_an_open_proxy(socks_open: SocksServer) -> None:
    # We offer no-auth too: a proxy that needs no password gets none, and works.
    with anyio.fail_after(TEST_TIMEOUT):
        async with _origin() as port:
            await _http_through(
                socks_open, "127.0.0.1", port, username=SOCKS_USER, password=SOCKS_PASSWORD
            )


@pytest.mark.parametrize("auth", [True, False], ids=["auth", "open"])
async def test_domain_name_resolved_by_the_proxy(
    auth: bool, socks_open: SocksServer, socks_auth: SocksServer
) -> None:
    # ATYP 3, the socks5h:// case: microsocks resolves "localhost" itself.
    server = socks_auth if auth else socks_open
    credentials = {"username": SOCKS_USER, "password": SOCKS_PASSWORD} if auth else {}
    with anyio.fail_after(TEST_TIMEOUT):
        async with _origin("localhost") as port:
            await _http_through(server, "localhost", port, **credentials)


async def test_wrong_password(socks_auth: SocksServer) -> None:
    with anyio.fail_after(TEST_TIMEOUT), pytest.raises(ProxyError) as info:
        await _socks_connect(
            socks_auth, "127.0.0.1", 9, username=SOCKS_USER, password=WRONG_SOCKS_PASSWORD
        )
    assert info.value.status_code is None
    assert info.value.reason == "wrong username or password"
    for secret in socks_auth.secrets():
        assert secret not in str(info.value)


async def test_no_credentials_for_an_auth_proxy(socks_auth: SocksServer) -> None:
    with anyio.fail_after(TEST_TIMEOUT), pytest.raises(ProxyError) as info:
        await _socks_connect(socks_auth, "127.0.0.1", 9)
    assert info.value.status_code is None
    assert info.value.reason == "no acceptable authentication method"
    assert "credentials" in str(info.value)


@pytest.mark.parametrize("auth", [True, False], ids=["auth", "open"])
async def test_refused_target_port(
    auth: bool, socks_open: SocksServer, socks_auth: SocksServer
) -> None:
    server = socks_auth if auth else socks_open
    credentials = {"username": SOCKS_USER, "password": SOCKS_PASSWORD} if auth else {}
    # A port that was just free: nothing listens there, so the proxy's connect is refused.
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        closed = listener.extra(SocketAttribute.local_port)
    with anyio.fail_after(TEST_TIMEOUT), pytest.raises(ProxyError) as info:
        await _socks_connect(server, "127.0.0.1", closed, **credentials)
    assert info.value.status_code is None
    assert info.value.reason == "connection refused"
    assert f"127.0.0.1:{closed}" in str(info.value)


async def test_origin_bytes_right_after_the_reply_reach_the_tunnel(
    socks_open: SocksServer,
) -> None:
    # A server-speaks-first origin: its banner may arrive in the same read as
    # the CONNECT reply (then it is trailing_data) or in a later one; either
    # way it must reach the tunnel intact.
    with anyio.fail_after(TEST_TIMEOUT):
        async with _origin(banner=True) as port:
            stream, trailing = await _socks_connect(socks_open, "127.0.0.1", port)
            async with stream:
                assert await _read_to_eof(stream, trailing) == BANNER


async def _wait_for_bytes(stream: SocketStream, count: int) -> None:
    """Poll (without reading) until the kernel holds ``count`` bytes for ``stream``.

    Between receives anyio does not read ahead (asyncio and uvloop pause
    reading, trio reads on demand), so the next receive returns them all at once.
    """
    raw = stream.extra(SocketAttribute.raw_socket)
    # A duplicate fd shares the socket; uvloop's raw_socket is a stand-in without recv.
    with socket.socket(fileno=os.dup(raw.fileno())) as peek:
        while True:
            try:
                if len(peek.recv(count, socket.MSG_PEEK | socket.MSG_DONTWAIT)) >= count:
                    return
            except BlockingIOError:
                pass
            await anyio.sleep(0.005)  # bounded by the caller's fail_after


async def test_origin_bytes_in_the_same_read_as_the_reply_are_trailing_data(
    socks_open: SocksServer,
) -> None:
    # Deterministic version of the test above: wait until the CONNECT reply
    # and the banner both sit in the socket, then read once.
    with anyio.fail_after(TEST_TIMEOUT):
        async with _origin(banner=True) as port:
            handshake = Socks5Handshake("127.0.0.1", port)
            async with await anyio.connect_tcp(socks_open.host, socks_open.port) as stream:
                await stream.send(handshake.start())
                await _wait_for_bytes(stream, 2)
                await stream.send(handshake.receive_data(await stream.receive()))
                await _wait_for_bytes(stream, 10 + len(BANNER))
                assert handshake.receive_data(await stream.receive()) == b""
                assert handshake.done
                assert handshake.trailing_data == BANNER
