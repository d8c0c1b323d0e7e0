"""Command line: ``python -m benchmarks [--quick] [--reps N] [--no-pin] [--clients ...]``."""

from __future__ import annotations

import argparse
import fnmatch
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import scenarios
from benchmarks.clients import CLIENTS
from benchmarks.runner import RunConfig, run

HERE = Path(__file__).resolve().parent


def _select(keys: Sequence[str], patterns: str | None) -> list[str]:
    if not patterns:
        return list(keys)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    return [k for k in keys if any(fnmatch.fnmatchcase(k, p) for p in wanted)]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Per-piece latency, time to first piece, throughput, concurrency, requests "
        "over one client, streamed chat completions and import time of acytoo_raw against "
        "aiohttp, httpx, the openai SDK and a raw-socket floor.",
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes: under 2 minutes instead of ~15"
    )
    p.add_argument("--reps", type=int, help="repetitions per client and scenario")
    p.add_argument("--no-pin", action="store_true", help="don't pin server and client to cores")
    p.add_argument("--clients", help="comma-separated glob patterns of client keys (see --list)")
    p.add_argument("--scenarios", help="comma-separated glob patterns of scenario keys")
    p.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    p.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write benchmarks/RESULTS.md and benchmarks/p99_vs_streams.png "
        "(default: on for full runs, off for --quick)",
    )
    p.add_argument("--list", action="store_true", help="list clients and scenarios, then exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    profile = scenarios.QUICK if args.quick else scenarios.FULL
    all_scenarios = scenarios.build(profile)
    if args.list:
        for client in CLIENTS:
            print(f"client    {client.key:<24} {client.label}")
        for scenario in all_scenarios:
            print(f"scenario  {scenario.key:<24} {scenario.title}")
        return 0
    client_keys = set(_select([c.key for c in CLIENTS], args.clients))
    scenario_keys = set(_select([s.key for s in all_scenarios], args.scenarios))
    chosen_clients = tuple(c for c in CLIENTS if c.key in client_keys)
    chosen_scenarios = tuple(
        s
        for s in all_scenarios
        if s.key in scenario_keys and any(s.runs(c.key) for c in chosen_clients)
    )
    if not chosen_clients or not chosen_scenarios:
        print("no client or no scenario matches (see --list)", file=sys.stderr)
        return 2
    reps = args.reps if args.reps is not None else profile.reps
    if not 1 <= reps <= 100:
        print("--reps must be between 1 and 100", file=sys.stderr)
        return 2
    publish = args.publish if args.publish is not None else not args.quick
    config = RunConfig(
        profile=profile,
        reps=reps,
        pin=not args.no_pin,
        clients=chosen_clients,
        scenarios=chosen_scenarios,
        out_dir=args.out,
        publish_to=HERE / "RESULTS.md" if publish else None,
        plot_to=HERE / "p99_vs_streams.png",
        command=shlex.join(["python", "-m", "benchmarks", *(argv or sys.argv[1:])]),
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run(config)
    except KeyboardInterrupt:
        print("interrupted; server and workers stopped", file=sys.stderr)
        return 130


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
