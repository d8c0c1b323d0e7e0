"""What is measured: the scenarios, with sizes for the quick and the full run, and which clients
take part in each."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, replace
from typing import Literal

from benchmarks.wire import StreamRequest

Measure = Literal[
    "latency", "ttfb", "throughput", "concurrency", "sequential", "reconnect", "chat", "import"
]

MIB = 1024 * 1024
THROUGHPUT_PIECE = 16 * 1024
LATENCY_PIECE = 64
CHAT_TOKEN = 24  # bytes of content per token: the 19-digit stamp, a few letters, a newline
WARMUP = StreamRequest(pieces=1, size=LATENCY_PIECE, framing="length")
CONCURRENT_EVERY_US = 100_000
# The server closes a kept-alive connection after this much idleness in the reconnect
# scenario, and the client waits RECONNECT_PAUSE_S between requests: always a new connection.
RECONNECT_SERVER_IDLE_MS = 10
RECONNECT_PAUSE_S = 0.03

# Which clients run where (glob patterns of client keys, see benchmarks/clients/__init__.py).
STREAM_CLIENTS = (
    "floor-text",
    "floor-bytes",
    "acytoo-text-*",
    "acytoo-bytes-*",
    "aiohttp-provider",
    "aiohttp-text",
    "httpx-text",
    "httpx-raw",
)
TEXT_CLIENTS = ("floor-text", "acytoo-text-*", "aiohttp-text", "httpx-text")
ONE_CLIENT = (*TEXT_CLIENTS, "acytoo-fresh-asyncio")
CHAT_CLIENTS = ("chat-*",)
IMPORT_CLIENTS = ("import-*",)


@dataclass(frozen=True)
class Profile:
    name: str
    reps: int
    latency_pieces: int
    ttfb_requests: int
    throughput_mib: int
    concurrency_pieces: int
    allocator_variants: tuple[str, ...]  # bodies also measured with malloc thresholds raised
    concurrency_streams: tuple[int, ...]  # the ladder of the p99-vs-streams plot
    ladder_reps: int  # repetitions of the rungs above 1000 streams (the costliest measurements)
    steady_s: float  # seconds every stream of a rung above 1000 stays open after the ramp
    sequential_requests: int
    reconnect_requests: int
    chat_tokens: int
    import_runs: int  # fresh interpreters per import measurement


QUICK = Profile(
    "quick",
    reps=2,
    latency_pieces=200,
    ttfb_requests=20,
    throughput_mib=64,
    concurrency_pieces=5,
    allocator_variants=("utf8",),
    concurrency_streams=(200, 1000, 2000),
    ladder_reps=1,
    steady_s=0.3,
    sequential_requests=30,
    reconnect_requests=5,
    chat_tokens=100,
    import_runs=3,
)
FULL = Profile(
    "full",
    reps=3,
    latency_pieces=1500,
    ttfb_requests=100,
    throughput_mib=300,
    concurrency_pieces=15,
    allocator_variants=("ascii", "utf8"),
    concurrency_streams=(200, 1000, 2000, 5000),
    ladder_reps=2,
    steady_s=1.0,
    sequential_requests=200,
    reconnect_requests=40,
    chat_tokens=1000,
    import_runs=10,
)
# A pessimistic connection ramp per stream (client CPU ~1 ms per new connection under load), so
# the big rungs' streams outlive the ramp and a steady state exists.
RAMP_S_PER_STREAM = 0.0008


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    measure: Measure
    request: StreamRequest
    tls: bool = False
    streams: int = 1
    requests: int = 1
    tuned_malloc: bool = False
    skip_first: int = 0  # pieces left out of the latency figures (warm-up of the stream)
    clients: tuple[str, ...] = STREAM_CLIENTS  # glob patterns of the client keys that run it
    pause_s: float = 0.0  # idle time before each request (reconnect)
    max_reps: int | None = None  # fewer repetitions than the run's (the costliest scenarios)

    def url(self, plain_port: int, tls_port: int, request: StreamRequest | None = None) -> str:
        scheme, port = ("https", tls_port) if self.tls else ("http", plain_port)
        return f"{scheme}://127.0.0.1:{port}{(request or self.request).target()}"

    def warmup_url(self, plain_port: int, tls_port: int) -> str:
        """A one-piece request of the same kind (kept alive when this scenario keeps alive)."""
        request = self.request
        size = CHAT_TOKEN if request.api == "chat" else LATENCY_PIECE
        warmup = replace(
            WARMUP,
            size=size,
            framing="chunked" if request.api == "chat" else "length",
            keepalive=request.keepalive,
            idle_ms=request.idle_ms,
            api=request.api,
        )
        return self.url(plain_port, tls_port, warmup)

    @property
    def keepalive(self) -> bool:
        """The clients reuse connections: requests over one long-lived client."""
        return self.request.keepalive

    def runs(self, client_key: str) -> bool:
        return any(fnmatch.fnmatchcase(client_key, pattern) for pattern in self.clients)

    def reps(self, run_reps: int) -> int:
        return run_reps if self.max_reps is None else min(run_reps, self.max_reps)

    def expected_seconds(self) -> float:
        paced = self.request.pieces * self.request.every_us / 1e6
        if self.measure in ("ttfb", "sequential"):
            return self.requests * 0.01
        if self.measure == "reconnect":
            return self.requests * (self.pause_s + 0.02)
        if self.measure == "import":
            return self.requests * 2.0
        if self.measure == "throughput":
            return self.request.total_bytes / 20e6  # even a slow client does 20 MB/s
        if self.measure == "concurrency":
            return paced + self.streams * 0.005
        return paced

    def timeout_seconds(self) -> float:
        return 20.0 + 3 * self.expected_seconds()


def _throughput(profile: Profile) -> list[Scenario]:
    pieces = profile.throughput_mib * MIB // THROUGHPUT_PIECE
    mib = profile.throughput_mib
    bulk = {
        "ascii": StreamRequest(
            pieces, THROUGHPUT_PIECE, body="ascii", framing="length", pacing="burst"
        ),
        "utf8": StreamRequest(
            pieces, THROUGHPUT_PIECE, body="utf8", framing="chunked", pacing="burst"
        ),
    }
    described = {
        "ascii": "ASCII in 16 KiB pieces, Content-Length",
        "utf8": "multi-byte UTF-8 in 16 KiB pieces, chunked",
    }
    scenarios = [
        Scenario(
            f"throughput-{body}", f"throughput: {mib} MiB {described[body]}", "throughput", request
        )
        for body, request in bulk.items()
    ]
    scenarios += [
        Scenario(
            f"throughput-{body}-tuned",
            f"throughput: {mib} MiB {described[body]}, malloc thresholds raised",
            "throughput",
            bulk[body],
            tuned_malloc=True,
        )
        for body in profile.allocator_variants
    ]
    return scenarios


def _concurrency(profile: Profile) -> list[Scenario]:
    """The ladder: 200 and 1000 streams as in earlier runs (every client, the profile's piece
    count); bigger rungs with the text clients, each stream long enough to outlive the ramp."""
    scenarios = []
    for n in profile.concurrency_streams:
        pieces = profile.concurrency_pieces
        clients: tuple[str, ...] = STREAM_CLIENTS
        reps: int | None = None
        if n > 1000:
            seconds = profile.steady_s + n * RAMP_S_PER_STREAM
            pieces = max(pieces, math.ceil(seconds * 1e6 / CONCURRENT_EVERY_US))
            clients, reps = TEXT_CLIENTS, profile.ladder_reps
        request = StreamRequest(pieces, LATENCY_PIECE, every_us=CONCURRENT_EVERY_US, spread=True)
        scenarios.append(
            Scenario(
                f"concurrency-{n}",
                f"{n} streams at once on one loop, 64 B every 100 ms each, {pieces} pieces",
                "concurrency",
                request,
                streams=n,
                skip_first=1,
                clients=clients,
                max_reps=reps,
            )
        )
    return scenarios


def _one_client(profile: Profile) -> list[Scenario]:
    """Issue 7: requests over one long-lived client (kept-alive connections, TLS resumption)."""
    small = StreamRequest(1, LATENCY_PIECE, framing="length", keepalive=True)
    after_idle = replace(small, idle_ms=RECONNECT_SERVER_IDLE_MS)
    n = profile.sequential_requests
    return [
        Scenario(
            f"sequential-{transport}",
            f"{n} sequential requests over one client, 64 B answers, "
            + (
                "plain" if transport == "plain" else "TLS (one handshake, then a reused connection)"
            ),
            "sequential",
            small,
            tls=transport == "tls",
            requests=n,
            clients=(*ONE_CLIENT, "acytoo-pieces-asyncio") if transport == "plain" else ONE_CLIENT,
        )
        for transport in ("plain", "tls")
    ] + [
        Scenario(
            "reconnect-tls",
            f"{profile.reconnect_requests} requests over one client, each after "
            f"{RECONNECT_PAUSE_S * 1000:.0f} ms idle (the server closes idle connections after "
            f"{RECONNECT_SERVER_IDLE_MS} ms): a new TLS connection each time",
            "reconnect",
            after_idle,
            tls=True,
            requests=profile.reconnect_requests,
            pause_s=RECONNECT_PAUSE_S,
            clients=ONE_CLIENT,
        )
    ]


def _chat(profile: Profile) -> Scenario:
    tokens = profile.chat_tokens
    request = StreamRequest(tokens, CHAT_TOKEN, every_us=1000, keepalive=True, api="chat")
    return Scenario(
        "chat-sse",
        f"chat completion streamed as SSE: {tokens} tokens, one data: JSON chunk every 1 ms",
        "chat",
        request,
        skip_first=10,
        clients=CHAT_CLIENTS,
    )


def build(profile: Profile) -> tuple[Scenario, ...]:
    latency = StreamRequest(profile.latency_pieces, LATENCY_PIECE, every_us=1000)
    first = StreamRequest(1, LATENCY_PIECE, framing="length")
    each = "64 B every 1 ms, chunked"
    return (
        Scenario(
            "latency-plain",
            f"per-piece latency: {each}, plain",
            "latency",
            latency,
            skip_first=10,
            clients=(*STREAM_CLIENTS, "acytoo-pieces-asyncio"),
        ),
        Scenario(
            "latency-tls",
            f"per-piece latency: {each}, TLS",
            "latency",
            latency,
            tls=True,
            skip_first=10,
        ),
        Scenario(
            "ttfb-plain",
            "time to first piece, new connection, plain",
            "ttfb",
            first,
            requests=profile.ttfb_requests,
        ),
        Scenario(
            "ttfb-tls",
            "time to first piece, new connection, TLS handshake included",
            "ttfb",
            first,
            tls=True,
            requests=profile.ttfb_requests,
        ),
        *_one_client(profile),
        _chat(profile),
        *_throughput(profile),
        *_concurrency(profile),
        Scenario(
            "import",
            f"import time in a fresh interpreter, median of {profile.import_runs}",
            "import",
            first,
            requests=profile.import_runs,
            clients=IMPORT_CLIENTS,
        ),
    )
