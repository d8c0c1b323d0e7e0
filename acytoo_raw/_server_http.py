"""The loopback server's HTTP/1.1 transport: requests in, responses out, under limits.

h11 parses each request head (one fresh ``h11.Connection`` per request, so an
idle connection holds no parser state) and writes each response. Request
bodies never go through h11: its chunk-size regex backtracks quadratically on
hostile lines, and its one event per chunk costs an object per byte for a body
sent in 1-byte chunks. They are framed by :mod:`acytoo_raw._body`'s parsers
into one buffer instead. Every wait has two bounds: ``idle`` per receive and a
deadline for the whole head (``head``, from its first byte) or the whole body
(``body``, from the end of the head), so a peer trickling one byte at a time
is dropped when the deadline passes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus

import anyio
import h11
from anyio.abc import ByteStream

from ._body import ChunkedParser, ContentLengthParser
from ._exceptions import RemoteProtocolError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_BODY_WIRE_BYTES",
    "MAX_HEAD_BYTES",
    "BadRequest",
    "ConnectionGone",
    "Exchange",
    "HTTPConnection",
    "Timeouts",
    "is_openai_target",
    "raw_response",
]

# Request line + headers; far above any real chat request, refused with 431 beyond.
MAX_HEAD_BYTES = 16 * 1024
# A chat history is kilobytes; anything beyond this is refused with 413 instead of buffered.
MAX_BODY_BYTES = 1024 * 1024
# Chunked framing around a full MAX_BODY_BYTES body sent in 1-byte chunks takes 7 MiB;
# refusing (413) beyond 8 MiB on the wire bounds the parsing work one body can cost.
MAX_BODY_WIRE_BYTES = 8 * MAX_BODY_BYTES

# One receive at most; larger reads only grow the buffer a head is searched in.
_RECEIVE_SIZE = 64 * 1024
# After an early error reply, keep reading what the client still sends for a while,
# so closing doesn't turn into a TCP reset that destroys the reply before it is read.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = MAX_BODY_BYTES
# Error messages quote the peer's bytes; a line can be 16 KiB, a reply needs a glimpse.
_MAX_MESSAGE_CHARS = 200
# h11's own rule for the end of a head: the first blank line, CRLF or bare LF.
_BLANK_LINE = re.compile(rb"\n\r?\n")
_BODY_TOO_LARGE = f"request body larger than {MAX_BODY_BYTES} bytes"
# Enough of a request line to see its target; only used to pick an error dialect.
_TARGET_PEEK = 8 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: ``idle`` per receive or send; ``head`` and ``body`` for a whole head or body."""

    idle: float
    head: float
    body: float

    def __post_init__(self) -> None:
        for name in ("idle", "head", "body"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name}_timeout must be > 0, got {value!r}")


class _TooLarge(Exception):
    """The request body exceeds a limit; the message says which."""


class ConnectionGone(Exception):
    """The peer left or missed a deadline: close the connection without a reply."""


class BadRequest(Exception):
    """A request the transport refuses: answer ``status`` with ``str(exc)``, then close.

    ``openai`` tells whether the request target is under ``/v1``, for the
    shape of the error body.
    """

    def __init__(self, status: int, message: str, *, openai: bool = False) -> None:
        if len(message) > _MAX_MESSAGE_CHARS:
            message = message[:_MAX_MESSAGE_CHARS] + "..."
        super().__init__(message)
        self.status = status
        self.openai = openai


def is_openai_target(target: bytes) -> bool:
    """True for a request target under ``/v1`` (the OpenAI dialect's paths)."""
    path = target.split(b"?", 1)[0]
    return path == b"/v1" or path.startswith(b"/v1/")


def _peek_openai(head: bytes | bytearray) -> bool:
    """Guess from raw bytes whether a request that h11 never parsed was meant for /v1."""
    line = bytes(head[:_TARGET_PEEK]).split(b"\n", 1)[0]
    parts = line.split(b" ", 2)
    return len(parts) > 1 and is_openai_target(parts[1])


async def _receive_within(stream: ByteStream, timeout: float) -> bytes | None:
    """The next bytes (``b""`` at EOF), or None after ``timeout`` seconds of silence.

    A module-level function, so no frame of the connection is in the
    traceback of a cancelled receive (see :func:`_forget_frames`).
    """
    if timeout <= 0:
        return None
    with anyio.move_on_after(timeout):
        try:
            return await stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            return b""
        except anyio.get_cancelled_exc_class() as exc:
            _forget_frames(exc)
            raise
    return None


async def _send_within(stream: ByteStream, data: bytes, timeout: float) -> bool:
    """Send ``data``; False when the peer did not take it within ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        try:
            await stream.send(data)
        except anyio.get_cancelled_exc_class() as exc:
            _forget_frames(exc)
            raise
        return True
    return False


def _forget_frames(exc: BaseException) -> None:
    """Drop the frames below us from a cancellation on its way up.

    On trio, anyio's socket error conversion re-raises the exception from a
    frame that holds it in a local, so a cancelled receive or send leaves a
    reference cycle (exception, traceback, frame) that only the cyclic
    collector frees, and every frame in that traceback, with the objects its
    locals point to, waits with it: thousands of dropped connections' worth.
    A cancellation's traceback carries no information anyone reads.
    """
    exc.__traceback__ = None


class HTTPConnection:
    """One client connection: reads requests, hands out one :class:`Exchange` each."""

    __slots__ = ("_buffer", "_stream", "_timeouts")

    def __init__(self, stream: ByteStream, timeouts: Timeouts) -> None:
        self._stream = stream
        self._timeouts = timeouts
        self._buffer = bytearray()  # received, not yet consumed (a pipelined request)

    async def next_request(self) -> Exchange | None:
        """The next request, its head parsed; None when the client left between requests.

        Raises:
            BadRequest: a malformed head (400), one over MAX_HEAD_BYTES (431)
                however it arrives, or a head cut short by EOF (400).
            ConnectionGone: idle for ``idle`` seconds, or the head not complete
                ``head`` seconds after its first byte.
        """
        buf = self._buffer
        deadline: float | None = None
        scan = 0
        while True:
            if buf:
                if buf[0] < 0x21:  # h11 refuses these too: no request line can start so
                    raise BadRequest(
                        400, f"malformed request: illegal request line {bytes(buf[:20])!r}"
                    )
                match = _BLANK_LINE.search(buf, scan)
                if match is not None:
                    end = match.end()
                    break
                if len(buf) > MAX_HEAD_BYTES:
                    raise BadRequest(
                        431,
                        f"request head longer than {MAX_HEAD_BYTES} bytes",
                        openai=_peek_openai(buf),
                    )
                scan = max(0, len(buf) - 2)
                if deadline is None:
                    deadline = anyio.current_time() + self._timeouts.head
            data = await self._receive(deadline)
            if not data:
                if buf:
                    raise BadRequest(
                        400, "request head cut short by end of stream", openai=_peek_openai(buf)
                    )
                return None
            buf += data
        openai = _peek_openai(buf)
        if end > MAX_HEAD_BYTES:
            raise BadRequest(431, f"request head longer than {MAX_HEAD_BYTES} bytes", openai=openai)
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(bytes(buf[:end]))
        del buf[:end]
        try:
            request = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise BadRequest(
                exc.error_status_hint, f"malformed request: {exc}", openai=openai
            ) from None
        if not isinstance(request, h11.Request):  # unreachable: a complete head is an event
            raise BadRequest(400, "malformed request", openai=openai)
        return Exchange(self, conn, request)

    async def _receive(self, deadline: float | None) -> bytes:
        timeout = self._timeouts.idle
        if deadline is not None:
            timeout = min(timeout, deadline - anyio.current_time())
        data = await _receive_within(self._stream, timeout)
        if data is None:
            raise ConnectionGone
        return data

    async def read_framed(
        self, parser: ChunkedParser | ContentLengthParser, *, openai: bool
    ) -> bytearray:
        """Feed the body to ``parser`` until it is done; see :meth:`Exchange.read_body`.

        Raises _TooLarge when the body or its framing exceeds the limits.
        """
        deadline = anyio.current_time() + self._timeouts.body
        buf = self._buffer
        body = bytearray()
        wire = 0
        while not parser.done:
            if buf:
                data = bytes(buf)
                buf.clear()
            else:
                data = await self._receive(deadline)
                if not data:
                    try:
                        parser.feed_eof()
                    except RemoteProtocolError as exc:
                        raise BadRequest(
                            400, f"request body cut short: {exc}", openai=openai
                        ) from None
                    break
            wire += len(data)
            try:
                out = parser.feed(data)
            except RemoteProtocolError as exc:
                raise BadRequest(400, f"malformed request body: {exc}", openai=openai) from None
            if len(body) + len(out) > MAX_BODY_BYTES:
                raise _TooLarge(_BODY_TOO_LARGE)
            if wire > MAX_BODY_WIRE_BYTES and not parser.done:
                raise _TooLarge(
                    f"chunked request body longer than {MAX_BODY_WIRE_BYTES} bytes on the wire"
                )
            body += out
            if parser.error is not None:
                raise BadRequest(400, f"malformed request body: {parser.error}", openai=openai)
        buf += parser.unused
        return body

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are; for replies to requests h11 never parsed."""
        if not await _send_within(self._stream, data, self._timeouts.idle):
            raise ConnectionGone

    async def linger(self) -> None:
        """Drain what the client still sends, briefly, before the connection closes."""
        # Half-close so the client sees the end of our reply at once; TLS has no
        # half-close, so a TLS client waits out the linger (or closes first).
        stream = self._stream
        with suppress(NotImplementedError, anyio.BrokenResourceError, OSError):
            await stream.send_eof()
        deadline = anyio.current_time() + _LINGER_SECONDS
        drained = 0
        while drained < _LINGER_BYTES:
            try:
                data = await _receive_within(stream, deadline - anyio.current_time())
            except (anyio.BrokenResourceError, OSError):
                return
            if not data:  # EOF or the linger time is up
                return
            drained += len(data)


class Exchange:
    """One request and its response; ``keep_alive`` says whether another may follow."""

    __slots__ = ("_conn", "_h11", "body_done", "request", "too_large")

    def __init__(
        self, conn: HTTPConnection, h11_conn: h11.Connection, request: h11.Request
    ) -> None:
        self._conn = conn
        self._h11 = h11_conn
        self.request = request
        self.body_done = False  # the whole request body has been read
        self.too_large: str | None = None  # why read_body refused the body

    @property
    def openai(self) -> bool:
        return is_openai_target(self.request.target)

    @property
    def waiting_for_continue(self) -> bool:
        """The client sent ``Expect: 100-continue`` and holds its body back."""
        return self._h11.client_is_waiting_for_100_continue

    @property
    def keep_alive(self) -> bool:
        """The response is complete, the request was read whole and nobody asked to close."""
        return self.body_done and self._h11.our_state is h11.DONE

    async def read_body(self, *, send_continue: bool) -> bytearray | None:
        """The whole request body; None when it exceeds the limits (then it is left unread).

        ``too_large`` then says which limit, for the 413 reply.

        Raises:
            BadRequest: broken framing, or EOF before the end of the body (400).
            ConnectionGone: idle for ``idle`` seconds, or the body not complete
                ``body`` seconds after the head.
        """
        chunked = False
        length = 0
        for name, value in self.request.headers:
            # h11 has checked both: Transfer-Encoding is "chunked", Content-Length digits.
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                length = int(value)
        if not chunked and length > MAX_BODY_BYTES:
            self.too_large = _BODY_TOO_LARGE
            return None
        if send_continue and self.waiting_for_continue:
            await self.send(h11.InformationalResponse(status_code=100, headers=[]))
        parser = ChunkedParser() if chunked else ContentLengthParser(length)
        try:
            body = await self._conn.read_framed(parser, openai=self.openai)
        except _TooLarge as exc:
            self.too_large = str(exc)
            return None
        self.body_done = True
        return body

    async def send(self, *events: h11.Event) -> None:
        """Send h11 events in one write."""
        data = b"".join(self._h11.send(event) or b"" for event in events)
        await self._conn.send_raw(data)

    async def send_body(
        self,
        status: int,
        body: bytes,
        content_type: bytes,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        """A complete response with a Content-Length body (none for HEAD)."""
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode("ascii")),
            *extra,
        ]
        if not self.body_done:
            # The rest of the request stays unread, so this connection can't carry another.
            headers.append((b"connection", b"close"))
        reason = HTTPStatus(status).phrase.encode("ascii")
        events: list[h11.Event] = [h11.Response(status_code=status, headers=headers, reason=reason)]
        if self.request.method != b"HEAD":  # h11 refuses a body on a reply to HEAD
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await self.send(*events)


def raw_response(status: int, body: bytes, content_type: bytes) -> bytes:
    """A complete ``connection: close`` response for a request h11 never parsed."""
    reason = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type.decode('ascii')}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
