"""Tests for the OpenAI dialect of the loopback server (acytoo_raw._server_openai and its routes).

Three layers: the sans-IO payload parser and event builders; the server's
bytes on the wire, read by a tiny raw h11 client written here; and the real
``openai`` SDK as a third-party client, streamed and not.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import anyio
import h11
import pytest
from anyio.abc import ByteStream

from acytoo_raw import _server_openai as sans_io
from acytoo_raw._server_openai import (
    ChatRequest,
    RequestError,
    completion_body,
    error_body,
    models_body,
    parse_chat_request,
    stream_frames,
)
from acytoo_raw.server import (
    DEFAULT_MODEL,
    FAULT_HEADER,
    FAULTS,
    MAX_BODY_BYTES,
    MODELS,
    OPENAI_CHAT_PATH,
    OPENAI_MODELS_PATH,
    reply_pieces,
    serve,
)

_openai_sdk: ModuleType | None
try:
    _openai_sdk = importlib.import_module("openai")
except ImportError:  # the test extra installs it
    _openai_sdk = None

# The openai SDK runs on httpx, which runs on asyncio only: its tests run on the
# asyncio backend (plain and uvloop) and are not parametrised over trio. Every
# other test here runs on all three backends.
ASYNCIO_ONLY = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ],
)


def _sdk() -> ModuleType:
    """The openai module; a missing SDK fails in CI and skips elsewhere."""
    if _openai_sdk is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the openai SDK is not installed (the test extra installs it)")
        pytest.skip("the openai SDK is not installed")
    return _openai_sdk


def _chat(content: str = "Hello big world", **extra: object) -> dict[str, Any]:
    return {
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


# --- sans-IO: the payload -------------------------------------------------------------------------


def test_parse_chat_request_reads_what_the_server_uses() -> None:
    request = parse_chat_request(
        json.dumps(
            {
                "model": "m1",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "assistant", "content": None, "tool_calls": []},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "part one"},
                            {"type": "image_url", "image_url": {"url": "data:,"}},
                            {"type": "text", "text": "part two"},
                        ],
                    },
                ],
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": 0.2,
            }
        ).encode()
    )
    assert request == ChatRequest(
        model="m1",
        messages=(
            {"role": "system", "content": "be brief"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "part one\npart two"},
        ),
        stream=True,
        include_usage=True,
    )
    assert request.prompt_tokens == 6


def test_parse_chat_request_defaults() -> None:
    request = parse_chat_request(b'{"messages": [{"role": "user", "content": "hi"}]}')
    assert request.model == DEFAULT_MODEL
    assert not request.stream
    assert not request.include_usage


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(b"{not json", None, id="invalid-json"),
        pytest.param(b"\xff\xfe", None, id="invalid-utf8"),
        pytest.param(b"[" * 100_000, None, id="deeply-nested"),
        pytest.param(b"[]", None, id="not-an-object"),
        pytest.param(b"{}", "messages", id="messages-missing"),
        pytest.param(b'{"messages": "hi"}', "messages", id="messages-not-list"),
        pytest.param(b'{"messages": []}', "messages", id="messages-empty"),
        pytest.param(b'{"messages": ["hi"]}', "messages[0]", id="message-not-object"),
        pytest.param(b'{"messages": [{"content": "x"}]}', "messages[0]", id="role-missing"),
        pytest.param(
            b'{"messages": [{"role": "user", "content": 5}]}', "messages[0]", id="content-number"
        ),
        pytest.param(
            b'{"messages": [{"role": "user", "content": [5]}]}', "messages[0]", id="part-number"
        ),
        pytest.param(
            b'{"messages": [{"role": "user", "content": [{"type": "text"}]}]}',
            "messages[0]",
            id="text-part-without-text",
        ),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
            "messages[0]",
            id="lone-surrogate",
        ),
        pytest.param(b'{"model": 3, "messages": []}', "model", id="model-number"),
        pytest.param(b'{"model": "", "messages": []}', "model", id="model-empty"),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "stream",
            id="stream-string",
        ),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "x"}], "stream_options": 1}',
            "stream_options",
            id="stream-options-number",
        ),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "x"}],'
            b' "stream_options": {"include_usage": "yes"}}',
            "stream_options",
            id="include-usage-string",
        ),
    ],
)
def test_parse_chat_request_refuses(body: bytes, param: str | None) -> None:
    with pytest.raises(RequestError) as caught:
        parse_chat_request(body)
    assert caught.value.param == param
    assert str(caught.value)


# --- sans-IO: the events --------------------------------------------------------------------------

_REQUEST = ChatRequest(
    model="m", messages=({"role": "user", "content": "a b c d"},), stream=True, include_usage=False
)
_PIECES = ["a ", "b ", "c ", "d"]


def _decode(frame: bytes) -> Any:
    assert frame.startswith(b"data: ")
    assert frame.endswith(b"\n\n")
    assert frame.count(b"\n") == 2  # one data line per event
    text = frame[6:-2].decode("utf-8")
    return text if text == "[DONE]" else json.loads(text)


def _frames(request: ChatRequest = _REQUEST, fault: str | None = None) -> list[sans_io.Frame]:
    return stream_frames(request, _PIECES, completion_id="chatcmpl-x", created=7, fault=fault)


def test_stream_frames_in_order() -> None:
    frames = _frames()
    events = [_decode(f.data) for f in frames]
    assert [f.paced for f in frames] == [False, True, True, True, True, False, False]
    role, *contents, finish, done = events
    assert role == {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    assert [c["choices"][0]["delta"] for c in contents] == [{"content": p} for p in _PIECES]
    assert all(c["choices"][0]["finish_reason"] is None for c in contents)
    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert done == "[DONE]"
    assert all("usage" not in e for e in events[:-1])


def test_stream_frames_usage_chunk_last_before_done() -> None:
    request = ChatRequest(model="m", messages=_REQUEST.messages, stream=True, include_usage=True)
    events = [_decode(f.data) for f in _frames(request)]
    *chunks, usage, done = events
    assert done == "[DONE]"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    assert all(c["usage"] is None for c in chunks)  # as OpenAI sends it


def test_stream_frames_faults() -> None:
    def kinds(fault: str) -> list[str]:
        out = []
        for frame in _frames(fault=fault):
            try:
                event = _decode(frame.data)
            except ValueError:
                out.append("broken")
                continue
            if event == "[DONE]":
                out.append("done")
            elif "error" in event:
                out.append("error")
            elif event["choices"][0]["finish_reason"]:
                out.append("finish")
            elif "role" in event["choices"][0]["delta"]:
                out.append("role")
            else:
                out.append(event["choices"][0]["delta"]["content"])
        return out

    assert kinds("truncate") == ["role", "a ", "b "]
    assert kinds("error") == ["role", "a ", "b ", "error"]
    assert kinds("malformed") == ["role", "a ", "b ", "broken", "c ", "d", "finish", "done"]
    assert kinds("no-done") == ["role", "a ", "b ", "c ", "d", "finish"]
    error = _decode(_frames(fault="error")[-1].data)["error"]
    assert error["type"] == "server_error"
    assert FAULT_HEADER in error["message"]
    with pytest.raises(ValueError, match="fault"):
        _frames(fault="nope")


def test_json_is_compact_utf8_and_keeps_line_separators() -> None:
    request = ChatRequest(
        model="m",
        messages=({"role": "user", "content": "Привет\u2028🎉"},),
        stream=True,
        include_usage=False,
    )
    frame = stream_frames(request, ["Привет\u2028🎉"], completion_id="c", created=1)[1].data
    assert "Привет\u2028🎉".encode() in frame  # raw, not \\u escapes: clients must cope
    assert b", " not in frame
    assert b": " not in frame[6:]


def test_completion_models_and_error_bodies() -> None:
    request = ChatRequest(model="m", messages=_REQUEST.messages, stream=False, include_usage=False)
    body = json.loads(completion_body(request, _PIECES, completion_id="chatcmpl-y", created=3))
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "a b c d",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 4
    models = json.loads(models_body())
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == list(MODELS)
    assert "gpt-3.5-turbo" in MODELS
    assert DEFAULT_MODEL in MODELS
    assert json.loads(error_body(404, "gone", "p")) == {
        "error": {"message": "gone", "type": "invalid_request_error", "param": "p", "code": None}
    }
    assert json.loads(error_body(500, "x"))["error"]["type"] == "server_error"


# --- the server's bytes on the wire ---------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)  # one entry per HTTP chunk
    times: list[float] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[bytes]:
        """The SSE events, checking that each HTTP chunk carries exactly one."""
        assert all(c.endswith(b"\n\n") and c.count(b"\n\n") == 1 for c in self.chunks)
        return self.chunks


class _Client:
    """A minimal h11 client over one anyio byte stream."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> _Reply:
        all_headers = [("host", "127.0.0.1"), *headers]
        if body is not None:
            all_headers.append(("content-length", str(len(body))))
        events: list[h11.Event] = [h11.Request(method=method, target=target, headers=all_headers)]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await self.stream.send(b"".join(self.conn.send(e) or b"" for e in events))
        reply = await self._response()
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return reply

    async def _next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.receive()
            except anyio.EndOfStream:
                data = b""
            self.conn.receive_data(data)

    async def _response(self) -> _Reply:
        head = await self._next_event()
        assert isinstance(head, h11.Response), head
        reply = _Reply(head.status_code, {k.decode(): v.decode() for k, v in head.headers})
        partial = b""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.EndOfMessage):
                if partial:
                    reply.chunks.append(partial)
                return reply
            assert isinstance(event, h11.Data), event
            partial += event.data
            if event.chunk_end or "content-length" in reply.headers:
                reply.chunks.append(partial)
                reply.times.append(time.monotonic())
                partial = b""


@asynccontextmanager
async def _connect(url: str) -> AsyncIterator[_Client]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    async with await anyio.connect_tcp(host, int(port)) as stream:
        yield _Client(stream)


async def _post_chat(url: str, payload: object, headers: Sequence[tuple[str, str]] = ()) -> _Reply:
    async with _connect(url) as client:
        return await client.request("POST", OPENAI_CHAT_PATH, json.dumps(payload).encode(), headers)


def _assert_openai_error(reply: _Reply, status: int, param: str | None = None) -> dict[str, Any]:
    assert reply.status == status
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    return dict(error)


@pytest.mark.anyio
async def test_streamed_chat_wire_format() -> None:
    with anyio.fail_after(10):
        async with serve(delay=0.02) as url:
            started = time.monotonic()
            reply = await _post_chat(url, _chat("one two three", stream=True))
            elapsed = time.monotonic() - started
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.headers["transfer-encoding"] == "chunked"
    events = reply.events()
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == [
        "one ",
        "two ",
        "three",
    ]
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert {c["model"] for c in chunks} == {"gpt-3.5-turbo"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert isinstance(chunks[0]["created"], int)
    # Two gaps of 0.02 s between the three pieces; a little slack for early clocks.
    assert elapsed >= 0.035


@pytest.mark.anyio
async def test_streamed_chat_usage_chunk_with_include_usage() -> None:
    payload = _chat("Привет мир 🎉", stream=True, stream_options={"include_usage": True})
    payload["messages"].insert(0, {"role": "system", "content": "be nice"})
    with anyio.fail_after(10):
        async with serve(piece_size=2) as url:
            reply = await _post_chat(url, payload)
    events = reply.events()
    assert events[-1] == b"data: [DONE]\n\n"
    usage = json.loads(events[-2][6:])
    pieces = reply_pieces(payload["messages"], 2)
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": len(pieces),
        "total_tokens": 5 + len(pieces),
    }
    contents = [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[1:-3]]
    assert contents == pieces
    assert "Привет мир 🎉".encode()[:4] in reply.body  # UTF-8 as is


@pytest.mark.anyio
async def test_non_streamed_chat_is_one_completion() -> None:
    with anyio.fail_after(10):
        async with serve(delay=0.01) as url:
            reply = await _post_chat(url, _chat("just answer", stream=False))
            defaulted = await _post_chat(url, {"messages": [{"role": "user", "content": "x"}]})
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert int(reply.headers["content-length"]) == len(reply.body)
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-3.5-turbo"
    assert body["choices"][0]["message"]["content"] == "just answer"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    assert defaulted.json()["model"] == DEFAULT_MODEL
    assert defaulted.json()["id"] != body["id"]


@pytest.mark.anyio
async def test_models_list_and_head() -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            listing = await client.request("GET", OPENAI_MODELS_PATH)
            head = await client.request("HEAD", OPENAI_MODELS_PATH)
            posted = await client.request("POST", OPENAI_MODELS_PATH, b"{}")
    assert listing.status == 200
    data = listing.json()["data"]
    assert [m["id"] for m in data] == list(MODELS)
    assert all(m["object"] == "model" and m["owned_by"] == "acytoo_raw" for m in data)
    assert all(isinstance(m["created"], int) for m in data)
    assert head.status == 200
    assert head.body == b""
    _assert_openai_error(posted, 405)
    assert posted.headers["allow"] == "GET, HEAD"


@pytest.mark.anyio
async def test_one_connection_carries_every_kind_of_request() -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            streamed = await client.request(
                "POST", OPENAI_CHAT_PATH, json.dumps(_chat("a", stream=True)).encode()
            )
            missing = await client.request("GET", "/v1/nothing")
            plain = await client.request("POST", OPENAI_CHAT_PATH, json.dumps(_chat("b")).encode())
            acytoo = await client.request(
                "POST", "/api/completions", json.dumps(_chat("c")).encode()
            )
    assert streamed.events()[-1] == b"data: [DONE]\n\n"
    _assert_openai_error(missing, 404)
    assert plain.json()["choices"][0]["message"]["content"] == "b"
    assert acytoo.body == b"c"
    assert "connection" not in plain.headers


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(b"{oops", None, id="bad-json"),
        pytest.param(b'{"model": "m"}', "messages", id="messages-missing"),
        pytest.param(b'{"model": "m", "messages": {"role": "user"}}', "messages", id="not-list"),
    ],
)
async def test_bad_chat_payload_is_an_openai_400(body: bytes, param: str | None) -> None:
    with anyio.fail_after(10):
        async with serve() as url, _connect(url) as client:
            reply = await client.request("POST", OPENAI_CHAT_PATH, body)
            after = await client.request("GET", OPENAI_MODELS_PATH)  # still usable
    _assert_openai_error(reply, 400, param)
    assert after.status == 200


@pytest.mark.anyio
async def test_openai_errors_for_paths_methods_and_size() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            async with _connect(url) as client:
                unknown = await client.request("POST", "/v1/embeddings", b"{}")
                wrong = await client.request("GET", OPENAI_CHAT_PATH + "?x=1")
            async with _connect(url) as client:
                request = h11.Request(
                    method="POST",
                    target=OPENAI_CHAT_PATH,
                    headers=[("host", "x"), ("content-length", str(MAX_BODY_BYTES + 1))],
                )
                await client.stream.send(client.conn.send(request) or b"")
                too_big = await client._response()
    error = _assert_openai_error(unknown, 404)
    assert error["message"] == "Invalid URL (POST /v1/embeddings)"
    _assert_openai_error(wrong, 405)
    assert wrong.headers["allow"] == "POST"
    _assert_openai_error(too_big, 413)
    assert too_big.headers["connection"] == "close"


# --- faults on demand -----------------------------------------------------------------------------


async def _faulty(url: str, fault: str, **extra: object) -> _Reply:
    return await _post_chat(
        url, _chat("w1 w2 w3 w4", stream=True, **extra), [(FAULT_HEADER, fault)]
    )


@pytest.mark.anyio
async def test_fault_truncate_ends_cleanly_without_finish_or_done() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            reply = await _faulty(url, "truncate")
    assert reply.status == 200
    chunks = [json.loads(e[6:]) for e in reply.events()]  # every event is JSON: no [DONE]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "w1 w2 "


@pytest.mark.anyio
async def test_fault_error_sends_an_error_object_after_200() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            reply = await _faulty(url, "error")
    assert reply.status == 200
    last = json.loads(reply.events()[-1][6:])
    assert last["error"]["type"] == "server_error"
    assert b"[DONE]" not in reply.body


@pytest.mark.anyio
async def test_fault_malformed_sends_one_broken_line_then_the_rest() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            reply = await _faulty(url, "malformed")
    broken = []
    for event in reply.events()[:-1]:
        try:
            json.loads(event[6:])
        except ValueError:
            broken.append(event)
    assert len(broken) == 1
    assert broken[0].startswith(b"data: {")
    assert reply.events()[-1] == b"data: [DONE]\n\n"


@pytest.mark.anyio
async def test_fault_no_done_keeps_finish_and_usage() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            reply = await _faulty(url, "no-done", stream_options={"include_usage": True})
    *_, finish, usage = [json.loads(e[6:]) for e in reply.events()]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["usage"]["completion_tokens"] == 4


@pytest.mark.anyio
async def test_unknown_fault_and_fault_without_stream_are_400() -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            unknown = await _faulty(url, "explode")
            unstreamed = await _post_chat(url, _chat(), [(FAULT_HEADER, "truncate")])
    assert all(name in _assert_openai_error(unknown, 400)["message"] for name in FAULTS)
    _assert_openai_error(unstreamed, 400)


# --- the real openai SDK as the client ------------------------------------------------------------


@asynccontextmanager
async def _sdk_client(url: str) -> AsyncIterator[Any]:
    openai = _sdk()
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        yield client


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_openai_sdk_streams_the_echo_with_usage() -> None:
    text = "Hello big world, Привет 🎉"
    with anyio.fail_after(20):
        async with serve(delay=0.005) as url, _sdk_client(url) as client:
            stream = await client.chat.completions.create(
                model="gpt-3.5-turbo",
                messages=[{"role": "user", "content": text}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(x for x in contents if x) == text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert finishes.count("stop") == 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 5
    assert chunks[-1].usage.completion_tokens == len(
        reply_pieces([{"role": "user", "content": text}])
    )
    assert {c.model for c in chunks} == {"gpt-3.5-turbo"}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_openai_sdk_streams_without_usage() -> None:
    with anyio.fail_after(20):
        async with serve() as url, _sdk_client(url) as client:
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "a b"}], stream=True
            )
            chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "a b"


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_openai_sdk_non_streamed_completion() -> None:
    with anyio.fail_after(20):
        async with serve() as url, _sdk_client(url) as client:
            completion = await client.chat.completions.create(
                model="gpt-3.5-turbo", messages=[{"role": "user", "content": "not streamed"}]
            )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "not streamed"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 4


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_openai_sdk_lists_models() -> None:
    with anyio.fail_after(20):
        async with serve() as url, _sdk_client(url) as client:
            models = [model async for model in client.models.list()]
    assert [m.id for m in models] == list(MODELS)
    assert {m.owned_by for m in models} == {"acytoo_raw"}


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_openai_sdk_reads_our_errors() -> None:
    openai = _sdk()
    with anyio.fail_after(20):
        async with serve() as url, _sdk_client(url) as client:
            with pytest.raises(openai.BadRequestError) as bad:
                await client.chat.completions.create(model="m", messages=[])
            stream = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "a b c d"}],
                stream=True,
                extra_headers={FAULT_HEADER: "error"},
            )
            with pytest.raises(openai.APIError) as failed:
                async for _ in stream:
                    pass
    assert bad.value.status_code == 400
    assert bad.value.param == "messages"
    assert bad.value.type == "invalid_request_error"
    assert "on purpose" in failed.value.message


@pytest.mark.anyio
@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"POST /v1/chat/completions HTTP/1.1\r\nbad header\r\n\r\n", id="bad-header"),
        pytest.param(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b"transfer-encoding: chunked\r\n\r\nzz\r\n",
            id="bad-chunk",
        ),
        pytest.param(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 9", id="cut"
        ),
    ],
)
async def test_malformed_http_under_v1_gets_an_openai_error(garbage: bytes) -> None:
    with anyio.fail_after(10):
        async with serve() as url:
            host, port = url.split("://", 1)[1].rsplit(":", 1)
            async with await anyio.connect_tcp(host, int(port)) as stream:
                await stream.send(garbage)
                await stream.send_eof()
                answer = b""
                with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    while True:
                        answer += await stream.receive()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
