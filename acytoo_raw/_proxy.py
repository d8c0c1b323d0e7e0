"""HTTP CONNECT tunnels: the request is built sans-IO, h11 reads the reply.

Plain-HTTP origins don't come here: they go to an HTTP proxy in absolute form
(``POST http://host:port/path``), built by :func:`._http11.encode_request`, as
curl, httpx and aiohttp do; stock squid allows CONNECT to port 443 only.
"""

from __future__ import annotations

import ssl

import h11
from anyio import BrokenResourceError, EndOfStream
from anyio.abc import ByteStream

from ._exceptions import LocalProtocolError, ProxyError
from ._network import PrefixedStream
from ._urls import URL, ProxyURL

__all__ = ["MAX_PROXY_HEAD_SIZE", "MAX_PROXY_INTERIM_RESPONSES", "Tunnel", "build_connect_request"]

# A CONNECT reply is a status line and a few headers; anything larger is not
# a proxy we can talk to, and reading on would let it grow our memory.
MAX_PROXY_HEAD_SIZE = 16 * 1024

# Interim (1xx) replies before the real one: as on the origin path, a stream
# of them is a peer keeping us busy (and, arriving in one read, the loop too).
MAX_PROXY_INTERIM_RESPONSES = 16


def build_connect_request(target: URL, proxy: ProxyURL) -> tuple[h11.Connection, bytes]:
    """The h11 connection and the bytes of ``CONNECT host:port HTTP/1.1``.

    ``Proxy-Authorization`` is added from the proxy URL's credentials; it goes
    on this request only, never to the origin.

    Raises:
        LocalProtocolError: h11 refuses the target (checked before connecting).
    """
    authority = target.authority.encode("ascii")
    headers = [(b"host", authority)]
    authorization = proxy.authorization()
    if authorization is not None:
        headers.append((b"proxy-authorization", authorization))
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_PROXY_HEAD_SIZE)
    try:
        data = connection.send(h11.Request(method=b"CONNECT", target=authority, headers=headers))
        # Without EndOfMessage h11 never enters the protocol-switch state.
        data = (data or b"") + (connection.send(h11.EndOfMessage()) or b"")
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(f"cannot ask a proxy for {target.authority!r}: {exc}") from exc
    return connection, data


class Tunnel:
    """A CONNECT request to ``target`` through ``proxy``, built before connecting."""

    __slots__ = ("_connection", "_request", "proxy", "target")

    def __init__(self, target: URL, proxy: ProxyURL) -> None:
        self.target = target
        self.proxy = proxy
        self._connection, self._request = build_connect_request(target, proxy)

    async def open(self, stream: ByteStream) -> ByteStream:
        """Ask the proxy on ``stream`` for the tunnel; returns a stream through it.

        Bytes the proxy sent after its 2xx head are handed on, never dropped.
        A non-2xx reply's body is not read.

        Raises:
            ProxyError: a non-2xx reply (with ``status_code`` and ``reason``), a
                malformed or oversized reply, or a proxy that closed first.
        """
        connection = self._connection
        where = f"proxy {self.proxy.host}:{self.proxy.port}"
        try:
            await stream.send(self._request)
        except BrokenResourceError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):
                raise  # TLS to an https:// proxy failed: a TLSError.
            raise ProxyError(f"{where} broke the connection before reading CONNECT") from exc
        interim = 0
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProxyError(f"{where} sent a malformed reply to CONNECT: {exc}") from exc
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive()
                except (EndOfStream, BrokenResourceError) as exc:
                    raise ProxyError(
                        f"{where} closed the connection before answering CONNECT"
                    ) from exc
                connection.receive_data(data)
            elif isinstance(event, h11.Response):
                return self._established(stream, event, where)
            elif isinstance(event, h11.InformationalResponse):
                interim += 1
                if interim > MAX_PROXY_INTERIM_RESPONSES:
                    raise ProxyError(
                        f"{where} sent more than {MAX_PROXY_INTERIM_RESPONSES} interim (1xx) "
                        "replies to CONNECT"
                    )
            else:  # pragma: no cover
                raise ProxyError(f"{where} sent an unexpected reply to CONNECT: {event!r}")

    def _established(self, stream: ByteStream, reply: h11.Response, where: str) -> ByteStream:
        reason = reply.reason.decode("latin-1")
        if not 200 <= reply.status_code < 300:
            raise ProxyError(
                f"{where} refused the tunnel to {self.target.authority}: "
                f"{reply.status_code} {reason}".rstrip(),
                status_code=reply.status_code,
                reason=reason,
            )
        trailing, _closed = self._connection.trailing_data
        return PrefixedStream(stream, trailing) if trailing else stream
