"""The measurements, run inside a worker's event loop (asyncio, uvloop or trio, via anyio).

Per piece the only work added to the client's own is ``perf_counter_ns()`` and two list appends;
stamps are parsed and latencies computed after the stream has ended. Import times are measured
in fresh interpreters (``measure_imports``), outside any event loop.
"""

from __future__ import annotations

import gc
import math
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
    cpu_at_start: float = 0.0
    _faults_at_start: int = 0

    def start(self) -> None:
        self._faults_at_start = system.minor_faults()
        self.cpu_at_start = time.process_time()
        self.started_ns = time.perf_counter_ns()

    def stop(self) -> None:
        self.wall_ns = time.perf_counter_ns() - self.started_ns
        self.cpu_s = time.process_time() - self.cpu_at_start
        self.faults = system.minor_faults() - self._faults_at_start


@dataclass
class GCMeter:
    """Time spent in the cyclic garbage collector while installed (``gc.callbacks``).

    CPU time (``thread_time``) for the total, since on a shared machine a collection's wall
    time also counts whatever preempted it; wall time for the longest pause, since that is
    what a piece waiting behind it sees.
    """

    cpu_ns: int = 0
    wall_ns: int = 0
    longest_ns: int = 0
    collections: int = 0
    full: int = 0  # of the oldest generation
    _began: int = 0
    _began_cpu: int = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began_cpu = time.thread_time_ns()
            self._began = time.perf_counter_ns()
            return
        took = time.perf_counter_ns() - self._began
        self.cpu_ns += time.thread_time_ns() - self._began_cpu
        self.wall_ns += took
        self.longest_ns = max(self.longest_ns, took)
        self.collections += 1
        self.full += info.get("generation") == 2

    def metrics(self) -> dict[str, float]:
        return {
            "gc_ms": self.cpu_ns / 1e6,
            "gc_wall_ms": self.wall_ns / 1e6,
            "gc_max_ms": self.longest_ns / 1e6,
            "gc_collections": self.collections,
            "gc_full_collections": self.full,
        }


@contextmanager
def gc_meter() -> Iterator[GCMeter]:
    meter = GCMeter()
    gc.callbacks.append(meter)
    try:
        yield meter
    finally:
        gc.callbacks.remove(meter)


async def measure(client: Client, scenario: Scenario, url: str) -> Outcome:
    if scenario.measure == "latency":
        return await _latency(client, scenario, url)
    if scenario.measure == "ttfb":
        return await _first_piece(client, scenario, url)
    if scenario.measure == "throughput":
        return await _throughput(client, scenario, url)
    if scenario.measure in ("sequential", "reconnect"):
        return await _sequential(client, scenario, url)
    if scenario.measure == "chat":
        return await _chat(client, scenario, url)
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


async def _sequential(client: Client, scenario: Scenario, url: str) -> Outcome:
    """Requests one after another over one client; ``pause_s`` of idleness before each
    (reconnect). Time to first piece per request; requests/s over the whole loop."""
    samples: list[int] = []
    client.counters.clear()  # what the warm-up counted is not measured
    idle_s = 0.0
    meter = _Meter()
    meter.start()
    for _ in range(scenario.requests):
        if scenario.pause_s:
            paused = time.perf_counter()
            await anyio.sleep(scenario.pause_s)
            idle_s += time.perf_counter() - paused
        started = time.perf_counter_ns()
        first = 0
        async for _piece in client.stream(url):
            if not first:
                first = time.perf_counter_ns()
        samples.append(first - started)
    meter.stop()
    ordered = sorted(samples)
    busy_s = meter.wall_ns / 1e9 - idle_s
    metrics = {
        "requests_s": scenario.requests / busy_s,
        "p50_us": stats.percentile(ordered, 50) / 1e3,
        "p99_us": stats.percentile(ordered, 99) / 1e3,
        "cpu_us_per_request": meter.cpu_s * 1e6 / scenario.requests,
    }
    served = client.counters.get("requests", 0.0)
    for name in ("reused", "tls_resumed"):
        if served:
            metrics[f"{name}_share"] = client.counters.get(name, 0.0) / served
    return Outcome(metrics, [value / 1e3 for value in ordered])


async def _chat(client: Client, scenario: Scenario, url: str) -> Outcome:
    """One streamed chat completion: per-token latency, time to first token, CPU per token."""
    meter = _Meter()
    meter.start()
    pieces, times = await _record(client, url)
    meter.stop()
    _stamps, latencies = _latencies_ns(pieces, times, scenario, text=True)
    kept = latencies[scenario.skip_first :]
    tokens = scenario.request.pieces
    metrics = _distribution(kept, 1e3, "us")
    metrics.update(
        first_token_us=(times[0] - meter.started_ns) / 1e3 if times else math.nan,
        cpu_us_per_token=meter.cpu_s * 1e6 / tokens,
        negative=sum(1 for value in latencies if value < 0),
    )
    return Outcome(metrics, [value / 1e3 for value in kept])


STEADY_WINDOW_INTERVALS = 3  # CPU per piece needs every stream open for this many intervals


@dataclass
class _StreamRecord:
    pieces: list[Piece] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    cpu_first: float = 0.0  # process CPU time when this stream's first piece arrived
    cpu_last: float = 0.0  # ... and when it ended


async def _concurrency(client: Client, scenario: Scenario, url: str) -> Outcome:
    """Many streams on one loop, split into the ramp and the steady state.

    ``ramp_s``: until every stream has its first piece ("all started"). The latency figures
    leave out each stream's first piece (``p99_all_ms`` keeps them); ``steady_*``: pieces sent
    after all started, ``ramp_p99_ms``: those sent before. CPU per piece is measured over the
    window where every stream is open (all started .. the first stream's end), CPU per
    connection is the ramp's CPU less its pieces at that rate, per stream (``nan`` when some
    stream ended before the last one started: no steady state).
    """
    results: list[_StreamRecord] = []

    async def one() -> None:
        record = _StreamRecord()
        pieces, times = record.pieces, record.times
        async for piece in client.stream(url):
            times.append(time.perf_counter_ns())
            pieces.append(piece)
            if len(times) == 1:
                record.cpu_first = time.process_time()
        record.cpu_last = time.process_time()
        results.append(record)

    meter = _Meter()
    meter.start()
    async with anyio.create_task_group() as group:
        for _ in range(scenario.streams):
            group.start_soon(one)
    meter.stop()
    text = client.kind == "text"
    started = [r for r in results if r.times]
    last_started = max(started, key=lambda r: r.times[0])
    first_ended = min(started, key=lambda r: r.times[-1])
    all_started_ns = last_started.times[0]
    kept: list[int] = []
    everything: list[int] = []
    steady: list[int] = []
    ramp: list[int] = []
    for record in results:
        stamps, latencies = _latencies_ns(record.pieces, record.times, scenario, text)
        everything.extend(latencies)
        for stamp, latency in zip(
            stamps[scenario.skip_first :], latencies[scenario.skip_first :], strict=True
        ):
            kept.append(latency)
            (steady if stamp >= all_started_ns else ramp).append(latency)
    arrivals = [t for record in results for t in record.times]
    window_end_ns = first_ended.times[-1]
    in_window = sum(1 for t in arrivals if all_started_ns <= t <= window_end_ns)
    in_ramp = sum(1 for t in arrivals if t < all_started_ns)
    interval_ns = scenario.request.every_us * 1000
    cpu_ramp = last_started.cpu_first - meter.cpu_at_start
    per_piece = math.nan
    per_conn = math.nan
    # Too short a window (a stream ended soon after the last one started) says nothing.
    long_enough = window_end_ns - all_started_ns >= STEADY_WINDOW_INTERVALS * interval_ns
    if long_enough and in_window >= scenario.streams:
        per_piece = (first_ended.cpu_last - last_started.cpu_first) / in_window
        per_conn = (cpu_ramp - in_ramp * per_piece) / scenario.streams
    steady_sorted = sorted(steady)
    metrics = {
        "wall_s": meter.wall_ns / 1e9,
        "cpu_s": meter.cpu_s,
        "ramp_s": max(0, all_started_ns - meter.started_ns) / 1e9,
        **_distribution(kept, 1e6, "ms"),
        "p99_all_ms": stats.percentile(sorted(everything), 99) / 1e6,
        "ramp_p99_ms": stats.percentile(sorted(ramp), 99) / 1e6,
        "steady_p50_ms": stats.percentile(steady_sorted, 50) / 1e6,
        "steady_p99_ms": stats.percentile(steady_sorted, 99) / 1e6,
        "steady_share": len(steady) / len(kept) if kept else math.nan,
        "cpu_us_per_piece": per_piece * 1e6,
        "cpu_us_per_conn": per_conn * 1e6,
        "minflt": meter.faults,
        "streams": len(results),
    }
    return Outcome(metrics, [value / 1e3 for value in kept])


_IMPORT_PROGRAM = (
    "import sys, time\n"
    "t = time.perf_counter_ns()\n"
    "for name in sys.argv[1].split(','):\n"
    "    __import__(name)\n"
    "print(time.perf_counter_ns() - t)\n"
)
IMPORT_TIMEOUT_S = 60.0


def measure_imports(modules: str, runs: int) -> Outcome:
    """Import ``modules`` (comma-separated) in ``runs`` fresh interpreters, after one untimed
    run that leaves the bytecode caches warm; the time is taken inside each interpreter."""
    command = [sys.executable, "-c", _IMPORT_PROGRAM, modules]
    samples: list[float] = []
    for attempt in range(runs + 1):
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise ImportError(done.stderr.strip().splitlines()[-1] if done.stderr else modules)
        if attempt:
            samples.append(int(done.stdout.split()[-1]) / 1e6)
    ordered = sorted(samples)
    return Outcome(
        {"p50_ms": stats.percentile(ordered, 50), "min_ms": ordered[0]},
        [value * 1e3 for value in ordered],
    )
