"""One connection: establish it (TCP, proxy, TLS), then carry exchanges one at a time.

A connection knows nothing of pools: it can say whether it is still alive and
close itself, both without waiting, so the pool's bookkeeping never awaits and
a cancellation can't interrupt it half-way.
"""

from __future__ import annotations

import ipaddress
import socket as socketlib
import ssl
import time
from dataclasses import dataclass
from typing import Literal

import anyio
from anyio.abc import ByteStream

from ._exceptions import ConnectError, ConnectTimeout, ProxyError, TotalTimeout
from ._network import PrefixedStream, SocketStream, connect_tcp, start_tls, translate_errors
from ._proxy import Tunnel
from ._tls import TLSStream, close_stream, default_ssl_context, receive_nowait
from ._urls import URL, ProxyURL

__all__ = ["ConnectTimings", "Connection", "Route", "establish"]

Mode = Literal["direct", "forward", "tunnel", "socks"]


@dataclass(frozen=True, slots=True)
class Route:
    """How to reach ``target``: directly, or through ``proxy`` in one of three ways.

    ``forward``: a plain-HTTP origin through an HTTP(S) proxy, request in absolute
    form; ``tunnel``: CONNECT (any https origin through an HTTP(S) proxy);
    ``socks``: a SOCKS5 proxy.
    """

    target: URL
    proxy: ProxyURL | None = None

    @property
    def mode(self) -> Mode:
        proxy = self.proxy
        if proxy is None:
            return "direct"
        if proxy.is_socks:
            return "socks"
        return "tunnel" if self.target.is_tls else "forward"

    @property
    def key(self) -> tuple[object, ...]:
        """What makes two requests able to share a connection."""
        target = self.target
        proxy = self.proxy
        proxy_key = (
            None
            if proxy is None
            else (proxy.scheme, proxy.host, proxy.port, proxy.username, proxy.password)
        )
        return (target.scheme, target.host, target.port, proxy_key)

    @property
    def first_hop(self) -> str:
        """Who we connect to first, for messages: the proxy when there is one."""
        if self.proxy is not None:
            return f"proxy {_where(self.proxy.host, self.proxy.port)}"
        return _where(self.target.host, self.target.port)


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ConnectTimings:
    """Phase ends of establishing, in ``time.perf_counter()`` seconds (``None``: skipped)."""

    __slots__ = ("connected", "tls", "tunnel")

    def __init__(self) -> None:
        self.connected: float | None = None
        self.tunnel: float | None = None
        self.tls: float | None = None


class Connection:
    """An established connection to one route's target.

    Attributes:
        socket: the TCP socket (read limits are set on it).
        stream: what exchanges read and write (socket, tunnel or TLS).
        tls: the origin's TLS layer, or ``None`` for plain HTTP.
        route: where it goes.
        expires_at: when an idle connection must be dropped (``anyio.current_time()``).
    """

    __slots__ = ("expires_at", "route", "socket", "stream", "tls")

    def __init__(
        self, route: Route, socket: SocketStream, stream: ByteStream, tls: TLSStream | None
    ) -> None:
        self.route = route
        self.socket = socket
        self.stream = stream
        self.tls = tls
        self.expires_at = 0.0

    @property
    def tls_resumed(self) -> bool:
        return self.tls is not None and self.tls.ssl_object.session_reused

    @property
    def tls_bytes_received(self) -> int:
        """Encrypted bytes received from the origin so far (0 without TLS)."""
        return self.tls.received if self.tls is not None else 0

    def tls_session(self) -> ssl.SSLSession | None:
        """The origin's TLS session if it can resume a later connection (it has a ticket)."""
        if self.tls is None:
            return None
        session = self.tls.ssl_object.session
        return session if session is not None and session.has_ticket else None

    def is_alive(self) -> bool:
        """Still usable for a new request: the peer neither closed nor sent anything.

        Never waits. TLS records that carry no data (session tickets, key
        updates) are consumed, not mistaken for the peer closing.
        """
        try:
            return receive_nowait(self.stream) is None
        except (anyio.BrokenResourceError, OSError):
            return False

    def close(self) -> None:
        """Close at once, without waiting or any TLS goodbye."""
        close_stream(self.stream)
        self.socket.close()


async def establish(
    route: Route,
    ssl_context: ssl.SSLContext | None,
    proxy_ssl_context: ssl.SSLContext | None,
    *,
    tls_session: ssl.SSLSession | None,
    limit: float,
    connect_limit: float | None,
    timings: ConnectTimings,
) -> Connection:
    """TCP, proxy handshake and TLS, all within ``limit`` seconds.

    Raises:
        ConnectError, ProxyError, TLSError: establishing failed.
        ConnectTimeout: it took longer than ``connect_limit`` (naming the hop
            that stalled: the proxy or the origin).
        TotalTimeout: the request's total timeout ran out first.
    """
    stage = [route.first_hop]  # What we were doing when the time ran out.
    with anyio.move_on_after(limit), translate_errors("connect"):
        return await _establish(route, ssl_context, proxy_ssl_context, tls_session, timings, stage)
    if connect_limit is not None and limit >= connect_limit:
        raise ConnectTimeout(f"{stage[0]} took longer than {connect_limit} s")
    raise TotalTimeout("the request's total timeout ran out while connecting")


async def _establish(
    route: Route,
    ssl_context: ssl.SSLContext | None,
    proxy_ssl_context: ssl.SSLContext | None,
    tls_session: ssl.SSLSession | None,
    timings: ConnectTimings,
    stage: list[str],
) -> Connection:
    target, proxy = route.target, route.proxy
    stage[0] = f"connecting to {route.first_hop}"
    if proxy is None:
        socket = await connect_tcp(target.host, target.port)
    else:
        try:
            socket = await connect_tcp(proxy.host, proxy.port)
        except ConnectError as exc:
            raise ProxyError(f"cannot reach the proxy: {exc}") from exc
    timings.connected = time.perf_counter()
    stream: ByteStream = socket
    try:
        if proxy is not None:
            if proxy.is_tls:
                stage[0] = f"the TLS handshake with {route.first_hop}"
                context = proxy_ssl_context or default_ssl_context()
                stream = await start_tls(stream, proxy.host, context, peer="proxy")
            if route.mode == "socks":
                stage[0] = f"the SOCKS5 handshake with {route.first_hop}"
                stream = await _open_socks(stream, route)
                timings.tunnel = time.perf_counter()
            elif route.mode == "tunnel":
                stage[0] = f"the CONNECT request to {route.first_hop}"
                stream = await Tunnel(target, proxy).open(stream)
                timings.tunnel = time.perf_counter()
        tls: TLSStream | None = None
        if target.is_tls:
            stage[0] = f"the TLS handshake with {_where(target.host, target.port)}"
            context = ssl_context or default_ssl_context()
            tls = await start_tls(stream, target.host, context, session=tls_session)
            stream = tls
            timings.tls = time.perf_counter()
    except BaseException:
        close_stream(stream)
        socket.close()
        raise
    return Connection(route, socket, stream, tls)


async def _open_socks(stream: ByteStream, route: Route) -> ByteStream:
    from ._socks import Socks5Handshake  # Only SOCKS routes load it.

    proxy = route.proxy
    assert proxy is not None
    target = route.target
    host = target.host
    if not proxy.remote_dns:
        host = await _resolve(host, target.port)
    handshake = Socks5Handshake(host, target.port, username=proxy.username, password=proxy.password)
    where = f"proxy {_where(proxy.host, proxy.port)}"
    try:
        await stream.send(handshake.start())
        while not handshake.done:
            data = await stream.receive()
            reply = handshake.receive_data(data)
            if reply:
                await stream.send(reply)
    except ProxyError as exc:
        if str(exc).startswith(where):
            raise
        raise ProxyError(f"{where}: {exc}", status_code=None, reason=exc.reason) from exc
    except anyio.EndOfStream:
        raise ProxyError(f"{where} closed the connection during the SOCKS5 handshake") from None
    except anyio.BrokenResourceError as exc:
        if isinstance(exc.__cause__, ssl.SSLError):
            raise  # TLS to an https:// proxy failed: a TLSError, said where it happened.
        # The proxy took the TCP connection, then broke it (a reset): its fault,
        # not a failure to connect.
        raise ProxyError(f"{where} broke the connection during the SOCKS5 handshake") from exc
    trailing = handshake.trailing_data
    return PrefixedStream(stream, trailing) if trailing else stream


async def _resolve(host: str, port: int) -> str:
    """socks5:// resolves the target here, as curl does; socks5h:// leaves it to the proxy."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    try:
        addresses = await anyio.getaddrinfo(host, port, type=socketlib.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses:
        raise ConnectError(f"cannot resolve {host!r}: no address")
    return str(addresses[0][4][0])
