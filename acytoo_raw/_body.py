"""Sans-IO framing of HTTP/1.1 message bodies (RFC 9112 §6.3 and §7.1).

h11 stays the authority for the response head: :func:`find_head_end` only says
where a head ends (h11's own rule), the caller hands exactly those bytes to
h11, and :func:`body_parser_for` turns the parsed status and headers into a
parser that frames the body: chunked, Content-Length or until close. This
replaces h11's per-event body path, the dominant per-piece cost with many
streams (PERF_NOTES.md). The loopback server frames request bodies with the
same :class:`ChunkedParser` and :class:`ContentLengthParser`.

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
4. A chunk size is at most :data:`MAX_CHUNK_SIZE_DIGITS` (16) hex digits once
   its leading zeros are dropped: what a 64-bit count can hold (curl refuses
   more than 16 digits, llhttp refuses on overflow). h11 counts at most 20
   digits, zeros included, and would otherwise wait for up to 2**80 bytes; so
   ``ffffffffffffffffff`` (18 digits) is refused at the size line, while
   ``0000000000000000000001`` (22 digits) is accepted, as are any leading
   zeros that fit the line bound. (curl counts zeros too: it refuses the
   latter; a size line is not worth refusing for harmless zeros.)

Every call is linear in the bytes it is given: lines and trailer sections are
checked with single-pass scans and regexes that cannot backtrack
quadratically (h11's chunk-size and header-field regexes spend 0.2-0.8 s on
one 16 KiB line of blanks followed by a bad byte), and an unfinished line is
never rescanned from its start when more of it arrives. Error messages quote at most
:data:`MAX_EXCERPT` bytes of what the peer sent.

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
    "MAX_CHUNK_SIZE_DIGITS",
    "MAX_EXCERPT",
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

# 16 hex digits hold any 64-bit size (curl's CHUNK_MAXNUM_LEN); more is an
# attack or a bug, refused at the size line instead of waiting for the bytes.
MAX_CHUNK_SIZE_DIGITS = 16

# How much of a bad line an error message quotes: enough to recognise it,
# never the whole 16 KiB line a hostile peer chose.
MAX_EXCERPT = 40

_Bytes = bytes | bytearray | memoryview

# h11 0.16 (_receivebuffer.py): a head or trailer section ends at "\n\r?\n".
_BLANK_LINE = re.compile(rb"\n\r?\n")
# h11 0.16 (_abnf.chunk_header) is  hex{1,20} (";" .*)? OWS CRLF  where "." is
# anything but LF: no "0x", sign, "_" or leading whitespace. We also allow BWS
# before ";" (difference 1) and count digits after leading zeros (difference 4).
# The rest of the line is checked by hand: h11's "(;.*)?OWS" backtracks
# quadratically when a long run of spaces is followed by something illegal.
_CHUNK_SIZE = re.compile(rb"0*([0-9A-Fa-f]{1,%d})" % MAX_CHUNK_SIZE_DIGITS)
_SIZE_DIGITS = re.compile(rb"0*([0-9A-Fa-f]*)")  # for the error message only
_OWS = re.compile(rb"[ \t]*")
# h11 0.16 (_abnf.header_field): token ":" OWS field-value OWS, where
# field-value = (vchar+ ([ \t]+ vchar+)*)? and vchar = [^\x00\s]. Equivalent,
# without nested quantifiers: the value stripped of [ \t] holds none of these.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_NOT_IN_VALUE = re.compile(rb"[\x00\n\v\f\r]")
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
    """Frames one message body; ``feed`` returns the payload the bytes complete."""

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


class _Unused:
    """``unused``: the bytes after the message, kept in amortised O(1) per feed.

    Bytes fed after the end are appended to a bytearray (a bytes ``+=`` would
    copy everything kept so far on every feed); ``unused`` turns it into bytes
    once, when it is read.
    """

    __slots__ = ("_unused",)

    def __init__(self) -> None:
        self._unused: bytes | bytearray = b""

    @property
    def unused(self) -> bytes:
        unused = self._unused
        if type(unused) is not bytes:
            unused = self._unused = bytes(unused)
        return unused

    def _keep(self, data: _Bytes) -> None:
        unused = self._unused
        if type(unused) is bytes:
            unused = self._unused = bytearray(unused)
        unused += data


class ContentLengthParser(_Unused):
    """A body of exactly *length* bytes (length 0: no body at all).

    Frames a response body for the client, and a request body for the
    loopback server alike. Each ``feed`` does work linear in its input, and
    returns *data* itself when it is all body (no copy for ``bytes``).
    """

    __slots__ = ("_length", "_remaining", "done")
    error: RemoteProtocolError | None = None  # Its feed never fails.

    def __init__(self, length: int) -> None:
        super().__init__()
        self._length = length
        self._remaining = length
        self.done = length == 0

    def feed(self, data: _Bytes) -> bytes:
        remaining = self._remaining
        n = len(data)
        if n < remaining:
            self._remaining = remaining - n
            return data if type(data) is bytes else bytes(data)
        if self.done:
            self._keep(data)
            return b""
        self._remaining = 0
        self.done = True
        if n > remaining:
            self._unused = bytes(data[remaining:])
            return bytes(data[:remaining])
        return data if type(data) is bytes else bytes(data)

    def feed_eof(self) -> None:
        if not self.done:
            raise RemoteProtocolError(
                f"peer closed connection after {self._length - self._remaining}"
                f" of {self._length} body bytes"
            )


class UntilCloseParser(_Unused):
    """A body delimited by the peer closing the connection (RFC 9112 §6.3 rule 8)."""

    __slots__ = ("done",)
    error: RemoteProtocolError | None = None  # Its feed never fails.

    def __init__(self) -> None:
        super().__init__()
        self.done = False

    def feed(self, data: _Bytes) -> bytes:
        if self.done:  # data after EOF can't be body; keep it like the others do
            self._keep(data)
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
                raise RemoteProtocolError(
                    f"unsupported Transfer-Encoding: {_excerpt(value, 0, len(value))}"
                )
            return ChunkedParser()
        if name == b"content-length":
            length = value
    if length is None:
        return UntilCloseParser()
    if not length.isdigit():  # h11 refuses these in the head already
        raise RemoteProtocolError(f"bad Content-Length: {_excerpt(length, 0, len(length))}")
    return ContentLengthParser(int(length))


# ChunkedParser states.
_SIZE, _DATA, _CR, _LF, _TRAILER, _DONE = range(6)


class ChunkedParser(_Unused):
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1).

    Frames a response body for the client, and a request body for the
    loopback server alike. Chunk extensions are ignored; trailer fields are
    validated as h11 does (field syntax, obs-fold, Content-Length and
    Transfer-Encoding rules) and then discarded.

    Costs: each ``feed`` does work linear in its input, however the bytes are
    split (an unfinished size line or trailer section is kept and searched
    only from where the last search stopped). The payload of all chunks a feed
    completes comes back as one ``bytes``: many tiny chunks (a body sent as
    1-byte chunks) are gathered into one growing buffer as they are parsed,
    so a feed holds O(1) objects beyond its input and its output, never one
    object per chunk.
    """

    __slots__ = ("_chunk", "_pending", "_remaining", "_scan", "_state", "done", "error")

    def __init__(self) -> None:
        super().__init__()
        self._state = _SIZE
        self._remaining = 0  # bytes still to come in the current chunk
        self._chunk = 0  # size of the current chunk, for error messages
        self._pending = bytearray()  # an unfinished chunk-size line or trailer section
        self._scan = 0  # where to resume searching in _pending
        self.done = False
        self.error: RemoteProtocolError | None = None

    def feed(self, data: _Bytes) -> bytes:
        pending = self._pending
        if pending and type(data) is bytes and 10 not in data and self.error is None:
            # An unfinished size line or trailer section grows, and both can
            # only end at a LF: a line trickling in a byte at a time costs
            # O(1) per byte, not a pass through the parser. (Both bounds are
            # the same; the full path below names the one exceeded.)
            n = len(pending) + len(data)
            if n < MAX_CHUNK_LINE_SIZE and n < MAX_TRAILER_SIZE:
                pending += data
                # Resume at the last two bytes: a CR, or a LF (CR) may start the end.
                self._scan = n - 2 if n > 1 else 0
                return b""
        if self.error is not None:
            raise self.error
        if self.done:
            self._keep(data)
            return b""
        # The payload: the first piece as is (one chunk per read, the common
        # case, costs no extra copy); from the second piece on, one bytearray.
        first: bytes | bytearray = b""
        more: bytearray | None = None
        scan = 0
        if pending:
            pending += data
            buf: bytes | bytearray = pending
            scan = self._scan
        else:
            buf = data if type(data) is bytes else bytes(data)
        n = len(buf)
        pos = 0
        state = self._state
        try:
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
                    m = _CHUNK_SIZE.match(buf, pos, i)
                    if m is None or (m.end() < i and not _chunk_ext_ok(buf, m.end(), i)):
                        raise _chunk_line_error(buf, pos, i + 2)
                    size = int(m[1], 16)
                    pos = i + 2
                    if not size:
                        state = _TRAILER
                        continue
                    end = pos + size
                    if end + 2 <= n and buf[end] == 13 and buf[end + 1] == 10:
                        piece = buf[pos:end]  # fast path: the whole chunk is here
                        pos = end + 2
                    else:
                        self._remaining = self._chunk = size
                        state = _DATA
                        continue
                elif state == _DATA:
                    end = pos + self._remaining
                    if end > n:
                        piece = buf[pos:]
                        self._remaining = end - n
                        pos = n
                    else:
                        piece = buf[pos:end]
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
                    continue
                elif state == _LF:
                    if buf[pos] != 10:
                        raise RemoteProtocolError(
                            f"chunk data not followed by CRLF: {buf[pos]:#04x}"
                        )
                    pos += 1
                    state = _SIZE
                    continue
                else:  # _TRAILER
                    first_byte = buf[pos]
                    if first_byte == 10:
                        end = pos + 1
                    elif first_byte == 13 and buf[pos + 1 : pos + 2] == b"\n":
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
                    self._unused = bytes(buf[end:])
                    pos = n
                    break
                # A payload piece was cut from buf.
                if more is not None:
                    more += piece
                elif first:
                    more = bytearray(first)
                    more += piece
                else:
                    first = piece
        except RemoteProtocolError as exc:
            if not first:
                raise
            self.error = exc  # Hand out the good bytes first; raise on the next call.
            return bytes(more) if more is not None else bytes(first)
        self._state = state
        if pos < n:
            if buf is pending:
                del pending[:pos]
            else:
                pending += buf[pos:]
        elif pending:
            pending.clear()
        if more is not None:
            return bytes(more)
        return first if type(first) is bytes else bytes(first)

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


def _chunk_ext_ok(buf: bytes | bytearray, start: int, end: int) -> bool:
    """What follows the size digits in ``buf[start:end]`` (the line without CRLF).

    Valid: OWS, then nothing, or ``;`` and anything but LF (h11's ``;.*``,
    with our BWS before ``;``). One scan: no regex with two adjacent
    whitespace runs to backtrack between.
    """
    ows = _OWS.match(buf, start, end)
    j = ows.end() if ows is not None else start
    return j == end or (buf[j] == 0x3B and buf.find(b"\n", j, end) < 0)


def _chunk_line_error(buf: bytes | bytearray, start: int, end: int) -> RemoteProtocolError:
    """The error for a chunk-size line ``buf[start:end]`` that failed the checks."""
    digits = _SIZE_DIGITS.match(buf, start, end)
    line = _excerpt(buf, start, end)
    if digits is not None and len(digits[1]) > MAX_CHUNK_SIZE_DIGITS:
        return RemoteProtocolError(
            f"chunk size longer than {MAX_CHUNK_SIZE_DIGITS} hex digits: {line}"
        )
    return RemoteProtocolError(f"illegal chunk-size line: {line}")


def _excerpt(data: _Bytes, start: int, end: int) -> str:
    """The repr of at most MAX_EXCERPT bytes of ``data[start:end]``, marked when cut."""
    if end - start <= MAX_EXCERPT:
        return repr(bytes(data[start:end]))
    return f"{bytes(data[start : start + MAX_EXCERPT])!r}... ({end - start} bytes)"


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
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        if not colon or _TOKEN.fullmatch(name) is None or _NOT_IN_VALUE.search(value):
            raise RemoteProtocolError(f"illegal trailer line: {_excerpt(line, 0, len(line))}")
        fields.append((name, value))
    try:  # h11's own Content-Length / Transfer-Encoding checks, as on its EndOfMessage
        h11.EndOfMessage(headers=fields)
    except h11.LocalProtocolError as exc:
        message = str(exc)
        raise RemoteProtocolError(f"illegal trailer section: {message[:100]}") from None
