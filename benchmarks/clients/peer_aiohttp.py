"""aiohttp: bytes from ``iter_any()``, decoded per piece (the original provider) or incrementally.

The connection pool limit (100 by default) is lifted so that 200 or 1000 concurrent streams
really run at once, and connections are not kept alive (every request is a new connection,
as with the other clients) unless the scenario measures requests over one client: then the
session keeps them, as by default. Timeouts are aiohttp's defaults, as a user would have them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from benchmarks.clients.base import Client, Piece
from benchmarks.clients.decoding import DecodeMode, text_decoder


class AiohttpClient(Client):
    decoding: DecodeMode = "incremental"
    _session: aiohttp.ClientSession

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, force_close=not self.keepalive, ssl=self.ssl_context
        )
        self._session = aiohttp.ClientSession(connector=connector)

    async def stop(self) -> None:
        await self._session.close()

    def stream(self, url: str) -> AsyncIterator[Piece]:
        return self._stream(url)

    async def _stream(self, url: str) -> AsyncIterator[Piece]:
        async with self._session.get(url) as response:
            response.raise_for_status()
            if self.kind == "bytes":
                async for data in response.content.iter_any():
                    yield data
                return
            feed, flush = text_decoder(self.decoding, response.charset or "utf-8")
            async for data in response.content.iter_any():
                yield feed(data)
            if tail := flush():
                yield tail


class AiohttpProviderClient(AiohttpClient):
    """What the original Acytoo provider did: ``yield stream.decode()`` for each piece."""

    decoding: DecodeMode = "per-piece"
