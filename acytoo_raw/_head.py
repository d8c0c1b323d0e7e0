"""Sans-IO: a response head parsed as h11 would parse it, the common head without h11.

Building an h11 state machine and running its reader costs ~40 µs per
response, a sixth of a request on a kept-alive connection. The common head (a
``HTTP/1.1`` or ``HTTP/1.0`` status line with a final status, well-formed
header lines, at most one plain Content-Length or ``Transfer-Encoding:
chunked``) is parsed here directly; :func:`parse_common_head` returns ``None``
for anything else (interim 1xx, obsolete line folding, bare LF line ends, any
byte h11 would refuse, repeated or odd framing headers), and h11 then parses
those bytes as before and stays the one that refuses. tests/test_head.py proves
that whenever this parser answers, h11 answers the same for the same bytes
(status, reason, version, headers, keep-alive), for any input.
"""

from __future__ import annotations

import re

__all__ = ["ResponseHead", "parse_common_head"]

# h11 0.16's status-line: HTTP/d.d SP 3DIGIT [SP reason], the reason being any
# bytes but NUL and the line-breaking whitespace (its ([ \t]|[^\x00\s])*).
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([^\x00\n\v\f\r]*))?")
# h11's header-field, token ":" OWS field-value OWS, where the value stripped of
# [ \t] holds no NUL or line-breaking whitespace (as in _body.py, without
# nested quantifiers).
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_NOT_IN_VALUE = re.compile(rb"[\x00\n\v\f\r]")
_MAX_LENGTH_DIGITS = 20  # h11's CONTENT_LENGTH_MAX_DIGITS


class ResponseHead:
    """A final response head: what h11's ``Response`` event holds, and its keep-alive.

    ``headers`` are ``(name, value)`` pairs in order, names lower-cased, as
    h11 gives them. ``keep_alive``: the response lets the connection carry
    another exchange as far as its head can say (HTTP/1.1, no ``Connection:
    close``); the body must still end cleanly.
    """

    __slots__ = ("headers", "http_version", "keep_alive", "reason", "status_code")

    def __init__(
        self,
        status_code: int,
        reason: bytes,
        http_version: bytes,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive

    def __repr__(self) -> str:
        return f"<ResponseHead {self.status_code} {self.reason!r} HTTP/{self.http_version!r}>"


def parse_common_head(head: bytes, request_method: bytes) -> ResponseHead | None:
    """``head`` (through the blank line that ends it) parsed, or ``None``: ask h11.

    Never raises: every head it does not accept whole goes to h11, which
    either parses it or says what is wrong with it. The answer to a CONNECT
    always goes to h11: a 2xx there switches protocols (a tunnel, never a
    connection to reuse).
    """
    if request_method == b"CONNECT" or not head.endswith(b"\r\n\r\n"):
        return None  # Bare LF line ends, or no header section: h11's rules.
    lines = head[:-4].split(b"\r\n")
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None:
        return None
    http_version, code, reason = status.groups()
    status_code = int(code)
    if status_code < 200:
        return None  # An interim response: h11 tracks what may follow it.
    keep_alive = http_version == b"1.1"
    framed = False
    headers: list[tuple[bytes, bytes]] = []
    for index in range(1, len(lines)):
        name, colon, value = lines[index].partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            return None  # Not a header line (or a folded one): h11 says which.
        value = value.strip(b" \t")
        if _NOT_IN_VALUE.search(value) is not None:
            return None
        name = name.lower()
        if name == b"content-length":
            if framed or not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
                return None  # Lists, repeats, both framings, bad digits: h11.
            framed = True
        elif name == b"transfer-encoding":
            value = value.lower()
            if framed or value != b"chunked":
                return None
            framed = True
        elif name == b"connection" and keep_alive:
            for token in value.lower().split(b","):
                if token.strip() == b"close":
                    keep_alive = False
        headers.append((name, value))
    return ResponseHead(status_code, reason or b"", http_version, headers, keep_alive)
