"""From repetitions to figures: per scenario and client, the median, spread and floor ratio."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks import stats
from benchmarks.clients import floor_for
from benchmarks.clients.base import ClientSpec
from benchmarks.scenarios import Measure, Scenario
from benchmarks.worker import Measurement


@dataclass(frozen=True)
class Column:
    metric: str
    header: str
    higher_is_better: bool = False
    ratio: bool = True  # show the ratio to the floor (not for shares)


COLUMNS: dict[Measure, tuple[Column, ...]] = {
    "latency": (
        Column("p50_us", "p50 µs"),
        Column("p90_us", "p90 µs"),
        Column("p99_us", "p99 µs"),
        Column("cpu_us_per_piece", "CPU µs/piece"),
        Column("faults_per_piece", "minflt/piece"),
    ),
    "ttfb": (
        Column("p50_us", "p50 µs"),
        Column("p90_us", "p90 µs"),
        Column("cpu_us_per_request", "CPU µs/request"),
    ),
    "throughput": (
        Column("mb_s", "MB/s", higher_is_better=True),
        Column("cpu_s", "CPU s"),
        Column("minflt", "minflt"),
        Column("mean_read_kib", "KiB/piece"),
    ),
    "concurrency": (
        Column("wall_s", "wall s"),
        Column("cpu_s", "CPU s"),
        Column("ramp_s", "all started s"),
        Column("p50_ms", "p50 ms"),
        Column("p99_ms", "p99 ms"),
        Column("ramp_p99_ms", "ramp p99 ms"),
        Column("steady_p50_ms", "steady p50 ms"),
        Column("steady_p99_ms", "steady p99 ms"),
        Column("cpu_us_per_piece", "CPU µs/piece"),
        Column("cpu_us_per_conn", "CPU µs/conn"),
        Column("gc_ms", "GC CPU ms"),
        Column("gc_max_ms", "GC max pause ms"),
    ),
    "sequential": (
        Column("requests_s", "requests/s", higher_is_better=True),
        Column("p50_us", "TTFB p50 µs"),
        Column("p99_us", "TTFB p99 µs"),
        Column("cpu_us_per_request", "CPU µs/request"),
        Column("reused_share", "reused", ratio=False),
    ),
    "reconnect": (
        Column("p50_us", "TTFB p50 µs"),
        Column("p99_us", "TTFB p99 µs"),
        Column("cpu_us_per_request", "CPU µs/request"),
        Column("tls_resumed_share", "TLS resumed", ratio=False),
    ),
    "chat": (
        Column("p50_us", "token p50 µs"),
        Column("p90_us", "token p90 µs"),
        Column("p99_us", "token p99 µs"),
        Column("first_token_us", "first token µs"),
        Column("cpu_us_per_token", "CPU µs/token"),
        Column("gc_ms", "GC CPU ms"),
    ),
    "import": (
        Column("p50_ms", "median ms"),
        Column("min_ms", "min ms"),
    ),
}


@dataclass(frozen=True)
class Cell:
    median: float
    spread: float
    ratio: float  # to the floor of the same kind; nan when there is none


@dataclass
class Row:
    client: ClientSpec
    cells: dict[str, Cell] = field(default_factory=dict)
    ok: int = 0
    runs: int = 0
    status: str = "ok"  # ok | failed | unavailable | timeout | not run
    error: str = ""
    note: str = ""  # what the client ran, when its measurements say (e.g. a fallback path)
    sketches: list[list[float]] = field(default_factory=list)


@dataclass
class ScenarioSummary:
    scenario: Scenario
    rows: list[Row]
    server_cpu_share: float | None
    reps: int

    def median(self, client_key: str, metric: str) -> float:
        for row in self.rows:
            if row.client.key == client_key and metric in row.cells:
                return row.cells[metric].median
        return math.nan


def summarize(
    scenario: Scenario,
    clients: Sequence[ClientSpec],
    measurements: Sequence[Measurement],
    reps: int,
) -> ScenarioSummary:
    mine = [m for m in measurements if m.scenario == scenario.key]
    medians: dict[str, dict[str, float]] = {}
    rows: list[Row] = []
    for client in clients:
        runs = [m for m in mine if m.client == client.key]
        row = Row(client, runs=len(runs))
        good = [m for m in runs if m.status == "ok"]
        row.ok = len(good)
        row.note = next((m.note for m in good if m.note), "")
        row.sketches = [m.sketch_us for m in good if m.sketch_us]
        bad = [m for m in runs if m.status != "ok"]
        if not runs:
            row.status = "not run"
        elif bad and not good:
            row.status, row.error = bad[0].status, bad[0].error
        elif bad:
            row.error = f"{len(bad)}/{len(runs)} runs {bad[0].status}: {bad[0].error}"
        metrics = {m for run in good for m in run.metrics}
        medians[client.key] = {metric: stats.median(_values(good, metric)) for metric in metrics}
        rows.append(row)
    for row in rows:
        floor = floor_for(row.client, tuple(clients))
        base = medians.get(floor.key, {}) if floor else {}
        good = [m for m in mine if m.client == row.client.key and m.status == "ok"]
        for metric, value in medians[row.client.key].items():
            values = _values(good, metric)
            reference = base.get(metric, math.nan)
            ratio = value / reference if reference and not math.isnan(reference) else math.nan
            row.cells[metric] = Cell(value, stats.spread(values), ratio)
    shares = [m.server_cpu_share for m in mine if m.server_cpu_share is not None]
    return ScenarioSummary(scenario, rows, stats.median(shares) if shares else None, reps)


def _values(runs: Sequence[Measurement], metric: str) -> list[float]:
    """The repetitions' figures for ``metric``, leaving out the runs where it was undefined."""
    return [
        run.metrics[metric]
        for run in runs
        if metric in run.metrics and not math.isnan(run.metrics[metric])
    ]
