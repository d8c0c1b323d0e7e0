"""What is measured: the scenarios, with sizes for the quick and the full run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from benchmarks.wire import StreamRequest

Measure = Literal["latency", "ttfb", "throughput", "concurrency"]

MIB = 1024 * 1024
THROUGHPUT_PIECE = 16 * 1024
LATENCY_PIECE = 64
WARMUP = StreamRequest(pieces=1, size=LATENCY_PIECE, framing="length")


@dataclass(frozen=True)
class Profile:
    name: str
    reps: int
    latency_pieces: int
    ttfb_requests: int
    throughput_mib: int
    concurrency_pieces: int
    allocator_variants: tuple[str, ...]  # bodies also measured with malloc thresholds raised


QUICK = Profile(
    "quick",
    reps=2,
    latency_pieces=200,
    ttfb_requests=20,
    throughput_mib=64,
    concurrency_pieces=5,
    allocator_variants=("utf8",),
)
FULL = Profile(
    "full",
    reps=3,
    latency_pieces=1500,
    ttfb_requests=100,
    throughput_mib=300,
    concurrency_pieces=15,
    allocator_variants=("ascii", "utf8"),
)


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

    def url(self, plain_port: int, tls_port: int, request: StreamRequest | None = None) -> str:
        scheme, port = ("https", tls_port) if self.tls else ("http", plain_port)
        return f"{scheme}://127.0.0.1:{port}{(request or self.request).target()}"

    def expected_seconds(self) -> float:
        paced = self.request.pieces * self.request.every_us / 1e6
        if self.measure == "ttfb":
            return self.requests * 0.01
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


def build(profile: Profile) -> tuple[Scenario, ...]:
    latency = StreamRequest(profile.latency_pieces, LATENCY_PIECE, every_us=1000)
    first = StreamRequest(1, LATENCY_PIECE, framing="length")
    slow = StreamRequest(profile.concurrency_pieces, LATENCY_PIECE, every_us=100_000, spread=True)
    each = "64 B every 1 ms, chunked"
    return (
        Scenario(
            "latency-plain", f"per-piece latency: {each}, plain", "latency", latency, skip_first=10
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
        *_throughput(profile),
        *(
            Scenario(
                f"concurrency-{n}",
                f"{n} streams at once on one loop, 64 B every 100 ms each",
                "concurrency",
                slow,
                streams=n,
                skip_first=1,
            )
            for n in (200, 1000)
        ),
    )
