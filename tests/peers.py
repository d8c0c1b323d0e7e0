"""A hand-written peer on a real loopback socket, for answers no real server gives.

``scripted_server`` reads one request head (and its Content-Length body), then
plays a script: ``bytes`` are sent, a ``float`` is a pause in seconds; at the
end the connection closes, or stays silently open with ``hang=True``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSListener

Handler = Callable[[ByteStream], Awaitable[None]]

# Upper bound on what a fake peer reads of a request: tests send small ones.
MAX_REQUEST = 1024 * 1024


@dataclass
class PeerLog:
    """What the peer saw: one entry per accepted connection."""

    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    closed_by_client: anyio.Event = field(default_factory=anyio.Event)


async def read_request(stream: ByteStream) -> bytes:
    """The request head and its Content-Length body, as bytes; b"" if the client hung up."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return data
        if len(data) > MAX_REQUEST:
            return data
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        try:
            body += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            break
    return head + b"\r\n\r\n" + body


async def wait_for_close(stream: ByteStream) -> None:
    """Return when the client closes its side (EOF or reset)."""
    while True:
        try:
            await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return


def script(*steps: bytes | float, hang: bool = False) -> Callable[[PeerLog], Handler]:
    """A handler factory that plays ``steps`` after reading the request."""

    def make(log: PeerLog) -> Handler:
        async def handle(stream: ByteStream) -> None:
            log.requests.append(await read_request(stream))
            try:
                for step in steps:
                    if isinstance(step, bytes):
                        await stream.send(step)
                    else:
                        await anyio.sleep(step)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                log.closed_by_client.set()
                return
            if hang:
                await wait_for_close(stream)
                log.closed_by_client.set()

        return handle

    return make


@asynccontextmanager
async def scripted_server(
    make_handler: Callable[[PeerLog], Handler],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[str, PeerLog]]:
    """Serve ``make_handler(log)`` on 127.0.0.1; yields the base URL and the log."""
    log = PeerLog()
    handler = make_handler(log)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)

    async def serve_one(stream: ByteStream) -> None:
        log.connections += 1
        async with stream:
            with suppress(anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError):
                await handler(stream)

    async with listener, anyio.create_task_group() as tg:
        if ssl_context is None:
            tg.start_soon(listener.serve, serve_one)
            scheme = "http"
        else:
            tls = TLSListener(listener, ssl_context, standard_compatible=False)
            tg.start_soon(tls.serve, serve_one)
            scheme = "https"
        try:
            yield f"{scheme}://127.0.0.1:{port}", log
        finally:
            tg.cancel_scope.cancel()


def response(
    body: bytes = b"",
    *,
    status: bytes = b"200 OK",
    headers: tuple[bytes, ...] = (),
) -> bytes:
    """A Content-Length response as bytes."""
    lines = [b"HTTP/1.1 " + status, *headers, b"content-length: %d" % len(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked_head(*headers: bytes, status: bytes = b"200 OK") -> bytes:
    lines = [b"HTTP/1.1 " + status, *headers, b"transfer-encoding: chunked"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


# A step of a keep-alive answer: bytes are sent, a float is a pause, CLOSE ends the connection.
CLOSE = object()
Answer = Callable[[int, int, bytes], "list[bytes | float | object]"]


@dataclass
class KeepAliveLog:
    """What a keep-alive peer saw: ``(connection number, request bytes)`` in order."""

    served: list[tuple[int, bytes]] = field(default_factory=list)
    connections: int = 0

    @property
    def connection_ids(self) -> list[int]:
        return [number for number, _ in self.served]


@asynccontextmanager
async def keepalive_server(
    answer: Answer, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, KeepAliveLog]]:
    """Serve many requests per connection: ``answer(connection, index, request)`` gives
    the steps for each request (``index`` counts requests on that connection)."""
    log = KeepAliveLog()

    def make(_: PeerLog) -> Handler:
        async def handle(stream: ByteStream) -> None:
            log.connections += 1
            number = log.connections
            index = 0
            while True:
                request = await read_request(stream)
                if not request:
                    return
                log.served.append((number, request))
                for step in answer(number, index, request):
                    if step is CLOSE:
                        return
                    if isinstance(step, bytes):
                        await stream.send(step)
                    else:
                        assert isinstance(step, float)
                        await anyio.sleep(step)
                index += 1

        return handle

    async with scripted_server(make, ssl_context=ssl_context) as (base, _):
        yield base, log
