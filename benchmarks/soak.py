"""The long soak, run on demand: resident memory and open fds over 10,000+ streams.

    python -m benchmarks.soak --streams 10000
    python -m benchmarks.soak --streams 20000 --loop trio --tls --concurrency 200
    python -m benchmarks.soak --streams 10000 --mode one-shot --loop uvloop

The loopback server (``acytoo_raw.server``) runs in a child process, so the
curves are the client's alone. ``--concurrency`` workers share the streams;
in the default ``mixed`` mode every other stream goes through one long-lived
:class:`acytoo_raw.Client` (kept-alive, pooled connections), the rest are
one-shot calls (a new connection each). RSS, open fds and the pool's counts
are sampled every ``--interval`` seconds and written to
``benchmarks/results/soak-<loop>-<scheme>-<mode>-<time>.csv`` with a PNG plot
beside it. The run fails (exit status 1) when any stream failed or the fds did
not return to their count before the first stream. CI runs the short version,
tests/test_soak.py.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

import anyio

import acytoo_raw
from acytoo_raw import AcytooError, Client, Limits

__all__ = ["Sample", "SoakResult", "main"]

RESULTS = Path(__file__).resolve().parent / "results"

PAYLOAD = {"messages": [{"role": "user", "content": "soak test answer"}]}
EXPECTED = "soak test answer"

# The child server prints its URL on its first line; it must come within this.
SERVER_START_TIMEOUT = 30.0
# Closes finish a loop turn later on asyncio, and the server closes its side
# when it sees ours: wait up to this long for the fds to settle.
SETTLE_TIMEOUT = 10.0
# Error messages kept for the summary; the count covers the rest.
MAX_ERRORS_SHOWN = 5

_SERVER_CODE = """
import ssl, sys, anyio
from acytoo_raw.server import serve_forever
context = None
if len(sys.argv) > 1:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
def ready(url):
    print(url, flush=True)
anyio.run(lambda: serve_forever("127.0.0.1", 0, ssl_context=context, on_ready=ready))
"""


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of the curves."""

    seconds: float
    streams: int
    rss_mib: float
    fds: int
    pool_open: int
    pool_idle: int


@dataclass(frozen=True, slots=True)
class SoakResult:
    samples: list[Sample]
    baseline_fds: int
    final_fds: int
    baseline_rss_mib: float
    final_rss_mib: float
    streams: int
    errors: int
    error_messages: list[str]
    seconds: float


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _settle(baseline: int | None) -> int:
    gc.collect()
    await anyio.sleep(0.1)
    with anyio.move_on_after(SETTLE_TIMEOUT):
        while baseline is not None and open_fds() > baseline:
            await anyio.sleep(0.05)
            gc.collect()
    return open_fds()


async def _one_shot(url: str, context: ssl.SSLContext) -> str:
    async with aclosing(acytoo_raw.stream_text(url, json=PAYLOAD, ssl_context=context)) as texts:
        return "".join([text async for text in texts])


async def _pooled(client: Client, url: str) -> str:
    async with aclosing(client.stream_text(url, json=PAYLOAD)) as texts:
        return "".join([text async for text in texts])


async def soak(
    url: str,
    context: ssl.SSLContext,
    *,
    streams: int,
    concurrency: int,
    mode: str,
    interval: float,
) -> SoakResult:
    """Run ``streams`` streams against ``url`` and sample the process meanwhile."""
    limits = Limits(max_connections=max(concurrency, 1), max_keepalive=min(concurrency, 100))
    endpoint = f"{url}/api/completions"
    # Warm up, so first-use imports and caches are not counted as growth.
    async with Client(ssl_context=context) as warm:
        await _pooled(warm, endpoint)
    await _one_shot(endpoint, context)
    baseline_fds = await _settle(None)
    baseline_rss = rss_mib()

    samples: list[Sample] = []
    done = 0
    errors: list[str] = []
    error_count = 0
    started = time.perf_counter()
    client = Client(ssl_context=context, limits=limits)

    def sample() -> None:
        samples.append(
            Sample(
                round(time.perf_counter() - started, 3),
                done,
                round(rss_mib(), 2),
                open_fds(),
                client._pool.open_connections,
                client._pool.idle_connections,
            )
        )

    async def sampler() -> None:
        while True:
            sample()
            await anyio.sleep(interval)

    next_index = 0

    async def worker() -> None:
        nonlocal next_index, done, error_count
        while next_index < streams:
            index = next_index
            next_index += 1
            pooled = mode == "pooled" or (mode == "mixed" and index % 2 == 0)
            try:
                if pooled:
                    answer = await _pooled(client, endpoint)
                else:
                    answer = await _one_shot(endpoint, context)
                if answer != EXPECTED:
                    raise AssertionError(f"unexpected answer {answer[:80]!r}")
            except (AcytooError, AssertionError) as exc:
                error_count += 1
                if len(errors) < MAX_ERRORS_SHOWN:
                    errors.append(f"{type(exc).__name__}: {exc}")
            done += 1

    async with client, anyio.create_task_group() as sampling:
        sampling.start_soon(sampler)
        async with anyio.create_task_group() as workers:
            for _ in range(concurrency):
                workers.start_soon(worker)
        sample()
        sampling.cancel_scope.cancel()
    seconds = time.perf_counter() - started
    final_fds = await _settle(baseline_fds)
    sample()
    return SoakResult(
        samples,
        baseline_fds,
        final_fds,
        round(baseline_rss, 2),
        round(rss_mib(), 2),
        done,
        error_count,
        errors,
        seconds,
    )


def write_csv(result: SoakResult, path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([field.name for field in fields(Sample)])
        for point in result.samples:
            writer.writerow(astuple(point))


def plot(result: SoakResult, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result.samples
    seconds = [point.seconds for point in points]
    figure, (rss, fds, streams) = plt.subplots(
        3, 1, sharex=True, figsize=(9, 8), height_ratios=[3, 3, 2]
    )
    rss.plot(seconds, [point.rss_mib for point in points], color="tab:blue")
    rss.axhline(result.baseline_rss_mib, color="grey", linestyle=":", label="before the soak")
    rss.set_ylabel("RSS (MiB)")
    rss.legend(loc="lower right")
    fds.plot(seconds, [point.fds for point in points], color="tab:red", label="open fds")
    fds.plot(seconds, [point.pool_open for point in points], color="tab:green", label="pool: open")
    fds.plot(seconds, [point.pool_idle for point in points], color="tab:olive", label="pool: idle")
    fds.axhline(result.baseline_fds, color="grey", linestyle=":", label="fds before")
    fds.set_ylabel("count")
    fds.legend(loc="upper right")
    streams.plot(seconds, [point.streams for point in points], color="black")
    streams.set_ylabel("streams done")
    streams.set_xlabel("seconds")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


class _Server:
    """The loopback server in a child process."""

    def __init__(self, certfile: str | None, keyfile: str | None) -> None:
        arguments = [sys.executable, "-c", _SERVER_CODE]
        if certfile is not None and keyfile is not None:
            arguments += [certfile, keyfile]
        self._process = subprocess.Popen(arguments, stdout=subprocess.PIPE, text=True)
        self.url = self._read_url()

    def _read_url(self) -> str:
        assert self._process.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        line = ""
        while not line and time.monotonic() < deadline and self._process.poll() is None:
            line = self._process.stdout.readline().strip()
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the loopback server did not start (said {line!r})")
        return line

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def _backend(loop: str) -> tuple[str, dict[str, Any]]:
    if loop == "uvloop":
        return "asyncio", {"use_uvloop": True}
    return loop, {}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="RSS and fd curves over many streams against the loopback server.",
    )
    parser.add_argument("--streams", type=int, default=10_000, help="streams in all")
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    parser.add_argument("--tls", action="store_true", help="https:// with a throw-away CA")
    parser.add_argument("--concurrency", type=int, default=100, help="streams at once")
    parser.add_argument(
        "--mode",
        choices=["mixed", "pooled", "one-shot"],
        default="mixed",
        help="through one Client, one-shot calls, or every other stream each (default)",
    )
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSV and PNG")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.concurrency < 1 or args.interval <= 0:
        parser.error("--streams and --concurrency must be >= 1, --interval > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    scheme = "tls" if args.tls else "plain"
    with tempfile.TemporaryDirectory() as scratch:
        context = ssl.create_default_context()
        certfile = keyfile = None
        if args.tls:
            import trustme  # bench extra

            ca = trustme.CA()
            leaf = ca.issue_cert("127.0.0.1")
            certfile, keyfile = f"{scratch}/server.pem", f"{scratch}/server.key"
            leaf.cert_chain_pems[0].write_to_path(certfile)
            leaf.private_key_pem.write_to_path(keyfile)
            ca.configure_trust(context)
        server = _Server(certfile, keyfile)
        try:
            backend, options = _backend(args.loop)
            result = anyio.run(
                lambda: soak(
                    server.url,
                    context,
                    streams=args.streams,
                    concurrency=args.concurrency,
                    mode=args.mode,
                    interval=args.interval,
                ),
                backend=backend,
                backend_options=options,
            )
        finally:
            server.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"soak-{args.loop}-{scheme}-{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    csv_path, png_path = args.out / f"{stem}.csv", args.out / f"{stem}.png"
    write_csv(result, csv_path)
    title = (
        f"{result.streams} streams, {args.loop}, {scheme}, {args.mode}, {args.concurrency} at once"
    )
    plot(result, png_path, title)
    peak = max(point.rss_mib for point in result.samples)
    print(f"{title}: {result.seconds:.1f} s ({result.streams / result.seconds:.0f} streams/s)")
    print(
        f"RSS: {result.baseline_rss_mib:.1f} MiB before, peak {peak:.1f}, "
        f"{result.final_rss_mib:.1f} after"
    )
    print(f"fds: {result.baseline_fds} before, {result.final_fds} after")
    print(f"errors: {result.errors}")
    for message in result.error_messages:
        print(f"  {message}")
    print(f"wrote {csv_path} and {png_path}")
    return 1 if result.errors or result.final_fds != result.baseline_fds else 0


if __name__ == "__main__":
    sys.exit(main())
