"""Hostile clients against acytoo_raw.server over real loopback sockets (issue 10, items 13-17).

Each client here is raw bytes on a socket: chunk-size lines built to make a
regex backtrack, a body in 1-byte chunks, heads and bodies trickled a byte at a
time, oversized heads in one write, hundreds of idle connections. No test
asserts on speed; each one ends within a generous ``fail_after``, which the
server before these fixes did not (or it failed a memory bound instead).
"""

from __future__ import annotations

import gc
import json
import socket
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import anyio
import pytest
from anyio.abc import ByteStream

from acytoo_raw.server import (
    BODY_TIMEOUT,
    HEAD_TIMEOUT,
    MAX_BODY_WIRE_BYTES,
    MAX_HEAD_BYTES,
    serve,
)

PATH = "/api/completions"
# Every request here asks to close, so reading to EOF reads exactly one answer.
CHUNKED_HEAD = (
    f"POST {PATH} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
).encode()


def _address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host.strip("[]"), int(port)


def _payload(content: str) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": content}]}).encode()


def _post(body: bytes, target: str = PATH) -> bytes:
    head = (
        f"POST {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_to_eof(stream: ByteStream) -> bytes:
    """Everything the server sends until it closes (a reset counts as a close)."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return data


async def _exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` whole, with ``connection: close`` semantics: read to EOF."""
    async with await anyio.connect_tcp(*_address(url)) as stream:
        await stream.send(request)
        return await _read_to_eof(stream)


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer.split(b" ", 2)[1])


async def _still_serving(url: str) -> None:
    answer = await _exchange(url, _post(_payload("alive")))
    assert _status(answer) == 200
    assert answer.endswith(b"alive\r\n0\r\n\r\n")


@contextmanager
def _traced() -> Iterator[None]:
    """tracemalloc on for the block (left as it was found).

    asyncio's debug mode (``-X dev``) records where each coroutine was created,
    a dozen tuples per coroutine charged to the line that created it: that is
    switched off for the block, so only what the server itself holds counts.
    """
    was_tracing = tracemalloc.is_tracing()
    depth = sys.get_coroutine_origin_tracking_depth()
    sys.set_coroutine_origin_tracking_depth(0)
    if not was_tracing:
        tracemalloc.start()
    try:
        yield
    finally:
        if not was_tracing:
            tracemalloc.stop()
        sys.set_coroutine_origin_tracking_depth(depth)


# --- 13: chunk-size lines that make h11's regex backtrack --------------------------------------


@pytest.mark.anyio
async def test_backtracking_chunk_size_lines_are_refused_cheaply() -> None:
    # "1;" + spaces + a bare LF before the CRLF: h11's chunk-line regex backtracks
    # quadratically over the spaces (about 2 s of CPU per 60 KiB line). Each line
    # arrives in one write, so h11's own 16 KiB bound for incomplete lines never
    # fires. Eight of them cost the old server far longer than the bound below.
    line = b"1;" + b" " * (60 * 1024) + b"\n\r\n"
    with anyio.fail_after(8):
        async with serve() as url:
            answers: list[bytes] = []

            async def one() -> None:
                answers.append(await _exchange(url, CHUNKED_HEAD + line))

            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(one)
            await _still_serving(url)
    assert [_status(a) for a in answers] == [400] * 8
    # The reply quotes a glimpse of the line, not all 60 KiB of it.
    assert all(len(a) < 1024 for a in answers)


@pytest.mark.anyio
async def test_chunk_size_line_of_16_kib_with_a_bare_lf_is_a_400() -> None:
    # The issue's own vector: 16 KiB of spaces, within the chunk-line limit.
    line = b"1;" + b" " * (16 * 1024 - 8) + b"\n\r\n"
    with anyio.fail_after(10):
        async with serve() as url:
            answers = [await _exchange(url, CHUNKED_HEAD + line) for _ in range(5)]
            await _still_serving(url)
    assert [_status(a) for a in answers] == [400] * 5


@pytest.mark.anyio
async def test_long_chunk_extension_is_legal_and_ignored() -> None:
    body = _payload("extended")
    wire = b"%x;" % len(body) + b" " * (16 * 1024 - 16) + b"\r\n" + body + b"\r\n0\r\n\r\n"
    with anyio.fail_after(10):
        async with serve() as url:
            answer = await _exchange(url, CHUNKED_HEAD + wire)
    assert _status(answer) == 200
    assert answer.endswith(b"extended\r\n0\r\n\r\n")


# --- 14: a body in 1-byte chunks ---------------------------------------------------------------


def _one_byte_chunks(body: bytes) -> bytes:
    return b"".join(b"1\r\n%c\r\n" % byte for byte in body) + b"0\r\n\r\n"


@pytest.mark.anyio
async def test_one_byte_chunks_hold_the_body_not_an_object_per_byte() -> None:
    content = "y" * (64 * 1024)
    wire = CHUNKED_HEAD + _one_byte_chunks(_payload(content))  # built before tracing starts
    with anyio.fail_after(60):
        async with serve() as url:
            with _traced():
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                answer = await _exchange(url, wire)
                peak = tracemalloc.get_traced_memory()[1] - before
    assert _status(answer) == 200
    assert answer.split(b"\r\n\r\n", 1)[1].count(b"y") == len(content)
    # The body is 64 KiB; with its copies (JSON text, reply, chunk) under a MiB.
    # h11's one Data event per chunk, kept in a list, held 9.5 MiB here.
    assert peak < 4 * 1024 * 1024, peak


@pytest.mark.anyio
async def test_chunked_framing_beyond_the_wire_cap_is_413() -> None:
    # Tiny chunks with 1 KiB of extension each: the payload stays far under
    # MAX_BODY_BYTES while the framing exceeds MAX_BODY_WIRE_BYTES.
    chunk = b"1;" + b"e" * 1021 + b"\r\nx\r\n"
    count = MAX_BODY_WIRE_BYTES // len(chunk) + 64
    wire = CHUNKED_HEAD + chunk * count
    answer = b""
    with anyio.fail_after(30):
        async with serve() as url, await anyio.connect_tcp(*_address(url)) as stream:

            async def send() -> None:
                # The server stops reading after its reply: the rest may meet a reset.
                with suppress(anyio.BrokenResourceError, OSError):
                    await stream.send(wire)

            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                answer = await _read_to_eof(stream)
                tg.cancel_scope.cancel()
    assert _status(answer) == 413
    assert b"connection: close" in answer.lower()
    assert b"on the wire" in answer


# --- 15: slowloris ----------------------------------------------------------------------------


async def _trickle(stream: ByteStream, data: bytes, interval: float) -> bool:
    """Send ``data`` a byte per ``interval``; True when the server closed first."""
    for byte in data:
        with anyio.move_on_after(interval):
            try:
                if await stream.receive() == b"":
                    return True
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return True
            return True  # the server answered something: it stopped waiting too
        try:
            await stream.send(bytes([byte]))
        except (anyio.BrokenResourceError, OSError):
            return True
    return False


def test_default_deadlines() -> None:
    assert HEAD_TIMEOUT == 10.0
    assert BODY_TIMEOUT == 30.0


@pytest.mark.anyio
async def test_head_trickled_a_byte_at_a_time_is_dropped_at_the_head_deadline() -> None:
    head = f"POST {PATH} HTTP/1.1\r\nhost: x\r\n".encode() + b"x-slow: " + b"a" * 200
    with anyio.fail_after(15):
        async with serve(idle_timeout=5.0, head_timeout=0.5) as url:
            async with await anyio.connect_tcp(*_address(url)) as stream:
                started = anyio.current_time()
                # Every byte comes well within the idle timeout: only a whole-head
                # deadline ends this (the trickle alone would last 10 s).
                assert await _trickle(stream, head, 0.05)
                assert anyio.current_time() - started >= 0.4
                assert await _read_to_eof(stream) == b""  # dropped without a reply
            await _still_serving(url)


@pytest.mark.anyio
async def test_body_trickled_a_byte_at_a_time_is_dropped_at_the_body_deadline() -> None:
    body = _payload("a" * 200)
    head = f"POST {PATH} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
    with anyio.fail_after(15):
        async with serve(idle_timeout=5.0, body_timeout=0.5) as url:
            async with await anyio.connect_tcp(*_address(url)) as stream:
                await stream.send(head.encode())
                started = anyio.current_time()
                assert await _trickle(stream, body, 0.05)
                assert anyio.current_time() - started >= 0.4
            await _still_serving(url)


@pytest.mark.anyio
async def test_chunked_body_trickled_is_dropped_at_the_body_deadline() -> None:
    wire = _one_byte_chunks(_payload("slow"))
    with anyio.fail_after(15):
        async with serve(idle_timeout=5.0, body_timeout=0.5) as url:
            async with await anyio.connect_tcp(*_address(url)) as stream:
                await stream.send(CHUNKED_HEAD)
                assert await _trickle(stream, wire, 0.02)
            await _still_serving(url)


@pytest.mark.anyio
async def test_head_deadline_starts_at_the_first_byte_not_at_accept() -> None:
    # A keep-alive client may stay silent up to the idle timeout between requests;
    # only once a head has begun does the head deadline run.
    with anyio.fail_after(10):
        async with serve(idle_timeout=5.0, head_timeout=0.3) as url:
            async with await anyio.connect_tcp(*_address(url)) as stream:
                await anyio.sleep(0.6)
                await stream.send(_post(_payload("patient")))
                answer = await _read_to_eof(stream)
    assert _status(answer) == 200
    assert answer.endswith(b"patient\r\n0\r\n\r\n")


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["idle_timeout", "head_timeout", "body_timeout"])
@pytest.mark.parametrize("value", [0.0, -1.0])
async def test_serve_rejects_timeouts_not_above_zero(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        async with serve(**{name: value}):  # type: ignore[arg-type]
            pass


# --- 16: MAX_HEAD_BYTES however the head arrives ----------------------------------------------


def _head_of(size: int, target: str = PATH) -> bytes:
    """A complete GET head of exactly ``size`` bytes."""
    start = f"GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-pad: ".encode()
    pad = size - len(start) - 4
    assert pad >= 0
    return start + b"p" * pad + b"\r\n\r\n"


@pytest.mark.anyio
@pytest.mark.parametrize("size", [MAX_HEAD_BYTES + 1, 17_000, 40_000, 65_000, 200_000])
async def test_oversized_head_in_one_write_is_431(size: int) -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            answer = await _exchange(url, _head_of(size))
            await _still_serving(url)
    assert _status(answer) == 431
    assert b"connection: close" in answer.lower()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["msg"]


@pytest.mark.anyio
async def test_head_that_never_ends_is_431_once_over_the_limit() -> None:
    # No blank line ever comes: the server must not wait for one (nor buffer on).
    endless = f"GET {PATH} HTTP/1.1\r\nhost: x\r\nx-pad: ".encode() + b"p" * (MAX_HEAD_BYTES * 2)
    with anyio.fail_after(5):  # well before the 10 s head deadline
        async with serve() as url, await anyio.connect_tcp(*_address(url)) as stream:
            await stream.send(endless)
            answer = await _read_to_eof(stream)
    assert _status(answer) == 431


@pytest.mark.anyio
async def test_head_of_exactly_max_head_bytes_is_served() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            answer = await _exchange(url, _head_of(MAX_HEAD_BYTES))
    assert _status(answer) == 405  # served: a GET on a POST path, not refused as too large


@pytest.mark.anyio
async def test_oversized_head_for_v1_gets_an_openai_error() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            answer = await _exchange(url, _head_of(40_000, "/v1/chat/completions"))
    assert _status(answer) == 431
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


# --- 17: memory of dropped idle connections ---------------------------------------------------

_OURS = [
    tracemalloc.Filter(True, "*acytoo_raw/server.py"),
    tracemalloc.Filter(True, "*acytoo_raw/_server_*"),
    tracemalloc.Filter(True, "*h11*"),
]
# Enough to see per-connection memory over the noise; asyncio's debug mode (-X dev)
# makes each connection slow to open.
CONNECTIONS = 200


def _ours(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.filter_traces(_OURS).statistics("filename"))


async def _settled(baseline: int) -> int:
    """What the server holds beyond ``baseline`` once it has accepted every connection.

    Accepting stops adding memory when all are in: wait (bounded) until the
    traced total grows by less than one connection's worth in 0.2 s.
    """
    total = tracemalloc.get_traced_memory()[0]
    for _ in range(50):
        await anyio.sleep(0.2)
        previous, total = total, tracemalloc.get_traced_memory()[0]
        if total - previous < 1024:
            break
    return _ours(tracemalloc.take_snapshot()) - baseline


@contextmanager
def _no_gc() -> Iterator[None]:
    """Only reference counting frees memory inside the block: a cycle would stay."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def _idle_clients(url: str, count: int) -> Iterator[list[socket.socket]]:
    """Plain client sockets that never send: opened in one go (the kernel queues
    them for the server to accept), without the client-side cost of anyio streams."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(_address(url), timeout=5))
            socks[-1].setblocking(False)
        yield socks
    finally:
        for sock in socks:
            sock.close()
        socks.clear()


async def _wait_for_eof(sock: socket.socket) -> None:
    """Return once the server has closed its end (EOF or reset)."""
    while True:
        await anyio.wait_readable(sock)
        try:
            if sock.recv(1) == b"":
                return
        except BlockingIOError:
            continue
        except OSError:
            return
        raise AssertionError("the server sent bytes to an idle client")


@pytest.mark.anyio
async def test_idle_connections_hold_no_parser_state() -> None:
    with anyio.fail_after(60):
        async with serve() as url:
            await _still_serving(url)  # warm up: first-use caches are not per connection
            with _traced():
                gc.collect()
                baseline = _ours(tracemalloc.take_snapshot())
                with _idle_clients(url, CONNECTIONS):
                    held = await _settled(baseline)  # the server has accepted them all
    # The connection task's frames and an empty buffer, no h11.Connection: about
    # 1.5 KiB each on CPython 3.11 (with an h11.Connection each, over 2 KiB).
    assert held < CONNECTIONS * 1792, held / CONNECTIONS


@pytest.mark.anyio
async def test_connections_dropped_at_the_idle_timeout_release_their_memory() -> None:
    with anyio.fail_after(60):
        async with serve(idle_timeout=0.5) as url:
            await _still_serving(url)
            with _traced(), _no_gc():
                baseline = _ours(tracemalloc.take_snapshot())
                with _idle_clients(url, CONNECTIONS) as socks:
                    for sock in socks:  # the server drops each at its idle timeout
                        await _wait_for_eof(sock)
                await anyio.sleep(0.2)
                # What the server held must go with the connection, not wait in a
                # reference cycle for the collector (on trio, a cancelled receive
                # left one, through anyio's frames and, before, every frame of the
                # connection's task with its h11.Connection).
                left = _ours(tracemalloc.take_snapshot()) - baseline
                gc.collect()
                left_after_gc = _ours(tracemalloc.take_snapshot()) - baseline
            await _still_serving(url)
    assert left < 32 * 1024, left
    assert left_after_gc < 32 * 1024, left_after_gc
