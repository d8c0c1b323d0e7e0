"""The event loop a client is bound to: who it is and its clock, looked up once.

Each anyio call that needs the backend (``anyio.current_time()``,
``anyio.lowlevel.current_token()``, ``anyio.get_cancelled_exc_class()``) first
finds out which library runs (through sniffio when it is installed), a few µs
each and a dozen of them per request. A
client runs on one loop, so it looks these up when it is first used and keeps
them: the clock is the very one anyio reads (asyncio's ``loop.time``,
``trio.current_time``), so deadlines mix freely with anyio's cancel scopes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import anyio
import anyio.lowlevel

__all__ = ["LoopBinding", "bind_to_running_loop"]


class LoopBinding:
    """The running loop's identity, clock and cancellation exception."""

    __slots__ = ("cancelled", "clock", "is_current", "token")

    def __init__(
        self,
        token: object,
        is_current: Callable[[], bool],
        clock: Callable[[], float],
        cancelled: type[BaseException],
    ) -> None:
        self.token = token  # anyio's token: what tells two loops apart, whatever the backend
        self.is_current = is_current  # Cheap: True only while this same loop runs the caller.
        self.clock = clock
        self.cancelled = cancelled


def bind_to_running_loop() -> LoopBinding:
    """The binding of the loop running the caller.

    Raises:
        Exception: no event loop runs the caller (anyio's own error).
    """
    token = anyio.lowlevel.current_token()
    cancelled = anyio.get_cancelled_exc_class()
    native = token.native_token  # asyncio: the loop; trio: its TrioToken
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and isinstance(native, asyncio.AbstractEventLoop):
        get_loop = asyncio._get_running_loop  # None outside a running loop, never raises.
        current_task = asyncio.current_task

        def in_this_loop() -> bool:
            # The task check tells a trio guest run on this loop (trio tasks
            # are no asyncio tasks) from the loop's own tasks.
            return get_loop() is native and current_task(native) is not None

        return LoopBinding(token, in_this_loop, native.time, cancelled)
    trio = sys.modules.get("trio")
    if trio is not None and isinstance(native, trio.lowlevel.TrioToken):
        current_trio_token = trio.lowlevel.current_trio_token

        def in_this_run() -> bool:
            try:
                return current_trio_token() is native
            except RuntimeError:
                return False

        return LoopBinding(token, in_this_run, trio.current_time, cancelled)

    def same_token() -> bool:  # pragma: no cover - another anyio backend: ask anyio
        try:
            return bool(anyio.lowlevel.current_token() == token)
        except Exception:
            return False

    return LoopBinding(token, same_token, anyio.current_time, cancelled)  # pragma: no cover
