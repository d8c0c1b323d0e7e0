"""The engine end to end over real loopback sockets, on asyncio and trio."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import anyio
import anyio.lowlevel
import pytest
import trustme

import acytoo_raw
from acytoo_raw import (
    AcytooError,
    ConnectError,
    ConnectTimeout,
    HTTPStatusError,
    LocalProtocolError,
    ReadTimeout,
    RemoteProtocolError,
    Timeout,
    TLSError,
    TotalTimeout,
    WriteTimeout,
)
from acytoo_raw.server import serve
from tests.peers import (
    LAST_CHUNK,
    Handler,
    PeerLog,
    chunk,
    chunked_head,
    read_request,
    response,
    script,
    scripted_server,
)

pytestmark = pytest.mark.anyio

HELLO = [{"role": "user", "content": "Привет, мир! 你好 👋 hello"}]
PAYLOAD = {"key": "", "model": "gpt-3.5-turbo", "messages": HELLO, "temperature": 0.5}
# Generous: these prove a thing happens at all, never how fast.
BOUND = 10.0


async def collect_text(url: str, **kwargs: object) -> list[str]:
    with anyio.fail_after(BOUND):
        async with aclosing(acytoo_raw.stream_text(url, **kwargs)) as pieces:  # type: ignore[arg-type]
            return [piece async for piece in pieces]


async def collect_bytes(url: str, **kwargs: object) -> list[bytes]:
    with anyio.fail_after(BOUND):
        async with aclosing(acytoo_raw.stream_bytes(url, **kwargs)) as pieces:  # type: ignore[arg-type]
            return [piece async for piece in pieces]


async def test_streams_the_loopback_servers_answer_piece_by_piece() -> None:
    async with serve(delay=0.01) as base:
        pieces = await collect_text(f"{base}/api/completions", json=PAYLOAD)
    assert "".join(pieces) == HELLO[0]["content"]
    assert len(pieces) == len(HELLO[0]["content"].split())


async def test_bytes_and_text_agree() -> None:
    async with serve() as base:
        raw = await collect_bytes(f"{base}/api/completions", json=PAYLOAD)
    assert b"".join(raw).decode("utf-8") == HELLO[0]["content"]
    assert all(raw)


async def test_open_stream_exposes_status_headers_and_body() -> None:
    async with serve() as base:
        with anyio.fail_after(BOUND):
            async with acytoo_raw.open_stream(f"{base}/api/completions", json=PAYLOAD) as r:
                assert r.status_code == 200
                assert r.reason == "OK"
                assert r.http_version == "1.1"
                assert r.get_header("Content-Type") == "text/plain; charset=utf-8"
                assert r.charset == "utf-8"
                text = "".join([piece async for piece in r.aiter_text()])
    assert text == HELLO[0]["content"]


async def test_split_multibyte_character_is_decoded_whole() -> None:
    body = "日本".encode()
    steps = (chunked_head(), chunk(body[:2]), 0.05, chunk(body[2:4]), 0.05, chunk(body[4:]))
    async with scripted_server(script(*steps, LAST_CHUNK)) as (base, _):
        text = await collect_text(base)
        raw = await collect_bytes(base)
    assert text == ["日", "本"]  # No empty string for the piece that held half a character.
    assert raw == [body[:2], body[2:4], body[4:]]


@pytest.mark.parametrize(
    ("content_type", "encoded"),
    [
        (b"text/plain; charset=latin-1", "café".encode("latin-1")),
        (b'text/plain; charset="UTF-16"', "привет".encode("utf-16")),
        (b"text/plain", "naïve".encode()),
        (b"text/plain; charset=no-such-codec", "naïve".encode()),
    ],
)
async def test_charset_comes_from_content_type(content_type: bytes, encoded: bytes) -> None:
    reply = response(encoded, headers=(b"content-type: " + content_type,))
    async with scripted_server(script(reply)) as (base, _):
        text = "".join(await collect_text(base))
    codec = content_type.partition(b"charset=")[2].strip(b'"').decode() or "utf-8"
    expected = encoded.decode("utf-8" if codec == "no-such-codec" else codec)
    assert text == expected


async def test_strict_decoding_raises_on_invalid_bytes() -> None:
    async with scripted_server(script(response(b"ok \xff"))) as (base, _):
        assert "".join(await collect_text(base)) == "ok \ufffd"
        with pytest.raises(UnicodeDecodeError):
            await collect_text(base, encoding_errors="strict")


async def test_request_leaves_as_one_valid_post() -> None:
    async with scripted_server(script(response(b"x"))) as (base, log):
        await collect_bytes(f"{base}/api/completions?a=1", json=PAYLOAD, headers={"x-y": "z"})
    request = log.requests[0]
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/completions?a=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{base.rsplit(':', 1)[1]}".encode() in head.lower()
    assert b"content-type: application/json" in head.lower()
    assert b"x-y: z" in head.lower()
    assert b"content-length: %d" % len(body) in head.lower()
    assert body.decode("utf-8").startswith('{"key":""')


async def test_close_delimited_body_ends_normally() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n"
    async with scripted_server(script(head, b"one ", 0.02, b"two")) as (base, _):
        assert "".join(await collect_text(base)) == "one two"


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param((b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345",), id="short-length"),
        pytest.param((chunked_head(), chunk(b"abc")), id="chunked-no-last-chunk"),
        pytest.param((chunked_head(), b"a\r\n12345"), id="chunked-cut-mid-data"),
        pytest.param((chunked_head(), b"zz\r\n"), id="chunked-bad-size"),
        pytest.param((b"HTTP/1.1 200 OK\r\ncontent-le",), id="cut-in-head"),
        pytest.param((b"HTTP/9.9 banana\r\n\r\n",), id="garbage-status-line"),
        pytest.param((b"\x00\x01\x02 not http\r\n\r\n",), id="binary-garbage"),
        pytest.param((), id="closed-without-response"),
        pytest.param(
            (b"HTTP/1.1 200 OK\r\nx: " + b"a" * (200 * 1024) + b"\r\n\r\n",), id="oversized-head"
        ),
    ],
)
async def test_malformed_or_truncated_response_is_remote_protocol_error(
    steps: tuple[bytes, ...],
) -> None:
    async with scripted_server(script(*steps)) as (base, _):
        with pytest.raises(RemoteProtocolError):
            await collect_bytes(base)


async def test_oversized_head_fails_without_reading_it_all() -> None:
    endless_header = (b"HTTP/1.1 200 OK\r\nx: ",) + (b"a" * 65536, 0.0) * 64
    async with scripted_server(script(*endless_header, hang=True)) as (base, _):
        with pytest.raises(RemoteProtocolError, match=r"longer than 65536 bytes"):
            await collect_bytes(base)


async def test_non_2xx_raises_http_status_error_with_bounded_body() -> None:
    big = b"e" * (200 * 1024)
    reply = response(big, status=b"503 Service Unavailable", headers=(b"retry-after: 5",))
    async with scripted_server(script(reply)) as (base, _):
        with pytest.raises(HTTPStatusError) as caught:
            await collect_text(base)
    error = caught.value
    assert error.status_code == 503
    assert error.reason == "Service Unavailable"
    assert ("retry-after", "5") in error.headers
    assert error.body == big[: 64 * 1024]


async def test_loopback_server_400_is_http_status_error_with_json_body() -> None:
    async with serve() as base:
        with pytest.raises(HTTPStatusError) as caught:
            await collect_text(f"{base}/api/completions", content=b"not json")
    assert caught.value.status_code == 400
    assert caught.value.body.startswith(b'{"msg"')


async def test_error_body_is_read_within_the_read_timeout_and_keeps_the_status() -> None:
    head = b"HTTP/1.1 500 Oops\r\ncontent-length: 100\r\n\r\npartial"
    async with scripted_server(script(head, hang=True)) as (base, _):
        with pytest.raises(HTTPStatusError) as caught:
            await collect_text(base, timeout=Timeout(read=0.2))
    assert caught.value.status_code == 500
    assert caught.value.body == b"partial"
    assert isinstance(caught.value.__cause__, ReadTimeout)


async def test_truncated_error_body_keeps_the_status() -> None:
    head = b"HTTP/1.1 503 Busy\r\ncontent-length: 100\r\n\r\ncut"
    async with scripted_server(script(head)) as (base, _):
        with pytest.raises(HTTPStatusError) as caught:
            await collect_text(base)
    assert caught.value.status_code == 503
    assert caught.value.body == b"cut"
    assert isinstance(caught.value.__cause__, RemoteProtocolError)


async def test_refused_connection_is_connect_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # Nobody listens there now.
    with pytest.raises(ConnectError, match="refused"):
        await collect_bytes(f"http://127.0.0.1:{port}/")


async def test_stalled_tls_handshake_is_connect_timeout() -> None:
    async with scripted_server(script(hang=True)) as (base, _):
        url = base.replace("http://", "https://")
        with pytest.raises(ConnectTimeout):
            await collect_bytes(url, timeout=Timeout(connect=0.2))


async def test_silent_server_is_read_timeout_before_head_and_between_pieces() -> None:
    async with scripted_server(script(hang=True)) as (base, _):
        with pytest.raises(ReadTimeout):
            await collect_bytes(base, timeout=Timeout(read=0.2))
    async with scripted_server(script(chunked_head(), chunk(b"a"), hang=True)) as (base, _):
        received: list[bytes] = []

        async def consume() -> None:
            with anyio.fail_after(BOUND):
                async for piece in acytoo_raw.stream_bytes(base, timeout=Timeout(read=0.2)):
                    received.append(piece)

        with pytest.raises(ReadTimeout):
            await consume()
        assert received == [b"a"]  # What arrived before the silence is not lost.


async def test_read_timeout_counts_silence_not_duration() -> None:
    steps = [chunked_head()]
    for _ in range(6):
        steps += [0.1, chunk(b"x")]
    async with scripted_server(script(*steps, LAST_CHUNK)) as (base, _):
        pieces = await collect_bytes(base, timeout=Timeout(read=0.4))
    assert b"".join(pieces) == b"x" * 6


async def test_unread_request_is_write_timeout() -> None:
    # A listening socket that never accepts: the kernel completes the handshake,
    # its buffers fill, and nothing ever reads (asyncio transports would).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(WriteTimeout):
            await collect_bytes(base, content=b"x" * (64 * 1024 * 1024), timeout=Timeout(write=0.3))


async def test_unread_request_is_total_timeout_when_the_total_runs_out_first() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with anyio.fail_after(10), pytest.raises(TotalTimeout, match="while sending"):
            await collect_bytes(
                base, content=b"x" * (64 * 1024 * 1024), timeout=Timeout(write=30, total=0.3)
            )
        assert time.monotonic() - started < 5


async def test_unread_request_over_tls_is_write_timeout(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    # The TLS handshake completes, then the server stops reading: the write
    # limit bounds the socket under the TLS layer.
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def handshake_then_stall() -> None:
            peer, _ = listener.accept()
            with server_ssl_context.wrap_socket(peer, server_side=True) as tls:
                stop.wait(10)
                del tls

        thread = threading.Thread(target=handshake_then_stall, daemon=True)
        thread.start()
        base = f"https://127.0.0.1:{listener.getsockname()[1]}"
        try:
            with anyio.fail_after(10), pytest.raises(WriteTimeout):
                await collect_bytes(
                    base,
                    content=b"x" * (64 * 1024 * 1024),
                    timeout=Timeout(write=0.3),
                    ssl_context=client_ssl_context,
                )
        finally:
            stop.set()
            thread.join(10)


async def test_endless_stream_is_cut_by_total_timeout() -> None:
    steps = [chunked_head()] + [chunk(b"tick "), 0.02] * 400
    async with scripted_server(script(*steps)) as (base, _):
        with pytest.raises(TotalTimeout):
            await collect_bytes(base, timeout=Timeout(total=0.3))


async def test_timeouts_are_builtin_timeout_errors() -> None:
    for cls in (ConnectTimeout, ReadTimeout, WriteTimeout, TotalTimeout):
        assert issubclass(cls, TimeoutError)
        assert issubclass(cls, AcytooError)


async def test_tls_with_trusted_ca(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with serve(ssl_context=server_ssl_context, delay=0.01) as base:
        assert base.startswith("https://")
        pieces = await collect_text(
            f"{base}/api/completions", json=PAYLOAD, ssl_context=client_ssl_context
        )
    assert "".join(pieces) == HELLO[0]["content"]


async def test_untrusted_certificate_is_tls_error(server_ssl_context: ssl.SSLContext) -> None:
    async with serve(ssl_context=server_ssl_context) as base:
        with pytest.raises(TLSError, match="certificate"):
            await collect_text(f"{base}/api/completions", json=PAYLOAD)


async def test_hostname_mismatch_is_tls_error(tls_ca: trustme.CA) -> None:
    other = tls_ca.issue_cert("other.example")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(server_context)
    client_context = ssl.create_default_context()
    tls_ca.configure_trust(client_context)
    async with serve(ssl_context=server_context) as base:
        with pytest.raises(TLSError, match=r"127\.0\.0\.1"):
            await collect_text(f"{base}/api/completions", json=PAYLOAD, ssl_context=client_context)


async def test_plain_http_server_behind_https_url_is_tls_error() -> None:
    async with serve() as base:
        with pytest.raises(TLSError):
            await collect_text(base.replace("http://", "https://") + "/api/completions")


@pytest.mark.parametrize(
    "bad",
    [
        {"headers": {"x-evil": "a\r\nInjected: 1"}},
        {"headers": [("bad name", "v")]},
        {"json": {"a": object()}},
        {"json": {}, "content": b"x"},
    ],
)
async def test_bad_input_is_refused_before_connecting(bad: dict[str, object]) -> None:
    async with scripted_server(script(response(b"x"))) as (base, log):
        with pytest.raises(LocalProtocolError):
            await collect_bytes(base, **bad)
        await anyio.sleep(0.05)
    assert log.connections == 0


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/", "http://", "http://u:p@127.0.0.1/", "http://127.0.0.1:99999/"]
)
async def test_bad_url_is_local_protocol_error(url: str) -> None:
    with pytest.raises(LocalProtocolError):
        await collect_bytes(url)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def assert_fds_back_to(count: int) -> None:
    """Event loops free a closed socket's fd on a later turn (uvloop: a few turns)."""
    for _ in range(100):
        if open_fds() <= count:
            return
        await anyio.sleep(0.01)
    assert open_fds() <= count


async def check_no_fd_left(
    scenario: Callable[[str], Awaitable[None]], peer: Callable[[PeerLog], Handler]
) -> None:
    """Run ``scenario`` twice against a fresh peer each time; the second run
    must leave no fd behind (the first warms up loop-wide fds: uvloop opens
    one /dev/null placeholder the first time a watched socket is closed)."""
    before = 0
    for attempt in range(2):
        async with scripted_server(peer) as (base, log):
            if attempt:
                before = open_fds()
            with anyio.fail_after(BOUND):
                await scenario(base)
                await log.closed_by_client.wait()  # The peer sees the close, not a timeout.
        if attempt:
            await assert_fds_back_to(before)


STREAM_FOREVER = script(chunked_head(), *[chunk(b"piece"), 0.02] * 200)


async def test_breaking_out_closes_the_socket_at_once() -> None:
    async def scenario(base: str) -> None:
        async with aclosing(acytoo_raw.stream_bytes(base)) as pieces:
            async for _ in pieces:
                break

    await check_no_fd_left(scenario, STREAM_FOREVER)


async def test_cancelling_the_consumer_closes_the_socket() -> None:
    async def scenario(base: str) -> None:
        with anyio.move_on_after(0.15):
            async with aclosing(acytoo_raw.stream_bytes(base)) as pieces:
                async for _ in pieces:
                    pass

    await check_no_fd_left(scenario, STREAM_FOREVER)


async def test_cancelling_while_connecting_leaks_nothing() -> None:
    async def scenario(base: str) -> None:
        with anyio.move_on_after(0.1):  # Cancelled in the middle of the TLS handshake.
            await collect_bytes(base.replace("http://", "https://"))

    await check_no_fd_left(scenario, script(hang=True))


async def test_two_hundred_concurrent_streams_complete() -> None:
    results: list[str] = []

    async def one(base: str, i: int) -> None:
        messages = [{"role": "user", "content": f"stream {i} says hello"}]
        payload = {**PAYLOAD, "messages": messages}
        results.append("".join(await collect_text(f"{base}/api/completions", json=payload)))

    async with serve(delay=0.01) as base:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, base, i)
    assert sorted(results) == sorted(f"stream {i} says hello" for i in range(200))


async def test_interim_response_flood_is_refused() -> None:
    flood = (b"HTTP/1.1 100 Continue\r\n\r\n" * 40,)
    async with scripted_server(script(*flood, hang=True)) as (base, _):
        with pytest.raises(RemoteProtocolError, match="interim"):
            await collect_bytes(base)


async def test_a_few_interim_responses_are_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n"
    async with scripted_server(script(interim, response(b"final"))) as (base, _):
        assert await collect_bytes(base) == [b"final"]


async def test_trickling_head_is_bounded_by_the_read_timeout() -> None:
    # One byte every 0.1 s never leaves a silence of 0.3 s, but the head as a
    # whole must arrive within it.
    trickle = [step for byte in b"HTTP/1.1 200 OK\r\nx: yyyyyyyy" for step in (bytes([byte]), 0.1)]
    async with scripted_server(script(*trickle, hang=True)) as (base, _):
        with pytest.raises(ReadTimeout, match="head"):
            await collect_bytes(base, timeout=Timeout(read=0.3))


async def test_total_timeout_fires_while_data_never_pauses() -> None:
    async def flood(stream: anyio.abc.ByteStream) -> None:
        await read_request(stream)
        await stream.send(chunked_head())
        block = chunk(b"z" * 8192)
        with anyio.move_on_after(BOUND):
            while True:
                await stream.send(block)

    async with scripted_server(lambda log: flood) as (base, _):
        with pytest.raises(TotalTimeout):
            await collect_bytes(base, timeout=Timeout(total=0.3))


async def test_reading_one_response_from_two_tasks_is_a_typed_error() -> None:
    async with scripted_server(script(chunked_head(), hang=True)) as (base, _):
        with anyio.fail_after(BOUND):
            async with acytoo_raw.open_stream(base, timeout=Timeout(read=1)) as r:
                errors: list[BaseException] = []

                async def read() -> None:
                    try:
                        await r.aread()
                    except AcytooError as exc:
                        errors.append(exc)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    tg.start_soon(read)
    assert any(isinstance(error, LocalProtocolError) for error in errors)


async def test_unknown_encoding_errors_handler_is_refused_before_sending() -> None:
    async with scripted_server(script(response(b"x"))) as (base, log):
        with pytest.raises(LocalProtocolError, match="bogus"):
            await collect_text(base, encoding_errors="bogus")
    assert log.connections == 0


async def test_a_bytes_codec_charset_still_yields_text() -> None:
    reply = response(b"aGVsbG8=", headers=(b"content-type: text/plain; charset=base64",))
    async with scripted_server(script(reply)) as (base, _):
        assert await collect_text(base, encoding_errors="strict") == ["aGVsbG8="]


async def test_good_bytes_before_a_framing_error_are_delivered_first() -> None:
    # One segment: a good chunk, then a broken chunk-size line; the server then hangs.
    steps = (chunked_head() + chunk(b"kept") + b"zz\r\n",)
    async with scripted_server(script(*steps, hang=True)) as (base, _):
        received: list[bytes] = []

        async def consume() -> None:
            with anyio.fail_after(BOUND):
                async for piece in acytoo_raw.stream_bytes(base, timeout=Timeout(read=5)):
                    received.append(piece)

        with pytest.raises(RemoteProtocolError, match="chunk-size"):
            await consume()
    assert received == [b"kept"]


async def test_concurrent_fast_streams_never_mix_their_bytes() -> None:
    # Reads share one buffer per thread; every byte must still reach its own stream.
    bodies = [bytes([65 + i]) * (3 * 1024 * 1024) for i in range(3)]
    results: dict[int, bytes] = {}

    async def one(i: int) -> None:
        async with scripted_server(script(response(bodies[i]))) as (base, _):
            results[i] = b"".join(await collect_bytes(base))

    with anyio.fail_after(BOUND * 3):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(one, i)
    assert [results[i] == bodies[i] for i in range(3)] == [True] * 3
