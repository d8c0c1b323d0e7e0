"""Sans-IO framing of HTTP/1.1 response bodies (RFC 9112 §6.3 and §7.1).

h11 stays the authority for the response head: :func:`find_head_end` only says
where a head ends (h11's own rule), the caller hands exactly those bytes to
h11, and :func:`body_parser_for` turns the parsed status and headers into a
parser that frames the body: chunked, Content-Length or until close. This
replaces h11's per-event body path, the dominant per-piece cost with many
streams (PERF_NOTES.md).

tests/test_body.py proves the parsers equal to h11 0.16 for any input split any
way, except these named differences:

1. BWS before ``;`` in a chunk-size line (``1 ;ext``) is accepted: RFC 9112
   §7.1.1 writes ``chunk-ext = *( BWS ";" BWS ...)`` and RFC 9110 §5.6.3 says a
   recipient MUST parse and remove such whitespace; h11 rejects it.
2. Size bounds do not depend on how the bytes are split. h11 checks its 16 KiB
   ``max_incomplete_event_size`` only while an event is incomplete, so one long
   chunk-size line or trailer section passes when it arrives in one read and
   fails when it trickles in. We reject exactly what h11 rejects under its
   worst split (one byte per read), however the bytes arrive.
3. The head bound is :data:`MAX_HEAD_SIZE` on the complete head (h11 would
   apply 16 KiB, and only to an incomplete head).

A parser that raised :class:`RemoteProtocolError` must not be fed again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import h11

from ._exceptions import RemoteProtocolError

__all__ = [
    "MAX_CHUNK_LINE_SIZE",
    "MAX_HEAD_SIZE",
    "MAX_TRAILER_SIZE",
    "BodyParser",
    "ChunkedParser",
    "ContentLengthParser",
    "UntilCloseParser",
    "body_parser_for",
    "find_head_end",
]

# Real heads are a few KiB; 64 KiB leaves room for big cookies (httpcore allows
# 100 KiB) while bounding what a peer that never ends its head can make us hold.
MAX_HEAD_SIZE = 64 * 1024

# h11's default max_incomplete_event_size (16 KiB) of buffered, unfinished line
# plus the final LF: the longest chunk-size line (size, extensions, CRLF) that
# h11 0.16 accepts however it is split.
MAX_CHUNK_LINE_SIZE = 16 * 1024 + 1

# Same reasoning for the trailer section after the last chunk, counted up to
# and including the LF of the blank line that ends it.
MAX_TRAILER_SIZE = 16 * 1024 + 1

_Bytes = bytes | bytearray | memoryview

# h11 0.16 (_receivebuffer.py): a head or trailer section ends at "\n\r?\n".
_BLANK_LINE = re.compile(rb"\n\r?\n")
# h11 0.16 (_abnf.chunk_header) is  hex{1,20} (";" .*)? OWS CRLF  where "." is
# anything but LF: no "0x", sign, "_" or leading whitespace. We also allow
# BWS before ";" (difference 1 above).
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:[ \t]*;[^\n]*)?[ \t]*\r\n")
# h11 0.16 (_abnf.header_field): token ":" OWS field-value OWS.
_FIELD = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*"
)
_FOLD = re.compile(rb"[ \t]+")


def find_head_end(buf: bytes | bytearray, start: int = 0) -> int | None:
    """Return the index just past the blank line that ends the head in *buf*.

    Returns None while the head is incomplete. The rule is h11 0.16's: the
    first ``\\n\\r?\\n``. Feed h11 exactly ``buf[:end]``; after a 1xx response
    the next head starts at ``buf[end:]``. *start* lets repeated calls on a
    growing buffer stay linear: pass ``max(0, len_at_last_call - 2)``.

    Raises RemoteProtocolError when the head cannot end within MAX_HEAD_SIZE
    bytes, or when its first byte is below 0x21: h11 rejects such a head too
    (a leading empty line is "no response line received", any other such byte
    cannot start ``HTTP/``; h11 checks the first byte early, as we do).
    """
    if not buf:
        return None
    if buf[0] < 0x21:
        raise RemoteProtocolError(f"illegal status line start: {bytes(buf[:20])!r}")
    match = _BLANK_LINE.search(buf, start)
    if match is None:
        if len(buf) >= MAX_HEAD_SIZE:
            raise RemoteProtocolError(f"response head longer than {MAX_HEAD_SIZE} bytes")
        return None
    end = match.end()
    if end > MAX_HEAD_SIZE:
        raise RemoteProtocolError(f"response head longer than {MAX_HEAD_SIZE} bytes")
    return end


class BodyParser(Protocol):
    """Frames one response body; ``feed`` returns the payload the bytes complete."""

    @property
    def done(self) -> bool:
        """The message is complete; ``unused`` holds what came after it."""

    @property
    def unused(self) -> bytes:
        """Bytes received after the end of the message (never dropped)."""

    @property
    def error(self) -> RemoteProtocolError | None:
        """A framing error found after body bytes of the same feed.

        Those bytes were returned first, so nothing is lost; the caller raises
        this before waiting for more (the next ``feed`` raises it too).
        """

    def feed(self, data: _Bytes) -> bytes:
        """Consume *data*; return all body payload bytes it completes."""

    def feed_eof(self) -> None:
        """The peer closed; raise RemoteProtocolError if the body is cut short."""


class ContentLengthParser:
    """A body of exactly *length* bytes (length 0: no body at all)."""

    __slots__ = ("_length", "_remaining", "done", "unused")
    error: RemoteProtocolError | None = None  # Its feed never fails.

    def __init__(self, length: int) -> None:
        self._length = length
        self._remaining = length
        self.done = length == 0
        self.unused = b""

    def feed(self, data: _Bytes) -> bytes:
        remaining = self._remaining
        n = len(data)
        if n < remaining:
            self._remaining = remaining - n
            return data if type(data) is bytes else bytes(data)
        if self.done:
            self.unused += data
            return b""
        self._remaining = 0
        self.done = True
        if n > remaining:
            self.unused = bytes(data[remaining:])
            return bytes(data[:remaining])
        return data if type(data) is bytes else bytes(data)

    def feed_eof(self) -> None:
        if not self.done:
            raise RemoteProtocolError(
                f"peer closed connection after {self._length - self._remaining}"
                f" of {self._length} body bytes"
            )


class UntilCloseParser:
    """A body delimited by the peer closing the connection (RFC 9112 §6.3 rule 8)."""

    __slots__ = ("done", "unused")
    error: RemoteProtocolError | None = None  # Its feed never fails.

    def __init__(self) -> None:
        self.done = False
        self.unused = b""

    def feed(self, data: _Bytes) -> bytes:
        if self.done:  # data after EOF can't be body; keep it like the others do
            self.unused += data
            return b""
        return data if type(data) is bytes else bytes(data)

    def feed_eof(self) -> None:
        self.done = True


def body_parser_for(
    status_code: int, headers: Sequence[tuple[bytes, bytes]], request_method: bytes
) -> BodyParser:
    """Choose the body framing of a response (RFC 9112 §6.3), as h11 0.16 does.

    *headers* are ``h11.Response.headers``: names lower-cased, and already
    validated by h11 (one Transfer-Encoding, only ``chunked``; Content-Length
    digits, duplicates equal). No body for a HEAD request, 1xx, 204 and 304.
    A 2xx answer to CONNECT has no body either: the tunnel starts right after
    the head, so every byte fed lands in ``unused`` (h11's ``trailing_data``).
    Transfer-Encoding beats Content-Length (RFC 9112 §6.3 rule 3).
    """
    if (
        status_code < 200
        or status_code == 204
        or status_code == 304
        or request_method == b"HEAD"
        or (request_method == b"CONNECT" and status_code < 300)
    ):
        return ContentLengthParser(0)
    length = None
    for name, value in headers:
        if name == b"transfer-encoding":
            if value.lower() != b"chunked":  # h11 refuses these in the head already
                raise RemoteProtocolError(f"unsupported Transfer-Encoding: {value!r}")
            return ChunkedParser()
        if name == b"content-length":
            length = value
    if length is None:
        return UntilCloseParser()
    if not length.isdigit():  # h11 refuses these in the head already
        raise RemoteProtocolError(f"bad Content-Length: {length!r}")
    return ContentLengthParser(int(length))


# ChunkedParser states.
_SIZE, _DATA, _CR, _LF, _TRAILER, _DONE = range(6)


class ChunkedParser:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1).

    Chunk extensions are ignored; trailer fields are validated as h11 does
    (field syntax, obs-fold, Content-Length and Transfer-Encoding rules) and
    then discarded.
    """

    __slots__ = (
        "_chunk",
        "_pending",
        "_remaining",
        "_scan",
        "_state",
        "done",
        "error",
        "unused",
    )

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0  # bytes still to come in the current chunk
        self._chunk = 0  # size of the current chunk, for error messages
        self._pending = bytearray()  # an unfinished chunk-size line or trailer section
        self._scan = 0  # where to resume searching in _pending
        self.done = False
        self.unused = b""
        self.error: RemoteProtocolError | None = None

    def feed(self, data: _Bytes) -> bytes:
        if self.error is not None:
            raise self.error
        pieces: list[bytes | bytearray] = []
        try:
            self._parse(data, pieces)
        except RemoteProtocolError as exc:
            if not pieces:
                raise
            self.error = exc  # Hand out the good bytes first; raise on the next call.
        if not pieces:
            return b""
        if len(pieces) == 1:
            out = pieces[0]
            return out if type(out) is bytes else bytes(out)
        return b"".join(pieces)

    def _parse(self, data: _Bytes, pieces: list[bytes | bytearray]) -> None:
        pending = self._pending
        scan = 0
        if pending:
            pending += data
            buf: bytes | bytearray = pending
            scan = self._scan
        elif type(data) is bytes:
            buf = data
        elif self._state == _DONE:
            self.unused += data
            return
        else:
            buf = bytes(data)
        n = len(buf)
        pos = 0
        state = self._state
        while pos < n:
            if state == _SIZE:
                i = buf.find(b"\r\n", pos + scan)
                scan = 0
                if i < 0:
                    if n - pos >= MAX_CHUNK_LINE_SIZE:
                        raise RemoteProtocolError(
                            f"chunk-size line longer than {MAX_CHUNK_LINE_SIZE} bytes"
                        )
                    self._scan = max(0, n - pos - 1)
                    break
                if i + 2 - pos > MAX_CHUNK_LINE_SIZE:
                    raise RemoteProtocolError(
                        f"chunk-size line longer than {MAX_CHUNK_LINE_SIZE} bytes"
                    )
                m = _CHUNK_LINE.fullmatch(buf, pos, i + 2)
                if m is None:
                    raise RemoteProtocolError(
                        f"illegal chunk-size line: {bytes(buf[pos : i + 2])!r}"
                    )
                size = int(m[1], 16)
                pos = i + 2
                if size:
                    end = pos + size
                    if end + 2 <= n and buf[end] == 13 and buf[end + 1] == 10:
                        pieces.append(buf[pos:end])  # fast path: whole chunk is here
                        pos = end + 2
                        continue
                    self._remaining = self._chunk = size
                    state = _DATA
                else:
                    state = _TRAILER
            elif state == _DATA:
                end = pos + self._remaining
                if end > n:
                    pieces.append(buf[pos:])
                    self._remaining = end - n
                    pos = n
                    break
                pieces.append(buf[pos:end])
                self._remaining = 0
                pos = end
                state = _CR
            elif state == _CR:
                if buf[pos] != 13:
                    raise RemoteProtocolError(
                        f"chunk data not followed by CRLF: {bytes(buf[pos : pos + 2])!r}"
                    )
                pos += 1
                state = _LF
            elif state == _LF:
                if buf[pos] != 10:
                    raise RemoteProtocolError(f"chunk data not followed by CRLF: {buf[pos]:#04x}")
                pos += 1
                state = _SIZE
            elif state == _TRAILER:
                first = buf[pos]
                if first == 10:
                    end = pos + 1
                elif first == 13 and buf[pos + 1 : pos + 2] == b"\n":
                    end = pos + 2
                else:
                    match = _BLANK_LINE.search(buf, pos + scan)
                    scan = 0
                    if match is None:
                        if n - pos >= MAX_TRAILER_SIZE:
                            raise RemoteProtocolError(
                                f"trailer section longer than {MAX_TRAILER_SIZE} bytes"
                            )
                        self._scan = max(0, n - pos - 2)
                        break
                    end = match.end()
                    if end - pos > MAX_TRAILER_SIZE:
                        raise RemoteProtocolError(
                            f"trailer section longer than {MAX_TRAILER_SIZE} bytes"
                        )
                    _check_trailers(bytes(buf[pos:end]))
                state = _DONE
                self.done = True
                self.unused = bytes(buf[end:])
                pos = n
            else:  # _DONE: only reached when _pending was empty
                self.unused += buf[pos:]
                pos = n
        self._state = state
        if pos < n:
            if buf is pending:
                del pending[:pos]
            else:
                pending += buf[pos:]
        elif pending:
            pending.clear()

    def feed_eof(self) -> None:
        if self.error is not None:
            raise self.error
        state = self._state
        if state == _DONE:
            return
        if state == _DATA:
            what = f"after {self._chunk - self._remaining} of {self._chunk} bytes of a chunk"
        elif state in (_CR, _LF):
            what = "before the CRLF that ends a chunk"
        elif state == _TRAILER:
            what = "in the trailer section after the last chunk"
        elif self._pending:
            what = "in the middle of a chunk-size line"
        else:
            what = "before the last (zero-size) chunk"
        raise RemoteProtocolError(f"peer closed connection {what} of a chunked body")


def _check_trailers(section: bytes) -> None:
    """Reject a trailer section exactly when h11 0.16 would (it parses them as headers)."""
    lines = [line[:-1] if line.endswith(b"\r") else line for line in section.split(b"\n")]
    del lines[-2:]  # the blank line that ends the section
    groups: list[list[bytes]] = []
    for line in lines:
        fold = _FOLD.match(line)
        if fold is None:
            groups.append([line])
        elif groups:  # obs-fold (RFC 9112 §5.2): joined with one space, as h11 does
            groups[-1].append(line[fold.end() :])
        else:
            raise RemoteProtocolError("continuation line at start of trailer section")
    fields: list[tuple[bytes, bytes]] = []
    for group in groups:
        line = b" ".join(group)
        m = _FIELD.fullmatch(line)
        if m is None:
            raise RemoteProtocolError(f"illegal trailer line: {line!r}")
        fields.append((m[1], m[2]))
    try:  # h11's own Content-Length / Transfer-Encoding checks, as on its EndOfMessage
        h11.EndOfMessage(headers=fields)
    except h11.LocalProtocolError as exc:
        raise RemoteProtocolError(f"illegal trailer section: {exc}") from None
