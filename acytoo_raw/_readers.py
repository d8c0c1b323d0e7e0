"""The read side of a socket, one implementation per event loop, with cheap read timeouts.

On a paced stream two costs dominate each piece when paid per wait
(PERF_NOTES.md, "Per-piece and per-connection costs"): asyncio's
``add_reader``/``remove_reader`` pair behind ``anyio.wait_readable``, and a
cancel scope per wait for the read timeout. So:

- asyncio and uvloop (:class:`AsyncioReceiver`, in :mod:`._asyncio_reader`):
  the reader callback stays
  registered for the stream's life; it reads into the shared buffer and hands
  the bytes to the parked reader or queues them, at most
  :data:`MAX_QUEUED` bytes (then it unregisters until a read needs it again).
- trio (:class:`TrioReceiver`, in :mod:`._trio_reader`): trio's own
  ``wait_readable``.
- both: one timer per stream, re-armed lazily. Each wait only records its
  end; a timer that fires before the current end re-arms itself there, and
  wakes the parked reader only once that end has passed.
- elsewhere (a loop without ``add_reader``, a stream made outside a loop):
  :class:`PortableReceiver`, ``anyio.wait_readable`` under a cancel scope.

A wait that is cancelled removes the reader registration and the timer, and
so does :meth:`Receiver.close`: nothing stays registered with the loop.

This module holds what the receivers share (the base class, the read buffer,
the limits), :class:`PortableReceiver` and :func:`new_receiver`; it re-exports
:class:`AsyncioReceiver`, :class:`TrioReceiver` and :func:`trio_timers`.
Everything here is private to :mod:`._network`, whose ``SocketStream`` is the
one caller.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._exceptions import ReadTimeout, TimeoutException, TotalTimeout

if TYPE_CHECKING:
    import asyncio

    from ._asyncio_reader import AsyncioReceiver
    from ._trio_reader import TrioReceiver, trio_timers

__all__ = [
    "MAX_QUEUED",
    "READ_SIZE",
    "AsyncioReceiver",
    "PortableReceiver",
    "Receiver",
    "TrioReceiver",
    "new_receiver",
    "trio_timers",
]

# 64 KiB reads: measured here (benchmarks/, UTF-8 text throughput) faster than
# 16 KiB, with fewer loop turns per megabyte. The buffer is one per thread, not
# per connection: each read is copied out before the next await, so a thousand
# streams cost no more buffer memory than one.
READ_SIZE = 64 * 1024

# What asyncio's reader callback may queue unread before it stops reading: a
# reader that falls behind leaves the rest in the kernel (TCP flow control).
MAX_QUEUED = 64 * 1024

# Reads that find data waiting do not touch the event loop; after this many in
# a row we yield once anyway, so a peer that never pauses can't starve the loop
# or make the caller uncancellable.
_MAX_READS_WITHOUT_CHECKPOINT = 2

_INFINITY = float("inf")

_buffers = threading.local()


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(READ_SIZE))
    return view


def _broken(exc: OSError) -> anyio.BrokenResourceError:
    error = anyio.BrokenResourceError(exc.strerror or str(exc))
    error.__cause__ = exc
    return error


class Receiver:
    """Reads from a connected non-blocking socket, bounded by the read limits.

    ``receive`` raises ``anyio.EndOfStream`` at EOF,
    ``anyio.BrokenResourceError`` on a reset, ``anyio.ClosedResourceError``
    once closed, ``anyio.BusyResourceError`` when another task is already
    waiting on it, :class:`ReadTimeout` after ``gap`` seconds of silence and
    the deadline's error once ``deadline`` (``anyio.current_time()``) passed.
    """

    __slots__ = (
        "_closed",
        "_deadline",
        "_deadline_error",
        "_deadline_message",
        "_drained",
        "_fd",
        "_gap",
        "_gap_end",
        "_limited",
        "_reads",
        "_socket",
        "_timed_out",
        "_wait_end",
    )

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._fd = sock.fileno()
        self._closed = False
        # The last read left the kernel buffer empty: wait before the next
        # recv rather than pay a failing one (a syscall and an exception).
        # True at first: a new connection has nothing to read yet.
        self._drained = True
        self._reads = 0  # Reads since the last checkpoint.
        self._gap: float | None = None
        self._deadline = _INFINITY
        # Two attributes, not a tuple: one object less per connection.
        self._deadline_error: type[TimeoutException] = TotalTimeout
        self._deadline_message = ""
        self._limited = False
        self._wait_end = _INFINITY
        self._gap_end = _INFINITY
        self._timed_out = False

    def set_limits(
        self,
        gap: float | None,
        deadline: float,
        deadline_error: type[TimeoutException],
        message: str,
    ) -> None:
        self._gap = gap
        self._deadline = deadline
        self._deadline_error = deadline_error
        self._deadline_message = message
        self._limited = gap is not None or deadline != _INFINITY

    async def receive(self, max_bytes: int) -> bytes:
        raise NotImplementedError  # pragma: no cover

    def receive_nowait(self) -> bytes | None:
        """Bytes readable now: ``None`` if none, ``b""`` at EOF (never waits)."""
        view = _read_buffer()
        try:
            size = self._socket.recv_into(view)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise _broken(exc) from exc
        return bytes(view[:size])

    def answered(self) -> bool | None:
        """Whether the peer sent something (``True``) or closed (``False``); ``None``: neither."""
        try:
            return bool(self._socket.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return None
        except OSError as exc:
            raise _broken(exc) from exc

    def close(self) -> None:
        """Forget every registration and timer, and wake a parked reader."""
        self._closed = True

    def _begin_wait(self, now: float) -> float:
        """Record when this wait ends (``now`` is the loop's clock); return that end."""
        gap = self._gap
        gap_end = now + gap if gap is not None else _INFINITY
        self._gap_end = gap_end
        end = self._wait_end = gap_end if gap_end < self._deadline else self._deadline
        self._timed_out = False
        return end

    def _expired(self) -> TimeoutException:
        if self._wait_end == self._gap_end:
            return ReadTimeout(f"no data from the server for {self._gap} s")
        return self._late()

    def _late(self) -> TimeoutException:
        return self._deadline_error(self._deadline_message)

    def _read_now(self, view: memoryview) -> bytes | None:
        """One ``recv``: the bytes, or ``None`` when nothing is there yet."""
        try:
            size = self._socket.recv_into(view)
        except BlockingIOError:
            return None
        except OSError as exc:
            if self._closed:
                raise anyio.ClosedResourceError from None
            raise _broken(exc) from exc
        if size == 0:
            raise anyio.EndOfStream
        self._drained = size < len(view)
        return bytes(view[:size])  # Before any await: the buffer is shared.


class PortableReceiver(Receiver):
    """Any loop anyio runs: ``anyio.wait_readable`` under a cancel scope per wait."""

    __slots__ = ("_parked",)

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._parked = False

    async def receive(self, max_bytes: int) -> bytes:
        if self._parked:
            raise anyio.BusyResourceError("reading from")
        view = _read_buffer()
        if max_bytes < READ_SIZE:
            view = view[:max_bytes]
        if self._drained:
            await self._wait()
        while True:
            data = self._read_now(view)
            if data is not None:
                break
            await self._wait()
        if self._deadline != _INFINITY and anyio.current_time() > self._deadline:
            raise self._late()
        self._reads += 1
        if self._reads >= _MAX_READS_WITHOUT_CHECKPOINT:
            self._reads = 0
            await anyio.lowlevel.checkpoint()
        return data

    async def _wait(self) -> None:
        self._reads = 0
        if self._closed:
            raise anyio.ClosedResourceError
        self._parked = True
        try:
            if not self._limited:
                await anyio.wait_readable(self._socket)
                return
            end = self._begin_wait(anyio.current_time())
            with anyio.CancelScope(deadline=end) as scope:
                await anyio.wait_readable(self._socket)
        finally:
            self._parked = False
        if scope.cancelled_caught:
            raise self._expired()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._parked:
            anyio.notify_closing(self._socket)


def new_receiver(sock: socket.socket) -> Receiver:
    """The receiver for the event loop running now (portable outside of one)."""
    # Neither asyncio nor trio is imported here for a loop that is not running:
    # whichever runs was imported by whoever started it.
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if _has_readers(loop):
                from ._asyncio_reader import AsyncioReceiver

                return AsyncioReceiver(sock, loop)
            return PortableReceiver(sock)
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            from ._trio_reader import TrioReceiver

            return TrioReceiver(sock)
    return PortableReceiver(sock)


def _has_readers(loop: asyncio.AbstractEventLoop) -> bool:
    # Windows' Proactor loop has no add_reader (anyio runs a selector thread for it).
    proactor: type[Any] | None = getattr(sys.modules["asyncio"], "ProactorEventLoop", None)
    return proactor is None or not isinstance(loop, proactor)


def __getattr__(name: str) -> Any:
    # The backends' modules import Receiver from this one, so they are imported
    # on first use, not at the top: either can then be imported first, and the
    # names above stay importable from here.
    if name == "AsyncioReceiver":
        from ._asyncio_reader import AsyncioReceiver

        return AsyncioReceiver
    if name in ("TrioReceiver", "trio_timers"):
        from . import _trio_reader

        return getattr(_trio_reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
