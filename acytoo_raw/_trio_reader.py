"""The trio read side: trio's own ``wait_readable``, timeouts from one timer task per run.

Its one job is :class:`TrioReceiver` and the per-run timers behind it; what
it shares with the other receivers (the base class, the read buffer, the
limits) is in :mod:`._readers`, which picks the receiver for the running loop.
"""

from __future__ import annotations

import heapq
import itertools
import socket
from typing import TYPE_CHECKING, Any

import anyio

from ._readers import _INFINITY, _MAX_READS_WITHOUT_CHECKPOINT, READ_SIZE, Receiver, _read_buffer

if TYPE_CHECKING:
    import trio

__all__ = ["TrioReceiver", "trio_timers"]

# Dead entries (streams closed or cancelled before their timer fired) that the
# trio timer heap tolerates before it is rebuilt without them.
_MAX_DEAD_TIMERS = 64


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
