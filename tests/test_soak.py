"""A soak CI can afford: thousands of streams leak no file descriptor, memory or pool slot.

Against the loopback server (``acytoo_raw.server.serve``), plain and TLS, on
asyncio, uvloop and trio: streams one after the other over one Client (one
kept-alive connection), waves of concurrent one-shot calls (a connection
each), and waves of concurrent streams sharing one Client's pool. Afterwards
the process holds exactly the file descriptors it held before, its resident
memory grew by a bounded amount, and the pool counts what it should. The
longer soak a person runs on demand is ``python -m benchmarks.soak``.
"""

from __future__ import annotations

import gc
import os
import ssl
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import anyio
import pytest

import acytoo_raw
from acytoo_raw import Client, Limits
from acytoo_raw.server import serve

pytestmark = pytest.mark.anyio

SEQUENTIAL = 1000  # Streams one after the other over one Client.
WAVES = 3  # Waves of concurrent streams, one-shot and pooled.
ONE_SHOT_WAVE = 300  # Concurrent one-shot calls per wave: 300 connections open at once.
POOLED_WAVE = 100  # Concurrent streams per wave over one Client with POOL_LIMITS.
POOL_LIMITS = Limits(max_connections=50, max_keepalive=20, keepalive_expiry=30.0)

# Resident memory may grow by this much over the soak: allocator arenas, SSL
# caches and the interpreter's free lists keep some; a leak of even 10 KiB per
# stream (a kept response, an unclosed socket object) over 2,900 streams would
# still pass, which is why the fds and the pool are checked exactly.
MAX_RSS_GROWTH = 50 * 1024 * 1024

# The whole soak of one loop and one scheme ends well within this on a busy
# 2-core machine (it takes a few seconds).
SOAK_BOUND = 120.0

CONTENT = "soak test answer"
PAYLOAD = {"messages": [{"role": "user", "content": CONTENT}]}


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"debug": False}), id="asyncio"),
        pytest.param("trio", id="trio"),
        pytest.param(("asyncio", {"use_uvloop": True, "debug": False}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """The three loops of tests/conftest.py, with asyncio's debug mode off.

    ``-X dev`` turns it on, and its per-callback bookkeeping makes this soak
    three times slower on asyncio and uvloop; what the soak checks (fds,
    memory, slots) does not depend on it, and ResourceWarnings still fire.
    """
    return request.param


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def settle(baseline: int | None = None) -> int:
    """Let closes finish, then count the fds: asyncio frees an fd a loop turn
    later, and the server closes its side only when it sees ours closed.

    Waits (a bounded while) until the count is down to ``baseline``, if given.
    """
    gc.collect()
    await anyio.sleep(0.05)
    with anyio.move_on_after(10):
        while baseline is not None and open_fds() > baseline:
            await anyio.sleep(0.02)
            gc.collect()
    return open_fds()


async def one_shot(url: str, context: ssl.SSLContext) -> str:
    async with aclosing(acytoo_raw.stream_text(url, json=PAYLOAD, ssl_context=context)) as texts:
        return "".join([text async for text in texts])


async def pooled(client: Client, url: str) -> str:
    async with aclosing(client.stream_text(url, json=PAYLOAD)) as texts:
        return "".join([text async for text in texts])


async def waves(make: Callable[[], Awaitable[str]], size: int) -> list[str]:
    answers: list[str] = []

    async def run() -> None:
        answers.append(await make())

    for _ in range(WAVES):
        async with anyio.create_task_group() as tg:
            for _ in range(size):
                tg.start_soon(run)
    return answers


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_thousands_of_streams_leak_no_fd_memory_or_slot(
    tls: bool, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with serve(ssl_context=server_ssl_context if tls else None) as base:
        url = f"{base}/api/completions"
        with anyio.fail_after(SOAK_BOUND):
            # Warm up: first-use imports, caches and the loop's own fds are not leaks.
            async with Client(ssl_context=client_ssl_context) as client:
                assert await pooled(client, url) == CONTENT
            assert await one_shot(url, client_ssl_context) == CONTENT
            fds = await settle()
            rss = resident_bytes()

            async with Client(ssl_context=client_ssl_context) as client:
                for _ in range(SEQUENTIAL):
                    assert await pooled(client, url) == CONTENT
                # One connection carried them all, and it is kept for the next request.
                assert client._pool.open_connections == 1
                assert client._pool.idle_connections == 1
            assert client._pool.open_connections == 0

            answers = await waves(lambda: one_shot(url, client_ssl_context), ONE_SHOT_WAVE)
            assert answers == [CONTENT] * (WAVES * ONE_SHOT_WAVE)

            async with Client(ssl_context=client_ssl_context, limits=POOL_LIMITS) as client:
                answers = await waves(lambda: pooled(client, url), POOLED_WAVE)
                assert answers == [CONTENT] * (WAVES * POOLED_WAVE)
                # Busy connections never exceed the limit; idle ones are trimmed to the keep-alive.
                assert client._pool.open_connections == client._pool.idle_connections
                assert 1 <= client._pool.idle_connections <= POOL_LIMITS.max_keepalive
            assert client._pool.open_connections == 0
            assert client._pool.idle_connections == 0

            assert await settle(fds) == fds
        growth = resident_bytes() - rss
        assert growth < MAX_RSS_GROWTH, f"RSS grew by {growth / 2**20:.1f} MiB"


async def test_tls_session_is_read_once_per_pooled_connection_never_by_one_shot_calls(
    monkeypatch: pytest.MonkeyPatch,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    # Each read of SSLObject.session copies the session, and on CPython 3.11
    # (python/cpython#116810) leaks the copy: ~6 KiB of C memory per read,
    # which tracemalloc can't see and which read per request grew a 10,000-stream
    # soak by 70 MB. Count the reads instead.
    reads: list[int] = []
    original: property = vars(ssl.SSLObject)["session"]

    def counting(self: ssl.SSLObject) -> ssl.SSLSession | None:
        reads.append(1)
        session: ssl.SSLSession | None = original.__get__(self)
        return session

    monkeypatch.setattr(ssl.SSLObject, "session", property(counting, original.fset))
    async with serve(ssl_context=server_ssl_context) as base:
        url = f"{base}/api/completions"
        with anyio.fail_after(SOAK_BOUND):
            for _ in range(5):
                assert await one_shot(url, client_ssl_context) == CONTENT
            assert reads == []  # One connection per call: nothing to resume later.

            async with Client(ssl_context=client_ssl_context) as client:
                for _ in range(20):
                    assert await pooled(client, url) == CONTENT
            assert len(reads) == 1  # One connection carried the 20 requests.

            fresh = Limits(max_keepalive=0)  # A new connection per request, resumed.
            async with Client(ssl_context=client_ssl_context, limits=fresh) as client:
                resumed = []
                for _ in range(3):
                    async with client.open_stream(url, json=PAYLOAD) as response:
                        await response.aread()
                        resumed.append(response.timings.tls_resumed)
            assert len(reads) == 1 + 3
            assert resumed == [False, True, True]
