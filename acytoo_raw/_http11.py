"""One HTTP/1.1 exchange: build the request, read the head, read the body.

h11 is the authority: the common request is written directly and the common
response head parsed directly (:mod:`._head`), each only where h11's own rules
accept it and proven byte-for-byte equal to h11 in tests; anything else goes
through h11 whole. The receiving side is driven by :class:`ResponseReader`
over any anyio byte stream; it never waits for more data while it holds body
bytes.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TypeAlias

import anyio
import h11
from anyio.abc import ByteStream

from ._body import (
    MAX_HEAD_SIZE,
    BodyParser,
    ChunkedParser,
    ContentLengthParser,
    UntilCloseParser,
    body_parser_for,
    find_head_end,
)
from ._exceptions import LocalProtocolError, RemoteProtocolError
from ._head import ResponseHead, parse_common_head
from ._tls import EndWithoutCloseNotify
from ._urls import URL

__all__ = [
    "MAX_HEAD_SIZE",
    "MAX_INTERIM_RESPONSES",
    "HeaderInput",
    "ResponseHead",
    "ResponseReader",
    "build_request",
    "encode_body",
    "encode_request",
    "state_after_request",
]

# 1xx answers before the real one: a server sends one 100 Continue or a few
# 103 Early Hints; a stream of them is a peer keeping us busy.
MAX_INTERIM_RESPONSES = 16

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
            return text.encode("utf-8"), b"application/json"
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(f"json= holds text that is not valid Unicode: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"json= is not JSON-serialisable: {exc}") from exc
        except RecursionError:
            raise LocalProtocolError("json= is nested too deeply to serialise") from None
    if content is None:
        return b"", None
    if isinstance(content, str):
        try:
            return content.encode("utf-8"), b"text/plain; charset=utf-8"
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(
                f"content= holds text that is not valid Unicode: {exc}"
            ) from exc
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content), None
    raise LocalProtocolError(f"content= must be bytes or str, not {type(content).__name__}")


def build_request(
    method: str,
    url: URL,
    headers: HeaderInput,
    body: bytes,
    content_type: bytes | None = None,
    *,
    absolute_form: bool = False,
    proxy_authorization: bytes | None = None,
) -> tuple[h11.Connection, bytes]:
    """:func:`encode_request`, with the h11 state that reads the response always made."""
    data, state = encode_request(
        method,
        url,
        headers,
        body,
        content_type,
        absolute_form=absolute_form,
        proxy_authorization=proxy_authorization,
    )
    return (state if state is not None else state_after_request(method.encode("ascii"))), data


def encode_request(
    method: str,
    url: URL,
    headers: HeaderInput,
    body: bytes,
    content_type: bytes | None = None,
    *,
    absolute_form: bool = False,
    proxy_authorization: bytes | None = None,
) -> tuple[bytes, h11.Connection | None]:
    """Validate the request as h11 does and return its bytes: head and body in one buffer.

    ``Host`` and ``Content-Length`` are added unless the caller set them.
    Called before connecting, so bad input fails with no socket opened.
    ``absolute_form`` puts the whole URL on the request line, for a plain
    HTTP proxy, and ``proxy_authorization`` is then that proxy's credential
    (the proxy strips it before forwarding). With the bytes comes the h11
    connection in the state to read the response, or ``None`` for a request
    written directly: :func:`state_after_request` makes that state when a
    response head needs h11 (most never do, see :mod:`._head`).

    The common request (token method, valid target and headers, no framing or
    connection-management headers of the caller's beyond a matching
    Content-Length) is checked with h11's own patterns and written directly;
    any other goes through h11 whole. Both give the bytes h11 would send
    (tests/test_http11_request.py checks this for any input).

    Raises:
        LocalProtocolError: a header name or value h11 refuses (CR/LF, NUL,
            non-token names), a non-ASCII method, a body longer or shorter
            than a caller's Content-Length.
    """
    if not isinstance(method, str):
        raise LocalProtocolError(f"method must be a str, not {type(method).__name__}")
    pairs = _encode_headers(headers)
    names = {name.lower() for name, _ in pairs}
    if b"host" not in names:
        pairs.insert(0, (b"host", url.host_header.encode("ascii")))
    if content_type is not None and b"content-type" not in names:
        pairs.append((b"content-type", content_type))
    framed = b"content-length" in names or b"transfer-encoding" in names
    if not framed and (body or method.upper() not in _BODYLESS_METHODS):
        pairs.append((b"content-length", str(len(body)).encode("ascii")))
    if proxy_authorization is not None:
        pairs = [(name, value) for name, value in pairs if name.lower() != b"proxy-authorization"]
        pairs.append((b"proxy-authorization", proxy_authorization))
    target = url.absolute_form if absolute_form else url.target
    data = _build_plain(method, target, pairs, body)
    if data is not None:
        return data, None
    connection, data = _build_with_h11(method, target, pairs, body)
    return data, connection


def _build_with_h11(
    method: str, target: str, pairs: list[tuple[bytes, bytes]], body: bytes
) -> tuple[h11.Connection, bytes]:
    """The whole request through h11: its bytes, its state, or its refusal."""
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
    try:
        request = h11.Request(
            method=method.encode("ascii"), target=target.encode("ascii"), headers=pairs
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


# Headers that change h11's framing or connection state, or that it rewrites
# (Transfer-Encoding is lower-cased, a Content-Length list collapsed): a request
# with any of them from the caller goes through h11 whole. (Expect needs no
# care: h11 forgets a 100-continue wait once the request is complete.)
_STATEFUL_HEADERS = frozenset({b"transfer-encoding", b"connection", b"upgrade"})
_END_OF_MESSAGE = h11.EndOfMessage()

try:  # h11's own patterns, so "valid" means exactly what h11 accepts.
    from h11._events import method_re as _METHOD_RE
    from h11._events import request_target_re as _TARGET_RE
    from h11._headers import CONTENT_LENGTH_MAX_DIGITS as _MAX_LENGTH_DIGITS
    from h11._headers import _content_length_re as _LENGTH_RE
    from h11._headers import _field_name_re as _NAME_RE
    from h11._headers import _field_value_re as _VALUE_RE
except ImportError:  # pragma: no cover - a future h11 without them: h11 does it all.
    _PLAIN = False
else:
    _PLAIN = True


def _build_plain(
    method: str, target: str, pairs: list[tuple[bytes, bytes]], body: bytes
) -> bytes | None:
    """The request written directly, or ``None`` when only h11 can say (or refuse)."""
    if not _PLAIN or not method.isascii() or not target.isascii():
        return None
    method_bytes = method.encode("ascii")
    target_bytes = target.encode("ascii")
    if _METHOD_RE.fullmatch(method_bytes) is None or _TARGET_RE.fullmatch(target_bytes) is None:
        return None
    host = b""
    length: bytes | None = None
    lines = [b"%s %s HTTP/1.1\r\n" % (method_bytes, target_bytes), b""]
    for name, value in pairs:
        if _NAME_RE.fullmatch(name) is None or _VALUE_RE.fullmatch(value) is None:
            return None
        lower = name.lower()
        if lower == b"host":
            if host:
                return None  # h11 refuses a second Host.
            host = b"%s: %s\r\n" % (name, value)
            continue
        if lower == b"content-length":
            if (
                length is not None
                or _LENGTH_RE.fullmatch(value) is None
                or len(value) > _MAX_LENGTH_DIGITS
            ):
                return None
            length = value
        elif lower in _STATEFUL_HEADERS:
            return None
        lines.append(b"%s: %s\r\n" % (name, value))
    if not host or (int(length) if length is not None else 0) != len(body):
        return None
    lines[1] = host  # h11 writes Host first, wherever it was given.
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


def state_after_request(method: bytes) -> h11.Connection:
    """h11 in the state a directly written ``method`` request leaves it: reading the response.

    Same method (CONNECT's switch proposal included), keep-alive, no Upgrade:
    what :func:`_build_plain` writes, so h11 judges the response as it would
    after sending the real request.
    """
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
    connection.send(_state_template(method))
    connection.send(_END_OF_MESSAGE)
    return connection


@lru_cache(maxsize=64)
def _state_template(method: bytes) -> h11.Request:
    return h11.Request(method=method, target=b"/", headers=[(b"host", b"template")])


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
    """Receives one response from ``stream``: the head (:mod:`._head` or h11), then the body.

    Each head gets exactly its own bytes (:func:`find_head_end` uses h11's
    rule for where a head ends). After a directly written request
    (``connection`` is ``None``) the common head is parsed without h11, and
    h11 takes any other (made by :func:`state_after_request` only then).
    The body is framed by a small parser proven equal to h11 in
    tests/test_body.py, because h11's per-event body path is the dominant
    per-piece cost (PERF_NOTES.md).
    """

    __slots__ = (
        "_connection",
        "_early",
        "_keep_alive",
        "_method",
        "_parser",
        "_pending",
        "_reuse_forbidden",
        "_stream",
        "received_any",
    )

    def __init__(
        self, stream: ByteStream, connection: h11.Connection | None, method: bytes
    ) -> None:
        self._stream = stream
        self._connection = connection
        self._method = method
        self._parser: BodyParser | None = None
        self._pending = b""  # Body bytes that arrived with the head.
        self._keep_alive = False
        self._reuse_forbidden = False
        self._early = b""  # Response bytes read while the request was still being sent.
        self.received_any = False  # Some response byte arrived: a replay is no longer safe.

    def forbid_reuse(self) -> None:
        """The connection must close after this response, however cleanly it ends
        (the request was not sent whole: the server may still wait for the rest)."""
        self._reuse_forbidden = True

    def prepend(self, data: bytes) -> None:
        """Response bytes that arrived before the head was asked for (an early answer)."""
        self._early += data
        self.received_any = True

    @property
    def reusable(self) -> bool:
        """The connection can carry another exchange.

        Only when the response was HTTP/1.1, neither side said ``Connection:
        close``, the body was framed (Content-Length or chunked), read to its
        end and nothing came after it.
        """
        parser = self._parser
        return (
            self._keep_alive
            and not self._reuse_forbidden
            and parser is not None
            and parser.done
            and parser.error is None
            and not self._pending
            and not parser.unused
            and isinstance(parser, (ContentLengthParser, ChunkedParser))
        )

    async def receive_head(self) -> ResponseHead:
        """The final response head; 1xx interim responses are skipped.

        Raises:
            RemoteProtocolError: malformed head, a head over
                :data:`MAX_HEAD_SIZE`, or the server closed before sending one.
        """
        if self._parser is not None:
            raise RuntimeError("the response head was already received")
        buffer, self._early = self._early, b""
        searched = 0
        interim = 0
        while True:
            end = find_head_end(buffer, max(0, searched - 2))
            if end is None:
                searched = len(buffer)
                try:
                    buffer += await self._stream.receive()
                    self.received_any = True
                except anyio.EndOfStream:
                    if buffer:
                        raise RemoteProtocolError(
                            "server closed the connection in the middle of the response head"
                        ) from None
                    raise RemoteProtocolError(
                        "server closed the connection without a response"
                    ) from None
                continue
            head = self._parse(buffer[:end])
            buffer, searched = buffer[end:], 0
            if head is not None:
                self._parser = body_parser_for(head.status_code, head.headers, self._method)
                self._keep_alive = head.keep_alive
                self._pending = self._parser.feed(buffer) if buffer else b""
                # h11's part is over: its half-dozen objects need not live as
                # long as the body (fewer objects per open stream for the GC).
                self._connection = None
                return head
            interim += 1
            if interim > MAX_INTERIM_RESPONSES:
                raise RemoteProtocolError(
                    f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses"
                )

    def _parse(self, data: bytes) -> ResponseHead | None:
        """One head's bytes: the final head, or ``None`` for an interim (1xx) one."""
        connection = self._connection
        if connection is None:
            head = parse_common_head(data, self._method)
            if head is not None:
                return head
            connection = self._connection = state_after_request(self._method)
        connection.receive_data(data)
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(f"malformed response head: {exc}") from exc
        if isinstance(event, h11.Response):
            # Parsing the head folded both sides' "Connection: close" and an
            # HTTP/1.0 peer into h11's keep-alive flag: our side is then
            # MUST_CLOSE, not DONE.
            keep_alive = event.http_version == b"1.1" and connection.our_state is h11.DONE
            return ResponseHead(
                event.status_code,
                event.reason,
                event.http_version,
                list(event.headers),
                keep_alive,
            )
        if not isinstance(event, h11.InformationalResponse):  # pragma: no cover
            raise RemoteProtocolError(f"unexpected {event!r} instead of a response head")
        return None

    async def receive_body(self) -> bytes:
        """The body bytes available now, joined; ``b""`` once the body is complete.

        Never waits while it holds body bytes: what one read carries comes
        back as one piece.

        Raises:
            RemoteProtocolError: malformed framing, or the body was cut short
                (fewer bytes than Content-Length, a chunked stream without its
                last chunk).
        """
        parser = self._parser
        if parser is None:
            raise RuntimeError("receive_head() must come first")
        if self._pending:
            piece, self._pending = self._pending, b""
            return piece
        receive = self._stream.receive
        while not parser.done:
            if parser.error is not None:  # Found after the bytes it handed out last time.
                raise parser.error
            try:
                data = await receive()
            except EndWithoutCloseNotify:
                if isinstance(parser, UntilCloseParser):
                    raise RemoteProtocolError(
                        "server closed TLS without close_notify during a body delimited by "
                        "the close: the body may be truncated"
                    ) from None
                parser.feed_eof()  # Framed bodies prove their own end.
                return b""
            except anyio.EndOfStream:
                parser.feed_eof()  # Ends a close-delimited body; refuses a cut one.
                return b""
            piece = parser.feed(data)
            if piece:
                return piece
        return b""
