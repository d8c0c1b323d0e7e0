"""Client and pool: keep-alive reuse, when a connection must close, replay, limits, cancellation.

Every test runs over real loopback sockets on asyncio, uvloop and trio; the
peers are hand-written (tests/peers.py) so each can misbehave exactly once.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from contextlib import aclosing

import anyio
import anyio.abc
import pytest

import acytoo_raw
from acytoo_raw import (
    Client,
    Limits,
    LocalProtocolError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    Timeout,
)
from acytoo_raw.server import serve
from tests.peers import (
    CLOSE,
    LAST_CHUNK,
    chunk,
    chunked_head,
    keepalive_server,
    read_request,
    response,
    script,
    scripted_server,
    wait_for_close,
)

pytestmark = pytest.mark.anyio

BOUND = 10.0


def ok(body: bytes = b"ok", *headers: bytes) -> list[bytes | float | object]:
    return [response(body, headers=headers)]


async def fetch(client: Client, url: str, **kwargs: object) -> tuple[bytes, acytoo_raw.Timings]:
    with anyio.fail_after(BOUND):
        async with client.open_stream(url, **kwargs) as r:  # type: ignore[arg-type]
            body = await r.aread()
            return body, r.timings


async def test_sequential_requests_share_one_connection() -> None:
    async with keepalive_server(lambda c, i, r: ok(b"n%d" % i)) as (base, log):
        async with Client(base_url=base) as client:
            bodies = []
            reused = []
            for _ in range(5):
                body, timings = await fetch(client, "/x")
                bodies.append(body)
                reused.append(timings.reused)
    assert bodies == [b"n0", b"n1", b"n2", b"n3", b"n4"]
    assert reused == [False, True, True, True, True]
    assert log.connections == 1


async def test_loopback_server_connection_is_reused() -> None:
    async with serve() as base, Client(base_url=base) as client:
        for expect_reused in (False, True, True):
            with anyio.fail_after(BOUND):
                async with client.open_stream(
                    "/api/completions", json={"messages": [{"role": "user", "content": "hi"}]}
                ) as r:
                    assert await r.aread() == b"hi"
                    assert r.timings.reused is expect_reused


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", "HTTP/1.0"),
        (response(b"ok", headers=(b"connection: close",)), "server said close"),
        (b"HTTP/1.1 200 OK\r\n\r\nok", "close-delimited"),
        (response(b"ok") + b"HTTP/1.1 200 OK\r\n", "bytes after the body"),
        (chunked_head() + chunk(b"ok") + LAST_CHUNK + b"junk", "bytes after the last chunk"),
    ],
)
async def test_connection_is_not_reused_unless_the_exchange_ended_cleanly(
    answer: bytes, why: str
) -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        if conn == 1:
            return [answer, CLOSE] if why == "close-delimited" else [answer]
        return ok()

    async with keepalive_server(respond) as (base, log), Client(base_url=base) as client:
        first, _ = await fetch(client, "/a")
        second, timings = await fetch(client, "/b")
    assert first == b"ok", why
    assert second == b"ok"
    assert timings.reused is False, why
    assert log.connections == 2, why


async def test_request_connection_close_is_not_reused() -> None:
    async with keepalive_server(lambda c, i, r: ok()) as (base, log):
        async with Client(base_url=base) as client:
            await fetch(client, "/a", headers={"Connection": "close"})
            _, timings = await fetch(client, "/b")
    assert timings.reused is False
    assert log.connections == 2


async def test_half_read_body_closes_the_connection_and_leaks_no_bytes() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        if b"/first" in request:
            return [chunked_head(), chunk(b"A" * 10), 0.05, chunk(b"LEFTOVER"), LAST_CHUNK]
        return ok(b"second")

    async with keepalive_server(respond) as (base, log), Client(base_url=base) as client:
        with anyio.fail_after(BOUND):
            async with client.open_stream("/first") as r:
                async for piece in r.aiter_bytes():
                    assert piece == b"A" * 10
                    break
        body, timings = await fetch(client, "/second")
    assert body == b"second"
    assert timings.reused is False
    assert log.connections == 2


async def test_failed_body_closes_the_connection() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        if b"/bad" in request:
            return [chunked_head(), b"zz\r\n"]
        return ok()

    async with keepalive_server(respond) as (base, log), Client(base_url=base) as client:
        with pytest.raises(RemoteProtocolError), anyio.fail_after(BOUND):
            async with client.open_stream("/bad") as r:
                await r.aread()
        _, timings = await fetch(client, "/good")
    assert timings.reused is False
    assert log.connections == 2


async def test_cancelled_body_closes_the_connection() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        if b"/slow" in request:
            return [chunked_head(), chunk(b"x"), 5.0, LAST_CHUNK]
        return ok()

    async with keepalive_server(respond) as (base, log), Client(base_url=base) as client:
        with anyio.move_on_after(0.3):
            async with client.open_stream("/slow") as r:
                await r.aread()
        _, timings = await fetch(client, "/fast")
        assert client._pool.open_connections == 1
    assert timings.reused is False
    assert log.connections == 2


async def test_most_recently_used_idle_connection_goes_first() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return ok(b"%d" % conn)

    async with keepalive_server(respond) as (base, _log), Client(base_url=base) as client:
        with anyio.fail_after(BOUND):
            # Two connections at once, released one after the other.
            async with client.open_stream("/a") as first:
                async with client.open_stream("/b") as second:
                    first_body = await first.aread()
                    second_body = await second.aread()
                # `second` is back in the pool now; `first` still busy.
            released_last = first_body  # `first` was released after `second`
        body, timings = await fetch(client, "/c")
    assert {first_body, second_body} == {b"1", b"2"}
    assert timings.reused is True
    assert body == released_last


async def test_keep_alive_timeout_header_is_honoured() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return ok(b"ok", b"keep-alive: timeout=0.2")

    async with keepalive_server(respond) as (base, log), Client(base_url=base) as client:
        await fetch(client, "/a")
        _, quick = await fetch(client, "/b")
        await anyio.sleep(0.4)
        _, late = await fetch(client, "/c")
    assert quick.reused is True
    assert late.reused is False
    assert log.connections == 2


async def test_keepalive_expiry_limit_drops_idle_connections() -> None:
    async with keepalive_server(lambda c, i, r: ok()) as (base, _log):
        limits = Limits(keepalive_expiry=0.2)
        async with Client(base_url=base, limits=limits) as client:
            await fetch(client, "/a")
            await anyio.sleep(0.4)
            _, timings = await fetch(client, "/b")
    assert timings.reused is False


async def test_an_idle_connection_outliving_an_earlier_expiry_still_expires_on_time() -> None:
    # The pool scans for expired connections only once one can have expired;
    # after a scan that closes one, the next expiry among the survivors must
    # still be watched, whatever other routes are kept in between.
    def keep_for(seconds: bytes) -> Callable[[int, int, bytes], list[bytes | float | object]]:
        return lambda c, i, r: ok(b"ok", b"keep-alive: timeout=" + seconds)

    async with (
        keepalive_server(keep_for(b"0.1")) as (short, _),
        keepalive_server(keep_for(b"1.0")) as (longer, longer_log),
        keepalive_server(lambda c, i, r: ok()) as (other, _),
        Client() as client,
    ):
        await fetch(client, f"{short}/a")
        await fetch(client, f"{longer}/a")
        await anyio.sleep(0.3)  # The short one expired; a request elsewhere scans.
        await fetch(client, f"{other}/a")
        await anyio.sleep(1.0)  # Now the longer one expired too.
        _, timings = await fetch(client, f"{longer}/b")
    assert timings.reused is False
    assert longer_log.connections == 2


async def test_idle_connection_closed_by_the_server_is_noticed_before_reuse() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [response(b"ok"), CLOSE]  # Keep-alive announced, then closed anyway.

    async with keepalive_server(respond) as (base, log):
        async with Client(base_url=base, replay_unanswered=False) as client:
            await fetch(client, "/a")
            await anyio.sleep(0.1)  # The FIN arrives while the connection is idle.
            body, timings = await fetch(client, "/b")
    assert body == b"ok"
    assert timings.reused is False
    assert log.connections == 2


async def test_tls_connection_is_reused_despite_session_tickets(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with (
        keepalive_server(lambda c, i, r: ok(), ssl_context=server_ssl_context) as (
            base,
            log,
        ),
        Client(base_url=base, ssl_context=client_ssl_context) as client,
    ):
        _, first = await fetch(client, "/a")
        await anyio.sleep(0.05)  # Tickets are readable on the idle connection now.
        _, second = await fetch(client, "/b")
    assert first.reused is False
    assert second.reused is True
    assert log.connections == 1


async def test_tls_session_is_resumed_on_a_new_connection(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [response(b"ok", headers=(b"connection: close",)), CLOSE]

    async with keepalive_server(respond, ssl_context=server_ssl_context) as (base, log):
        async with Client(base_url=base, ssl_context=client_ssl_context) as client:
            _, first = await fetch(client, "/a")
            _, second = await fetch(client, "/b")
    assert first.tls_resumed is False
    assert second.tls_resumed is True
    assert second.tls is not None
    assert log.connections == 2


async def test_tls_session_is_not_offered_with_another_client(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [response(b"ok", headers=(b"connection: close",)), CLOSE]

    async with keepalive_server(respond, ssl_context=server_ssl_context) as (base, _):
        for _ in range(2):
            async with Client(base_url=base, ssl_context=client_ssl_context) as client:
                _, timings = await fetch(client, "/a")
            assert timings.tls_resumed is False


async def test_unanswered_request_on_a_reused_connection_is_replayed_once() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        if conn == 1 and index == 1:
            return [CLOSE]  # Read the request, then close without a byte of answer.
        return ok(b"%d" % conn)

    async with keepalive_server(respond) as (base, log), Client(base_url=base) as client:
        await fetch(client, "/a")
        body, timings = await fetch(client, "/b", json={"n": 1})
    assert body == b"2"
    assert timings.reused is False
    assert [number for number, _ in log.served] == [1, 1, 2]
    assert log.served[1][1] == log.served[2][1]  # The same POST, sent again whole.


async def test_replay_can_be_turned_off() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [CLOSE] if index == 1 else ok()

    async with keepalive_server(respond) as (base, log):
        async with Client(base_url=base, replay_unanswered=False) as client:
            await fetch(client, "/a")
            with pytest.raises(RemoteProtocolError):
                await fetch(client, "/b")
    assert log.connections == 1


async def test_never_replayed_once_a_response_byte_came() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [b"HTTP/1.1 200", CLOSE] if index == 1 else ok()

    async with keepalive_server(respond) as (base, log), Client(base_url=base) as client:
        await fetch(client, "/a")
        with pytest.raises(RemoteProtocolError):
            await fetch(client, "/b")
    assert log.connections == 1
    assert len(log.served) == 2


async def test_a_new_connection_is_never_replayed() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [CLOSE]

    async with keepalive_server(respond) as (base, log), Client(base_url=base) as client:
        with pytest.raises(RemoteProtocolError):
            await fetch(client, "/a")
    assert log.connections == 1


async def test_max_connections_bounds_open_connections_and_serves_in_order() -> None:
    release = anyio.Event()

    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return ok()

    order: list[int] = []
    async with keepalive_server(respond) as (base, log):
        async with Client(base_url=base, limits=Limits(max_connections=1)) as client:

            async def hold() -> None:
                async with client.open_stream("/hold") as r:
                    await r.aread()
                    await release.wait()

            async def queued(n: int) -> None:
                await fetch(client, f"/q{n}")
                order.append(n)

            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(hold)
                    await anyio.sleep(0.05)
                    for n in range(4):
                        tg.start_soon(queued, n)
                        await anyio.sleep(0.02)  # Queue them in a known order.
                    assert client._pool.open_connections == 1
                    release.set()
    assert order == [0, 1, 2, 3]
    assert log.connections == 1


async def test_pool_timeout_when_no_slot_comes_free() -> None:
    async with keepalive_server(lambda c, i, r: [*ok(), 0.0]) as (base, _):
        client = Client(base_url=base, limits=Limits(max_connections=1))
        async with client:
            with anyio.fail_after(BOUND):
                async with client.open_stream("/hold") as r:
                    with pytest.raises(PoolTimeout) as caught:
                        await fetch(client, "/b", timeout=Timeout(pool=0.1))
                    assert isinstance(caught.value, TimeoutError)
                    await r.aread()
            _, timings = await fetch(client, "/c")  # The slot came back.
    assert timings.reused is True


async def test_hundreds_of_cancelled_requests_leak_no_slot() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [chunked_head(), chunk(b"x"), 0.3, LAST_CHUNK]

    async with keepalive_server(respond) as (base, _):
        async with Client(base_url=base, limits=Limits(max_connections=2)) as client:

            async def cancelled_soon(delay: float) -> None:
                with anyio.move_on_after(delay):
                    async with client.open_stream("/x") as r:
                        await r.aread()

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for n in range(300):
                        tg.start_soon(cancelled_soon, (n % 7) * 0.003)
            assert client._pool.open_connections <= 2
            with anyio.fail_after(BOUND):
                async with client.open_stream("/after", timeout=Timeout(pool=1.0)) as r:
                    assert await r.aread() == b"x"


async def test_cancel_while_waiting_for_a_slot_gives_it_back() -> None:
    async with keepalive_server(lambda c, i, r: ok()) as (base, _):
        async with Client(base_url=base, limits=Limits(max_connections=1)) as client:
            with anyio.fail_after(BOUND):
                async with client.open_stream("/hold") as r:
                    with anyio.move_on_after(0.05):
                        await fetch(client, "/waits")
                    await r.aread()
            body, _ = await fetch(client, "/after")
            assert body == b"ok"
            assert client._pool.open_connections == 1


async def test_cancel_during_tls_handshake_releases_the_slot(
    client_ssl_context: ssl.SSLContext,
) -> None:
    async def stall(stream: anyio.abc.ByteStream) -> None:
        await wait_for_close(stream)

    async with scripted_server(lambda log: stall) as (base, _):
        url = base.replace("http://", "https://")
        async with Client(ssl_context=client_ssl_context, limits=Limits(max_connections=1)) as c:
            for _ in range(20):
                with anyio.move_on_after(0.02):
                    await fetch(c, url)
            assert c._pool.open_connections == 0


async def test_closed_client_refuses_requests_and_closes_connections() -> None:
    async with keepalive_server(lambda c, i, r: ok()) as (base, _):
        client = Client(base_url=base)
        await fetch(client, "/a")
        assert client._pool.idle_connections == 1
        await client.aclose()
        assert client._pool.idle_connections == 0
        with pytest.raises(LocalProtocolError, match="closed"):
            await fetch(client, "/b")


async def test_every_socket_has_tcp_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[socket.socket] = []
    from acytoo_raw import _network

    original = _network.SocketStream.__init__

    def spy(self: _network.SocketStream, sock: socket.socket) -> None:
        seen.append(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        original(self, sock)

    monkeypatch.setattr(_network.SocketStream, "__init__", spy)
    async with keepalive_server(lambda c, i, r: ok()) as (base, _):
        async with Client(base_url=base) as client:
            await fetch(client, "/a")
    assert len(seen) == 1


async def test_read_timeout_on_a_reused_connection_is_not_replayed() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [2.0] if index == 1 else ok()

    async with keepalive_server(respond) as (base, log):
        async with Client(base_url=base, timeout=Timeout(read=0.2)) as client:
            await fetch(client, "/a")
            with pytest.raises(ReadTimeout):
                await fetch(client, "/b")
    assert len(log.served) == 2


async def test_headers_merge_and_relative_urls() -> None:
    async with (
        keepalive_server(lambda c, i, r: ok()) as (base, log),
        Client(base_url=base + "/v1", headers={"X-Client": "a", "X-Both": "client"}) as client,
    ):
        await fetch(client, "chat", headers={"x-both": "call"})
        await fetch(client, "/chat2")
    first, second = (request for _, request in log.served)
    assert first.startswith(b"POST /v1/chat HTTP/1.1\r\n")
    assert b"x-client: a\r\n" in first.lower()
    assert b"x-both: call\r\n" in first.lower()
    assert b"x-both: client" not in first.lower()
    assert second.startswith(b"POST /v1/chat2 HTTP/1.1\r\n")


async def test_module_functions_use_one_connection_and_close_it() -> None:
    async with keepalive_server(lambda c, i, r: ok()) as (base, log):
        with anyio.fail_after(BOUND):
            for _ in range(2):
                async with acytoo_raw.open_stream(base) as r:
                    assert await r.aread() == b"ok"
                    assert r.timings.reused is False
    assert log.connections == 2


async def test_timings_phases_are_ordered_and_pieces_recorded() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [chunked_head(), chunk(b"a"), 0.01, chunk(b"b"), 0.01, chunk(b"c"), LAST_CHUNK]

    async with keepalive_server(respond) as (base, _), Client(base_url=base) as client:
        with anyio.fail_after(BOUND):
            async with client.open_stream("/t", record_pieces=True) as r:
                pieces = [p async for p in r.aiter_bytes()]
                t = r.timings
    assert pieces == [b"a", b"b", b"c"]
    assert t.pieces is not None
    assert len(t.pieces) == 3
    assert t.tunnel is None
    assert t.tls is None
    steps = [t.queued, t.connected, t.sent, t.head, t.first_piece, t.end]
    assert all(step is not None for step in steps)
    assert steps == sorted(steps)  # type: ignore[type-var]
    assert t.pieces[0] == t.first_piece
    assert t.pieces == sorted(t.pieces)


async def test_timings_pieces_off_by_default() -> None:
    async with keepalive_server(lambda c, i, r: ok()) as (base, _):
        async with Client(base_url=base) as client:
            _, timings = await fetch(client, "/a")
    assert timings.pieces is None
    assert timings.first_piece is not None


async def test_early_answer_while_uploading_is_the_http_status_error() -> None:
    async def refuse_upload(stream: anyio.abc.ByteStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        await stream.send(response(b'{"error":"too large"}', status=b"413 Payload Too Large"))
        await anyio.sleep(0.2)

    async def upload(url: str) -> None:
        with anyio.fail_after(BOUND):
            body = b"x" * (32 * 1024 * 1024)
            async with aclosing(acytoo_raw.stream_bytes(url, content=body)) as pieces:
                async for _ in pieces:
                    pass

    async with scripted_server(lambda log: refuse_upload) as (base, _):
        with pytest.raises(acytoo_raw.HTTPStatusError) as caught:
            await upload(base)
    assert caught.value.status_code == 413
    assert caught.value.body == b'{"error":"too large"}'


async def test_an_answer_before_the_request_was_sent_whole_never_reuses_the_connection() -> None:
    # A server that answers 413 with keep-alive and stops reading: the rest of
    # the body is never sent, so the next request's bytes would land in the
    # middle of the old body. (A blocking socket in a thread: an asyncio
    # server would read, and buffer, everything.)
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def answer_early_then_stall() -> None:
            peer, _ = listener.accept()
            with peer:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += peer.recv(65536)
                peer.sendall(response(b"too large", status=b"413 Payload Too Large"))
                stop.wait(BOUND)

        thread = threading.Thread(target=answer_early_then_stall, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        try:
            async with Client(base_url=base) as client:
                with anyio.fail_after(BOUND):
                    async with client.open_stream("/", content=b"x" * (32 << 20)) as r:
                        assert (r.status_code, await r.aread()) == (413, b"too large")
                assert (client._pool.idle_connections, client._pool.open_connections) == (0, 0)
        finally:
            stop.set()
            thread.join(BOUND)


async def test_a_2xx_answer_to_connect_never_goes_back_to_the_pool() -> None:
    async with (
        scripted_server(script(b"HTTP/1.1 200 Connection established\r\n\r\n", hang=True)) as (
            base,
            _,
        ),
        Client(base_url=base) as client,
    ):
        with anyio.fail_after(BOUND):
            async with client.open_stream("/", method="CONNECT") as r:
                assert (r.status_code, await r.aread()) == (200, b"")
        assert (client._pool.idle_connections, client._pool.open_connections) == (0, 0)


async def test_one_open_stream_block_entered_by_two_tasks_at_once_is_refused() -> None:
    async with keepalive_server(lambda c, i, r: ok()) as (base, _), Client(base_url=base) as client:
        block = client.open_stream("/a")
        outcomes: list[str] = []

        async def enter() -> None:
            try:
                async with block as r:
                    await r.aread()
                    outcomes.append("read")
            except RuntimeError as exc:
                outcomes.append(str(exc))

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(enter)
                tasks.start_soon(enter)  # While the first still waits for its answer.
        assert sorted(outcomes) == ["read", "this open_stream() block was already entered"]
        assert (client._pool.idle_connections, client._pool.open_connections) == (1, 1)


async def test_two_tasks_reading_one_response_is_a_typed_error() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [chunked_head(), 0.2, chunk(b"x"), LAST_CHUNK]

    async with keepalive_server(respond) as (base, _), Client(base_url=base) as client:
        with anyio.fail_after(BOUND):
            async with client.open_stream("/x") as r:
                errors: list[BaseException] = []

                async def read() -> None:
                    try:
                        await r.aread()
                    except acytoo_raw.AcytooError as exc:
                        errors.append(exc)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    tg.start_soon(read)
    assert len(errors) == 1
    assert isinstance(errors[0], LocalProtocolError)


async def test_unused_reader_in_read_request_is_fine() -> None:
    # Sanity for the peer helpers used above.
    async def echo(stream: anyio.abc.ByteStream) -> None:
        request = await read_request(stream)
        await stream.send(response(request.split(b" ", 2)[1]))

    async with scripted_server(lambda log: echo) as (base, _), Client(base_url=base) as client:
        body, _ = await fetch(client, "/path?q=1")
    assert body == b"/path?q=1"


# --- found in review: each of these failed before its fix ----------------------------


@pytest.mark.parametrize("cancel_waiter", [True, False])
async def test_aclose_while_a_granted_waiter_has_not_resumed_leaks_nothing(
    cancel_waiter: bool,
) -> None:
    outcome: list[object] = []
    async with keepalive_server(lambda c, i, r: ok()) as (base, log):
        client = Client(base_url=base, limits=Limits(max_connections=1))
        waiter_scope = anyio.CancelScope()

        async def waiter() -> None:
            with waiter_scope:
                try:
                    await fetch(client, "/waiter")
                    outcome.append("sent")
                except LocalProtocolError as exc:
                    outcome.append(exc)

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                async with client.open_stream("/holder") as r:
                    await r.aread()
                    tg.start_soon(waiter)
                    await anyio.sleep(0.05)  # Queued for the one slot.
                    if cancel_waiter:
                        waiter_scope.cancel()
                # The block handed the connection to the waiter, which has not run yet.
                await client.aclose()
        assert client._pool.open_connections == 0
    assert [path for _, path in log.served if b"/waiter" in path] == []
    if not cancel_waiter:
        assert isinstance(outcome[0], LocalProtocolError)


async def test_a_replay_keeps_its_slot_instead_of_queueing_again() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        if conn == 1 and index == 1:
            return [CLOSE]
        return ok()

    async with keepalive_server(respond) as (base, _):
        async with Client(base_url=base, limits=Limits(max_connections=1)) as client:
            await fetch(client, "/a")
            results: list[bytes] = []

            async def later() -> None:
                body, _ = await fetch(client, "/c", timeout=Timeout(pool=5))
                results.append(body)

            async with anyio.create_task_group() as tg:
                async with client.open_stream("/b", timeout=Timeout(pool=0.2)) as r:
                    tg.start_soon(later)  # Waits for the slot /b holds, even while it replays.
                    await anyio.sleep(0.3)
                    assert await r.aread() == b"ok"
    assert results == [b"ok"]


async def test_aclose_stops_a_request_that_is_still_connecting(
    client_ssl_context: ssl.SSLContext,
) -> None:
    async def stall(stream: anyio.abc.ByteStream) -> None:
        await wait_for_close(stream)

    async with scripted_server(lambda log: stall) as (base, _):
        client = Client(
            base_url=base.replace("http://", "https://"),
            ssl_context=client_ssl_context,
            timeout=Timeout(connect=None),
        )
        failures: list[BaseException] = []

        async def request() -> None:
            try:
                await fetch(client, "/x")
            except LocalProtocolError as exc:
                failures.append(exc)

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(request)
                await anyio.sleep(0.1)  # Stuck in the TLS handshake.
                await client.aclose()
    assert len(failures) == 1
    assert "closed while connecting" in str(failures[0])


async def test_an_error_status_read_to_its_end_keeps_the_connection() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [response(b"slow down", status=b"429 Too Many Requests")]

    async with keepalive_server(respond) as (base, log):
        async with Client(base_url=base) as client:

            async def read_all() -> None:
                with anyio.fail_after(BOUND):
                    async with aclosing(client.stream_text("/x")) as pieces:
                        async for _ in pieces:
                            pass

            for _ in range(3):
                with pytest.raises(acytoo_raw.HTTPStatusError):
                    await read_all()
    assert log.connections == 1


def test_a_client_refuses_a_second_event_loop_typed() -> None:
    async def use(client: Client, base: str) -> bytes:
        async with client.open_stream(base) as r:
            return await r.aread()

    async def run_both() -> None:
        async with keepalive_server(lambda c, i, r: ok()) as (base, _):
            client = Client()
            assert await use(client, base) == b"ok"

            def second_loop() -> None:
                with pytest.raises(LocalProtocolError, match="another event loop"):
                    anyio.run(use, client, base)

            await anyio.to_thread.run_sync(second_loop)
            await client.aclose()

    anyio.run(run_both)


async def test_no_replay_once_encrypted_answer_bytes_came(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    # The answer's TLS record is cut after 20 bytes: no plaintext arrived, but
    # the server has answered, so the POST must not run twice.
    executed: list[bytes] = []

    async def tls_peer(stream: anyio.abc.ByteStream) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = server_ssl_context.wrap_bio(incoming, outgoing, server_side=True)

        async def pump() -> None:
            if outgoing.pending:
                await stream.send(outgoing.read())
            incoming.write(await stream.receive())

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await pump()
        await stream.send(outgoing.read())
        for index in range(2):
            request = b""
            while b"\r\n\r\n" not in request:
                try:
                    request += tls.read(65536)
                except ssl.SSLWantReadError:
                    await pump()
            executed.append(request.split(b"\r\n")[0])
            tls.write(response(b"ok"))
            record = outgoing.read()
            if index == 1:
                await stream.send(record[:20])
                return
            await stream.send(record)

    async with scripted_server(lambda log: tls_peer) as (base, _):
        url = base.replace("http://", "https://")
        async with Client(base_url=url, ssl_context=client_ssl_context) as client:
            await fetch(client, "/order", json={"n": 1})
            with pytest.raises(RemoteProtocolError):
                await fetch(client, "/order", json={"n": 2})
    assert len(executed) == 2


async def test_timings_end_after_the_last_text_piece_and_events_time_events() -> None:
    def respond(conn: int, index: int, request: bytes) -> list[bytes | float | object]:
        if b"/text" in request:  # A cut UTF-8 character: the decoder's tail comes last.
            return [response(b"ab\xe2\x82", headers=(b"content-type: text/plain",))]
        body = b": keep-alive\n\n"
        return [chunked_head(), chunk(body), 0.1, chunk(b"data: x\n\n"), LAST_CHUNK]

    async with keepalive_server(respond) as (base, _):
        async with Client(base_url=base) as client:
            with anyio.fail_after(BOUND):
                async with client.open_stream("/text", record_pieces=True) as r:
                    assert [t async for t in r.aiter_text()] == ["ab", "\ufffd"]
                text = r.timings
                async with client.open_stream("/events", record_pieces=True) as r:
                    assert [e.data async for e in r.aiter_events()] == ["x"]
                events = r.timings
    assert text.pieces is not None
    assert text.end is not None
    assert text.end >= text.pieces[-1]
    assert events.pieces is not None
    assert len(events.pieces) == 1
    assert events.first_piece == events.pieces[0]
    assert events.first_piece is not None
    assert events.first_piece >= 0.1  # Not the keep-alive comment.
