"""Just enough HTTP/1.1 response parsing for the floor client: status, framing, body.

Not a general parser (no validation beyond what the floor needs); it exists to show how little
work per read is possible in Python, so the other clients can be measured against it.
"""

from __future__ import annotations

from typing import Literal

MAX_HEAD = 64 * 1024
MAX_LINE = 1024

_State = Literal["head", "length", "size", "data", "crlf", "trailer", "close", "done"]


class ProtocolError(Exception):
    pass


class ResponseParser:
    """Feed received bytes; get back the body bytes they contained (joined per feed)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._state: _State = "head"
        self._remaining = 0
        self.closing = False  # the connection can't carry another request after this response

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> bytes:
        if self._state == "length":
            return self._length(data)
        if self._state == "close":
            return data
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        if self._state == "head":
            buffer = self._head(buffer)
            if self._state == "head":
                return b""
            if self._state == "length":
                return self._length(buffer)
            if self._state == "close":
                return buffer
        return self._chunked(buffer)

    def feed_eof(self) -> None:
        if self._state == "close":
            self._state = "done"
        elif self._state != "done":
            raise ProtocolError("connection closed before the end of the body")

    def _head(self, buffer: bytes) -> bytes:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise ProtocolError("response head too large")
            self._buffer = buffer
            return b""
        lines = buffer[:end].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        if not 200 <= status < 300:
            raise ProtocolError(f"status {status}")
        framing: _State = "close"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding" and value.strip().lower() == b"chunked":
                framing = "size"
            elif name == b"content-length" and framing != "size":
                framing, self._remaining = "length", int(value)
            elif name == b"connection" and b"close" in value.lower():
                self.closing = True
        if framing == "close":
            self.closing = True
        if framing == "length" and self._remaining == 0:
            framing = "done"
        self._state = framing
        return buffer[end + 4 :]

    def _length(self, data: bytes) -> bytes:
        if len(data) >= self._remaining:
            data = data[: self._remaining]
            self._state = "done"
        self._remaining -= len(data)
        return data

    def _chunked(self, buffer: bytes) -> bytes:
        body: list[bytes] = []
        view = memoryview(buffer)
        pos, end = 0, len(buffer)
        while pos < end and self._state != "done":  # each pass consumes bytes or breaks
            state = self._state
            if state == "data":
                take = min(self._remaining, end - pos)
                body.append(view[pos : pos + take])  # type: ignore[arg-type]
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = "crlf"
            elif state == "crlf":
                if end - pos < 2:
                    break
                if buffer[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("missing CRLF after chunk")
                pos += 2
                self._state = "size"
            else:  # "size" or "trailer": one line
                line_end = buffer.find(b"\r\n", pos, pos + MAX_LINE)
                if line_end < 0:
                    if end - pos >= MAX_LINE:
                        raise ProtocolError("chunk-size line too long")
                    break
                line = buffer[pos:line_end]
                pos = line_end + 2
                if state == "trailer":
                    if not line:
                        self._state = "done"
                    continue
                size = int(line.split(b";", 1)[0], 16)
                self._state, self._remaining = ("data", size) if size else ("trailer", 0)
        if pos < end and self._state != "done":
            self._buffer = buffer[pos:]
        if len(body) == 1:
            return bytes(body[0])
        return b"".join(body)
