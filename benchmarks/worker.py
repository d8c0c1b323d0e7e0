"""One measurement in one fresh process: one client, one scenario, one repetition.

A worker pins itself to the client core, builds the TLS context once, starts the client inside
its event loop (asyncio, uvloop or trio), makes one small warm-up request, then measures, with
the time spent in garbage collection recorded. Every outcome (including "the client can't be
imported" and "the client raised") comes back as a ``Measurement``, never as a crash of the
harness. Import-time measurements run no client: they start fresh interpreters.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import ssl
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, Literal

import anyio

from benchmarks import stats, system
from benchmarks.clients.base import Client, ClientSpec
from benchmarks.measure import Outcome, drain, gc_meter, measure, measure_imports
from benchmarks.scenarios import Scenario

Status = Literal["ok", "failed", "unavailable", "timeout"]
MAX_ERROR = 300


@dataclass(frozen=True)
class Job:
    client: ClientSpec
    scenario: Scenario
    rep: int
    url: str
    warmup_url: str
    ca_file: str
    core: int | None


@dataclass
class Measurement:
    client: str
    scenario: str
    rep: int
    status: Status
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    sketch_us: list[float] = field(default_factory=list)
    window_s: float = 0.0  # how long the measured part took (the server's CPU is divided by it)
    server_cpu_share: float | None = None  # filled in by the harness
    malloc_tuned: bool = False
    note: str = ""  # what the client actually ran, when that can vary (e.g. a fallback path)


def main(conn: Connection, job: Job) -> None:
    """Process entry point: run ``job`` and send back one ``Measurement``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's to handle
    try:
        result = _run(job)
    except BaseException as exc:  # report anything, even SystemExit, as a row
        result = _failure(job, "failed", exc)
    try:
        conn.send(result)
    finally:
        conn.close()


def _failure(job: Job, status: Status, exc: BaseException) -> Measurement:
    return Measurement(job.client.key, job.scenario.key, job.rep, status, describe(exc))


def describe(exc: BaseException) -> str:
    """One line naming the innermost real error (exception groups unwrapped)."""
    for _ in range(10):
        inner = getattr(exc, "exceptions", None)
        if not inner:
            break
        exc = inner[0]
    text = f"{type(exc).__name__}: {exc}"
    if not str(exc):
        frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        text += "".join(f" at {f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frame)
    return text[:MAX_ERROR]


def _run(job: Job) -> Measurement:
    system.pin(job.core)
    system.raise_fd_limit()
    if job.scenario.measure == "import":
        return _imports(job)
    tuned = system.tune_malloc() if job.scenario.tuned_malloc else False
    ssl_context = ssl.create_default_context(cafile=job.ca_file)
    keepalive = job.scenario.keepalive or job.client.family == "chat"
    try:
        client = job.client.create(ssl_context, keepalive=keepalive, urls=(job.warmup_url, job.url))
    except ImportError as exc:
        return _failure(job, "unavailable", exc)
    backend, options = _backend(job.client.runtime)
    result: Measurement = anyio.run(
        partial(_session, client, job), backend=backend, backend_options=options
    )
    result.malloc_tuned = tuned
    return result


def _backend(runtime: str) -> tuple[str, dict[str, Any]]:
    if runtime == "trio":
        return "trio", {}
    return "asyncio", {"use_uvloop": runtime == "uvloop"}


async def _session(client: Client, job: Job) -> Measurement:
    scenario = job.scenario
    try:
        with anyio.fail_after(20):
            await client.start()
            await drain(client, job.warmup_url)
        gc.collect()
        gc.freeze()  # what the fork inherited is not this client's garbage
        started = time.perf_counter()
        with anyio.fail_after(scenario.timeout_seconds()), gc_meter() as collector:
            outcome: Outcome = await measure(client, scenario, job.url)
        window = time.perf_counter() - started
        outcome.metrics.update(collector.metrics())
    except TimeoutError as exc:
        return _failure(job, "timeout", exc)
    except Exception as exc:
        return _failure(job, "failed", exc)
    finally:
        with anyio.move_on_after(5, shield=True), contextlib.suppress(Exception):
            await client.stop()
    return Measurement(
        client=job.client.key,
        scenario=scenario.key,
        rep=job.rep,
        status="ok",
        metrics=outcome.metrics,
        sketch_us=[round(v, 2) for v in stats.sketch(sorted(outcome.samples_us))],
        window_s=window,
        note=client.note,
    )


def _imports(job: Job) -> Measurement:
    started = time.perf_counter()
    try:
        outcome = measure_imports(job.client.target, job.scenario.requests)
    except ImportError as exc:
        return _failure(job, "unavailable", exc)
    except Exception as exc:
        return _failure(job, "failed", exc)
    return Measurement(
        client=job.client.key,
        scenario=job.scenario.key,
        rep=job.rep,
        status="ok",
        metrics=outcome.metrics,
        sketch_us=[round(v, 2) for v in stats.sketch(outcome.samples_us)],
        window_s=time.perf_counter() - started,
    )
