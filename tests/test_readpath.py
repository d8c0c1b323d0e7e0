"""The read path: waits without a cancel scope, a lazy timer per stream, nothing left behind.

Real loopback sockets on asyncio, uvloop and trio. "Nothing registered" is
checked in the loop itself where it can be: asyncio's selector map and timer
heap, uvloop's poll event counter, trio's timer heap and its descriptor
registry (a second waiter is refused while one is registered).
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import weakref
from collections.abc import Callable, Iterator
from contextlib import aclosing, contextmanager, suppress

import anyio
import pytest

import acytoo_raw
from acytoo_raw import (
    Client,
    Limits,
    LocalProtocolError,
    ReadTimeout,
    Timeout,
    TotalTimeout,
    _network,
    _readers,
    _trio_reader,
)
from acytoo_raw._http11 import ResponseReader, build_request
from acytoo_raw._network import SocketStream
from acytoo_raw._readers import (
    MAX_QUEUED,
    AsyncioReceiver,
    PortableReceiver,
    Receiver,
    TrioReceiver,
    trio_timers,
)
from acytoo_raw._urls import parse_url
from tests.peers import LAST_CHUNK, chunk, chunked_head, script, scripted_server

BOUND = 10.0


@contextmanager
def tcp_pair() -> Iterator[tuple[SocketStream, socket.socket]]:
    """Our stream on a loopback TCP connection, and the peer's blocking socket."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    client.setblocking(False)
    stream = SocketStream(client)
    try:
        yield stream, peer
    finally:
        stream.close()
        peer.close()


def receiver_of(stream: SocketStream) -> Receiver:
    receiver: Receiver = stream._receiver
    return receiver


def is_parked(receiver: Receiver) -> bool:
    if isinstance(receiver, AsyncioReceiver):
        return receiver._waiter is not None
    assert isinstance(receiver, (TrioReceiver, PortableReceiver))
    return receiver._parked


async def until(condition: Callable[[], bool]) -> None:
    # Polls state that has no event to wait on (a task parked inside the library).
    with anyio.fail_after(BOUND):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.001)


def timer_of(receiver: Receiver) -> object:
    """The receiver's pending timer (asyncio handle, trio heap entry) or ``None``."""
    if isinstance(receiver, (AsyncioReceiver, TrioReceiver)):
        return receiver._timer
    return None


def timer_is_dead(timer: object) -> bool:
    cancelled = getattr(timer, "cancelled", None)  # asyncio's and uvloop's handles
    if cancelled is not None:
        return bool(cancelled())
    assert isinstance(timer, list)
    return timer[2] is None


def assert_no_timer(receiver: Receiver) -> None:
    assert timer_of(receiver) is None
    if isinstance(receiver, AsyncioReceiver):
        loop = asyncio.get_running_loop()
        scheduled = getattr(loop, "_scheduled", None)  # asyncio's heap; uvloop has none.
        if scheduled is not None:
            assert not [
                handle
                for handle in scheduled
                if not handle.cancelled() and handle._callback == receiver._on_timer
            ]
    elif isinstance(receiver, TrioReceiver):
        assert receiver not in trio_timers().live


def assert_no_reader(receiver: Receiver, fd: int) -> None:
    """No reader callback of ours is registered for ``fd`` (also when ``fd`` is closed)."""
    if isinstance(receiver, AsyncioReceiver):
        assert not receiver._reading
        selector = getattr(asyncio.get_running_loop(), "_selector", None)
        if selector is not None:
            key = selector.get_map().get(fd)
            assert key is None or key.data[0] is None


async def assert_nothing_reads(receiver: Receiver, peer: socket.socket, fd: int) -> None:
    """A byte the peer sends now stays in the kernel: no callback of ours takes it."""
    loop = asyncio.get_running_loop() if isinstance(receiver, AsyncioReceiver) else None
    events = getattr(loop, "_poll_read_events_total", None)  # uvloop's counter
    peer.send(b"!")
    await anyio.sleep(0.05)
    if loop is not None:
        assert getattr(loop, "_poll_read_events_total", None) == events
        assert receiver._queued == 0  # type: ignore[attr-defined]


async def probe_trio_registration(sock: socket.socket) -> None:
    """On trio a still-registered reader makes a second wait fail with BusyResourceError."""
    with anyio.move_on_after(0.02):
        await anyio.wait_readable(sock)


# --- cancellation ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("limited", [True, False], ids=["timeout", "no-timeout"])
async def test_cancel_while_parked_leaves_nothing_registered(limited: bool) -> None:
    with tcp_pair() as (stream, peer):
        if limited:
            stream.set_read_limits(5.0, anyio.current_time() + 30)
        receiver = receiver_of(stream)
        fd = stream.socket.fileno()
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stream.receive)
                await until(lambda: is_parked(receiver))
                timer = timer_of(receiver)
                assert (timer is not None) == (
                    limited and not isinstance(receiver, PortableReceiver)
                )
                tg.cancel_scope.cancel()
            assert not is_parked(receiver)
            assert_no_timer(receiver)
            if timer is not None:
                assert timer_is_dead(timer)
            assert_no_reader(receiver, fd)
            await assert_nothing_reads(receiver, peer, fd)
            await probe_trio_registration(stream.socket)
            # The stream still works: the byte sent meanwhile, then more.
            assert await stream.receive() == b"!"
            peer.send(b"more")
            assert await stream.receive() == b"more"


@pytest.mark.anyio
async def test_bytes_handed_to_a_reader_cancelled_before_it_ran_are_kept() -> None:
    with tcp_pair() as (stream, peer):
        receiver = receiver_of(stream)
        with anyio.fail_after(BOUND):
            if isinstance(receiver, AsyncioReceiver):
                # anyio lets a task whose wait already completed run on; a bare
                # asyncio cancel does not: the bytes must go back to the queue.
                task = asyncio.ensure_future(stream.receive())
                await until(lambda: is_parked(receiver))
                peer.send(b"caught")
                select.select([stream.socket], [], [], BOUND)
                receiver._on_readable()  # Hands the bytes to the parked reader...
                task.cancel()  # ...which is cancelled before it runs.
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(stream.receive)
                    await until(lambda: is_parked(receiver))
                    peer.send(b"caught")
                    tg.cancel_scope.cancel()
            data = b""
            while len(data) < len(b"caught"):
                data += await stream.receive()
        assert data == b"caught"


@pytest.mark.anyio
async def test_read_timeout_raises_and_leaves_nothing_registered() -> None:
    with tcp_pair() as (stream, _):
        stream.set_read_limits(0.1)
        receiver = receiver_of(stream)
        fd = stream.socket.fileno()
        with anyio.fail_after(BOUND):
            started = anyio.current_time()
            with pytest.raises(ReadTimeout, match=r"no data from the server for 0\.1 s"):
                await stream.receive()
            assert anyio.current_time() - started >= 0.09  # Not early (uvloop's clock is ms).
            assert not is_parked(receiver)
            assert_no_timer(receiver)
            await probe_trio_registration(stream.socket)
            # A timed-out stream reads no more: its reader is gone at once, so a
            # cancellation racing the timer leaves the same state either way.
            assert_no_reader(receiver, fd)
            stream.close()
            assert_no_reader(receiver, fd)


@pytest.mark.anyio
async def test_cancel_at_the_moment_of_the_read_timeout_leaves_nothing_registered() -> None:
    with tcp_pair() as (stream, peer):
        receiver = receiver_of(stream)
        fd = stream.socket.fileno()
        with anyio.fail_after(BOUND):
            deadline = anyio.current_time() + 0.1
            stream.set_read_limits(None, deadline, ReadTimeout, "head too slow")
            # Either one may win; what matters is what is left behind.
            with anyio.CancelScope(deadline=deadline), suppress(ReadTimeout):
                await stream.receive()
            assert not is_parked(receiver)
            assert_no_timer(receiver)
            assert_no_reader(receiver, fd)
            await assert_nothing_reads(receiver, peer, fd)
            await probe_trio_registration(stream.socket)


@pytest.mark.anyio
async def test_close_wakes_a_parked_reader_and_unregisters() -> None:
    with tcp_pair() as (stream, peer):
        stream.set_read_limits(5.0)
        receiver = receiver_of(stream)
        fd = stream.socket.fileno()
        keep = socket.socket(fileno=socket.dup(fd))  # Keeps the connection open after close.
        try:
            caught: list[BaseException] = []

            async def read() -> None:
                try:
                    await stream.receive()
                except anyio.ClosedResourceError as exc:
                    caught.append(exc)

            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    await until(lambda: is_parked(receiver))
                    timer = timer_of(receiver)
                    stream.close()
                    assert_no_timer(receiver)
                    assert timer is not None
                    assert timer_is_dead(timer)
                    assert_no_reader(receiver, fd)
                assert len(caught) == 1
                # epoll registrations live as long as the connection: the duplicate
                # keeps it open, so a forgotten reader would fire now.
                await assert_nothing_reads(receiver, peer, fd)
                with pytest.raises(anyio.ClosedResourceError):
                    await stream.receive()
        finally:
            keep.close()


# --- the timer: re-armed lazily, one per stream -------------------------------------


def count_timer_arms(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    arms: list[float] = []
    if isinstance(receiver, AsyncioReceiver):
        original = AsyncioReceiver._set_timer

        def record(self: AsyncioReceiver, when: float) -> None:
            arms.append(when)
            original(self, when)

        monkeypatch.setattr(AsyncioReceiver, "_set_timer", record)
    else:
        original_add = _trio_reader._TrioTimers.add

        def record_add(
            self: _trio_reader._TrioTimers, when: float, owner: TrioReceiver
        ) -> list[object]:
            arms.append(when)
            return original_add(self, when, owner)

        monkeypatch.setattr(_trio_reader._TrioTimers, "add", record_add)
    return arms


@pytest.mark.anyio
async def test_paced_pieces_within_the_gap_rearm_the_timer_rarely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with tcp_pair() as (stream, peer):
        gap = 0.25
        stream.set_read_limits(gap)
        arms = count_timer_arms(receiver_of(stream), monkeypatch)
        with anyio.fail_after(BOUND):
            pieces = 0
            async with anyio.create_task_group() as tg:

                async def pace() -> None:
                    for _ in range(20):
                        await anyio.sleep(0.03)
                        peer.send(b"p")

                tg.start_soon(pace)
                while pieces < 20:
                    pieces += len(await stream.receive())
            # 20 waits in 0.6 s: one arm, plus one re-arm each time the timer came
            # due while pieces kept moving the end on (~0.6 / 0.25), not one per wait.
            assert 1 <= len(arms) <= 5, arms
            with pytest.raises(ReadTimeout):
                await stream.receive()


@pytest.mark.anyio
async def test_a_shorter_limit_rearms_the_timer_earlier() -> None:
    with tcp_pair() as (stream, peer):
        stream.set_read_limits(30.0)
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stream.receive)
                await until(lambda: is_parked(receiver_of(stream)))
                peer.send(b"x")
            # The armed timer is 30 s away; a 0.1 s gap must not wait for it.
            stream.set_read_limits(0.1)
            with pytest.raises(ReadTimeout):
                await stream.receive()


@pytest.mark.anyio
async def test_deadline_error_names_the_deadline_not_the_gap() -> None:
    with tcp_pair() as (stream, _):
        with anyio.fail_after(BOUND):
            stream.set_read_limits(5.0, anyio.current_time() + 0.1, TotalTimeout, "total ran out")
            with pytest.raises(TotalTimeout, match="total ran out"):
                await stream.receive()


@pytest.mark.anyio
async def test_deadline_is_checked_while_data_keeps_coming() -> None:
    with tcp_pair() as (stream, peer):
        with anyio.fail_after(BOUND):
            stream.set_read_limits(5.0, anyio.current_time() + 0.2, TotalTimeout, "total")
            with pytest.raises(TotalTimeout):  # noqa: PT012 - the loop is the point
                for _ in range(1000):  # Bounded: 1000 * 10 ms is far past the deadline.
                    peer.send(b"d")
                    await stream.receive()
                    await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_timer_of_a_finished_wait_does_not_fire_on_an_idle_stream() -> None:
    with tcp_pair() as (stream, peer):
        stream.set_read_limits(0.05)
        with anyio.fail_after(BOUND):
            peer.send(b"a")
            assert await stream.receive() == b"a"
            await anyio.sleep(0.15)  # The timer comes due with nobody waiting...
            assert_no_timer(receiver_of(stream))  # ...and is dropped, not re-armed.
            peer.send(b"b")
            assert await stream.receive() == b"b"


# --- concurrent readers --------------------------------------------------------------


@pytest.mark.anyio
async def test_a_second_reader_is_refused_and_the_first_still_gets_its_bytes() -> None:
    with tcp_pair() as (stream, peer):
        stream.set_read_limits(5.0)
        receiver = receiver_of(stream)
        got: list[bytes] = []

        async def first() -> None:
            got.append(await stream.receive())

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await until(lambda: is_parked(receiver))
                with pytest.raises(anyio.BusyResourceError):
                    await stream.receive()
                assert is_parked(receiver)
                peer.send(b"for the first")
        assert got == [b"for the first"]


@pytest.mark.anyio
async def test_two_tasks_reading_one_response_is_a_local_protocol_error() -> None:
    steps = (chunked_head(), 0.3, chunk(b"late"), LAST_CHUNK)
    async with scripted_server(script(*steps)) as (base, _):
        async with Client() as client, client.open_stream(base) as response:
            got: list[bytes] = []

            async def first() -> None:
                async for piece in response.aiter_bytes():
                    got.append(piece)

            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(first)
                    stream = response._reader._stream
                    assert isinstance(stream, SocketStream)
                    await until(lambda: is_parked(receiver_of(stream)))
                    with pytest.raises(LocalProtocolError, match="another task"):
                        async for _ in response.aiter_bytes():
                            pass
            assert got == [b"late"]


# --- closing from above: early break, many streams cancelled ------------------------


@contextmanager
def recorded_receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Receiver, int]]]:
    made: list[tuple[Receiver, int]] = []
    original = _readers.new_receiver

    def record(sock: socket.socket) -> Receiver:
        receiver = original(sock)
        made.append((receiver, sock.fileno()))
        return receiver

    monkeypatch.setattr(_network, "new_receiver", record)
    yield made


@pytest.mark.anyio
async def test_early_break_closes_the_socket_and_unregisters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = (chunked_head(), chunk(b"first"), 30.0)
    with recorded_receivers(monkeypatch) as made:
        async with scripted_server(script(*steps)) as (base, _):
            with anyio.fail_after(BOUND):
                async with aclosing(acytoo_raw.stream_bytes(base)) as pieces:
                    async for piece in pieces:
                        assert piece == b"first"
                        break
                [(receiver, fd)] = made
                assert receiver._socket.fileno() == -1
                assert not is_parked(receiver)
                assert_no_timer(receiver)
                assert_no_reader(receiver, fd)


@pytest.mark.anyio
async def test_200_streams_cancelled_at_once_leave_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count = 200
    steps = (chunked_head(), chunk(b"x"), 30.0)
    started = 0
    with recorded_receivers(monkeypatch) as made:
        async with scripted_server(script(*steps)) as (base, _):
            limits = Limits(max_connections=count, max_keepalive=count)
            async with Client(limits=limits, timeout=Timeout(read=20.0)) as client:

                async def one() -> None:
                    nonlocal started
                    async with client.open_stream(base) as response:
                        async for _ in response.aiter_bytes():
                            started += 1

                with anyio.fail_after(BOUND * 3):
                    async with anyio.create_task_group() as tg:
                        for _ in range(count):
                            tg.start_soon(one)
                        await until(lambda: started == count)
                        await until(lambda: all(is_parked(r) for r, _ in made))
                        timers = [timer_of(receiver) for receiver, _ in made]
                        tg.cancel_scope.cancel()
                assert len(made) == count
                for receiver, fd in made:
                    assert receiver._socket.fileno() == -1
                    assert not is_parked(receiver)
                    assert_no_timer(receiver)
                    assert_no_reader(receiver, fd)
                assert all(timer is None or timer_is_dead(timer) for timer in timers)
                if isinstance(made[0][0], TrioReceiver):
                    assert trio_timers().live == []


# --- bounded buffering, order, EOF, reset ------------------------------------------


@pytest.mark.anyio
async def test_unread_bytes_are_bounded_and_come_out_in_order() -> None:
    with tcp_pair() as (stream, peer):
        receiver = receiver_of(stream)
        payload = bytes(range(256)) * 4096  # 1 MiB: more than the bound.
        received = bytearray()
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:

                async def send() -> None:
                    await anyio.to_thread.run_sync(peer.sendall, payload)

                tg.start_soon(send)
                received += await stream.receive(100)  # The reader is registered from now on.
                for _ in range(20):  # The loop turns; nobody reads.
                    await anyio.sleep(0.005)
                if isinstance(receiver, AsyncioReceiver):
                    assert receiver._queued == MAX_QUEUED  # Read ahead up to the bound...
                    assert not receiver._reading  # ...and no further.
                while len(received) < len(payload):
                    received += await stream.receive(7000)
        assert received == payload


@pytest.mark.anyio
async def test_eof_after_data_is_end_of_stream_every_time() -> None:
    with tcp_pair() as (stream, peer):
        peer.sendall(b"last words")
        peer.shutdown(socket.SHUT_WR)
        with anyio.fail_after(BOUND):
            data = b""
            with pytest.raises(anyio.EndOfStream):  # noqa: PT012 - reads until the end
                for _ in range(100):
                    data += await stream.receive()
            assert data == b"last words"
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()
            assert stream.receive_nowait() == b""


@pytest.mark.anyio
async def test_reset_is_broken_resource() -> None:
    with tcp_pair() as (stream, peer):
        stream.set_read_limits(5.0)
        receiver = receiver_of(stream)
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:

                async def read() -> None:
                    with pytest.raises(anyio.BrokenResourceError):
                        await stream.receive()

                tg.start_soon(read)
                await until(lambda: is_parked(receiver))
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                peer.close()  # Linger 0: a reset.


@pytest.mark.anyio
async def test_receive_nowait_sees_what_the_callback_queued() -> None:
    with tcp_pair() as (stream, peer):
        with anyio.fail_after(BOUND):
            assert stream.receive_nowait() is None
            peer.sendall(b"one")
            assert await stream.receive() == b"one"  # Registers asyncio's reader.
            peer.sendall(b"two")
            await anyio.sleep(0.05)  # asyncio's callback has queued it by now.
            assert stream.receive_nowait() == b"two"
            assert stream.receive_nowait() is None


@pytest.mark.anyio
async def test_max_bytes_splits_and_keeps_the_rest() -> None:
    with tcp_pair() as (stream, peer):
        with anyio.fail_after(BOUND):
            peer.sendall(b"abcdefgh")
            assert await stream.receive(3) == b"abc"
            rest = b""
            while len(rest) < 5:
                rest += await stream.receive(3)
            assert rest == b"defgh"


# --- starvation ----------------------------------------------------------------------


def prefill(peer: socket.socket) -> int:
    """Fill the connection's buffers without blocking; how many bytes went in."""
    peer.setblocking(False)
    sent = 0
    block = b"z" * 65536
    try:
        while sent < 64 * 1024 * 1024:
            sent += peer.send(block)
    except BlockingIOError:
        pass
    return sent


@pytest.mark.anyio
async def test_a_peer_that_never_pauses_lets_other_tasks_run() -> None:
    with tcp_pair() as (stream, peer):
        total = prefill(peer)
        turns = 0

        async def other() -> None:
            nonlocal turns
            while True:
                turns += 1
                await anyio.lowlevel.checkpoint()

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(other)
                await anyio.lowlevel.checkpoint()
                turns = 0
                received = 0
                while received < total:
                    received += len(await stream.receive(1024))
                tg.cancel_scope.cancel()
        # Every read found data waiting; the other task still ran every few reads.
        assert turns >= total // 1024 // 32


@pytest.mark.anyio
async def test_a_peer_that_never_pauses_cannot_make_the_reader_uncancellable() -> None:
    with tcp_pair() as (stream, peer):
        total = prefill(peer)
        received = 0
        with anyio.fail_after(BOUND), anyio.CancelScope() as scope:
            scope.cancel()
            while received < total:
                received += len(await stream.receive(1024))
        assert received < total


# --- the portable path (loops without add_reader) -----------------------------------


@pytest.mark.anyio
async def test_portable_receiver_times_out_refuses_a_second_reader_and_wakes_on_close() -> None:
    with tcp_pair() as (stream, peer):
        stream._receiver = receiver = PortableReceiver(stream.socket)
        with anyio.fail_after(BOUND):
            stream.set_read_limits(0.05)
            with pytest.raises(ReadTimeout):
                await stream.receive()
            stream.set_read_limits(None, anyio.current_time() + 0.05, TotalTimeout, "total")
            with pytest.raises(TotalTimeout, match="total"):
                await stream.receive()
            stream.set_read_limits(None)
            peer.sendall(b"ok")
            assert await stream.receive() == b"ok"
            caught: list[BaseException] = []

            async def read() -> None:
                try:
                    await stream.receive()
                except anyio.ClosedResourceError as exc:
                    caught.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await until(lambda: receiver._parked)
                with pytest.raises(anyio.BusyResourceError):
                    await stream.receive()
                stream.close()
            assert len(caught) == 1


@pytest.mark.anyio
async def test_a_writer_is_not_woken_by_the_read_timer() -> None:
    with tcp_pair() as (stream, peer):
        # Off the send's 50 ms polls, so the timer fires while the send is parked.
        stream.set_read_limits(0.075)
        payload = b"w" * (8 * 1024 * 1024)  # Far more than the buffers: the send must wait.
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                sent = anyio.Event()

                async def send() -> None:
                    await stream.send(payload)
                    sent.set()

                tg.start_soon(send)
                await until(lambda: stream._writing)
                await anyio.sleep(0.01)
                with pytest.raises(ReadTimeout):
                    await stream.receive()  # Its timer must not disturb the waiting send.
                got = await anyio.to_thread.run_sync(_drain, peer, len(payload))
                await sent.wait()
        assert got == len(payload)


def _drain(peer: socket.socket, size: int) -> int:
    peer.settimeout(2.0)  # A thread can't be cancelled: a failed send must not hang it.
    got = 0
    with suppress(TimeoutError):
        while got < size:
            data = peer.recv(1 << 20)
            if not data:
                break
            got += len(data)
    return got


# --- objects per open stream -----------------------------------------------------------


@pytest.mark.anyio
async def test_the_reader_lets_go_of_h11_once_the_head_is_parsed() -> None:
    connection, _ = build_request("GET", parse_url("http://example.com/"), None, b"", None)
    gone = weakref.ref(connection)
    with tcp_pair() as (stream, peer):
        reader = ResponseReader(stream, connection, b"GET")
        del connection
        peer.sendall(chunked_head() + chunk(b"body"))
        with anyio.fail_after(BOUND):
            head = await reader.receive_head()
            assert head.status_code == 200
            assert gone() is None  # Nothing of h11 lives as long as the body.
            assert await reader.receive_body() == b"body"
            with pytest.raises(RuntimeError):
                await reader.receive_head()
