"""The read side of a socket, one implementation per event loop, with cheap read timeouts.

On a paced stream two costs dominate each piece when paid per wait
(PERF_NOTES.md, "Per-piece and per-connection costs"): asyncio's
``add_reader``/``remove_reader`` pair behind ``anyio.wait_readable``, and a
cancel scope per wait for the read timeout. So:

- asyncio and uvloop (:class:`AsyncioReceiver`): the reader callback stays
  registered for the stream's life; it reads into the shared buffer and hands
  the bytes to the parked reader or queues them, at most
  :data:`MAX_QUEUED` bytes (then it unregisters until a read needs it again).
- trio (:class:`TrioReceiver`): trio's own ``wait_readable``.
- both: one timer per stream, re-armed lazily. Each wait only records its
  end; a timer that fires before the current end re-arms itself there, and
  wakes the parked reader only once that end has passed.
- elsewhere (a loop without ``add_reader``, a stream made outside a loop):
  :class:`PortableReceiver`, ``anyio.wait_readable`` under a cancel scope.

A wait that is cancelled removes the reader registration and the timer, and
so does :meth:`Receiver.close`: nothing stays registered with the loop.
Everything here is private to :mod:`._network`, whose ``SocketStream`` is the
one caller.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._exceptions import ReadTimeout, TimeoutException, TotalTimeout

if TYPE_CHECKING:
    import asyncio

    import trio

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

# Dead entries (streams closed or cancelled before their timer fired) that the
# trio timer heap tolerates before it is rebuilt without them.
_MAX_DEAD_TIMERS = 64

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


class _TrioTimers:
    """Read deadlines of every stream in one trio run, served by one system task."""

    __slots__ = ("_counter", "_dead", "_heap", "_scope")

    def __init__(self) -> None:
        # Entries are [when, sequence number, receiver or None once cancelled].
        self._heap: list[list[Any]] = []
        self._counter = itertools.count()
        self._dead = 0
        self._scope: trio.CancelScope | None = None

    def add(self, when: float, receiver: TrioReceiver) -> list[Any]:
        entry = [when, next(self._counter), receiver]
        heapq.heappush(self._heap, entry)
        scope = self._scope
        if scope is not None and when < scope.deadline:
            scope.deadline = when
        return entry

    def discard(self, entry: list[Any]) -> None:
        entry[2] = None
        self._dead += 1
        heap = self._heap
        if self._dead > _MAX_DEAD_TIMERS and self._dead * 2 > len(heap):
            heap[:] = [entry for entry in heap if entry[2] is not None]
            heapq.heapify(heap)
            self._dead = 0

    @property
    def live(self) -> list[TrioReceiver]:
        """Receivers with a timer pending (for tests)."""
        return [entry[2] for entry in self._heap if entry[2] is not None]

    async def run(self) -> None:
        import trio

        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                entry = heapq.heappop(heap)
                receiver = entry[2]
                if receiver is None:
                    self._dead -= 1
                else:
                    receiver.on_timer(now)
            with trio.CancelScope(deadline=heap[0][0] if heap else _INFINITY) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None


_trio_timers: Any = None  # trio.lowlevel.RunVar[_TrioTimers], made on first use.


def trio_timers() -> _TrioTimers:
    """This trio run's timers, their task started on first use."""
    global _trio_timers
    import trio

    if _trio_timers is None:
        _trio_timers = trio.lowlevel.RunVar("acytoo_raw_read_timers")
    try:
        timers: _TrioTimers = _trio_timers.get()
    except LookupError:
        timers = _TrioTimers()
        _trio_timers.set(timers)
        trio.lowlevel.spawn_system_task(timers.run, name="acytoo_raw read timers")
    return timers


class TrioReceiver(Receiver):
    """trio: its own ``wait_readable``; timeouts from one timer task per run."""

    __slots__ = ("_parked", "_timer", "_timers", "_trio")

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        import trio

        self._trio = trio
        self._parked = False
        self._timers: _TrioTimers | None = None
        self._timer: list[Any] | None = None  # Our entry in the timers' heap.

    async def receive(self, max_bytes: int) -> bytes:
        if self._parked:
            raise anyio.BusyResourceError("reading from")
        view = _read_buffer()
        if max_bytes < READ_SIZE:
            view = view[:max_bytes]
        trio = self._trio
        wait = self._drained
        while True:
            if wait:
                # Waited inline, not in a coroutine of its own: one object less per piece.
                self._before_wait()
                try:
                    await trio.lowlevel.wait_readable(self._fd)
                except trio.ClosedResourceError:
                    if self._timed_out and not self._closed:
                        raise self._expired() from None
                    raise anyio.ClosedResourceError from None
                except trio.BusyResourceError:  # Someone else waits on our descriptor.
                    raise anyio.BusyResourceError("reading from") from None
                except BaseException:
                    self._cancel_timer()
                    raise
                finally:
                    self._parked = False
            data = self._read_now(view)
            if data is not None:
                break
            wait = True
        if self._deadline != _INFINITY and trio.current_time() > self._deadline:
            raise self._late()
        self._reads += 1
        if self._reads >= _MAX_READS_WITHOUT_CHECKPOINT:
            self._reads = 0
            await trio.lowlevel.checkpoint()
        return data

    def _before_wait(self) -> None:
        """Get ready to wait: the timer armed, the wait marked as ours."""
        self._reads = 0
        if self._closed:
            raise anyio.ClosedResourceError
        if self._limited:
            end = self._begin_wait(self._trio.current_time())
            timer = self._timer
            if end != _INFINITY and (timer is None or end < timer[0]):
                timers = self._timers
                if timers is None:
                    timers = self._timers = trio_timers()
                if timer is not None:
                    timers.discard(timer)
                self._timer = timers.add(end, self)
        self._parked = True

    def on_timer(self, now: float) -> None:
        """Our timer fired (called by the timers' task)."""
        self._timer = None
        if not self._parked:
            return  # Not waiting: the next wait arms a timer if it needs one.
        if now >= self._wait_end:
            self._timed_out = True
            self._trio.lowlevel.notify_closing(self._fd)
        else:
            assert self._timers is not None
            self._timer = self._timers.add(self._wait_end, self)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            assert self._timers is not None
            self._timers.discard(self._timer)
            self._timer = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        if self._parked:
            self._trio.lowlevel.notify_closing(self._fd)


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
                return AsyncioReceiver(sock, loop)
            return PortableReceiver(sock)
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return TrioReceiver(sock)
    return PortableReceiver(sock)


def _has_readers(loop: asyncio.AbstractEventLoop) -> bool:
    # Windows' Proactor loop has no add_reader (anyio runs a selector thread for it).
    proactor: type[Any] | None = getattr(sys.modules["asyncio"], "ProactorEventLoop", None)
    return proactor is None or not isinstance(loop, proactor)
