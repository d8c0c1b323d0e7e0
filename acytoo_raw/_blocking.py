"""Driving an async generator from code without an event loop (g4f's ``create_completion``).

Each call runs on an event loop of its own in a helper thread, unless it uses
a :class:`~acytoo_raw.Client`: a client belongs to one loop, so every blocking
call with a client runs on one shared loop thread, started on first use and
stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import CancelledError, Future
from contextlib import AbstractContextManager, aclosing, suppress
from typing import TYPE_CHECKING, Final

from anyio.from_thread import BlockingPortal, start_blocking_portal

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["iterate_blocking", "shared_portal"]


class _Done:
    """Marks the end of an async generator driven from another thread."""


_DONE: Final = _Done()

_shared: tuple[BlockingPortal, AbstractContextManager[BlockingPortal]] | None = None
_shared_lock = threading.Lock()
# Clients bound to the shared loop: closed there before it stops at exit.
_bound: weakref.WeakSet[Client] = weakref.WeakSet()


async def _next_or_done(agen: AsyncGenerator[str, None]) -> str | _Done:
    # StopAsyncIteration must not cross the portal: it would be mistaken for
    # the end of the portal call itself.
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return _DONE


async def _join(agen: AsyncGenerator[str, None]) -> str:
    async with aclosing(agen):
        return "".join([piece async for piece in agen])


def shared_portal() -> BlockingPortal:
    """The one loop thread that blocking calls with a Client run on."""
    global _shared
    with _shared_lock:
        if _shared is None:
            manager = start_blocking_portal()
            _shared = (manager.__enter__(), manager)
            atexit.register(_stop_shared)
        return _shared[0]


def _stop_shared() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            portal, manager = _shared
            for client in list(_bound):
                with suppress(Exception):
                    portal.call(client.aclose)
            _shared = None
            manager.__exit__(None, None, None)


def iterate_blocking(
    agen: AsyncGenerator[str, None], stream: bool, *, client: Client | None = None
) -> Iterator[str]:
    """The pieces of ``agen``, each waited for in this thread; one joined piece without ``stream``.

    With ``client`` (the one ``agen`` uses), on the shared loop thread, which
    the client is bound to from then on (:meth:`Client.close` closes it there).
    Closing the iterator, or Ctrl-C while it waits, cancels the request and
    closes its connection.
    """
    if client is not None:
        portal = shared_portal()
        client.bind_to_portal(portal)
        _bound.add(client)
        yield from _iterate(portal, agen, stream)
        return
    with start_blocking_portal() as portal:
        yield from _iterate(portal, agen, stream)


def _iterate(
    portal: BlockingPortal, agen: AsyncGenerator[str, None], stream: bool
) -> Iterator[str]:
    try:
        if not stream:
            answer = _wait(portal.start_task_soon(_join, agen))
            assert isinstance(answer, str)
            yield answer
            return
        while True:
            piece = _wait(portal.start_task_soon(_next_or_done, agen))
            if isinstance(piece, _Done):
                return
            yield piece
    finally:
        portal.call(agen.aclose)


def _wait(future: Future[str] | Future[str | _Done]) -> str | _Done:
    try:
        result: str | _Done = future.result()
    except BaseException:
        # Ctrl-C (or any interruption) while the loop thread is mid-request:
        # cancel it there, and wait until that cancellation has run.
        future.cancel()
        with suppress(CancelledError):
            future.exception()
        raise
    return result
