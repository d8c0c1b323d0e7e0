"""The measurements, run inside a worker's event loop (asyncio, uvloop or trio, via anyio).

Per piece the only work added to the client's own is ``perf_counter_ns()`` and two list appends;
stamps are parsed and latencies computed after the stream has ended.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from benchmarks import stats, system, wire
from benchmarks.clients.base import Client, Piece
from benchmarks.scenarios import Scenario


class BodyMismatch(Exception):
    """The client delivered a body of the wrong length (lost, duplicated or mis-decoded data)."""


@dataclass
class Outcome:
    metrics: dict[str, float]
    samples_us: list[float] = field(default_factory=list)


@dataclass
class _Meter:
    """Wall time, CPU time and minor page faults of this process over a block."""

    started_ns: int = 0
    wall_ns: int = 0  # the results, once stopped
    cpu_s: float = 0.0
    faults: int = 0
    _cpu_at_start: float = 0.0
    _faults_at_start: int = 0

    def start(self) -> None:
        self._faults_at_start = system.minor_faults()
        self._cpu_at_start = time.process_time()
        self.started_ns = time.perf_counter_ns()

    def stop(self) -> None:
        self.wall_ns = time.perf_counter_ns() - self.started_ns
        self.cpu_s = time.process_time() - self._cpu_at_start
        self.faults = system.minor_faults() - self._faults_at_start


async def measure(client: Client, scenario: Scenario, url: str) -> Outcome:
    if scenario.measure == "latency":
        return await _latency(client, scenario, url)
    if scenario.measure == "ttfb":
        return await _first_piece(client, scenario, url)
    if scenario.measure == "throughput":
        return await _throughput(client, scenario, url)
    return await _concurrency(client, scenario, url)


async def drain(client: Client, url: str) -> int:
    """Read a whole response (warm-up); returns its length."""
    total = 0
    async for piece in client.stream(url):
        total += len(piece)
    return total


async def _record(client: Client, url: str) -> tuple[list[Piece], list[int]]:
    pieces: list[Piece] = []
    times: list[int] = []
    async for piece in client.stream(url):
        times.append(time.perf_counter_ns())
        pieces.append(piece)
    return pieces, times


def _latencies_ns(
    pieces: Sequence[Piece], times: Sequence[int], scenario: Scenario, text: bool
) -> tuple[list[int], list[int]]:
    """Send stamps, and arrival minus send stamp, of every piece (it arrives with its last unit)."""
    count = scenario.request.pieces
    units = scenario.request.units_per_piece(text)
    body: Piece = "".join(pieces) if text else b"".join(pieces)  # type: ignore[arg-type]
    if len(body) != count * units:
        raise BodyMismatch(f"body has {len(body)} units, expected {count * units}")
    stamps = wire.stamps_of(body, units, count)
    latencies: list[int] = []
    done, end = 0, 0
    for piece, arrived in zip(pieces, times, strict=True):
        end += len(piece)
        while done < count and (done + 1) * units <= end:
            latencies.append(arrived - stamps[done])
            done += 1
    return stamps, latencies


def _distribution(values_ns: list[int], scale: float, prefix: str) -> dict[str, float]:
    ordered = sorted(values_ns)
    return {
        f"p50_{prefix}": stats.percentile(ordered, 50) / scale,
        f"p90_{prefix}": stats.percentile(ordered, 90) / scale,
        f"p99_{prefix}": stats.percentile(ordered, 99) / scale,
        f"max_{prefix}": ordered[-1] / scale if ordered else float("nan"),
    }


async def _latency(client: Client, scenario: Scenario, url: str) -> Outcome:
    meter = _Meter()
    meter.start()
    pieces, times = await _record(client, url)
    meter.stop()
    _stamps, latencies = _latencies_ns(pieces, times, scenario, client.kind == "text")
    kept = latencies[scenario.skip_first :]
    count = scenario.request.pieces
    metrics = _distribution(kept, 1e3, "us")
    metrics.update(
        cpu_us_per_piece=meter.cpu_s * 1e6 / count,
        faults_per_piece=meter.faults / count,
        reads=len(pieces),
        negative=sum(1 for value in latencies if value < 0),
    )
    return Outcome(metrics, [value / 1e3 for value in kept])


async def _first_piece(client: Client, scenario: Scenario, url: str) -> Outcome:
    samples: list[int] = []
    meter = _Meter()
    meter.start()
    for _ in range(scenario.requests):
        started = time.perf_counter_ns()
        first = 0
        async for _piece in client.stream(url):
            if not first:
                first = time.perf_counter_ns()
        samples.append(first - started)
    meter.stop()
    ordered = sorted(samples)
    metrics = {
        "p50_us": stats.percentile(ordered, 50) / 1e3,
        "p90_us": stats.percentile(ordered, 90) / 1e3,
        "min_us": ordered[0] / 1e3,
        "cpu_us_per_request": meter.cpu_s * 1e6 / scenario.requests,
    }
    return Outcome(metrics, [value / 1e3 for value in ordered])


async def _throughput(client: Client, scenario: Scenario, url: str) -> Outcome:
    units = 0
    reads = 0
    meter = _Meter()
    meter.start()
    async for piece in client.stream(url):
        units += len(piece)
        reads += 1
    meter.stop()
    request = scenario.request
    expected = request.pieces * request.units_per_piece(client.kind == "text")
    if units != expected:
        raise BodyMismatch(f"body has {units} units, expected {expected}")
    seconds = meter.wall_ns / 1e9
    return Outcome(
        {
            "mb_s": request.total_bytes / seconds / 1e6,
            "wall_s": seconds,
            "cpu_s": meter.cpu_s,
            "minflt": meter.faults,
            "reads": reads,
            "mean_read_kib": request.total_bytes / max(reads, 1) / 1024,
        }
    )


async def _concurrency(client: Client, scenario: Scenario, url: str) -> Outcome:
    """Many streams on one loop. ``ramp_s``: until every stream has its first piece; the
    latency figures leave out each stream's first piece (``p99_all_ms`` keeps them)."""
    results: list[tuple[list[Piece], list[int]]] = []

    async def one() -> None:
        results.append(await _record(client, url))

    meter = _Meter()
    meter.start()
    async with anyio.create_task_group() as group:
        for _ in range(scenario.streams):
            group.start_soon(one)
    meter.stop()
    text = client.kind == "text"
    last_first = max((times[0] for _pieces, times in results if times), default=0)
    kept: list[int] = []
    everything: list[int] = []
    for pieces, times in results:
        _stamps, latencies = _latencies_ns(pieces, times, scenario, text)
        everything.extend(latencies)
        kept.extend(latencies[scenario.skip_first :])
    metrics = {
        "wall_s": meter.wall_ns / 1e9,
        "cpu_s": meter.cpu_s,
        "ramp_s": max(0, last_first - meter.started_ns) / 1e9,
        **_distribution(kept, 1e6, "ms"),
        "p99_all_ms": stats.percentile(sorted(everything), 99) / 1e6,
        "minflt": meter.faults,
        "streams": len(results),
    }
    return Outcome(metrics, [value / 1e3 for value in kept])
