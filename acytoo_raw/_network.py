"""TCP and TLS: the one I/O boundary of the library.

The client owns its socket: a non-blocking socket read with ``recv_into`` one
reused buffer (how a read waits, per event loop, is :mod:`._readers`' job),
exposed as an anyio :class:`~anyio.abc.ByteStream`, so our
:class:`~._tls.TLSStream` layers TLS on top of it (and on top of itself, for
TLS to an https proxy). Foreign exceptions are translated to ours in
:func:`translate_errors`.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import ssl
import stat
from contextlib import suppress
from functools import lru_cache
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream

from ._exceptions import (
    AcytooError,
    ConnectError,
    LocalProtocolError,
    RemoteProtocolError,
    TimeoutException,
    TLSError,
    TotalTimeout,
    WriteTimeout,
)
from ._readers import READ_SIZE, new_receiver
from ._tls import TLSStream, close_stream, receive_nowait

__all__ = [
    "READ_SIZE",
    "PeerAnsweredEarly",
    "PrefixedStream",
    "SocketStream",
    "close_stream",
    "connect_tcp",
    "ssl_context_from_cafile",
    "start_tls",
    "translate_errors",
]

_INFINITY = float("inf")

# TCP keepalive: a stream whose path died silently (a NAT or firewall dropped
# it) fails after about idle + interval * count seconds instead of hanging.
_KEEPALIVE_IDLE = 60
_KEEPALIVE_INTERVAL = 10
_KEEPALIVE_COUNT = 6

# While a request waits for room in the send buffer, look this often whether
# the server has already answered (an early 413 or 401 that it will follow by
# closing): that answer is what the caller needs, not a broken-pipe error.
_EARLY_ANSWER_POLL = 0.05

Phase = Literal["connect", "write", "read"]


class PeerAnsweredEarly(anyio.BrokenResourceError):
    """The peer sent data while our request was still being written."""


class SocketStream(ByteStream):
    """A connected non-blocking TCP socket as an anyio byte stream.

    :meth:`set_read_limits` bounds reads: each wait for data by ``gap``
    seconds (:class:`ReadTimeout`), and every read by an absolute
    ``deadline`` in ``anyio.current_time()`` (the error given), checked also
    when data keeps arriving so a peer that never pauses can't outlast it.
    How reads wait depends on the event loop (:mod:`._readers`): no cancel
    scope per wait, one lazily re-armed timer per stream.
    """

    __slots__ = (
        "_answer_via",
        "_closed",
        "_receiver",
        "_socket",
        "_write_deadline",
        "_write_error",
        "_write_message",
        "_writing",
        "early_answer",
    )

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._receiver = new_receiver(sock)
        self._closed = False
        self._writing = False  # A send waits for room in the kernel's buffer.
        self._write_deadline = _INFINITY
        self._write_error: type[TimeoutException] = WriteTimeout
        self._write_message = ""
        # The stream the answer comes through when layers (TLS) sit on top:
        # raw bytes then may be no answer at all (a TLS 1.3 session ticket).
        self._answer_via: ByteStream | None = None
        self.early_answer = b""  # What came through those layers while we waited to write.

    @property
    def socket(self) -> socket.socket:
        return self._socket

    def set_read_limits(
        self,
        gap: float | None,
        deadline: float = _INFINITY,
        deadline_error: type[TimeoutException] = TotalTimeout,
        message: str = "the request's total timeout ran out",
    ) -> None:
        """Bound later reads: ``gap`` of silence, and an absolute ``deadline``."""
        self._receiver.set_limits(gap, deadline, deadline_error, message)

    async def receive(self, max_bytes: int = READ_SIZE) -> bytes:
        """The next bytes from the peer.

        Raises:
            anyio.EndOfStream: the peer closed.
            anyio.BrokenResourceError: the connection was reset.
            anyio.ClosedResourceError: we closed the stream.
            anyio.BusyResourceError: another task is already reading.
            ReadTimeout, TimeoutException: a read limit ran out.
        """
        return await self._receiver.receive(max_bytes)

    def receive_nowait(self) -> bytes | None:
        """Bytes readable now: ``None`` if none, ``b""`` at EOF (never waits).

        Raises:
            anyio.BrokenResourceError: the connection was reset.
        """
        return self._receiver.receive_nowait()

    def set_write_limit(
        self,
        deadline: float = _INFINITY,
        error: type[TimeoutException] = WriteTimeout,
        message: str = "",
        answer_via: ByteStream | None = None,
    ) -> None:
        """Bound later sends: a send still waiting at ``deadline``
        (``anyio.current_time()``) raises ``error(message)``.

        ``answer_via``: the stream on top of this socket (TLS) that an early
        answer must be read through; what it yields is kept in
        :attr:`early_answer`.
        """
        self._write_deadline = deadline
        self._write_error = error
        self._write_message = message
        self._answer_via = answer_via

    async def send(self, item: bytes) -> None:
        """Send all of ``item``; waits while the kernel's buffer is full.

        A send the kernel takes at once returns without a checkpoint and
        without a cancel scope: the exchange's next step, reading the answer,
        waits anyway (and each cancel scope costs ~6 µs, a loop turn more).

        Raises:
            PeerAnsweredEarly: while waiting, the peer sent data (or closed):
                it answered before reading all of the request.
            TimeoutException: the write limit ran out while waiting
                (:meth:`set_write_limit`).
        """
        view = memoryview(item)
        while view:
            try:
                sent = self._socket.send(view)
            except BlockingIOError:
                if self._closed:
                    raise anyio.ClosedResourceError from None
                await self._wait_writable_or_answer()
                continue
            except OSError as exc:
                if self._closed:
                    raise anyio.ClosedResourceError from None
                raise anyio.BrokenResourceError(exc.strerror or str(exc)) from exc
            view = view[sent:]

    async def _wait_writable_or_answer(self) -> None:
        while True:
            left = self._write_deadline - anyio.current_time()
            if left <= 0:
                raise self._write_error(self._write_message)
            self._writing = True
            try:
                with anyio.move_on_after(min(left, _EARLY_ANSWER_POLL)):
                    await anyio.wait_writable(self._socket)
                    return
            except anyio.ClosedResourceError:
                if self._closed:
                    raise
                continue  # trio's read timer woke every waiter on the socket: not ours.
            finally:
                self._writing = False
            answered = self._answered()
            if answered is None:
                continue
            raise PeerAnsweredEarly(
                "the server answered before reading the whole request"
                if answered
                else "the server closed before reading the whole request"
            )

    def _answered(self) -> bool | None:
        """Whether the peer sent an answer (``True``) or closed (``False``); ``None``: neither."""
        via = self._answer_via
        if via is None:
            return self._receiver.answered()  # Peeks: the bytes stay for the reader.
        try:
            data = receive_nowait(via)  # Consumes TLS records that are no answer.
        except anyio.BrokenResourceError:
            return False
        if data:
            self.early_answer += data
            return True
        return None if data is None else False

    async def send_eof(self) -> None:
        self._socket.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        # Closing a socket never blocks: no checkpoint, so a thousand streams
        # ending together don't each queue behind one more loop turn.
        self.close()

    def close(self) -> None:
        """Close at once; a task parked reading or writing on this socket is woken."""
        if not self._closed:
            self._closed = True
            self._receiver.close()  # Unregisters the reader and its timer; wakes a reader.
            if self._writing:
                anyio.notify_closing(self._socket)  # Wake the task parked in wait_writable.
            self._socket.close()


class PrefixedStream(ByteStream):
    """A byte stream that first returns ``prefix``: bytes a proxy sent past its reply."""

    def __init__(self, stream: ByteStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self._stream.receive(max_bytes)

    def receive_nowait(self) -> bytes | None:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return receive_nowait(self._stream)

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    def close(self) -> None:
        close_stream(self._stream)


async def connect_tcp(host: str, port: int) -> SocketStream:
    """Open a TCP connection to the first address of ``host`` that answers.

    Raises:
        ConnectError: the name does not resolve or every address refused.
    """
    try:
        addresses = _literal_address(host, port) or await anyio.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    last_error: OSError | None = None
    for family, type_, proto, _, address in addresses:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _enable_keepalive(sock)
            await _connect_socket(sock, address)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return SocketStream(sock)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = last_error.strerror or str(last_error) if last_error else "no address"
    raise ConnectError(f"cannot connect to {where}: {reason}") from last_error


# (option, value) pairs this platform knows: Linux has TCP_KEEPIDLE, macOS TCP_KEEPALIVE.
_KEEPALIVE_OPTIONS = [
    (option, value)
    for name, value in (
        ("TCP_KEEPIDLE", _KEEPALIVE_IDLE),
        ("TCP_KEEPALIVE", _KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", _KEEPALIVE_COUNT),
    )
    if (option := getattr(socket, name, None)) is not None
]


def _enable_keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in _KEEPALIVE_OPTIONS:
        with suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


@lru_cache(maxsize=64)
def _literal_address(host: str, port: int) -> tuple[Any, ...] | None:
    # An IP literal needs no resolver: anyio would send it to a worker thread.
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4:
        return ((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port)),)
    return ((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port, 0, 0)),)


# What a second connect() says of a connection still being set up; anything
# else but success is the connect's own failure (the first attempt's error is
# reported once, to whoever asks first).
_CONNECTING = frozenset(
    {errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EINVAL}  # EINVAL: Windows
)
_CONNECTED = frozenset({0, errno.EISCONN})


async def _connect_socket(sock: socket.socket, address: tuple[object, ...]) -> None:
    try:
        sock.connect(address)
    except BlockingIOError:
        pass
    else:
        return
    # A nearby peer (loopback, a LAN) has often answered by now: asking once
    # more costs a syscall, the wait below a loop turn and two epoll_ctl.
    error = sock.connect_ex(address)
    if error in _CONNECTED:
        return
    if error not in _CONNECTING:
        raise OSError(error, os.strerror(error))
    await anyio.wait_writable(sock)
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))


def ssl_context_from_cafile(cafile: str) -> ssl.SSLContext:
    """A verifying context that trusts the CA certificates in the PEM file ``cafile``.

    Only a regular file is read (a FIFO or device would block the event loop
    for as long as nobody writes to it), and the context is built once per
    file version (path, inode, size, modification time) and then reused: no
    disk read per request, and TLS sessions can resume across calls, which
    needs the same context.

    Raises:
        LocalProtocolError: the file cannot be read, is not a regular file,
            or holds no certificate.
    """
    try:
        info = os.stat(cafile)
    except (OSError, ValueError, TypeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise LocalProtocolError(f"cannot load CA file {cafile!r}: {reason}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise LocalProtocolError(f"cannot load CA file {cafile!r}: not a regular file")
    version = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return _context_for_cafile(os.path.realpath(cafile), version)


@lru_cache(maxsize=16)
def _context_for_cafile(path: str, version: tuple[int, ...]) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise LocalProtocolError(f"cannot load CA file {path!r}: {reason}") from exc


async def start_tls(
    stream: ByteStream,
    hostname: str,
    context: ssl.SSLContext,
    peer: str = "server",
    session: ssl.SSLSession | None = None,
) -> TLSStream:
    """Wrap ``stream`` in TLS, checking the certificate against ``hostname``.

    Works over any byte stream, so TLS through a tunnel and TLS-in-TLS compose.
    ``session`` (from an earlier connection with the same ``context``) is
    offered for resumption.

    Raises:
        TLSError: the handshake failed (untrusted or mismatched certificate,
            protocol mismatch, the peer is not speaking TLS).
    """
    try:
        return await TLSStream.wrap(stream, hostname, context, session)
    except ssl.SSLError as exc:
        raise TLSError(_describe_ssl_error(exc, peer, hostname)) from exc
    except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
        if isinstance(exc.__cause__, ssl.SSLError):
            raise TLSError(_describe_ssl_error(exc.__cause__, peer, hostname)) from exc
        raise TLSError(f"TLS handshake with {peer} {hostname!r} failed: connection closed") from exc


def _describe_ssl_error(exc: ssl.SSLError, peer: str, hostname: str) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        return f"certificate of {peer} {hostname!r} rejected: {detail}"
    return f"TLS handshake with {peer} {hostname!r} failed: {exc.reason or exc}"


def translate_errors(phase: Phase) -> _ErrorTranslation:
    """``with translate_errors(phase):`` turns anyio, ``OSError`` and ``ssl``
    errors of one phase into ours.

    Our own errors pass unchanged, also when anyio's TLS layer wrapped them.
    """
    return _TRANSLATIONS[phase]


class _ErrorTranslation:
    """The context manager of :func:`translate_errors`: a plain class, shared
    per phase (it holds no state), since it wraps every request's send and
    head read (a generator-based one costs ~2 µs a use)."""

    __slots__ = ("_doing", "_phase")

    def __init__(self, phase: Phase) -> None:
        self._phase = phase
        self._doing = _DOING[phase]

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, AcytooError):
            return
        doing = self._doing
        if isinstance(exc, anyio.EndOfStream):
            raise RemoteProtocolError("server closed the connection unexpectedly") from exc
        if isinstance(exc, (anyio.BrokenResourceError, OSError, ssl.SSLError)):
            if isinstance(exc.__cause__, AcytooError):
                raise exc.__cause__ from None
            if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError):
                raise TLSError(f"TLS failure while {doing}: {exc}") from exc
            if self._phase == "connect":
                raise ConnectError(f"connection failed while {doing}: {exc}") from exc
            raise RemoteProtocolError(f"connection broken while {doing}: {exc}") from exc
        if isinstance(exc, anyio.ClosedResourceError):
            raise RemoteProtocolError(f"connection closed while {doing}") from exc
        if isinstance(exc, anyio.BusyResourceError):
            raise LocalProtocolError(
                "another task is already reading this response; read it from one task"
            ) from exc


_DOING = {
    "connect": "connecting",
    "write": "sending the request",
    "read": "reading the response",
}

_TRANSLATIONS: dict[Phase, _ErrorTranslation] = {
    phase: _ErrorTranslation(phase) for phase in ("connect", "write", "read")
}
