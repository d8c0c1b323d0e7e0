"""Sans-IO server-sent-events decoder, following the WHATWG HTML parsing rules.

No sockets here: :class:`SSEDecoder` turns the body bytes of a
``text/event-stream`` response, split anywhere, into :class:`ServerSentEvent`
objects. The I/O driver does::

    decoder = SSEDecoder()
    async for chunk in body:                 # raw bytes as they arrive
        for event in decoder.feed(chunk):
            yield event
    decoder.feed_eof()                       # [] : an unterminated last event is discarded

The rules (HTML Living Standard, "Server-sent events", "Parsing an event
stream" and "Interpreting an event stream"):

- the body is UTF-8; a character split across reads is decoded whole and
  invalid bytes become U+FFFD; one U+FEFF at the very start of the stream is
  dropped (only there);
- lines end with CRLF, LF or a lone CR, and nothing else (U+2028, U+0085 and
  friends are ordinary characters); a CR ending one read and an LF starting the
  next are one line end;
- a line starting with ``:`` is a comment; otherwise the field name runs up to
  the first ``:`` and one leading space is dropped from the value; a line with
  no ``:`` is a field with an empty value;
- ``data`` appends its value and a LF to the data buffer; ``event`` sets the
  event type; ``id`` sets the last event ID unless the value contains NUL (it
  persists for later events); ``retry`` counts only when it is all ASCII
  digits; other field names are ignored;
- a blank line dispatches the event, unless the data buffer is empty (then
  only the event type is reset); the trailing LF of the data is dropped and the
  type defaults to ``"message"``;
- at the end of the stream an unterminated event is discarded.

Beyond the spec, what a server can make us buffer is bounded by
:data:`MAX_EVENT_SIZE`, and a ``retry`` above :data:`MAX_RETRY` is ignored.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Final

from ._exceptions import RemoteProtocolError

__all__ = ["MAX_EVENT_SIZE", "MAX_RETRY", "SSEDecoder", "ServerSentEvent"]

# Bounds what a hostile server can make us buffer: an event's data plus the line being read
# (in decoded characters). Chat chunks are ~100-1000 characters; 8 Mi leaves room for big
# tool-call arguments or base64 images sent as one event.
MAX_EVENT_SIZE: Final = 8 * 1024 * 1024

# A larger ``retry`` is ignored: no client waits 2**64 ms, and it spares int() megabytes of
# digits (which Python >= 3.11 refuses past 4300 digits anyway).
MAX_RETRY: Final = 2**64 - 1
_MAX_RETRY_DIGITS: Final = len(str(MAX_RETRY))

_utf8_decode = codecs.utf_8_decode  # C function; final=False holds a split character back


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched server-sent event.

    ``event`` is the event type (``"message"`` when the stream named none);
    ``data`` the ``data`` lines joined with ``"\\n"``; ``id`` the last event ID
    the stream has set so far (``None`` until it sets one; it may be ``""``),
    which is what a reconnecting client sends as ``Last-Event-ID``; ``retry``
    the last valid reconnection time (milliseconds) the stream has set so far,
    or ``None``.
    """

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str):
            raise TypeError(f"event must be a str, not {type(self.event).__name__}")
        if not isinstance(self.data, str):
            raise TypeError(f"data must be a str, not {type(self.data).__name__}")
        if self.id is not None:
            if not isinstance(self.id, str):
                raise TypeError(f"id must be a str or None, not {type(self.id).__name__}")
            if "\x00" in self.id:
                raise ValueError("id must not contain NUL (the stream ignores such an id)")
        if self.retry is not None:
            if not isinstance(self.retry, int) or isinstance(self.retry, bool):
                raise TypeError(f"retry must be an int or None, not {type(self.retry).__name__}")
            if not 0 <= self.retry <= MAX_RETRY:
                raise ValueError(f"retry must be between 0 and {MAX_RETRY}, not {self.retry}")


def _parse_retry(value: str) -> int | None:
    # Only ASCII digits count: str.isdigit() alone also accepts "²" and "٣".
    if not (value.isascii() and value.isdigit()):
        return None
    significant = value.lstrip("0") or "0"
    if len(significant) > _MAX_RETRY_DIGITS:
        return None
    number = int(significant)
    return number if number <= MAX_RETRY else None


class SSEDecoder:
    """Decode a ``text/event-stream`` body, fed as raw bytes split anywhere.

    One decoder reads one stream. Work per :meth:`feed` is linear in the bytes
    fed: a long line arriving a byte at a time is kept as a list of pieces and
    joined once, when it ends.

    Limit: the data buffered for an event plus the line being read (any line,
    comments too, without its line end) may not exceed :data:`MAX_EVENT_SIZE`
    decoded characters; beyond it the stream fails, wherever the reads split
    it, with :class:`~acytoo_raw.RemoteProtocolError`, the only error
    :meth:`feed` and :meth:`feed_eof` raise. Events completed earlier in the
    same :meth:`feed` call are returned first and the error comes from the next
    call; after it every :meth:`feed` raises again until :meth:`feed_eof`.
    """

    __slots__ = (
        "_at_start",
        "_data",
        "_data_size",
        "_error",
        "_error_raised",
        "_event",
        "_held",
        "_last_id",
        "_partial",
        "_partial_size",
        "_pending_cr",
        "_retry",
    )

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._held = b""  # the start of a UTF-8 character split by the read boundary
        self._at_start = True  # no character decoded yet: a BOM may still come
        self._pending_cr = False  # the last character was CR: a LF right after it is no line
        self._partial: list[str] = []  # pieces of the unfinished line
        self._partial_size = 0
        self._data: list[str] = []  # data lines of the pending event, without their LF
        self._data_size = 0  # len of the spec's data buffer ("\n" after each line)
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._error: str | None = None
        self._error_raised = False

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Take the next bytes of the body; return the events they complete, in order.

        ``b""`` is allowed and changes nothing (it does not mean end of stream).

        Raises:
            RemoteProtocolError: the stream exceeded :data:`MAX_EVENT_SIZE`.
        """
        if self._error is not None:
            self._error_raised = True
            raise RemoteProtocolError(self._error)
        if self._held:
            data = self._held + data
        text, used = _utf8_decode(data, "replace", False)
        self._held = data[used:] if used < len(data) else b""
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._pending_cr:
            self._pending_cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            self._pending_cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        tail = lines.pop()  # after the last line end: the start of an unfinished line
        # Below the limit even if all of this text were one line: no per-line checks needed.
        near_limit = self._partial_size + self._data_size + len(text) > MAX_EVENT_SIZE
        if lines and self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
            self._partial = []
            self._partial_size = 0
        events = self._lines(lines, near_limit) if lines else []
        if tail and self._error is None:
            self._partial.append(tail)
            self._partial_size += len(tail)
            if self._partial_size + self._data_size > MAX_EVENT_SIZE:
                self._fail()
        if self._error is not None and not events:
            self._error_raised = True
            raise RemoteProtocolError(self._error)
        return events

    def feed_eof(self) -> list[ServerSentEvent]:
        """End the stream: the unterminated event, if any, is discarded.

        Always returns ``[]`` (the spec dispatches nothing at the end of the
        stream) and leaves the decoder as new, so it can read another stream.

        Raises:
            RemoteProtocolError: the limit was exceeded in a :meth:`feed` call
                that returned events instead of raising.
        """
        error = None if self._error_raised else self._error
        self._reset()
        if error is not None:
            raise RemoteProtocolError(error)
        return []

    def _fail(self) -> None:
        # Free the buffers now; the message never quotes the data.
        self._partial = []
        self._data = []
        self._partial_size = self._data_size = 0
        self._error = f"server-sent event line or data exceeds {MAX_EVENT_SIZE} characters"

    def _lines(self, lines: list[str], near_limit: bool) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(
                        ServerSentEvent(
                            self._event or "message",
                            "\n".join(self._data),
                            self._last_id,
                            self._retry,
                        )
                    )
                    self._data = []
                    self._data_size = 0
                self._event = ""
                continue
            # The same measure as for an unfinished line at the end of a feed, so where the
            # reads split the stream never changes whether or where it fails. A data line
            # adds less than its length to the buffer, so the data needs no check of its own.
            if near_limit and len(line) + self._data_size > MAX_EVENT_SIZE:
                self._fail()
                break
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            if value and value[0] == " ":
                value = value[1:]
            if name == "data":
                self._data.append(value)
                self._data_size += len(value) + 1
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\x00" not in value:
                    self._last_id = value
            elif name == "retry":
                retry = _parse_retry(value)
                if retry is not None:
                    self._retry = retry
        return events
