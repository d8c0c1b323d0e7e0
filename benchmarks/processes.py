"""The harness's child processes: the streaming server, and one fresh worker per measurement.

Workers are forked from a forkserver that has already imported the clients (``preload``), so a
measurement costs a fork instead of an interpreter start, while each client still runs alone in
its own process and event loop. Every child is a daemon, waited for with a bound, then killed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
from dataclasses import dataclass
from types import TracebackType
from typing import cast

from benchmarks import server, worker
from benchmarks.certs import Certs
from benchmarks.clock import ClockCheck, check

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    plain_port: int
    tls_port: int
    pacing: str


class ServerProcess:
    """``with ServerProcess(certs, core) as info:`` starts the server and always stops it."""

    def __init__(self, certs: Certs, core: int | None) -> None:
        context = multiprocessing.get_context("spawn")
        self._control, remote = context.Pipe()
        self._process = context.Process(
            target=server.main,
            args=(remote, certs.cert_file, certs.key_file, core),
            name="bench-server",
            daemon=True,
        )
        self._remote = remote

    def __enter__(self) -> ServerInfo:
        self._process.start()
        self._remote.close()
        if not self._control.poll(START_TIMEOUT_S):
            self._stop()
            raise RuntimeError("benchmark server did not start")
        _ready, plain_port, tls_port, pacing = self._control.recv()
        assert self._process.pid is not None
        return ServerInfo(self._process.pid, plain_port, tls_port, pacing)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def check_clock(self) -> ClockCheck:
        return check(self._control)

    def cpu_seconds(self) -> float:
        """The server's own CPU time so far (``time.process_time()`` in the server)."""
        self._control.send("cpu")
        if not self._control.poll(START_TIMEOUT_S):
            raise TimeoutError("server did not report its CPU time")
        seconds: float = self._control.recv()
        return seconds

    def _stop(self) -> None:
        with contextlib.suppress(OSError):
            self._control.send("stop")
        _reap(self._process)
        self._control.close()


def _reap(process: multiprocessing.process.BaseProcess, patience: float = STOP_TIMEOUT_S) -> None:
    """Wait ``patience`` seconds for ``process`` to end, then kill it."""
    process.join(patience)
    if process.is_alive():
        process.kill()
        process.join(STOP_TIMEOUT_S)


class Workers:
    """Runs one ``worker.Job`` per fresh process and returns its ``Measurement``."""

    def __init__(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods else "spawn"
        self._context = cast(
            "multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext",
            multiprocessing.get_context(method),
        )
        if isinstance(self._context, multiprocessing.context.ForkServerContext):
            self._context.set_forkserver_preload(["benchmarks.preload"])

    def run(self, job: worker.Job, timeout_s: float) -> worker.Measurement:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker.main, args=(sender, job), name="bench-worker", daemon=True
        )
        process.start()
        sender.close()
        answered = False  # a worker that answered is left to exit; any other is killed now
        try:
            if receiver.poll(timeout_s):
                result: worker.Measurement = receiver.recv()
                answered = True
                return result
            return _lost(job, "timeout", f"no result within {timeout_s:.0f} s (killed)")
        except EOFError:
            process.join(STOP_TIMEOUT_S)
            return _lost(job, "failed", f"worker died (exit code {process.exitcode})")
        finally:
            receiver.close()
            _reap(process, STOP_TIMEOUT_S if answered else 0.0)


def _lost(job: worker.Job, status: worker.Status, error: str) -> worker.Measurement:
    return worker.Measurement(job.client.key, job.scenario.key, job.rep, status, error)
