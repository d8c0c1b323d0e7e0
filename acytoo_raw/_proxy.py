"""HTTP CONNECT tunnels: the request is built sans-IO, h11 reads the reply."""

from __future__ import annotations

import h11
from anyio import BrokenResourceError, EndOfStream
from anyio.abc import ByteStream

from ._exceptions import ProxyError
from ._network import PrefixedStream
from ._urls import URL, ProxyURL

__all__ = ["MAX_PROXY_HEAD_SIZE", "build_connect_request", "open_tunnel"]

# A CONNECT reply is a status line and a few headers; anything larger is not
# a proxy we can talk to, and reading on would let it grow our memory.
MAX_PROXY_HEAD_SIZE = 16 * 1024


def build_connect_request(target: URL, proxy: ProxyURL) -> tuple[h11.Connection, bytes]:
    """The h11 connection and the bytes of ``CONNECT host:port HTTP/1.1``.

    ``Proxy-Authorization`` is added from the proxy URL's credentials; it goes
    on this request only, never to the origin.
    """
    headers = [(b"host", target.authority.encode("ascii"))]
    authorization = proxy.authorization()
    if authorization is not None:
        headers.append((b"proxy-authorization", authorization))
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_PROXY_HEAD_SIZE)
    data = connection.send(
        h11.Request(method=b"CONNECT", target=target.authority.encode("ascii"), headers=headers)
    )
    # Without EndOfMessage h11 never enters the protocol-switch state.
    data += connection.send(h11.EndOfMessage()) or b""
    return connection, data or b""


async def open_tunnel(stream: ByteStream, target: URL, proxy: ProxyURL) -> ByteStream:
    """Ask the proxy on ``stream`` for a tunnel to ``target``.

    Returns a stream through the tunnel; bytes the proxy sent after its 2xx
    head are handed on, never dropped. A non-2xx reply's body is not read.

    Raises:
        ProxyError: a non-2xx reply (with ``status_code`` and ``reason``), a
            malformed or oversized reply, or a proxy that closed first.
    """
    connection, request = build_connect_request(target, proxy)
    where = f"proxy {proxy.host}:{proxy.port}"
    await stream.send(request)
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProxyError(f"{where} sent a malformed reply to CONNECT: {exc}") from exc
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive()
            except (EndOfStream, BrokenResourceError) as exc:
                raise ProxyError(f"{where} closed the connection before answering CONNECT") from exc
            connection.receive_data(data)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            reason = event.reason.decode("latin-1")
            if not 200 <= event.status_code < 300:
                raise ProxyError(
                    f"{where} refused the tunnel to {target.authority}: "
                    f"{event.status_code} {reason}".rstrip(),
                    status_code=event.status_code,
                    reason=reason,
                )
            trailing, _closed = connection.trailing_data
            return PrefixedStream(stream, trailing) if trailing else stream
        raise ProxyError(f"{where} sent an unexpected reply to CONNECT: {event!r}")
