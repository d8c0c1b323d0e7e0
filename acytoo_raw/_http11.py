"""One HTTP/1.1 exchange with h11: build the request, read the head, read the body.

h11 builds and validates the request and parses the response head and body.
The receiving side is driven by :class:`ResponseReader` over any anyio byte
stream; it never waits for more data while it holds body bytes.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import anyio
import h11
from anyio.abc import ByteStream

from ._exceptions import LocalProtocolError, RemoteProtocolError
from ._urls import URL

__all__ = [
    "MAX_HEAD_SIZE",
    "HeaderInput",
    "ResponseReader",
    "build_request",
    "encode_body",
]

# Bound on a response head (status line + headers). Big enough for any real
# server's cookies and CSP headers; small enough that a hostile peer can't
# grow our memory by streaming headers forever.
MAX_HEAD_SIZE = 64 * 1024

HeaderInput: TypeAlias = "Mapping[str, str] | Sequence[tuple[str, str]] | None"

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


def encode_body(json: object, content: bytes | str | None) -> tuple[bytes, bytes | None]:
    """The request body and the content-type it implies (``None`` for none).

    Raises:
        LocalProtocolError: both ``json`` and ``content`` given, or ``json``
            not serialisable.
    """
    if json is not None and content is not None:
        raise LocalProtocolError("pass either json= or content=, not both")
    if json is not None:
        try:
            text = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"json= is not JSON-serialisable: {exc}") from exc
        return text.encode("utf-8"), b"application/json"
    if content is None:
        return b"", None
    if isinstance(content, str):
        return content.encode("utf-8"), b"text/plain; charset=utf-8"
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content), None
    raise LocalProtocolError(f"content= must be bytes or str, not {type(content).__name__}")


def build_request(
    method: str,
    url: URL,
    headers: HeaderInput,
    body: bytes,
    content_type: bytes | None = None,
) -> tuple[h11.Connection, bytes]:
    """Validate the request with h11 and return its bytes: head and body in one buffer.

    ``Host`` and ``Content-Length`` are added unless the caller set them.
    Called before connecting, so bad input fails with no socket opened.

    Raises:
        LocalProtocolError: a header name or value h11 refuses (CR/LF, NUL,
            non-token names), a non-ASCII method, a body longer or shorter
            than a caller's Content-Length.
    """
    pairs = _encode_headers(headers)
    names = {name.lower() for name, _ in pairs}
    if b"host" not in names:
        pairs.insert(0, (b"host", url.host_header.encode("ascii")))
    if content_type is not None and b"content-type" not in names:
        pairs.append((b"content-type", content_type))
    framed = b"content-length" in names or b"transfer-encoding" in names
    if not framed and (body or method.upper() not in _BODYLESS_METHODS):
        pairs.append((b"content-length", str(len(body)).encode("ascii")))
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
    try:
        request = h11.Request(
            method=method.encode("ascii"), target=url.target.encode("ascii"), headers=pairs
        )
        data = connection.send(request) or b""
        if body:
            data += connection.send(h11.Data(data=body)) or b""
        data += connection.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(f"invalid request: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"method and URL must be ASCII: {exc}") from exc
    return connection, data


def _encode_headers(headers: HeaderInput) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs: list[tuple[bytes, bytes]] = []
    for item in items:
        try:
            name, value = item
            pairs.append((_to_bytes(name, "ascii"), _to_bytes(value, "utf-8")))
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise LocalProtocolError(f"invalid header {item!r}: {exc}") from exc
    return pairs


def _to_bytes(value: object, encoding: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode(encoding)
    raise TypeError(f"expected str or bytes, not {type(value).__name__}")


class ResponseReader:
    """Receives one response from ``stream`` through ``connection`` (h11)."""

    __slots__ = ("_connection", "_stream", "done")

    def __init__(self, stream: ByteStream, connection: h11.Connection) -> None:
        self._stream = stream
        self._connection = connection
        self.done = False

    async def receive_head(self) -> h11.Response:
        """The final response head; 1xx interim responses are skipped.

        Raises:
            RemoteProtocolError: malformed or oversized head, or the server
                closed before sending one.
        """
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.ConnectionClosed):
                raise RemoteProtocolError("server closed the connection without a response")
            if not isinstance(event, h11.InformationalResponse):  # pragma: no cover - h11 order
                raise RemoteProtocolError(f"unexpected {type(event).__name__} before the head")

    async def receive_body(self) -> bytes:
        """The body bytes available now, joined; ``b""`` once the body is complete.

        Never waits while it holds body bytes: a read that carries several
        pieces yields them as one.

        Raises:
            RemoteProtocolError: malformed framing, or the body was cut short
                (fewer bytes than Content-Length, a chunked stream without its
                last chunk).
        """
        if self.done:
            return b""
        received: list[bytes] = []
        connection = self._connection
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise RemoteProtocolError(f"malformed response: {exc}") from exc
            if type(event) is h11.Data:
                received.append(event.data)
            elif event is h11.NEED_DATA:
                if received:
                    break
                await self._feed()
            elif type(event) is h11.EndOfMessage:
                self.done = True
                break
            else:  # pragma: no cover - h11 yields nothing else in SEND_BODY
                raise RemoteProtocolError(f"unexpected {event!r} in the body")
        return received[0] if len(received) == 1 else b"".join(received)

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self._connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise RemoteProtocolError(f"malformed response: {exc}") from exc
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # h11's sentinel types don't narrow
            await self._feed()

    async def _feed(self) -> None:
        try:
            data = await self._stream.receive()
        except anyio.EndOfStream:
            data = b""  # h11 must hear of EOF to end or refuse an unfinished body.
        self._connection.receive_data(data)
