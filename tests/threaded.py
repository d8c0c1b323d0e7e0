"""The loopback server on its own event loop thread, for blocking callers in tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from anyio.from_thread import start_blocking_portal

from acytoo_raw.server import serve


@contextmanager
def threaded_server(delay: float = 0.0) -> Iterator[str]:
    """Yield the base URL of a loopback server running in a helper thread."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve(delay=delay)) as base_url,
    ):
        yield base_url
