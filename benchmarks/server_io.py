"""Non-blocking byte transport for the benchmark server: a plain socket, or TLS over it.

TLS runs sans-IO (``ssl.SSLObject`` over two ``MemoryBIO``), so TLS and plain connections share
one single-threaded selector loop and never block it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections import deque

RECV_SIZE = 1 << 16
_MAX_TLS_READS = 64


class Transport:
    """Send and receive plaintext on a non-blocking socket; queue what the kernel won't take."""

    def __init__(self, sock: socket.socket, tls_context: ssl.SSLContext | None) -> None:
        self.sock = sock
        self.eof = False
        self._out: deque[memoryview] = deque()
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._handshaken = tls_context is None
        if tls_context is not None:
            self._tls = tls_context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    @property
    def pending(self) -> bool:
        """True while bytes wait for the socket to become writable."""
        return bool(self._out)

    def receive(self) -> bytes:
        """Plaintext that arrived (may be empty); sets ``eof`` when the peer is gone."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            self.eof = True
            return b""
        if not data:
            self.eof = True
        if self._tls is None:
            return data
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        return self._pump_tls()

    def _pump_tls(self) -> bytes:
        assert self._tls is not None
        parts: list[bytes] = []
        try:
            if not self._handshaken:
                self._tls.do_handshake()
                self._handshaken = True
            for _ in range(_MAX_TLS_READS):
                part = self._tls.read(RECV_SIZE)
                if not part:
                    self.eof = True
                    break
                parts.append(part)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLError):
            self.eof = True
        self._queue(self._outgoing.read())
        return b"".join(parts)

    def write(self, data: bytes | memoryview) -> None:
        """Queue ``data`` (encrypted when TLS) and send as much as the socket takes now."""
        if self._tls is not None:
            self._tls.write(data)
            data = self._outgoing.read()
        self._queue(data)

    def _queue(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if not self._out:  # the common case: one send, nothing queued (no wrapper objects)
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.eof = True
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._out.append(memoryview(data))
        self.flush()

    def flush(self) -> None:
        """Send queued bytes until the socket would block (bounded by the queue length)."""
        for _ in range(len(self._out)):
            head = self._out[0]
            try:
                sent = self.sock.send(head)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._out.clear()
                self.eof = True
                return
            if sent < len(head):
                self._out[0] = head[sent:]
                return
            self._out.popleft()

    def close_write(self) -> None:
        """Send TLS close_notify (if TLS) and a FIN once everything queued has gone out."""
        if self._tls is not None and self._handshaken:
            # SSLWantReadError: our close_notify is queued; we don't wait for theirs.
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()
            self._queue(self._outgoing.read())
        if not self._out:
            self.shutdown()

    def shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.eof = True

    def close(self) -> None:
        self.sock.close()
