"""The goals from issues 3, 7 and 11, checked against a run's medians (reported, never asserted).

Every target is named ``"<scenario> <figure>"``; a target whose scenario was not part of the run
is left out, one whose client is missing in the run is reported as n/a. "aiohttp" is the
correctly decoding aiohttp client (``aiohttp-text``), "the floor" the floor of the same kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.summary import ScenarioSummary

ACYTOO_TEXT = ("acytoo-text-asyncio", "acytoo-text-uvloop", "acytoo-text-trio")
FLOOR = "floor-text"
AIOHTTP = "aiohttp-text"
PEERS = ("aiohttp-text", "httpx-text")


@dataclass(frozen=True)
class TargetCheck:
    issue: str
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


def _check(
    issue: str, target: str, client: str, value: float, goal: str, ok: bool, unit: str
) -> TargetCheck:
    measured = "-" if math.isnan(value) else f"{value:.3g}{unit}"
    if math.isnan(value) or "nan" in goal:  # this figure or the reference was not measured
        return TargetCheck(issue, target, client, measured, goal, None)
    return TargetCheck(issue, target, client, measured, goal, ok)


def _ratio_to_floor(
    issue: str,
    get: Lookup,
    scenario: str,
    metric: str,
    limit: float,
    name: str,
    clients: Sequence[str] = ACYTOO_TEXT,
    floor: str = FLOOR,
) -> list[TargetCheck]:
    base = get(scenario, floor, metric)
    checks = []
    for client in clients:
        ratio = get(scenario, client, metric) / base if base else math.nan
        goal = f"≤ {limit}x floor"
        checks.append(_check(issue, name, client, ratio, goal, ratio <= limit, "x"))
    return checks


def _below_peers(
    issue: str, get: Lookup, scenario: str, metric: str, name: str, unit: str
) -> list[TargetCheck]:
    peers = [get(scenario, peer, metric) for peer in PEERS]
    best = min(peers) if not any(math.isnan(p) for p in peers) else math.nan
    goal = f"< {best:.3g}{unit} (best of aiohttp, httpx)"
    return [
        _check(issue, name, c, v, goal, v < best, unit)
        for c in ACYTOO_TEXT
        for v in [get(scenario, c, metric)]
    ]


def _against_aiohttp(
    issue: str,
    get: Lookup,
    scenario: str,
    metric: str,
    name: str,
    unit: str,
    relation: str,
) -> list[TargetCheck]:
    """``relation``: ``"<="``, ``"<"`` (lower is better) or ``">="`` (higher is better)."""
    peer = get(scenario, AIOHTTP, metric)
    goal = f"{relation.replace('<=', '≤').replace('>=', '≥')} {peer:.3g}{unit} (aiohttp)"
    checks = []
    for client in ACYTOO_TEXT:
        value = get(scenario, client, metric)
        ok = {"<=": value <= peer, "<": value < peer, ">=": value >= peer}[relation]
        checks.append(_check(issue, name, client, value, goal, ok, unit))
    return checks


def evaluate(summaries: Sequence[ScenarioSummary]) -> list[TargetCheck]:
    """Every target whose scenario was part of the run (n/a where a client was missing)."""
    run = {s.scenario.key for s in summaries}
    return [c for c in _all_checks(_lookup(summaries)) if c.target.split(" ")[0] in run]


def _all_checks(get: Lookup) -> list[TargetCheck]:
    return _issue3(get) + _issue7(get) + _issue11(get)


def _issue3(get: Lookup) -> list[TargetCheck]:
    checks: list[TargetCheck] = []
    for transport in ("plain", "tls"):
        latency, first = f"latency-{transport}", f"ttfb-{transport}"
        # issue 11 repeats the plain time-to-first-piece goal
        again = "3, 11" if transport == "plain" else "3"
        checks += _ratio_to_floor("3", get, latency, "p50_us", 1.1, f"{latency} p50")
        checks += _below_peers("3", get, latency, "p99_us", f"{latency} p99", " µs")
        checks += _ratio_to_floor(again, get, first, "p50_us", 1.2, f"{first} p50")
        checks += _below_peers("3", get, first, "p50_us", f"{first} p50", " µs")
    for scenario in ("throughput-utf8", "throughput-utf8-tuned"):
        aiohttp = get(scenario, AIOHTTP, "mb_s")
        httpx = get(scenario, "httpx-text", "mb_s")
        for client in ACYTOO_TEXT:
            value = get(scenario, client, "mb_s")
            goal = f"≥ {1.5 * aiohttp:.3g} (1.5x aiohttp) and > {httpx:.3g} (httpx) MB/s"
            ok = value >= 1.5 * aiohttp and value > httpx
            checks.append(_check("3, 11", f"{scenario} MB/s", client, value, goal, ok, " MB/s"))
    scenario = "concurrency-1000"
    for client in ACYTOO_TEXT:
        p99 = get(scenario, client, "p99_ms")
        checks.append(_check("3", f"{scenario} p99", client, p99, "< 5 ms", p99 < 5, " ms"))
    checks += _below_peers("3", get, scenario, "cpu_s", f"{scenario} client CPU", " s")
    return checks


def _issue7(get: Lookup) -> list[TargetCheck]:
    """Sequential requests over one client at least as fast as aiohttp's session."""
    checks: list[TargetCheck] = []
    for transport in ("plain", "tls"):
        scenario = f"sequential-{transport}"
        checks += _against_aiohttp(
            "7", get, scenario, "requests_s", f"{scenario} requests/s", "/s", ">="
        )
    return checks


def _issue11(get: Lookup) -> list[TargetCheck]:
    checks = _against_aiohttp(
        "11", get, "latency-plain", "cpu_us_per_piece", "latency-plain CPU/piece", " µs", "<="
    )
    checks += _ratio_to_floor(
        "11",
        get,
        "latency-plain",
        "cpu_us_per_piece",
        1.15,
        "latency-plain CPU/piece",
        clients=ACYTOO_TEXT[:1],
    )
    scenario = "concurrency-1000"
    checks += _against_aiohttp("11", get, scenario, "cpu_s", f"{scenario} client CPU", " s", "<")
    for client in ACYTOO_TEXT:
        p50 = get(scenario, client, "p50_ms")
        checks.append(_check("11", f"{scenario} p50", client, p50, "≤ 1 ms", p50 <= 1, " ms"))
    checks += _against_aiohttp("11", get, scenario, "p99_ms", f"{scenario} p99", " ms", "<=")
    checks += _ratio_to_floor(
        "11", get, scenario, "steady_p99_ms", 2.0, f"{scenario} steady-state p99"
    )
    checks += _ratio_to_floor(
        "11", get, "ttfb-plain", "cpu_us_per_request", 1.3, "ttfb-plain CPU/request"
    )
    checks += _ratio_to_floor(
        "11",
        get,
        "import",
        "p50_ms",
        1.3,
        "import time",
        clients=("import-acytoo",),
        floor="import-floor",
    )
    return checks
