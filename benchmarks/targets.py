"""The goals from issue 3, checked against a run's medians (reported, never asserted)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.summary import ScenarioSummary

ACYTOO_TEXT = ("acytoo-text-asyncio", "acytoo-text-uvloop", "acytoo-text-trio")
FLOOR = "floor-text"
PEERS = ("aiohttp-text", "httpx-text")


@dataclass(frozen=True)
class TargetCheck:
    target: str
    client: str
    measured: str
    goal: str
    met: bool | None  # None: not measurable in this run


Lookup = Callable[[str, str, str], float]


def _lookup(summaries: Sequence[ScenarioSummary]) -> Lookup:
    by_key = {s.scenario.key: s for s in summaries}

    def value(scenario: str, client: str, metric: str) -> float:
        summary = by_key.get(scenario)
        return summary.median(client, metric) if summary else math.nan

    return value


def _check(target: str, client: str, value: float, goal: str, ok: bool, unit: str) -> TargetCheck:
    if math.isnan(value):
        return TargetCheck(target, client, "-", goal, None)
    return TargetCheck(target, client, f"{value:.3g}{unit}", goal, ok)


def _ratio_to_floor(
    get: Lookup, scenario: str, metric: str, limit: float, name: str
) -> list[TargetCheck]:
    floor = get(scenario, FLOOR, metric)
    checks = []
    for client in ACYTOO_TEXT:
        ratio = get(scenario, client, metric) / floor if floor else math.nan
        checks.append(_check(name, client, ratio, f"≤ {limit}x floor", ratio <= limit, "x"))
    return checks


def _below_peers(
    get: Lookup, scenario: str, metric: str, name: str, unit: str
) -> list[TargetCheck]:
    peers = [get(scenario, peer, metric) for peer in PEERS]
    best = min(peers) if not any(math.isnan(p) for p in peers) else math.nan
    goal = f"< {best:.3g}{unit} (best of aiohttp, httpx)"
    return [
        _check(name, c, v, goal, v < best, unit)
        for c in ACYTOO_TEXT
        for v in [get(scenario, c, metric)]
    ]


def evaluate(summaries: Sequence[ScenarioSummary]) -> list[TargetCheck]:
    """Every target whose scenario was part of the run (n/a where a client was missing)."""
    run = {s.scenario.key for s in summaries}
    return [c for c in _all_checks(_lookup(summaries)) if c.target.split(" ")[0] in run]


def _all_checks(get: Lookup) -> list[TargetCheck]:
    checks: list[TargetCheck] = []
    for transport in ("plain", "tls"):
        latency, first = f"latency-{transport}", f"ttfb-{transport}"
        checks += _ratio_to_floor(get, latency, "p50_us", 1.1, f"{latency} p50")
        checks += _below_peers(get, latency, "p99_us", f"{latency} p99", " µs")
        checks += _ratio_to_floor(get, first, "p50_us", 1.2, f"{first} p50")
        checks += _below_peers(get, first, "p50_us", f"{first} p50", " µs")
    for scenario in ("throughput-utf8", "throughput-utf8-tuned"):
        aiohttp = get(scenario, "aiohttp-text", "mb_s")
        httpx = get(scenario, "httpx-text", "mb_s")
        for client in ACYTOO_TEXT:
            value = get(scenario, client, "mb_s")
            goal = f"≥ {1.5 * aiohttp:.3g} (1.5x aiohttp) and > {httpx:.3g} (httpx) MB/s"
            ok = value >= 1.5 * aiohttp and value > httpx
            checks.append(_check(f"{scenario} MB/s", client, value, goal, ok, " MB/s"))
    scenario = "concurrency-1000"
    for client in ACYTOO_TEXT:
        p99 = get(scenario, client, "p99_ms")
        checks.append(_check(f"{scenario} p99", client, p99, "< 5 ms", p99 < 5, " ms"))
    checks += _below_peers(get, scenario, "cpu_s", f"{scenario} client CPU", " s")
    return checks
