"""acytoo_raw: ``stream_text`` / ``stream_bytes`` (the engine under the provider), or a
long-lived ``acytoo_raw.Client`` when the scenario measures requests over one client.

Default timeouts (connect, write, and read between pieces) and default ``Limits``, as a user
would have them. Variants: ``record_pieces=True`` (the cost of per-piece timings) and a new
``Client`` per request (no keep-alive, no TLS session to resume: a full handshake each time).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import acytoo_raw
from benchmarks.clients.base import Client, Piece


class AcytooClient(Client):
    record_pieces = False
    fresh_client = False  # a new acytoo_raw.Client for every request
    _client: acytoo_raw.Client | None = None

    async def start(self) -> None:
        if self.keepalive and not self.fresh_client:
            self._client = acytoo_raw.Client(ssl_context=self.ssl_context)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def stream(self, url: str) -> AsyncIterator[Piece]:
        if self.fresh_client:
            return self._fresh(url)
        if self._client is not None:
            return self._over(self._client, url)
        if self.record_pieces:
            return self._recorded(url)
        produce = acytoo_raw.stream_text if self.kind == "text" else acytoo_raw.stream_bytes
        return produce(url, method="GET", ssl_context=self.tls_for(url))

    async def _fresh(self, url: str) -> AsyncIterator[Piece]:
        async with acytoo_raw.Client(ssl_context=self.ssl_context) as client:
            async for piece in self._over(client, url):
                yield piece

    async def _over(self, client: acytoo_raw.Client, url: str) -> AsyncIterator[Piece]:
        """``client.stream_text``/``stream_bytes`` spelt out, to read the response's timings."""
        async with client.open_stream(
            url, method="GET", record_pieces=self.record_pieces
        ) as response:
            await response.raise_for_status()
            pieces = response.aiter_text() if self.kind == "text" else response.aiter_bytes()
            async with aclosing(pieces):
                async for piece in pieces:
                    yield piece
            self.count("requests")
            self.count("reused", response.timings.reused)
            self.count("tls_resumed", response.timings.tls_resumed)

    async def _recorded(self, url: str) -> AsyncIterator[Piece]:
        """The module-level ``stream_text``/``stream_bytes`` with ``record_pieces=True``."""
        async with acytoo_raw.open_stream(
            url, method="GET", ssl_context=self.tls_for(url), record_pieces=True
        ) as response:
            await response.raise_for_status()
            pieces = response.aiter_text() if self.kind == "text" else response.aiter_bytes()
            async with aclosing(pieces):
                async for piece in pieces:
                    yield piece


class AcytooRecordingClient(AcytooClient):
    """The same, with ``record_pieces=True``: one clock read and list append per piece."""

    record_pieces = True


class AcytooFreshClient(AcytooClient):
    """A new ``acytoo_raw.Client`` per request: a new connection and a full TLS handshake."""

    fresh_client = True
