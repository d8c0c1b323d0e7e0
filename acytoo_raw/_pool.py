"""Connection slots and idle connections, safe under cancellation.

Every change to the bookkeeping happens in a plain function that never awaits,
so a cancellation can only land on the one ``await`` of :meth:`Pool.acquire`
(waiting for a slot), and that wait undoes itself in ``finally``. A slot is
"one connection open or being opened"; whoever holds a slot must give it back
with :meth:`Pool.release` or :meth:`Pool.release_slot`, exactly once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from contextlib import suppress

import anyio

from ._connection import Connection
from ._exceptions import LocalProtocolError, PoolTimeout
from ._timeouts import Limits

__all__ = ["Pool"]

_INFINITY = float("inf")


class _Waiter:
    __slots__ = ("connection", "event", "fresh", "granted", "key")

    def __init__(self, key: Hashable, fresh: bool) -> None:
        self.key = key
        self.fresh = fresh
        self.event = anyio.Event()
        self.granted = False
        self.connection: Connection | None = None


class _Nothing:
    """No slot and no idle connection can be had right now."""


_NOTHING = _Nothing()


class Pool:
    """Hands out idle connections (most recently used first) or slots for new ones.

    ``max_connections`` bounds connections open at once, idle or busy;
    requests beyond it wait in order. Idle connections are kept up to
    ``max_keepalive`` and until they expire; they are checked to be alive
    (without waiting) before reuse.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._open = 0  # Slots taken: connections open or being opened.
        self._idle: dict[Hashable, list[Connection]] = {}  # Most recently used last.
        self._idle_count = 0
        # No idle connection expires before this (a lower bound: taking one
        # out leaves it as it was, which costs at most one scan too many).
        self._next_expiry = _INFINITY
        self._busy: set[Connection] = set()
        self._waiters: deque[_Waiter] = deque()
        self._closed = False
        # anyio.current_time, or the same clock looked up once by the client.
        self.clock: Callable[[], float] = anyio.current_time

    @property
    def open_connections(self) -> int:
        """Connections open or being opened (slots taken)."""
        return self._open

    @property
    def idle_connections(self) -> int:
        return self._idle_count

    async def acquire(
        self, key: Hashable, timeout: float | None, *, fresh: bool = False
    ) -> Connection | None:
        """An idle, live connection for ``key``, or ``None``: a slot to open a new one in.

        ``fresh`` skips idle connections. Waits in line (first come, first
        served) while every slot is taken.

        Raises:
            PoolTimeout: no slot came free within ``timeout`` seconds.
            LocalProtocolError: the pool is closed.
        """
        self._check_open()
        if not self._waiters:  # Never overtake a request that is already waiting.
            got = self._take(key, fresh, self.clock())
            if got is not _NOTHING:
                return self._hand_out(got)
        waiter = _Waiter(key, fresh)
        self._waiters.append(waiter)
        try:
            with anyio.move_on_after(_INFINITY if timeout is None else timeout):
                await waiter.event.wait()
        except BaseException:  # Cancelled, even just after being granted a slot.
            self._forget(waiter)
            raise
        if waiter.granted:
            if self._closed:  # Granted, then the pool closed before this task resumed.
                if waiter.connection is not None:
                    waiter.connection.close()
                self._check_open()
            return self._hand_out(waiter.connection)
        self._forget(waiter)
        self._check_open()
        raise PoolTimeout(
            f"no connection came free within {timeout} s "
            f"(max_connections={self._limits.max_connections})"
        )

    def _hand_out(self, got: Connection | _Nothing | None) -> Connection | None:
        assert not isinstance(got, _Nothing)
        if got is not None:
            self._busy.add(got)
        return got

    def _forget(self, waiter: _Waiter) -> None:
        """A waiter leaves the line (timed out or cancelled): undo any grant it had."""
        if waiter.granted:
            # Granted while being cancelled: give back what it was handed.
            waiter.granted = False
            if self._closed:  # close() could not see it: it was in neither list.
                if waiter.connection is not None:
                    waiter.connection.close()
                return
            if waiter.connection is not None:
                self._keep(waiter.connection, self.clock())
                waiter.connection = None
            else:
                self._open -= 1
            self._serve_waiters()
            return
        with suppress(ValueError):  # Already removed by close().
            self._waiters.remove(waiter)

    def track(self, connection: Connection) -> None:
        """A connection opened in a slot this caller holds is now busy."""
        self._busy.add(connection)

    def release(self, connection: Connection, *, reusable: bool, expiry: float = 0.0) -> None:
        """Give back a busy connection: kept idle for ``expiry`` seconds when ``reusable``."""
        self._busy.discard(connection)
        if self._closed:  # close() already closed it and cleared the count.
            connection.close()
            return
        now = self.clock()
        if reusable and expiry > 0 and self._limits.max_keepalive > 0:
            connection.expires_at = now + expiry
            self._keep(connection, now)
        else:
            connection.close()
            self._open -= 1
        self._serve_waiters()

    def discard(self, connection: Connection) -> None:
        """Close a busy connection but keep its slot: the caller opens a new one in it."""
        self._busy.discard(connection)
        connection.close()

    def release_slot(self) -> None:
        """Give back a slot whose connection could not be opened."""
        if self._closed:
            return
        self._open -= 1
        self._serve_waiters()

    def _keep(self, connection: Connection, now: float) -> None:
        self._idle.setdefault(connection.route.key, []).append(connection)
        self._idle_count += 1
        self._next_expiry = min(self._next_expiry, connection.expires_at)
        self._prune(now)
        if self._idle_count > self._limits.max_keepalive:
            self._close_oldest_idle()

    def _take(self, key: Hashable, fresh: bool, now: float) -> Connection | _Nothing | None:
        self._prune(now)
        if not fresh:
            idle = self._idle.get(key)
            while idle:
                connection = idle.pop()
                self._idle_count -= 1
                if connection.is_alive():
                    return connection
                connection.close()
                self._open -= 1
        if self._open < self._limits.max_connections:
            self._open += 1
            return None
        if self._close_oldest_idle():  # Its slot passes straight to this request.
            self._open += 1
            return None
        return _NOTHING

    def _prune(self, now: float) -> None:
        """Close idle connections past their expiry."""
        if not self._idle_count or now < self._next_expiry:
            return  # None can have expired: no scan (it runs twice per request).
        self._next_expiry = _INFINITY
        for key, idle in list(self._idle.items()):
            live = [c for c in idle if c.expires_at > now]
            for connection in idle:
                if connection.expires_at <= now:
                    connection.close()
                    self._open -= 1
            self._idle_count -= len(idle) - len(live)
            if live:
                self._idle[key] = live
                self._next_expiry = min(self._next_expiry, *(c.expires_at for c in live))
            else:
                del self._idle[key]

    def _close_oldest_idle(self) -> bool:
        oldest: Connection | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].expires_at < oldest.expires_at):
                oldest = idle[0]
        if oldest is None:
            return False
        idle = self._idle[oldest.route.key]
        idle.remove(oldest)
        if not idle:
            del self._idle[oldest.route.key]
        self._idle_count -= 1
        oldest.close()
        self._open -= 1
        return True

    def _serve_waiters(self) -> None:
        now = self.clock()
        while self._waiters:
            waiter = self._waiters[0]
            got = self._take(waiter.key, waiter.fresh, now)
            if isinstance(got, _Nothing):
                return
            self._waiters.popleft()
            waiter.granted = True
            waiter.connection = got
            waiter.event.set()

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError("this Client is closed; create a new one")

    def close(self) -> None:
        """Close every connection, idle or busy; waiting requests fail."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        self._idle_count = 0
        for connection in self._busy:
            connection.close()
        self._busy.clear()
        self._open = 0
        while self._waiters:
            self._waiters.popleft().event.set()  # Not granted: they raise.
