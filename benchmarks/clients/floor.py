"""The floor: asyncio ``BufferedProtocol`` into one reused buffer + the hand parser.

About the least work per read Python allows on asyncio: no stream wrapper objects, no h11, one
``bytes`` copy per read, one incremental decode per read for text. Every other client is
reported as a ratio to this one (text clients to the text floor, bytes clients to the bytes floor).
With ``keepalive`` it holds one connection and sends each request on it (a new one only when
the server closed it), with the request's bytes built once per URL.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from benchmarks.clients.base import Client, Piece
from benchmarks.clients.decoding import text_decoder
from benchmarks.clients.floor_parser import ResponseParser

READ_SIZE = 64 * 1024
HIGH_WATER = 1 << 20


class _Reader(asyncio.BufferedProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._view = memoryview(bytearray(READ_SIZE))
        self._reads: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._reads.append(self._view[:nbytes].tobytes())
        self._buffered += nbytes
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._closed = True
        self._wake()
        return False

    @property
    def closed(self) -> bool:
        return self._closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        """Everything received since the last call; b"" once the peer has closed."""
        if not self._reads and not self._closed:
            self._waiter = self._loop.create_future()
            await self._waiter
            self._waiter = None
        reads, self._reads = self._reads, []
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        if reads:
            return reads[0] if len(reads) == 1 else b"".join(reads)
        if self._error is not None:
            raise self._error
        return b""


Held = tuple[asyncio.Transport, _Reader]


async def open_connection(url: str, tls: ssl.SSLContext | None) -> Held:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    transport, reader = await loop.create_connection(
        lambda: _Reader(loop), host, port, ssl=tls, server_hostname=host if tls else None
    )
    return transport, reader


class FloorClient(Client):
    _held: Held | None = None
    _requests: dict[str, bytes]

    async def start(self) -> None:
        self._requests = {}

    async def stop(self) -> None:
        if self._held is not None:
            self._held[0].close()

    def stream(self, url: str) -> AsyncIterator[Piece]:
        return self._stream(url)

    def request_bytes(self, url: str) -> bytes:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()

    async def connection(self, url: str) -> Held:
        """The held connection, or a new one (held when ``keepalive``)."""
        held = self._held
        self.count("requests")
        if held is None or held[1].closed:
            if held is not None:
                held[0].close()
            held = await open_connection(url, self.tls_for(url))
            self._held = held if self.keepalive else None
        else:
            self.count("reused")
        return held

    def done_with(self, held: Held, reusable: bool) -> None:
        if not reusable or not self.keepalive:
            held[0].close()
            if self._held is held:
                self._held = None

    async def _stream(self, url: str) -> AsyncIterator[Piece]:
        feed, flush = text_decoder("incremental") if self.kind == "text" else (None, None)
        request = self._requests.get(url)
        if request is None:
            request = self._requests[url] = self.request_bytes(url)
        held = await self.connection(url)
        transport, reader = held
        parser = ResponseParser()
        try:
            transport.write(request)
            while not parser.done:  # bounded by the body: each read is non-empty or EOF
                data = await reader.read()
                if not data:
                    parser.feed_eof()
                    break
                body = parser.feed(data)
                if body:
                    yield feed(body) if feed is not None else body
            if flush is not None and (tail := flush()):
                yield tail
        finally:
            self.done_with(held, parser.done and not parser.closing)
