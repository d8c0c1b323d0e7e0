"""httpx: ``aiter_text()`` for text, ``aiter_raw()`` for bytes.

Pool limits are lifted (``max_connections=None``) for the concurrency scenarios, keep-alive is
off (on, with httpx's default of 20 idle connections, when the scenario measures requests over
one client), timeouts are httpx's defaults, and ``trust_env=False`` keeps proxy variables out
of a loopback benchmark.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from benchmarks.clients.base import Client, Piece


class HttpxClient(Client):
    _client: httpx.AsyncClient

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            verify=self.ssl_context,
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=20 if self.keepalive else 0
            ),
            trust_env=False,
        )

    async def stop(self) -> None:
        await self._client.aclose()

    def stream(self, url: str) -> AsyncIterator[Piece]:
        return self._stream(url)

    async def _stream(self, url: str) -> AsyncIterator[Piece]:
        async with self._client.stream("GET", url) as response:
            response.raise_for_status()
            pieces = response.aiter_text() if self.kind == "text" else response.aiter_raw()
            async for piece in pieces:
                yield piece
