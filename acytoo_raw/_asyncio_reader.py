"""The asyncio and uvloop read side: a reader callback registered for the stream's life.

Its one job is :class:`AsyncioReceiver`; what it shares with the other
receivers (the base class, the read buffer, the limits) is in :mod:`._readers`,
which picks the receiver for the running loop.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ._readers import (
    _INFINITY,
    _MAX_READS_WITHOUT_CHECKPOINT,
    MAX_QUEUED,
    READ_SIZE,
    Receiver,
    _broken,
    _read_buffer,
)

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncioReceiver"]


class AsyncioReceiver(Receiver):
    """asyncio and uvloop: a reader callback registered for the stream's life."""

    __slots__ = (
        "_clock",
        "_eof",
        "_error",
        "_loop",
        "_queue",
        "_queued",
        "_reading",
        "_timer",
        "_timer_at",
        "_waiter",
    )

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(sock)
        self._loop = loop
        self._clock = loop.time
        # Read by the callback, not yet handed out; made when first needed.
        self._queue: list[bytes] | None = None
        self._queued = 0
        self._reading = False  # The callback is registered.
        self._eof = False
        self._error: anyio.BrokenResourceError | None = None
        # bytes: data; b"": EOF; None: woken without data (closed, error, timed out).
        self._waiter: asyncio.Future[bytes | None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = _INFINITY

    async def receive(self, max_bytes: int) -> bytes:
        if self._waiter is not None:  # Before touching any state: the parked reader keeps it.
            raise anyio.BusyResourceError("reading from")
        data: bytes | None
        if self._queue:
            data = self._dequeue(max_bytes)
        elif self._eof:
            raise anyio.EndOfStream
        elif self._error is not None:
            error, self._error = self._error, None
            raise error
        else:
            data = None
            if not self._drained:
                view = _read_buffer()
                data = self._read_now(view[:max_bytes] if max_bytes < READ_SIZE else view)
            if data is None:
                # Parked inline, not in a coroutine of its own: one object less per piece.
                waiter = self._park()
                try:
                    woken = await waiter
                except BaseException:
                    self._waiter = None
                    self._abandon(waiter)
                    raise
                self._waiter = None
                data = self._woken(woken, max_bytes)
        if self._deadline != _INFINITY and self._clock() > self._deadline:
            raise self._late()
        self._reads += 1
        if self._reads >= _MAX_READS_WITHOUT_CHECKPOINT:
            self._reads = 0
            await anyio.lowlevel.checkpoint()
        return data

    def _dequeue(self, max_bytes: int) -> bytes:
        queue = self._queue
        assert queue is not None
        if len(queue) == 1 and self._queued <= max_bytes:
            data = queue.pop()
        else:
            data = b"".join(queue)
            queue.clear()
            if len(data) > max_bytes:
                queue.append(data[max_bytes:])
                data = data[:max_bytes]
        self._queued -= len(data)
        if not self._reading:
            # The callback stopped at the bound: the kernel may hold more.
            self._drained = False
        return data

    def _park(self) -> asyncio.Future[bytes | None]:
        """Get ready to wait: the reader registered, the timer armed; the future to await."""
        self._reads = 0
        if self._closed:
            raise anyio.ClosedResourceError
        if not self._reading:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True
        if self._limited:
            end = self._begin_wait(self._clock())
            if end < self._timer_at:
                self._set_timer(end)
        waiter: asyncio.Future[bytes | None] = self._loop.create_future()
        self._waiter = waiter
        return waiter

    def _woken(self, data: bytes | None, max_bytes: int) -> bytes:
        """What the parked reader was woken with: bytes, or the reason as an exception."""
        if data is None:
            # Timed out, closed or broken: this stream reads no more, so leave
            # nothing registered (a cancellation racing the timer ends the same).
            self._stop_reading()
            self._cancel_timer()
            raise self._wake_reason()
        if not data:
            raise anyio.EndOfStream
        if len(data) > max_bytes:
            self._unread(data[max_bytes:])
            data = data[:max_bytes]
        return data

    def _wake_reason(self) -> BaseException:
        if self._closed:
            return anyio.ClosedResourceError()
        if self._error is not None:
            error, self._error = self._error, None
            return error
        return self._expired()

    def _abandon(self, waiter: asyncio.Future[bytes | None]) -> None:
        """A wait was cancelled: keep bytes it was handed, unregister everything."""
        if waiter.done() and not waiter.cancelled():
            data = waiter.result()
            if data:
                self._unread(data)
        else:
            waiter.cancel()
        self._stop_reading()
        self._cancel_timer()

    def _on_readable(self) -> None:
        room = MAX_QUEUED - self._queued
        view = _read_buffer()
        if room < READ_SIZE:
            view = view[:room]
        try:
            size = self._socket.recv_into(view)
        except BlockingIOError:
            return
        except OSError as exc:
            self._stop_reading()
            self._error = _broken(exc)
            self._wake(None)
            return
        if size == 0:
            self._stop_reading()
            self._eof = True
            self._wake(b"")
            return
        data = bytes(view[:size])
        self._drained = size < len(view)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(data)
            return
        if self._queue is None:
            self._queue = [data]
        else:
            self._queue.append(data)
        self._queued += size
        if self._queued >= MAX_QUEUED:
            self._stop_reading()

    def _unread(self, data: bytes) -> None:
        """Put ``data`` back in front of what is queued."""
        if self._queue is None:
            self._queue = [data]
        else:
            self._queue.insert(0, data)
        self._queued += len(data)

    def _wake(self, result: bytes | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)
        self._timer_at = when

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = _INFINITY

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = _INFINITY
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # Not waiting: the next wait arms a timer if it needs one.
        if self._clock() >= self._wait_end:
            self._timed_out = True
            waiter.set_result(None)
        else:
            self._set_timer(self._wait_end)  # Waits began since: their end is later.

    def receive_nowait(self) -> bytes | None:
        if self._queue:
            return self._dequeue(READ_SIZE)
        if self._eof:
            return b""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return super().receive_nowait()

    def answered(self) -> bool | None:
        if self._queue or self._error is not None:
            return True
        if self._eof:
            return False
        return super().answered()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue = None
        self._queued = 0
        if not self._loop.is_closed():
            self._stop_reading()
        self._reading = False
        self._cancel_timer()
        self._wake(None)
