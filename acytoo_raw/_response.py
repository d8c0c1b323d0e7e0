"""A streamed response: its head, its body as bytes, text or events, and its timings."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TypeVar

import anyio
import anyio.lowlevel

from ._decoding import TextDecoder, charset_from_content_type
from ._exceptions import AcytooError, HTTPStatusError, ReadTimeout
from ._http11 import ResponseReader
from ._network import translate_errors
from ._sse import ServerSentEvent, SSEDecoder

__all__ = ["ERROR_BODY_LIMIT", "Response", "Timings"]

# The part of an error body kept on HTTPStatusError: enough for any JSON error
# message, bounded so a hostile server can't make us buffer without limit.
ERROR_BODY_LIMIT = 64 * 1024

# Events handed out from one read before the loop gets a turn: a 64 KiB read of
# minimal events holds ~7,000, whose handling must not hold the loop for long.
_EVENTS_BETWEEN_CHECKPOINTS = 256

_Piece = TypeVar("_Piece", bytes, str)
_T = TypeVar("_T")

_PHASES = ("queued", "connected", "tunnel", "tls", "sent", "head", "first_piece", "end")


def _unchanged(data: bytes) -> bytes:
    return data


class Timings:
    """When each phase of one request ended, curl ``-w`` style.

    ``start`` is ``time.perf_counter()`` when the call began; every other time
    is in seconds since ``start``, ``None`` where the phase did not happen:
    ``queued`` (a connection slot obtained), ``connected`` (TCP up),
    ``tunnel`` (proxy CONNECT or SOCKS5 answered), ``tls`` (origin TLS done),
    ``sent`` (request written), ``head`` (response head parsed),
    ``first_piece`` (first piece handed to the caller), ``end`` (body
    complete). ``reused``: the request went on a kept-alive connection (then
    there is no ``connected``/``tls``). ``tls_resumed``: this request's TLS
    handshake resumed an earlier session. ``pieces``: the time each piece was
    handed to the caller, only with ``record_pieces=True``.
    """

    __slots__ = (
        "connected",
        "end",
        "first_piece",
        "head",
        "pieces",
        "queued",
        "reused",
        "sent",
        "start",
        "tls",
        "tls_resumed",
        "tunnel",
    )

    def __init__(self, start: float, *, record_pieces: bool = False) -> None:
        self.start = start
        self.queued: float | None = None
        self.connected: float | None = None
        self.tunnel: float | None = None
        self.tls: float | None = None
        self.sent: float | None = None
        self.head: float | None = None
        self.first_piece: float | None = None
        self.end: float | None = None
        self.reused = False
        self.tls_resumed = False
        self.pieces: list[float] | None = [] if record_pieces else None

    def mark(self, phase: str, at: float | None = None) -> None:
        """Record that ``phase`` ended now (or at ``perf_counter()`` time ``at``)."""
        setattr(self, phase, (time.perf_counter() if at is None else at) - self.start)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value * 1000:.3f}ms"
            for name in _PHASES
            if (value := getattr(self, name)) is not None
        )
        pieces = "" if self.pieces is None else f", pieces={len(self.pieces)}"
        return f"<Timings {shown}, reused={self.reused}, tls_resumed={self.tls_resumed}{pieces}>"


class Response:
    """The head of a streamed response and the means to read its body.

    Valid only inside the ``async with ... open_stream(...)`` block that made
    it; leaving the block closes any body iterator still open.

    Attributes:
        status_code: e.g. ``200``.
        reason: the reason phrase, e.g. ``"OK"`` (may be empty).
        http_version: ``"1.1"`` or ``"1.0"``.
        headers: ``(name, value)`` pairs in order, names lower-cased.
        url: the URL requested.
        timings: the request's :class:`Timings`.
    """

    __slots__ = (
        "_error_body_seconds",
        "_iterators",
        "_reader",
        "headers",
        "http_version",
        "reason",
        "status_code",
        "timings",
        "url",
    )

    def __init__(
        self,
        url: str,
        status_code: int,
        reason: str,
        http_version: str,
        headers: list[tuple[str, str]],
        reader: ResponseReader,
        timings: Timings,
        error_body_seconds: float = float("inf"),
    ) -> None:
        self.url = url
        self.status_code = status_code
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.timings = timings
        self._reader = reader
        self._error_body_seconds = error_body_seconds
        self._iterators: list[AsyncGenerator[object, None]] = []

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason}]>"

    def get_header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    @property
    def charset(self) -> str | None:
        """The ``charset`` of ``Content-Type``, or ``None`` when absent."""
        return charset_from_content_type(self.get_header("content-type"))

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        """Body pieces as they arrive: one ``bytes`` per socket read, never empty.

        Raises:
            RemoteProtocolError: malformed or truncated body.
            ReadTimeout, TotalTimeout: the server fell silent / time ran out.
        """
        return self._track(self._pieces(_unchanged, None))

    def aiter_text(self, errors: str = "replace") -> AsyncGenerator[str, None]:
        """Body pieces decoded as text; a character split between reads is decoded whole.

        The charset comes from ``Content-Type`` (UTF-8 when absent, unknown or
        not a plain text encoding). Empty strings are never yielded.
        ``errors`` is a codecs error handler; with ``"strict"``, undecodable
        bytes raise :class:`UnicodeDecodeError`. Errors as :meth:`aiter_bytes`.
        """
        decoder = TextDecoder(self.charset, errors)
        return self._track(self._pieces(decoder.decode, decoder.flush))

    def aiter_events(self) -> AsyncGenerator[ServerSentEvent, None]:
        """The body parsed as server-sent events (WHATWG rules), as they complete.

        Events with empty data are not dispatched, and an event cut off by the
        end of the body is dropped, as the standard says. Errors as
        :meth:`aiter_bytes`, plus :class:`RemoteProtocolError` for an event
        over the size limit.
        """
        return self._track(self._events())

    def _track(self, iterator: AsyncGenerator[_T, None]) -> AsyncGenerator[_T, None]:
        self._iterators.append(iterator)
        return iterator

    async def _pieces(
        self,
        convert: Callable[[bytes], _Piece],
        flush: Callable[[], _Piece] | None,
        record: bool = True,
    ) -> AsyncGenerator[_Piece, None]:
        # One loop for bytes and text, so text costs no extra generator hop per piece.
        receive = self._reader.receive_body
        timings = self.timings
        clock = time.perf_counter
        first = record and timings.first_piece is None
        every = record and timings.pieces is not None
        with translate_errors("read"):
            while True:
                data = await receive()
                if not data:
                    break
                piece = convert(data)
                if piece:
                    if first or every:
                        self._record(clock())
                        first = False
                    yield piece
        tail = flush() if flush is not None else None
        if tail and record:
            self._record(clock())
        timings.mark("end")  # After the decoder's tail: no piece is handed out later.
        if tail:
            yield tail

    async def _events(self) -> AsyncGenerator[ServerSentEvent, None]:
        # Timings here are of events handed out, not of the bytes that carry
        # them: a keep-alive comment is no first piece.
        decoder = SSEDecoder()
        clock = time.perf_counter
        async with aclosing(self._pieces(_unchanged, None, record=False)) as pieces:
            async for data in pieces:
                events = decoder.feed(data)
                for count, event in enumerate(events, 1):
                    self._record(clock())
                    yield event
                    if not count % _EVENTS_BETWEEN_CHECKPOINTS:
                        # One read of tiny events is thousands: let the loop run between.
                        await anyio.lowlevel.checkpoint()
        decoder.feed_eof()  # An event cut off by the end is dropped, as the standard says.

    def _record(self, now: float) -> None:
        timings = self.timings
        at = now - timings.start
        if timings.first_piece is None:
            timings.first_piece = at
        if timings.pieces is not None:
            timings.pieces.append(at)

    async def aread(self, limit: int | None = None) -> bytes:
        """The rest of the body, or its first ``limit`` bytes."""
        chunks: list[bytes] = []
        await self._read_into(chunks, limit)
        body = b"".join(chunks)
        return body if limit is None else body[:limit]

    async def _read_into(self, chunks: list[bytes], limit: int | None) -> None:
        size = 0
        async with aclosing(self.aiter_bytes()) as pieces:
            async for piece in pieces:
                chunks.append(piece)
                size += len(piece)
                if limit is not None and size >= limit:
                    return

    async def raise_for_status(self) -> None:
        """Raise :class:`HTTPStatusError` unless the status is 2xx.

        The error keeps the first 64 KiB of the body, read under one deadline
        (the read timeout, or what is left of the total if sooner), so a
        trickling error body can't hold the caller. When reading it fails (a
        timeout, a cut body), the error still comes as
        :class:`HTTPStatusError` with what was read, and the read failure as
        ``__cause__``.
        """
        if self.is_success:
            return
        chunks: list[bytes] = []
        failure: AcytooError | None = None
        seconds = self._error_body_seconds
        try:
            with anyio.move_on_after(seconds) as scope:
                await self._read_into(chunks, ERROR_BODY_LIMIT)
            if scope.cancelled_caught:
                failure = ReadTimeout(f"the error body did not end within {seconds} s")
        except AcytooError as exc:
            failure = exc
        message = f"server answered {self.status_code} {self.reason}".rstrip()
        error = HTTPStatusError(
            f"{message} for {self.url}",
            status_code=self.status_code,
            reason=self.reason,
            headers=self.headers,
            body=b"".join(chunks)[:ERROR_BODY_LIMIT],
        )
        raise error from failure

    def has_open_iterators(self) -> bool:
        """Some body iterator handed out is neither finished nor closed."""
        # A finished or closed async generator has no frame left.
        self._iterators = [it for it in self._iterators if getattr(it, "ag_frame", it) is not None]
        return bool(self._iterators)

    async def aclose_iterators(self) -> None:
        """Close body iterators the caller left open (an early ``break``)."""
        iterators, self._iterators = self._iterators, []
        for iterator in iterators:
            await iterator.aclose()
