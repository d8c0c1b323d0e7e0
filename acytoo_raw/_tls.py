"""TLS over any anyio byte stream, with session resumption and a non-blocking poll.

Our own small layer on ``ssl.SSLObject`` + ``MemoryBIO`` instead of anyio's
``TLSStream``, for three things it cannot do: offer a saved session to a new
handshake (TLS resumption), tell an EOF without ``close_notify`` from a clean
close (a close-delimited body cut short), and let the pool check an idle
connection without waiting (TLS 1.3 tickets arriving after the handshake make a
live connection readable; they must be fed through the TLS object, not taken
for the peer closing).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import anyio
from anyio.abc import ByteStream

__all__ = [
    "EndWithoutCloseNotify",
    "TLSStream",
    "close_stream",
    "default_ssl_context",
    "receive_nowait",
]

# One TLS record carries at most 16 KiB of plaintext; asking for more per read
# only allocates a larger buffer that SSL_read never fills.
_TLS_READ_SIZE = 16 * 1024

_T = TypeVar("_T")


@cache
def default_ssl_context() -> ssl.SSLContext:
    """The system-trust verifying context, built once and only when first needed.

    Building one loads the system's CA certificates (~30 ms): a plain-HTTP
    request never pays for it, and a TLS one pays once per process.
    """
    return ssl.create_default_context()


class EndWithoutCloseNotify(anyio.EndOfStream):
    """The peer closed TCP without TLS ``close_notify``: what came may be cut short.

    Framed bodies (Content-Length, chunked) prove their own end and may ignore
    this; a close-delimited body must not (RFC 8446 §6.1).
    """


def receive_nowait(stream: ByteStream) -> bytes | None:
    """Bytes the stream can hand out without waiting: ``None`` if none, ``b""`` at EOF.

    Works on the streams this library stacks (socket, tunnel prefix, TLS);
    any other stream type reports ``None``.

    Raises:
        anyio.BrokenResourceError: the connection failed.
    """
    poll: Callable[[], bytes | None] | None = getattr(stream, "receive_nowait", None)
    return poll() if poll is not None else None


def close_stream(stream: ByteStream) -> None:
    """Close a stream of ours at once, without waiting (socket, tunnel prefix or TLS)."""
    close: Callable[[], None] | None = getattr(stream, "close", None)
    if close is not None:
        close()


class TLSStream(ByteStream):
    """A TLS client connection over ``transport``.

    Build it with :meth:`wrap`. ``receive`` raises ``anyio.EndOfStream`` after
    the peer's ``close_notify``, :class:`EndWithoutCloseNotify` when TCP ended
    without one, and ``anyio.BrokenResourceError`` (with the ``ssl.SSLError``
    as ``__cause__``) on a TLS failure.
    """

    __slots__ = ("_incoming", "_outgoing", "_transport", "received", "ssl_object")

    def __init__(
        self,
        transport: ByteStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._transport = transport
        self._incoming = incoming
        self._outgoing = outgoing
        self.ssl_object = ssl_object
        # Encrypted bytes taken from the transport: any of them means the
        # peer has started answering, even before they decrypt to anything.
        self.received = 0

    @classmethod
    async def wrap(
        cls,
        transport: ByteStream,
        hostname: str,
        context: ssl.SSLContext,
        session: ssl.SSLSession | None = None,
    ) -> TLSStream:
        """Handshake over ``transport``, offering ``session`` for resumption.

        Raises:
            ssl.SSLError: the handshake failed (certificate, protocol).
            anyio.EndOfStream, anyio.BrokenResourceError: the transport failed.
        """
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = context.wrap_bio(
            incoming, outgoing, server_side=False, server_hostname=hostname, session=session
        )
        stream = cls(transport, ssl_object, incoming, outgoing)
        await stream._retry(ssl_object.do_handshake)
        return stream

    @property
    def transport(self) -> ByteStream:
        return self._transport

    async def _retry(self, operation: Callable[[], _T]) -> _T:
        """Run ``operation`` until the TLS object has what it needs; flush what it wrote."""
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                await self._flush()
                try:
                    data = await self._transport.receive()
                except anyio.EndOfStream:
                    self._incoming.write_eof()
                    continue  # The operation now fails with the right SSL error.
                self.received += len(data)
                self._incoming.write(data)
                continue
            await self._flush()
            return result

    async def _flush(self) -> None:
        if self._outgoing.pending:
            await self._transport.send(self._outgoing.read())

    async def receive(self, max_bytes: int = _TLS_READ_SIZE) -> bytes:
        read = self.ssl_object.read
        size = min(max_bytes, _TLS_READ_SIZE)
        while True:
            try:
                data = read(size)
            except ssl.SSLWantReadError:
                if self._outgoing.pending:  # e.g. a KeyUpdate answer
                    await self._flush()
                try:
                    chunk = await self._transport.receive()
                except anyio.EndOfStream:
                    raise EndWithoutCloseNotify from None
                self.received += len(chunk)
                self._incoming.write(chunk)
                continue
            except ssl.SSLZeroReturnError:
                raise anyio.EndOfStream from None
            except ssl.SSLError as exc:
                raise anyio.BrokenResourceError(f"TLS failure: {exc}") from exc
            if not data:
                raise anyio.EndOfStream
            return data

    def receive_nowait(self) -> bytes | None:
        """See :func:`receive_nowait`; consumes session tickets and other non-data records."""
        read = self.ssl_object.read
        while True:
            try:
                data = read(_TLS_READ_SIZE)
            except ssl.SSLWantReadError:
                chunk = receive_nowait(self._transport)
                if not chunk:
                    return chunk  # None: nothing more for now; b"": the peer closed.
                self.received += len(chunk)
                self._incoming.write(chunk)
                continue
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as exc:
                raise anyio.BrokenResourceError(f"TLS failure: {exc}") from exc
            return data

    async def send(self, item: bytes) -> None:
        try:
            await self._retry(lambda: self.ssl_object.write(item))
        except ssl.SSLError as exc:
            raise anyio.BrokenResourceError(f"TLS failure: {exc}") from exc

    async def send_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close")

    async def aclose(self) -> None:
        # No close_notify: the exchange is over or abandoned, and waiting on a
        # peer to acknowledge it would let a stalled peer hold our close.
        await self._transport.aclose()

    def close(self) -> None:
        """Close at once, without waiting (see :meth:`aclose`)."""
        close_stream(self._transport)
