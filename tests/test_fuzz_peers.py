"""Hypothesis over real loopback sockets: whatever a proxy or a server sends, the client ends
in a result or a typed error within its timeout, never another exception and never a hang.

Three peers are fuzzed: an HTTP proxy's reply to CONNECT, a SOCKS5 proxy's
replies, and a server-sent-events body read through ``acytoo_raw.stream_events``
(whose events must equal the sans-IO decoder's on the same bytes, however the
socket split them). Examples are few (each opens a real connection) and each
runs under ``anyio.fail_after``.
"""

from __future__ import annotations

import re
from contextlib import aclosing
from itertools import pairwise

import anyio
import anyio.abc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import acytoo_raw
from acytoo_raw import (
    AcytooError,
    ConnectTimeout,
    ProxyError,
    ServerSentEvent,
    Timeout,
    TLSError,
)
from acytoo_raw._sse import SSEDecoder
from tests.peers import Handler, PeerLog, read_request, scripted_server, wait_for_close

pytestmark = pytest.mark.anyio

# Short limits, so an example whose peer goes silent ends fast.
LIMITS = Timeout(connect=0.25, read=0.25, write=1.0, pool=1.0)
# Far beyond LIMITS: reaching it means the client hung.
EXAMPLE_BOUND = 5.0

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(edges) if data[a:b]]


cuts = st.lists(st.integers(min_value=0), max_size=5)


def replying(pieces: list[bytes], *, hang: bool, read_first: bool = True) -> Handler:
    """Read the client's first message, send ``pieces`` (1 ms apart), then close or hang."""

    async def handle(stream: anyio.abc.ByteStream) -> None:
        if read_first:
            await stream.receive()
        for piece in pieces:
            await stream.send(piece)
            await anyio.sleep(0.001)
        if hang:
            await wait_for_close(stream)

    return handle


# --- the HTTP proxy's reply to CONNECT ---

PLAUSIBLE_CONNECT_REPLIES = [
    b"",
    b"HTTP/1.1 200 Connection established\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 5\r\n\r\n",
    b"HTTP/1.1 502 Bad Gateway\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
]
connect_replies = st.builds(
    bytes.__add__, st.sampled_from(PLAUSIBLE_CONNECT_REPLIES), st.binary(max_size=200)
)
# A 2xx reply (after any 1xx) opens the tunnel; then the TLS handshake meets the garbage.
TUNNEL_OPENED = re.compile(rb"HTTP/1\.[01] 2\d\d")


@FUZZ
@given(reply=connect_replies, where=cuts, hang=st.booleans())
async def test_any_connect_reply_ends_in_proxy_error_connect_timeout_or_a_tunnel(
    reply: bytes, where: list[int], hang: bool
) -> None:
    pieces = split(reply, where)
    async with scripted_server(lambda log: replying(pieces, hang=hang)) as (proxy, _):
        try:
            with anyio.fail_after(EXAMPLE_BOUND):
                async with acytoo_raw.open_stream(
                    "https://127.0.0.1:9/", proxy=proxy, timeout=LIMITS
                ):
                    raise AssertionError("no origin answered, yet a response came")
        except (ProxyError, ConnectTimeout) as exc:
            event(type(exc).__name__)
        except TLSError:
            # Only past an open tunnel: the origin's TLS handshake met the proxy's bytes.
            event("TLSError past the tunnel")
            assert TUNNEL_OPENED.search(reply), reply


# --- the SOCKS5 proxy's replies ---

IPV4_REPLY = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"
PLAUSIBLE_SOCKS_REPLIES = [
    b"",
    b"\x05\x00",  # no authentication chosen
    b"\x05\x00" + IPV4_REPLY,  # success, bound to 127.0.0.1:1080
    b"\x05\x00\x05\x00\x00\x03\x09localhost\x04\x38",  # success, bound to a name
    b"\x05\x00\x05\x00\x00\x04" + bytes(16) + b"\x04\x38",  # success, bound to ::
    b"\x05\x00\x05\x05\x00\x01" + bytes(6),  # connection refused
    b"\x05\x02\x01\x00" + IPV4_REPLY,  # username/password accepted
    b"\x05\x02\x01\x01",  # username/password refused
    b"\x05\xff",  # no acceptable method
    b"\x04\x5a",  # a SOCKS4 answer
    b"HTTP/1.1 400 Bad Request\r\n\r\n",  # not a SOCKS proxy at all
]
socks_replies = st.builds(
    bytes.__add__, st.sampled_from(PLAUSIBLE_SOCKS_REPLIES), st.binary(max_size=64)
)
# Past these the handshake is done and the bytes are the origin's: HTTP errors may follow.
HANDSHAKE_DONE = (b"\x05\x00\x05\x00\x00", b"\x05\x02\x01\x00\x05\x00\x00")


@FUZZ
@given(reply=socks_replies, where=cuts, hang=st.booleans(), password=st.booleans())
async def test_any_socks5_reply_ends_in_proxy_error_connect_timeout_or_a_tunnel(
    reply: bytes, where: list[int], hang: bool, password: bool
) -> None:
    pieces = split(reply, where)
    async with scripted_server(lambda log: replying(pieces, hang=hang)) as (base, _):
        port = base.rsplit(":", 1)[1]
        proxy = f"socks5://{'user:secret@' if password else ''}127.0.0.1:{port}"
        outcome: AcytooError | None = None
        try:
            with anyio.fail_after(EXAMPLE_BOUND):
                async with aclosing(
                    acytoo_raw.stream_bytes("http://127.0.0.1:9/", proxy=proxy, timeout=LIMITS)
                ) as body:
                    async for _ in body:
                        pass
        except AcytooError as exc:
            outcome = exc
    event(type(outcome).__name__)
    if not isinstance(outcome, (ProxyError, ConnectTimeout, type(None))):
        # Only past a finished handshake: the origin's HTTP met the proxy's bytes.
        assert reply.startswith(HANDSHAKE_DONE), (reply, outcome)
    assert "secret" not in str(outcome)


# --- a server-sent-events body ---

SSE_LINES = [
    b"",  # A blank line: dispatch.
    b"",
    b"data: x",
    b"data:",
    b"data: \xc3\xa9",
    b"data:  two spaces",
    b"event: e",
    b"id: 1",
    b"id: a\x00b",
    b"retry: 10",
    b"retry: x",
    b": comment",
    b"\xef\xbb\xbfdata: bom",
    b"\xff\xfe",
    b"\xc3",
    b"field without colon",
]
sse_lines = st.one_of(st.sampled_from(SSE_LINES), st.binary(max_size=6))
line_ends = st.sampled_from([b"\n", b"\r\n", b"\r"])
sse_line = st.tuples(sse_lines, line_ends).map(b"".join)
# Mostly blocks of a few lines ended by a blank line (events), sometimes raw bytes.
sse_event = st.tuples(st.lists(sse_line, min_size=1, max_size=4).map(b"".join), line_ends).map(
    b"".join
)
sse_bodies = st.one_of(
    st.lists(sse_event, min_size=1, max_size=8).map(b"".join),
    st.tuples(st.lists(sse_event, max_size=4).map(b"".join), st.binary(max_size=40)).map(b"".join),
    st.binary(max_size=300),
)


def expected_events(body: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [*decoder.feed(body), *decoder.feed_eof()]


def sse_peer(body: bytes, where: list[int], framing: str) -> Handler:
    if framing == "content-length":
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n"
        data = head % len(body) + body
    else:  # Delimited by the close.
        data = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        data += body
    pieces = split(data, where)

    async def handle(stream: anyio.abc.ByteStream) -> None:
        await read_request(stream)
        for piece in pieces:
            await stream.send(piece)
            await anyio.sleep(0.001)

    return handle


@FUZZ
@given(
    body=sse_bodies,
    where=st.lists(st.integers(min_value=0), max_size=8),
    framing=st.sampled_from(["content-length", "close"]),
)
async def test_any_sse_body_gives_the_decoders_events_or_a_typed_error(
    body: bytes, where: list[int], framing: str
) -> None:
    def make(log: PeerLog) -> Handler:
        return sse_peer(body, where, framing)

    async with scripted_server(make) as (base, _):
        events: list[ServerSentEvent] = []
        try:
            with anyio.fail_after(EXAMPLE_BOUND * 2):
                # Nothing here may time out: generous limits, so a busy machine can't.
                async with aclosing(
                    acytoo_raw.stream_events(base, timeout=EXAMPLE_BOUND)
                ) as stream:
                    async for item in stream:
                        events.append(item)
        except AcytooError as exc:  # pragma: no cover - a well-framed body never fails
            raise AssertionError(f"a well-framed body failed: {exc!r}") from exc
    event("3+ events" if len(events) >= 3 else f"{len(events)} events")
    assert events == expected_events(body)


SSE_HEADS = [
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked",
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 40",
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 10",
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked",
]
sse_heads = st.one_of(
    st.tuples(st.sampled_from(SSE_HEADS), st.binary(max_size=20)).map(b"".join),
    st.sampled_from(SSE_HEADS),
    st.binary(max_size=120),
)


@FUZZ
@given(head=sse_heads, body=sse_bodies, where=cuts, hang=st.booleans())
async def test_any_head_and_sse_body_end_in_events_or_a_typed_error(
    head: bytes, body: bytes, where: list[int], hang: bool
) -> None:
    # Any head (or garbage where it should be), a body in any framing or none,
    # that may never end: events or a typed error, within the limits.
    pieces = split(head + b"\r\n\r\n" + body, where)

    def make(log: PeerLog) -> Handler:
        async def handle(stream: anyio.abc.ByteStream) -> None:
            await read_request(stream)
            await replying(pieces, hang=hang, read_first=False)(stream)

        return handle

    async with scripted_server(make) as (base, _):
        try:
            with anyio.fail_after(EXAMPLE_BOUND):
                async with aclosing(acytoo_raw.stream_events(base, timeout=LIMITS)) as stream:
                    async for item in stream:
                        assert isinstance(item, ServerSentEvent)
        except AcytooError as exc:
            event(type(exc).__name__)
        else:
            event("complete")
