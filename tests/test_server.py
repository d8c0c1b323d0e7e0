"""Tests for acytoo_raw.server: reply_pieces sans-IO, and the real server over loopback sockets.

The client side is a tiny raw h11 client written here, so these tests don't
depend on the library's own engine.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import h11
import pytest
from anyio.abc import ByteStream
from anyio.streams.tls import TLSStream
from hypothesis import given
from hypothesis import strategies as st

from acytoo_raw.server import DEFAULT_REPLY, MAX_BODY_BYTES, reply_pieces, serve, serve_forever

PATH = "/api/completions"


def _payload(content: str = "Hello", **extra: object) -> bytes:
    body = {
        "key": "",
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": content}],
        "temperature": 0.5,
        "password": "",
        **extra,
    }
    return json.dumps(body).encode()


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)  # one entry per HTTP chunk
    times: list[float] = field(default_factory=list)  # arrival of each chunk's end

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class _Client:
    """A minimal h11 client over one anyio byte stream."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def send(self, *events: h11.Event) -> None:
        await self.stream.send(b"".join(self.conn.send(e) or b"" for e in events))

    async def request(
        self,
        body: bytes | None = None,
        *,
        method: str = "POST",
        target: str = PATH,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        all_headers = [("host", "127.0.0.1"), *headers]
        if body is not None:
            all_headers.append(("content-length", str(len(body))))
        events: list[h11.Event] = [h11.Request(method=method, target=target, headers=all_headers)]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await self.send(*events)

    async def next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.receive()
            except anyio.EndOfStream:
                data = b""
            self.conn.receive_data(data)

    async def response(self) -> _Reply:
        head = await self.next_event()
        while isinstance(head, h11.InformationalResponse):
            head = await self.next_event()
        assert isinstance(head, h11.Response), head
        reply = _Reply(head.status_code, {k.decode(): v.decode() for k, v in head.headers})
        partial = b""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.EndOfMessage):
                if partial:
                    reply.chunks.append(partial)
                return reply
            assert isinstance(event, h11.Data), event
            partial += event.data
            # h11 marks chunk boundaries; a chunk split across reads is rejoined here.
            if event.chunk_end or "content-length" in reply.headers:
                reply.chunks.append(partial)
                reply.times.append(time.monotonic())
                partial = b""

    def next_cycle(self) -> None:
        self.conn.start_next_cycle()


def _address(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1]
    host, port = rest.rsplit(":", 1)
    return host.strip("[]"), int(port)


@asynccontextmanager
async def _connect(url: str, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[_Client]:
    host, port = _address(url)
    stream: ByteStream = await anyio.connect_tcp(host, port)
    try:
        if ssl_context is not None:
            stream = await TLSStream.wrap(
                stream, hostname=host, ssl_context=ssl_context, standard_compatible=False
            )
        yield _Client(stream)
    finally:
        await anyio.aclose_forcefully(stream)


async def _post(url: str, body: bytes, ssl_context: ssl.SSLContext | None = None) -> _Reply:
    async with _connect(url, ssl_context) as client:
        await client.request(body)
        return await client.response()


async def _read_to_eof(stream: ByteStream) -> bytes:
    """Everything the server sends until it closes (a reset counts as a close)."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return data


def _assert_json_error(reply: _Reply, status: int) -> None:
    assert reply.status == status
    assert reply.headers["content-type"] == "application/json"
    assert int(reply.headers["content-length"]) == len(reply.body)
    msg = json.loads(reply.body)["msg"]
    assert isinstance(msg, str)
    assert msg


# --- reply_pieces: sans-IO ---------------------------------------------------------------


def test_reply_pieces_word_by_word() -> None:
    messages = [{"role": "user", "content": "Hello big  world\n"}]
    assert reply_pieces(messages) == ["Hello ", "big  ", "world\n"]


def test_reply_pieces_keeps_leading_whitespace() -> None:
    assert reply_pieces([{"role": "user", "content": "  hi there"}]) == ["  hi ", "there"]


def test_reply_pieces_multibyte_text_preserved() -> None:
    text = "Привет мир 世界你好 🎉👍 ok"
    pieces = reply_pieces([{"role": "user", "content": text}])
    assert pieces == ["Привет ", "мир ", "世界你好 ", "🎉👍 ", "ok"]
    assert "".join(pieces) == text


def test_reply_pieces_piece_size_counts_code_points() -> None:
    messages = [{"role": "user", "content": "Привет🎉"}]
    assert reply_pieces(messages, piece_size=2) == ["Пр", "ив", "ет", "🎉"]
    assert reply_pieces(messages, piece_size=100) == ["Привет🎉"]


def test_reply_pieces_echoes_last_user_message() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "later"},
    ]
    assert reply_pieces(messages) == ["second"]


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "system", "content": "be nice"}],
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": "old"}, {"role": "user", "content": ""}],
        [{"role": "user", "content": ["not", "a", "string"]}],
    ],
)
def test_reply_pieces_default_reply(messages: list[dict[str, object]]) -> None:
    pieces = reply_pieces(messages)
    assert "".join(pieces) == DEFAULT_REPLY
    assert len(pieces) > 1


def test_reply_pieces_whitespace_only_content_is_one_piece() -> None:
    assert reply_pieces([{"role": "user", "content": " \n\t"}]) == [" \n\t"]


@pytest.mark.parametrize("piece_size", [0, -3])
def test_reply_pieces_rejects_bad_piece_size(piece_size: int) -> None:
    with pytest.raises(ValueError, match="piece_size"):
        reply_pieces([], piece_size=piece_size)


@given(text=st.text(), piece_size=st.one_of(st.none(), st.integers(1, 10)))
def test_reply_pieces_join_to_the_content(text: str, piece_size: int | None) -> None:
    pieces = reply_pieces([{"role": "user", "content": text}], piece_size)
    assert "".join(pieces) == (text or DEFAULT_REPLY)
    assert all(pieces)
    if piece_size is not None:
        assert all(len(p) <= piece_size for p in pieces)


# --- the server over real sockets ---------------------------------------------------------


@pytest.mark.anyio
async def test_serve_yields_base_url() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            port = _address(url)[1]
            assert url == f"http://127.0.0.1:{port}"
            assert port > 0


@pytest.mark.anyio
async def test_streams_pieces_as_separate_chunks_with_delay() -> None:
    with anyio.fail_after(10):
        async with serve(delay=0.05) as url:
            started = time.monotonic()
            reply = await _post(url, _payload("one two three"))
            elapsed = time.monotonic() - started
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.headers["transfer-encoding"] == "chunked"
    assert reply.chunks == [b"one ", b"two ", b"three"]
    # Two gaps of 0.05 s; a little slack for clocks that fire a hair early.
    assert elapsed >= 0.09
    assert reply.times[-1] - reply.times[0] >= 0.09


@pytest.mark.anyio
async def test_multibyte_reply_and_piece_size() -> None:
    text = "Привет 世界 🎉"
    with anyio.fail_after(10):
        async with serve(piece_size=3) as url:
            reply = await _post(url, _payload(text))
    assert reply.status == 200
    assert reply.body.decode("utf-8") == text
    assert [c.decode("utf-8") for c in reply.chunks] == reply_pieces(
        [{"role": "user", "content": text}], 3
    )


@pytest.mark.anyio
async def test_query_string_is_ignored_for_routing() -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            await client.request(_payload("hi"), target=PATH + "?x=1")
            reply = await client.response()
    assert reply.status == 200
    assert reply.body == b"hi"


@pytest.mark.anyio
async def test_unknown_path_is_404() -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            await client.request(_payload(), target="/api/other")
            reply = await client.response()
    _assert_json_error(reply, 404)


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_wrong_method_is_405_with_allow(method: str) -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            await client.request(method=method)
            reply = await client.response()
    _assert_json_error(reply, 405)
    assert reply.headers["allow"] == "POST"


@pytest.mark.anyio
async def test_head_is_405_without_body() -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            await client.request(method="HEAD")
            reply = await client.response()
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"
    assert reply.body == b""


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b"\xff\xfe\xfa", id="invalid-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b'{"key": ""}', id="messages-missing"),
        pytest.param(b'{"messages": "hi"}', id="messages-not-list"),
        pytest.param(b'{"messages": ["hi"]}', id="message-not-object"),
        pytest.param(b'{"messages": [{"content": "hi"}]}', id="role-missing"),
        pytest.param(b'{"messages": [{"role": 1, "content": "hi"}]}', id="role-not-str"),
        pytest.param(b'{"messages": [{"role": "user", "content": 5}]}', id="content-not-str"),
        pytest.param(b'{"messages": [{"role": "user"}]}', id="content-missing"),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "\\ud800"}]}', id="lone-surrogate"
        ),
        pytest.param(b"[" * 200_000, id="deeply-nested"),
    ],
)
async def test_bad_payload_is_400(body: bytes) -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            reply = await _post(url, body)
            # The server is still fine afterwards.
            assert (await _post(url, _payload("ok"))).body == b"ok"
    _assert_json_error(reply, 400)


@pytest.mark.anyio
async def test_declared_body_over_limit_is_413() -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            # Only the head: the server must refuse on Content-Length without waiting.
            request = h11.Request(
                method="POST",
                target=PATH,
                headers=[("host", "x"), ("content-length", str(MAX_BODY_BYTES + 1))],
            )
            await client.send(request)
            reply = await client.response()
    _assert_json_error(reply, 413)
    assert reply.headers["connection"] == "close"


@pytest.mark.anyio
async def test_chunked_body_over_limit_is_413() -> None:
    piece = b"x" * 65536
    with anyio.fail_after(20):
        async with serve() as url, _connect(url) as client:
            headers = [("host", "x"), ("transfer-encoding", "chunked")]
            await client.send(h11.Request(method="POST", target=PATH, headers=headers))
            for _ in range(MAX_BODY_BYTES // len(piece) + 2):
                await client.send(h11.Data(data=piece))
            reply = await client.response()
    _assert_json_error(reply, 413)


@pytest.mark.anyio
async def test_expect_100_continue() -> None:
    body = _payload("go on")
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            headers = [
                ("host", "x"),
                ("content-length", str(len(body))),
                ("expect", "100-continue"),
            ]
            await client.send(h11.Request(method="POST", target=PATH, headers=headers))
            informational = await client.next_event()
            assert isinstance(informational, h11.InformationalResponse)
            assert informational.status_code == 100
            await client.send(h11.Data(data=body), h11.EndOfMessage())
            reply = await client.response()
    assert reply.body == b"go on"


@pytest.mark.anyio
async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            await client.request(_payload("first one"))
            first = await client.response()
            client.next_cycle()
            await client.request(_payload(), target="/nope")
            missing = await client.response()
            client.next_cycle()
            await client.request(_payload("second"))
            second = await client.response()
    assert first.body == b"first one"
    assert "connection" not in first.headers
    _assert_json_error(missing, 404)
    assert second.body == b"second"


@pytest.mark.anyio
async def test_connection_close_from_client_is_honoured() -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            await client.request(_payload("bye"), headers=[("connection", "close")])
            reply = await client.response()
            assert await _read_to_eof(client.stream) == b""
    assert reply.body == b"bye"


@pytest.mark.anyio
async def test_http10_client_gets_a_close_delimited_reply() -> None:
    body = _payload("old client")
    head = f"POST {PATH} HTTP/1.0\r\ncontent-length: {len(body)}\r\n\r\n".encode()
    with anyio.fail_after(10):
        async with serve() as url, await anyio.connect_tcp(*_address(url)) as stream:
            await stream.send(head + body)
            answer = await _read_to_eof(stream)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nold client")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x00\x01\x02 garbage\r\n\r\n", id="binary"),
        pytest.param(b"POST /api/completions HTTP/one\r\n\r\n", id="bad-version"),
        pytest.param(b"GET\r\n\r\n", id="no-target"),
        pytest.param(b"POST /api/completions HTTP/1.1\r\nbad header\r\n\r\n", id="bad-header"),
        pytest.param(
            b"POST /api/completions HTTP/1.1\r\nhost: x\r\n"
            b"transfer-encoding: chunked\r\n\r\nzz\r\n",
            id="bad-chunk",
        ),
        pytest.param(b"GET / HTTP/1.1\r\nhost: x\r\nx: " + b"a" * 40_000, id="oversized-head"),
    ],
)
async def test_malformed_http_gets_400_or_close_and_server_lives_on(garbage: bytes) -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            host, port = _address(url)
            async with await anyio.connect_tcp(host, port) as stream:
                await stream.send(garbage)
                answer = await _read_to_eof(stream)
            # h11 still lets the server answer each of these before it closes.
            status = int(answer.split(b" ", 2)[1])
            assert status in (400, 431)
            assert b"connection: close" in answer
            assert b'{"msg": ' in answer
            assert (await _post(url, _payload("still here"))).body == b"still here"


@pytest.mark.anyio
async def test_client_vanishing_mid_request_does_not_hurt() -> None:
    with anyio.fail_after(10):
        async with serve(delay=0.01) as url:
            host, port = _address(url)
            async with await anyio.connect_tcp(host, port) as stream:
                await stream.send(
                    b"POST /api/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\n{"
                )
            # And one that leaves in the middle of a streamed reply.
            async with _connect(url) as client:
                await client.request(_payload("a b c d e f g h i j k l m n o p"))
                assert isinstance(await client.next_event(), h11.Response)
            assert (await _post(url, _payload("fine"))).body == b"fine"


@pytest.mark.anyio
async def test_idle_connection_is_dropped() -> None:
    with anyio.fail_after(10):
        async with serve(idle_timeout=0.2) as url:
            host, port = _address(url)
            async with await anyio.connect_tcp(host, port) as stream:
                started = time.monotonic()
                assert await _read_to_eof(stream) == b""
                assert time.monotonic() - started >= 0.15


@pytest.mark.anyio
async def test_tls(server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext) -> None:
    with anyio.fail_after(10):
        async with serve(ssl_context=server_ssl_context, delay=0.01) as url:
            assert url.startswith("https://127.0.0.1:")
            reply = await _post(url, _payload("secret words"), client_ssl_context)
            async with _connect(url, client_ssl_context) as client:
                for text in ("one", "two"):
                    await client.request(_payload(text))
                    assert (await client.response()).body == text.encode()
                    client.next_cycle()
    assert reply.status == 200
    assert reply.chunks == [b"secret ", b"words"]


@pytest.mark.anyio
async def test_failed_tls_handshakes_are_quiet_and_harmless(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with anyio.fail_after(10):
        async with serve(ssl_context=server_ssl_context) as url:
            host, port = _address(url)
            # A client that does not trust the test CA aborts the handshake.
            with pytest.raises(ssl.SSLError):
                await _post(url, _payload(), ssl.create_default_context())
            # A plaintext client talking to the TLS port.
            async with await anyio.connect_tcp(host, port) as stream:
                await stream.send(b"POST /api/completions HTTP/1.1\r\nhost: x\r\n\r\n")
                await _read_to_eof(stream)
            # A client that connects and leaves without a word.
            stream = await anyio.connect_tcp(host, port)
            await stream.aclose()
            reply = await _post(url, _payload("ok"), client_ssl_context)
    assert reply.body == b"ok"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.anyio
async def test_many_concurrent_clients() -> None:
    results: dict[int, bytes] = {}

    async def one(i: int, url: str) -> None:
        results[i] = (await _post(url, _payload(f"client {i} says hi"))).body

    with anyio.fail_after(30):
        async with serve(delay=0.01) as url, anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(one, i, url)
    assert results == {i: f"client {i} says hi".encode() for i in range(60)}


@pytest.mark.anyio
async def test_leaving_serve_closes_open_connections() -> None:
    with anyio.fail_after(10):
        async with _connect_later() as clients:
            async with serve(delay=30) as url:
                idle = await clients.open(url)
                streaming = await clients.open(url)
                await streaming.request(_payload("never finished"))
                assert isinstance(await streaming.next_event(), h11.Response)
                assert isinstance(await streaming.next_event(), h11.Data)
            with anyio.fail_after(2):
                assert await _read_to_eof(idle.stream) == b""
                await _read_to_eof(streaming.stream)
            host, port = _address(url)
            with pytest.raises(OSError, match="connection attempts failed"):
                await anyio.connect_tcp(host, port)


class _Clients:
    def __init__(self) -> None:
        self.streams: list[ByteStream] = []

    async def open(self, url: str) -> _Client:
        self.streams.append(await anyio.connect_tcp(*_address(url)))
        return _Client(self.streams[-1])


@asynccontextmanager
async def _connect_later() -> AsyncIterator[_Clients]:
    """Client connections that outlive the server they were opened to."""
    clients = _Clients()
    try:
        yield clients
    finally:
        for stream in clients.streams:
            await anyio.aclose_forcefully(stream)


@pytest.mark.anyio
async def test_exception_in_body_propagates_unwrapped() -> None:
    with anyio.fail_after(10), pytest.raises(KeyError):
        async with serve():
            raise KeyError("boom")


@pytest.mark.anyio
async def test_serve_forever_reports_url_and_stops_on_cancel() -> None:
    urls: list[str] = []
    ready = anyio.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: serve_forever(port=0, on_ready=on_ready))
            await ready.wait()
            assert (await _post(urls[0], _payload("cli"))).body == b"cli"
            tg.cancel_scope.cancel()
    assert urls[0].startswith("http://127.0.0.1:")


@pytest.mark.anyio
async def test_ipv6_url_is_bracketed() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with anyio.fail_after(10):
            async with serve("::1") as url:
                assert url.startswith("http://[::1]:")
                assert (await _post(url, _payload("six"))).body == b"six"
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")


@pytest.mark.anyio
@pytest.mark.parametrize(("delay", "piece_size"), [(-1.0, None), (0.0, 0)])
async def test_serve_rejects_bad_arguments(delay: float, piece_size: int | None) -> None:
    with pytest.raises(ValueError, match=r"delay|piece_size"):
        async with serve(delay=delay, piece_size=piece_size):
            pass


@pytest.mark.anyio
async def test_serve_forever_passes_the_timeouts_on() -> None:
    urls: list[str] = []
    ready = anyio.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: serve_forever(port=0, idle_timeout=0.2, on_ready=on_ready))
            await ready.wait()
            async with await anyio.connect_tcp(*_address(urls[0])) as stream:
                assert await _read_to_eof(stream) == b""  # dropped after 0.2 s, not 30
            tg.cancel_scope.cancel()
