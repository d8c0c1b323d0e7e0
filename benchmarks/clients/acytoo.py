"""acytoo_raw: ``stream_text`` / ``stream_bytes`` (the engine under the provider).

Default timeouts (connect, write, and read between pieces), as a user would have them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import acytoo_raw
from benchmarks.clients.base import Client, Piece


class AcytooClient(Client):
    def stream(self, url: str) -> AsyncIterator[Piece]:
        produce = acytoo_raw.stream_text if self.kind == "text" else acytoo_raw.stream_bytes
        return produce(url, method="GET", ssl_context=self.tls_for(url))
