"""What the benchmark server sends and how a client reads it back: one source of truth.

Two APIs: ``GET /stream?...`` (a body of stamped pieces) and ``POST .../v1/chat/completions``
(OpenAI-style server-sent events, one ``data:`` JSON chunk per token whose ``content`` is a
stamped piece). The chat API's parameters travel in the base URL's path
(``/chat/<query>/v1``), so every client, the openai SDK included, can be pointed at them with
nothing but a ``base_url``.

With ``spread``, a stream's pieces after the first are shifted by a random phase within one
interval, so many concurrent streams send at independent phases instead of in lockstep batches
set by when the client happened to connect them.

Every piece is ``size`` bytes: a 19-digit ``time.perf_counter_ns()`` send stamp, a filler (ASCII
or multi-byte UTF-8) and a newline. A stream is a fixed number of equal pieces, so the client can
find piece ``k`` at offset ``k * units`` of what it received (bytes, or characters for text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlencode, urlsplit

Body = Literal["ascii", "utf8"]
Framing = Literal["chunked", "length"]
Pacing = Literal["paced", "burst"]
Api = Literal["stream", "chat"]

STAMP_DIGITS = 19
STREAM_PATH = "/stream"
CHAT_PREFIX = "/chat/"
CHAT_SUFFIX = "/v1/chat/completions"
MAX_IDLE_MS = 60_000
_ASCII_FILL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# 2-, 3- and 4-byte characters, so reads split inside characters of every width.
_UTF8_FILL = "é€😀ß中ж🚀ñ"
MAX_PIECE = 1 << 20
MAX_PIECES = 10_000_000


@dataclass(frozen=True)
class StreamRequest:
    """What a client asks the server for, carried in the request target's query string."""

    pieces: int
    size: int
    every_us: int = 0
    body: Body = "ascii"
    framing: Framing = "chunked"
    pacing: Pacing = "paced"
    spread: bool = False  # delay the 2nd piece by a random fraction of the interval
    keepalive: bool = False  # answer without ``Connection: close`` and wait for the next request
    idle_ms: int = 0  # with keepalive: close the connection after this long idle (0: never)
    api: Api = "stream"

    def _query(self) -> str:
        return urlencode(
            {
                "n": self.pieces,
                "size": self.size,
                "every_us": self.every_us,
                "body": self.body,
                "framing": self.framing,
                "pacing": self.pacing,
                "spread": int(self.spread),
                "keepalive": int(self.keepalive),
                "idle_ms": self.idle_ms,
            }
        )

    def target(self) -> str:
        """``/stream?...``; for the chat API the base URL's path (``/chat/<query>/v1``), to
        which clients append ``/chat/completions``."""
        if self.api == "chat":
            return f"{CHAT_PREFIX}{self._query()}/v1"
        return f"{STREAM_PATH}?{self._query()}"

    @classmethod
    def from_target(cls, target: str) -> StreamRequest:
        """Parse a request target; ``ValueError`` if it is not one of ours or out of bounds."""
        parts = urlsplit(target)
        api: Api = "stream"
        raw_query = parts.query
        if parts.path.endswith(CHAT_SUFFIX):
            api = "chat"
            prefix = parts.path[: -len(CHAT_SUFFIX)]
            if prefix.startswith(CHAT_PREFIX):
                raw_query = prefix[len(CHAT_PREFIX) :]
            elif prefix:
                raise ValueError(f"unknown path {parts.path!r}")
        elif parts.path != STREAM_PATH:
            raise ValueError(f"unknown path {parts.path!r}")
        query = {key: values[-1] for key, values in parse_qs(raw_query).items()}
        if api == "chat":  # a bare /v1/chat/completions: a short, paced, kept-alive answer
            query = {**CHAT_DEFAULTS, **query}
        request = cls(
            pieces=int(query["n"]),
            size=int(query["size"]),
            every_us=int(query.get("every_us", "0")),
            body=_choice(query.get("body", "ascii"), ("ascii", "utf8")),  # type: ignore[arg-type]
            framing=_choice(query.get("framing", "chunked"), ("chunked", "length")),  # type: ignore[arg-type]
            pacing=_choice(query.get("pacing", "paced"), ("paced", "burst")),  # type: ignore[arg-type]
            spread=query.get("spread", "0") == "1",
            keepalive=query.get("keepalive", "0") == "1",
            idle_ms=int(query.get("idle_ms", "0")),
            api=api,
        )
        sizes_ok = STAMP_DIGITS + 1 <= request.size <= MAX_PIECE
        if not (1 <= request.pieces <= MAX_PIECES and sizes_ok):
            raise ValueError("piece count or size out of bounds")
        if request.every_us < 0 or not 0 <= request.idle_ms <= MAX_IDLE_MS:
            raise ValueError("negative interval or idle time out of bounds")
        return request

    @property
    def total_bytes(self) -> int:
        return self.pieces * self.size

    def units_per_piece(self, text: bool) -> int:
        """Length of one piece as the client sees it: bytes, or characters when decoded."""
        return len(piece_template(self.size, self.body).decode()) if text else self.size


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{value!r} not in {allowed}")
    return value


def piece_template(size: int, body: Body) -> bytes:
    """A piece of exactly ``size`` bytes whose first 19 bytes are a placeholder stamp."""
    fill_bytes = size - STAMP_DIGITS - 1
    fill: list[str] = []
    used = 0
    source = _UTF8_FILL if body == "utf8" else _ASCII_FILL
    for index in range(fill_bytes):  # every character takes at least one byte
        char = source[index % len(source)]
        width = len(char.encode())
        if used + width > fill_bytes:
            break
        fill.append(char)
        used += width
    fill.append("x" * (fill_bytes - used))
    piece = ("0" * STAMP_DIGITS + "".join(fill) + "\n").encode()
    assert len(piece) == size
    return piece


def stamp(template: bytes, now_ns: int, offset: int = 0) -> bytes:
    """The template with its placeholder (at ``offset``) replaced by ``now_ns``."""
    if offset:
        return b"%b%019d%b" % (template[:offset], now_ns, template[offset + STAMP_DIGITS :])
    return b"%019d" % now_ns + template[STAMP_DIGITS:]


def chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def response_head(request: StreamRequest, keep: bool) -> bytes:
    """The response head; ``keep``: the connection stays open after this response."""
    connection = b"" if keep else b"Connection: close\r\n"
    if request.api == "chat":
        return (
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/event-stream; charset=utf-8\r\n"
            b"Cache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n" + connection + b"\r\n"
        )
    framing = (
        b"Transfer-Encoding: chunked\r\n"
        if request.framing == "chunked"
        else b"Content-Length: %d\r\n" % request.total_bytes
    )
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Cache-Control: no-store\r\n" + framing + connection + b"\r\n"
    )


# -- the chat API: OpenAI's streamed chunk shape ----------------------------------------------

CHAT_DEFAULTS = {"n": "20", "size": "24", "every_us": "1000", "keepalive": "1"}
_CHUNK_HEAD = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench","system_fingerprint":null,"choices":[{"index":0,"delta":'
)
_CHUNK_TAIL = b',"logprobs":null,"finish_reason":%b}]}'
ROLE_EVENT = (
    b"data: "
    + _CHUNK_HEAD
    + b'{"role":"assistant","content":""}'
    + (_CHUNK_TAIL % b"null")
    + b"\n\n"
)
FINISH_EVENTS = (
    b"data: " + _CHUNK_HEAD + b"{}" + (_CHUNK_TAIL % b'"stop"') + b"\n\ndata: [DONE]\n\n"
)
_CONTENT_OPEN = b'{"content":"'
CHAT_STAMP_OFFSET = len(b"data: " + _CHUNK_HEAD + _CONTENT_OPEN)


def chat_event_template(size: int) -> bytes:
    """One ``data:`` event whose delta content is a piece (its newline JSON-escaped); the stamp
    placeholder sits at ``CHAT_STAMP_OFFSET``."""
    content = piece_template(size, "ascii")[:-1] + b"\\n"
    return (
        b"data: "
        + _CHUNK_HEAD
        + _CONTENT_OPEN
        + content
        + b'"}'
        + (_CHUNK_TAIL % b"null")
        + b"\n\n"
    )


def stamps_of(received: str | bytes, units: int, count: int) -> list[int]:
    """The send stamps of ``count`` pieces of ``units`` each, read back from a received body."""
    return [int(received[k * units : k * units + STAMP_DIGITS]) for k in range(count)]
