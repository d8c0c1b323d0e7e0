"""The run: start the server, check the clock, measure every client interleaved, report."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import certs, plots, report, system, targets
from benchmarks.clients.base import ClientSpec
from benchmarks.processes import ServerInfo, ServerProcess, Workers
from benchmarks.scenarios import Profile, Scenario
from benchmarks.summary import summarize
from benchmarks.worker import Job, Measurement

WORKER_GRACE_S = 30.0
HEADLINE = {
    "latency": "p50_us",
    "ttfb": "p50_us",
    "throughput": "mb_s",
    "concurrency": "p99_ms",
    "sequential": "requests_s",
    "reconnect": "p50_us",
    "chat": "p50_us",
    "import": "p50_ms",
}


@dataclass(frozen=True)
class RunConfig:
    profile: Profile
    reps: int
    pin: bool
    clients: tuple[ClientSpec, ...]
    scenarios: tuple[Scenario, ...]
    out_dir: Path
    publish_to: Path | None
    command: str
    plot_to: Path | None = None  # where the p99-vs-streams plot is copied when publishing

    def clients_of(self, scenario: Scenario) -> tuple[ClientSpec, ...]:
        return tuple(c for c in self.clients if scenario.runs(c.key))


@dataclass(frozen=True)
class Cores:
    server: int | None
    client: int | None

    def describe(self) -> str:
        if self.server is None:
            return "not pinned (--no-pin, or fewer than 2 usable cores)"
        return (
            f"server on core {self.server}, each client on core {self.client} "
            "(os.sched_setaffinity)"
        )


def choose_cores(pin: bool) -> Cores:
    usable = system.usable_cores()
    if not pin or len(usable) < 2:
        return Cores(None, None)
    return Cores(usable[0], usable[-1])


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _headline(scenario: Scenario, result: Measurement) -> str:
    if result.status != "ok":
        return f"{result.status}: {result.error}"
    metric = HEADLINE[scenario.measure]
    share = result.server_cpu_share
    server = f"  (server CPU {share * 100:.0f}%)" if share is not None else ""
    return f"{metric} {report.number(result.metrics.get(metric, float('nan')))}{server}"


def _measure_all(
    config: RunConfig, server: ServerProcess, info: ServerInfo, ca_file: str, cores: Cores
) -> list[Measurement]:
    workers = Workers()
    results: list[Measurement] = []
    unavailable: dict[str, Measurement] = {}
    total = sum(
        scenario.reps(config.reps) * len(config.clients_of(scenario))
        for scenario in config.scenarios
    )
    done = 0
    for scenario in config.scenarios:
        url = scenario.url(info.plain_port, info.tls_port)
        warmup = scenario.warmup_url(info.plain_port, info.tls_port)
        clients = config.clients_of(scenario)
        for rep in range(scenario.reps(config.reps)):
            shift = rep % len(clients)  # A B C, B C A, ...: no client always goes first
            for client in clients[shift:] + clients[:shift]:
                done += 1
                if client.key in unavailable:  # reported again, not retried
                    known = unavailable[client.key]
                    results.append(
                        Measurement(client.key, scenario.key, rep, known.status, known.error)
                    )
                    continue
                job = Job(client, scenario, rep, url, warmup, ca_file, cores.client)
                cpu_before = server.cpu_seconds()
                began = time.monotonic()
                result = workers.run(job, scenario.timeout_seconds() + WORKER_GRACE_S)
                took = time.monotonic() - began
                if result.status == "ok" and result.window_s > 0 and scenario.measure != "import":
                    # The server idles between workers; a worker's warm-up costs it ~0.1 ms.
                    result.server_cpu_share = (server.cpu_seconds() - cpu_before) / result.window_s
                results.append(result)
                if result.status == "unavailable":
                    unavailable[client.key] = result
                _log(
                    f"[{done:3d}/{total}] {took:4.1f}s {scenario.key:<22} rep {rep + 1}  "
                    f"{client.label:<28} {_headline(scenario, result)}"
                )
    return results


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def run(config: RunConfig) -> int:
    started = time.monotonic()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = _load()
    cores = choose_cores(config.pin)
    machine = system.machine()
    system.pin(cores.server)  # the harness (and its forkserver) stay off the client core
    system.raise_fd_limit()  # inherited by the forkserver and its workers (each raises it too)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="acytoo-bench-") as scratch:
        material = certs.generate(Path(scratch))
        server = ServerProcess(material, cores.server)
        with server as server_info:
            clock = server.check_clock()
            _log(clock.describe())
            _log(f"pinning: {cores.describe()}; server pacing: {server_info.pacing}")
            measurements = _measure_all(config, server, server_info, material.ca_file, cores)
    summaries = [
        summarize(s, config.clients_of(s), measurements, s.reps(config.reps))
        for s in config.scenarios
    ]
    checks = targets.evaluate(summaries)
    elapsed = time.monotonic() - started
    negative = sum(int(m.metrics.get("negative", 0)) for m in measurements)
    clock_line = f"{clock.describe()}; negative piece latencies in this run: {negative}"
    load = f"load average (1, 5, 15 min) at the start {load_before}, at the end {_load()}"
    preamble = _preamble(config, when, machine, cores, clock_line, server_info, elapsed, load)
    text = report.full_text(preamble, summaries, checks)
    print(text)
    (config.out_dir / "latest.md").write_text(text)
    meta: dict[str, object] = {
        "command": config.command,
        "profile": config.profile.name,
        "repetitions": config.reps,
        "date": when,
        "elapsed_s": round(elapsed, 1),
        "machine": machine,
        "pinning": cores.describe(),
        "server_pacing": server_info.pacing,
        "clock": {**clock.as_dict(), "negative_latencies": negative},
    }
    report.write_json(config.out_dir / "latest.json", meta, summaries, measurements, checks)
    images = plots.latency_cdfs(summaries, config.out_dir)
    ladder = plots.p99_vs_streams(summaries, config.out_dir)
    images += ladder
    written = [config.out_dir / "latest.md", config.out_dir / "latest.json", *images]
    if config.publish_to is not None:
        config.publish_to.write_text(text)
        written.append(config.publish_to)
        if ladder and config.plot_to is not None:
            shutil.copyfile(ladder[0], config.plot_to)
            written.append(config.plot_to)
    _log("wrote " + ", ".join(str(p) for p in written))
    return 0 if clock.ok else 1


def _preamble(
    config: RunConfig,
    when: str,
    machine: dict[str, object],
    cores: Cores,
    clock: str,
    server: ServerInfo,
    elapsed: float,
    load: str,
) -> Sequence[str]:
    versions = machine["versions"]
    assert isinstance(versions, dict)
    return [
        f"## acytoo_raw streaming benchmarks: {config.profile.name} run, {when}",
        "",
        f"- command: `{config.command}` ({elapsed:.0f} s)",
        f"- machine: {machine['cpu']}, {machine['cores_usable']} usable cores, "
        f"{machine['platform']}, {machine['implementation']} {machine['python']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- {clock}",
        f"- pinning: {cores.describe()}; server pacing: {server.pacing}",
        f"- {load} (the machine's 2 cores are shared with other work: absolute figures move "
        "between runs, compare within a table)",
        "- each measurement runs in a fresh process (forked from a preloaded forkserver) after "
        "one warm-up request; clients interleaved in rotating order within each scenario",
        "- every request opens a new connection, except in `sequential-*`, `reconnect-tls` "
        "and `chat-sse`, which measure requests over one long-lived client (acytoo_raw "
        "`Client`, aiohttp `ClientSession`, httpx `AsyncClient`, openai `AsyncOpenAI`, the "
        "floor holding one connection); aiohttp and httpx pool limits lifted "
        "(aiohttp `limit=0`, httpx `max_connections=None`) so concurrent streams run at once",
        "- per-piece latency leaves out each stream's first 10 pieces, concurrency latency each "
        "stream's first piece (time to first piece is measured on its own); concurrent streams "
        "send at random phases; 'all started' is when the last stream got its first piece; "
        "'steady' figures are pieces sent after that",
        "- GC: CPU time inside `gc` collections during the measured part, and the longest "
        "collection's wall time (`gc.callbacks`)",
    ]
