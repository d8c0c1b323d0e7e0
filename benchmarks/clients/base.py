"""The one interface every client under test implements, and how the harness names a client."""

from __future__ import annotations

import abc
import importlib
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "bytes"]
Runtime = Literal["asyncio", "uvloop", "trio"]
# stream: GET /stream bodies; chat: OpenAI-style SSE, pieces are the tokens' content strings;
# import: no client at all, ``target`` names the modules whose import is timed.
Family = Literal["stream", "chat", "import"]
Piece = str | bytes


class Client(abc.ABC):
    """A streaming HTTP client under test; one instance per worker process.

    ``stream(url)`` sends a GET and yields the body as the client delivers it to its caller:
    ``str`` pieces for text clients, ``bytes`` for byte clients. The TLS context is built once
    per process by the harness (building one per request would cost ~0.3 ms of every request).

    ``keepalive``: the scenario measures requests over one long-lived client, so keep
    connections alive and reuse them (the peers' defaults); otherwise every request opens a new
    connection. ``urls``: every URL the worker will ask for (warm-up first), for clients that
    must be built per base URL before the measurement (the openai SDK). ``counters`` and
    ``note`` are read by the measurement (e.g. how many requests reused a connection).
    """

    def __init__(
        self,
        kind: Kind,
        ssl_context: ssl.SSLContext,
        *,
        keepalive: bool = False,
        urls: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self.ssl_context = ssl_context
        self.keepalive = keepalive
        self.urls = tuple(urls)
        self.counters: dict[str, float] = {}
        self.note = ""

    def count(self, name: str, value: float = 1.0) -> None:
        self.counters[name] = self.counters.get(name, 0.0) + value

    async def start(self) -> None:
        """Create long-lived state (sessions, pools) inside the running event loop."""
        return None

    async def stop(self) -> None:
        """Release whatever ``start`` created."""
        return None

    @abc.abstractmethod
    def stream(self, url: str) -> AsyncIterator[Piece]:
        """Yield the response body of ``GET url``; raise on a non-2xx status."""

    def tls_for(self, url: str) -> ssl.SSLContext | None:
        return self.ssl_context if url.startswith("https:") else None


@dataclass(frozen=True)
class ClientSpec:
    """How to build a client in a worker: ``target`` is ``"module:ClassName"``."""

    key: str
    label: str
    target: str
    kind: Kind
    runtime: Runtime = "asyncio"
    floor: bool = False
    family: Family = "stream"

    def create(
        self, ssl_context: ssl.SSLContext, *, keepalive: bool = False, urls: Sequence[str] = ()
    ) -> Client:
        """Import and build the client; ImportError means 'unavailable', not a crash."""
        module_name, _, class_name = self.target.partition(":")
        factory = getattr(importlib.import_module(module_name), class_name)
        client: Client = factory(self.kind, ssl_context, keepalive=keepalive, urls=urls)
        return client
