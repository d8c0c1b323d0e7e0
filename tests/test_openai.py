"""OpenAIChat: the OpenAI chat-completions stream, on asyncio, uvloop and trio.

The loopback server (acytoo_raw.server, /v1) gives the well-formed answers and
its x-acytoo-fault failures; hand-written peers (tests/peers.py) give the
byte-exact hostile ones. The real llmock server is in test_openai_llmock.py.
"""

from __future__ import annotations

import inspect
import json
import ssl
import traceback
import types
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any, cast

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acytoo_raw import (
    AcytooError,
    Client,
    ConnectError,
    HTTPStatusError,
    LocalProtocolError,
    ReadTimeout,
    RemoteProtocolError,
    Response,
    StreamError,
    Timeout,
)
from acytoo_raw._provider_base import REQUEST_PARAMETERS, AsyncGeneratorProvider
from acytoo_raw.openai import (
    CHAT_PARAMETERS,
    DRAIN_AFTER_DONE,
    RESERVED_FIELDS,
    ChatStream,
    OpenAIChat,
)
from acytoo_raw.server import serve
from tests.peers import (
    CLOSE,
    LAST_CHUNK,
    chunk,
    chunked_head,
    keepalive_server,
    response,
    script,
    scripted_server,
)
from tests.threaded import threaded_server

QUESTION = "Hello there, 世界 🌍"
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
BOUND = 10.0
SECRET = "sk-test-S3CRET-kEy-0123456789"
SSE_HEAD = chunked_head(b"content-type: text/event-stream")
DONE = b"data: [DONE]\n\n"


def chat_chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    role: str | None = None,
    index: int = 0,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    delta: dict[str, str] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    obj: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        obj["choices"] = []
        obj["usage"] = usage
    return obj


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def sse(*events: bytes | float, end: bool = True) -> list[bytes | float]:
    """A chunked SSE answer: one HTTP chunk per event, floats are pauses."""
    steps: list[bytes | float] = [SSE_HEAD]
    steps += [chunk(step) if isinstance(step, bytes) else step for step in events]
    if end:
        steps.append(LAST_CHUNK)
    return steps


GOOD = (
    event(chat_chunk("", role="assistant")),
    event(chat_chunk("Hi ")),
    event(chat_chunk("there")),
    event(chat_chunk(finish="stop")),
    DONE,
)


def body_of(request: bytes) -> Any:
    return json.loads(request.partition(b"\r\n\r\n")[2])


def head_of(request: bytes) -> list[bytes]:
    return request.partition(b"\r\n\r\n")[0].lower().split(b"\r\n")


async def ask_into(got: list[str], base_url: str, **kwargs: Any) -> None:
    """Stream an answer into ``got`` piece by piece: what came before an error stays."""
    with anyio.fail_after(BOUND):
        pieces = OpenAIChat.create_async_generator("m", HELLO, base_url=base_url, **kwargs)
        async with aclosing(pieces):
            async for piece in pieces:
                got.append(piece)


async def ask(base_url: str, **kwargs: Any) -> list[str]:
    got: list[str] = []
    await ask_into(got, base_url, **kwargs)
    return got


# --- the loopback server (acytoo_raw.server, /v1) ---------------------------


@pytest.mark.anyio
async def test_streams_the_echo_answer_from_the_loopback_server() -> None:
    async with serve(delay=0.002) as base:
        pieces = await ask(base + "/v1")
    assert "".join(pieces) == QUESTION
    assert len(pieces) > 1
    assert all(pieces)  # The role-only first chunk gives no empty piece.


@pytest.mark.anyio
async def test_stream_gives_finish_reason_usage_and_first_token_time() -> None:
    async with serve() as base:
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream(
                "m", HELLO, base_url=base + "/v1", stream_options={"include_usage": True}
            ) as chat:
                assert chat.finish_reason is None
                assert chat.first_token_time is None
                text = "".join([piece async for piece in chat])
    assert text == QUESTION
    assert chat.finish_reason == "stop"
    assert chat.done is True
    words = len(QUESTION.split())  # The loopback server counts words, not tokens.
    assert chat.usage == {
        "prompt_tokens": 2 + words,
        "completion_tokens": words,
        "total_tokens": 2 + 2 * words,
    }
    assert chat.timings.head is not None
    assert chat.first_token_time is not None
    assert chat.first_token_time >= chat.timings.head
    assert chat.response.status_code == 200
    assert "finish_reason='stop'" in repr(chat)


@pytest.mark.anyio
async def test_usage_is_none_unless_the_server_sends_it() -> None:
    async with serve() as base:
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream("m", HELLO, base_url=base + "/v1") as chat:
                assert "".join([piece async for piece in chat]) == QUESTION
    assert chat.usage is None
    assert chat.finish_reason == "stop"


@pytest.mark.anyio
async def test_chunks_gives_every_parsed_chunk() -> None:
    async with serve() as base:
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream(
                "my-model", HELLO, base_url=base + "/v1", stream_options={"include_usage": True}
            ) as chat:
                chunks = [c async for c in chat.chunks()]
                with pytest.raises(RuntimeError, match="once"):
                    aiter(chat)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "my-model" for c in chunks)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == chat.usage
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == QUESTION
    assert chat.finish_reason == "stop"


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["truncate", "malformed"])
async def test_loopback_faults_raise_remote_protocol_error(fault: str) -> None:
    got: list[str] = []
    async with serve() as base:
        with pytest.raises(RemoteProtocolError):
            await ask_into(got, base + "/v1", headers={"x-acytoo-fault": fault})
    # What came before the fault was handed out; the error says the rest is missing.
    assert got
    assert QUESTION.startswith("".join(got))
    assert "".join(got) != QUESTION


@pytest.mark.anyio
async def test_an_error_after_200_raises_stream_error_with_the_servers_message() -> None:
    async with serve() as base:
        with pytest.raises(StreamError) as caught, anyio.fail_after(BOUND):
            await OpenAIChat.create_async(
                "m", HELLO, base_url=base + "/v1", headers={"X-Acytoo-Fault": "error"}
            )
    assert "failed on purpose" in str(caught.value)
    assert caught.value.message == str(caught.value)
    assert caught.value.type == "server_error"
    assert caught.value.code is None


@pytest.mark.anyio
async def test_a_finish_reason_without_done_is_a_whole_answer() -> None:
    async with serve() as base:
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream(
                "m", HELLO, base_url=base + "/v1", headers={"x-acytoo-fault": "no-done"}
            ) as chat:
                text = "".join([piece async for piece in chat])
    assert text == QUESTION
    assert chat.done is False
    assert chat.finish_reason == "stop"


@pytest.mark.anyio
async def test_a_4xx_from_the_loopback_server_raises_http_status_error() -> None:
    async with serve() as base:
        with pytest.raises(HTTPStatusError) as caught, anyio.fail_after(BOUND):
            await OpenAIChat.create_async(
                "m", HELLO, base_url=base + "/v1", headers={"x-acytoo-fault": "nonsense"}
            )
    error = caught.value
    assert error.status_code == 400
    body = json.loads(error.body)
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] in str(error)  # The server's reason, in the message.


@pytest.mark.anyio
async def test_a_client_reuses_one_connection_across_questions() -> None:
    async with serve() as base, Client(base_url=base + "/v1") as client:
        reused = []
        for _ in range(3):
            with anyio.fail_after(BOUND):
                async with OpenAIChat.stream("m", HELLO, client=client) as chat:
                    assert "".join([piece async for piece in chat]) == QUESTION
            reused.append(chat.timings.reused)
        # The absolute base_url beside a client goes through the client's pool too.
        answer = await OpenAIChat.create_async("m", HELLO, base_url=base + "/v1", client=client)
        assert answer == QUESTION
        assert client._pool.open_connections == 1
    assert reused == [False, True, True]


@pytest.mark.anyio
async def test_cafile_is_trusted_for_tls(server_ssl_context: ssl.SSLContext, ca_file: str) -> None:
    async with serve(ssl_context=server_ssl_context) as base:
        assert base.startswith("https://")
        assert "".join(await ask(base + "/v1", cafile=ca_file)) == QUESTION


def test_create_completion_streams_from_plain_code() -> None:
    with threaded_server(delay=0.002) as base:
        pieces = list(OpenAIChat.create_completion("m", HELLO, base_url=base + "/v1"))
        joined = list(OpenAIChat.create_completion("m", HELLO, False, base_url=base + "/v1"))
    assert "".join(pieces) == QUESTION
    assert len(pieces) > 1
    assert joined == [QUESTION]


@pytest.mark.anyio
async def test_create_completion_works_inside_a_running_loop() -> None:
    with threaded_server() as base:
        pieces = list(OpenAIChat.create_completion("m", HELLO, base_url=base + "/v1"))
    assert "".join(pieces) == QUESTION


def test_create_completion_with_a_client_reuses_one_connection() -> None:
    client = Client()
    with threaded_server() as base:
        for _ in range(3):
            pieces = OpenAIChat.create_completion("m", HELLO, base_url=base + "/v1", client=client)
            assert "".join(pieces) == QUESTION
        assert client._pool.open_connections == 1
        client.close()


def test_create_completion_raises_typed_errors() -> None:
    with threaded_server() as base:
        with pytest.raises(StreamError):
            list(
                OpenAIChat.create_completion(
                    "m", HELLO, base_url=base + "/v1", headers={"x-acytoo-fault": "error"}
                )
            )
    with pytest.raises(ConnectError):
        list(OpenAIChat.create_completion("m", HELLO, base_url="http://127.0.0.1:1/v1"))


# --- what is sent ------------------------------------------------------------


@pytest.mark.anyio
async def test_sends_the_request_openai_servers_expect() -> None:
    async with scripted_server(script(*sse(*GOOD))) as (base, log):
        pieces = await ask(base + "/v1", api_key=SECRET)
    assert pieces == ["Hi ", "there"]
    request = log.requests[0]
    head = head_of(request)
    assert head[0] == b"post /v1/chat/completions http/1.1"
    assert b"accept: text/event-stream" in head
    assert b"content-type: application/json" in head
    assert b"authorization: bearer " + SECRET.lower().encode() in head
    # Exactly the three fields: nothing g4f-specific, no null parameters.
    assert body_of(request) == {"model": "m", "messages": HELLO, "stream": True}


@pytest.mark.anyio
@pytest.mark.parametrize("api_key", [None, ""])
async def test_no_authorization_header_without_a_key(api_key: str | None) -> None:
    async with scripted_server(script(*sse(*GOOD))) as (base, log):
        await ask(base + "/prefix/v1/", api_key=api_key)
    head = head_of(log.requests[0])
    assert head[0] == b"post /prefix/v1/chat/completions http/1.1"
    assert not any(line.startswith(b"authorization") for line in head)


@pytest.mark.anyio
async def test_openai_parameters_are_sent_and_g4f_options_are_not() -> None:
    async with scripted_server(script(*sse(*GOOD))) as (base, log):
        await ask(
            base + "/v1",
            temperature=0.2,
            max_tokens=50,
            top_p=0.9,
            stop=["\n"],
            seed=7,
            stream_options={"include_usage": True},
            not_an_openai_parameter=1,  # Unknown to the g4f path: ignored.
            max_completion_tokens=60,  # Not named in the signature: taken from kwargs.
            user="u-1",
            presence_penalty=None,  # None: not sent.
            stream=False,  # g4f's: this always streams.
            conversation=object(),
            provider="OpenAIChat",
            web_search=True,
            extra_body={"top_k": 20},
        )
    assert body_of(log.requests[0]) == {
        "model": "m",
        "messages": HELLO,
        "stream": True,
        "temperature": 0.2,
        "max_tokens": 50,
        "top_p": 0.9,
        "stop": ["\n"],
        "seed": 7,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 60,
        "user": "u-1",
        "top_k": 20,
    }


@pytest.mark.anyio
async def test_headers_add_to_and_replace_ours() -> None:
    async with scripted_server(script(*sse(*GOOD))) as (base, log):
        await ask(
            base + "/v1",
            api_key=SECRET,
            headers={"X-Title": "demo", "Authorization": "Bearer other", "api-key": "azure"},
        )
    head = head_of(log.requests[0])
    assert b"x-title: demo" in head
    assert b"api-key: azure" in head
    assert [line for line in head if line.startswith(b"authorization")] == [
        b"authorization: bearer other"
    ]


@pytest.mark.anyio
async def test_a_proxy_carries_the_request() -> None:
    # An http:// origin goes to an HTTP proxy in absolute form; the peer plays the proxy.
    async with scripted_server(script(*sse(*GOOD))) as (proxy, log):
        pieces = await ask("http://llm.invalid:8000/v1", proxy=proxy, api_key=SECRET)
    assert pieces == ["Hi ", "there"]
    head = head_of(log.requests[0])
    assert head[0] == b"post http://llm.invalid:8000/v1/chat/completions http/1.1"
    assert b"authorization: bearer " + SECRET.lower().encode() in head


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temprature": 0.5}, "unknown chat parameter.*temprature.*extra_body"),
        ({"extra_body": {"stream": False}}, "extra_body cannot set stream"),
        ({"extra_body": {"model": "x", "messages": []}}, "cannot set messages, model"),
        ({"extra_body": [("top_k", 1)]}, "extra_body must be a mapping"),
        ({"headers": [("x", "y")]}, "headers must be a mapping"),
        ({"api_key": 12345}, "api_key must be a str"),
        ({"base_url": None}, "base_url is required"),
        ({"base_url": "127.0.0.1:8000/v1"}, "scheme"),
        ({"tools": [{"f": object()}]}, "not JSON-serialisable"),
    ],
)
async def test_bad_input_is_refused_before_connecting(kwargs: dict[str, Any], match: str) -> None:
    async with scripted_server(script(*sse(*GOOD))) as (base, log):
        if "base_url" not in kwargs:
            kwargs["base_url"] = base + "/v1"
        with pytest.raises(LocalProtocolError, match=match), anyio.fail_after(BOUND):
            async with OpenAIChat.stream("m", HELLO, **kwargs):
                pass  # pragma: no cover
    assert log.connections == 0


@pytest.mark.anyio
@pytest.mark.parametrize(("model", "messages"), [(1, HELLO), ("m", "Hi"), ("m", None)])
async def test_a_bad_model_or_messages_is_refused(model: object, messages: object) -> None:
    with pytest.raises(LocalProtocolError, match=r"model|messages"), anyio.fail_after(BOUND):
        await OpenAIChat.create_async(
            cast(str, model), cast(Any, messages), base_url="http://127.0.0.1:1/v1"
        )


@pytest.mark.anyio
async def test_media_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="media"), anyio.fail_after(BOUND):
        await OpenAIChat.create_async(
            "m", HELLO, base_url="http://127.0.0.1:1/v1", media=[(b"png", "a.png")]
        )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "option",
    [
        {"proxy": "http://127.0.0.1:3128"},
        {"ssl_context": ssl.create_default_context()},
        {"cafile": "/no/such/ca.pem"},
        {"trust_env": True},
    ],
    ids=lambda option: next(iter(option)),
)
async def test_connection_options_beside_a_client_are_refused(option: dict[str, Any]) -> None:
    async with Client(base_url="http://127.0.0.1:1/v1") as client:
        with pytest.raises(LocalProtocolError, match=next(iter(option))), anyio.fail_after(BOUND):
            await OpenAIChat.create_async("m", HELLO, client=client, **option)


# --- what is read ------------------------------------------------------------


@pytest.mark.anyio
async def test_events_split_anywhere_give_the_same_answer() -> None:
    # CRLF line ends, a CR|LF split, a UTF-8 character split, "data:" without a space,
    # a comment and an unnamed field: the WHATWG rules, through OpenAIChat.
    wire = (
        b": keep-alive\r\n\r\n"
        + event(chat_chunk("", role="assistant")).replace(b"\n", b"\r\n")
        + b"data:"
        + json.dumps(chat_chunk("\u4e16\u754c"), ensure_ascii=False).encode()
        + b"\r\nretry\r\n\r\n"
        + event(chat_chunk(finish="stop"))
        + DONE
    )
    cuts = [3, 20, wire.index(b"\r\n", 30) + 1, wire.index("\u4e16".encode()) + 1, len(wire) - 2]
    parts = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    steps: list[bytes | float] = []
    for part in parts:
        steps += [part, 0.01]
    async with scripted_server(script(*sse(*steps))) as (base, _):
        assert await ask(base + "/v1") == ["世界"]


@pytest.mark.anyio
async def test_text_is_choice_0s_and_chunks_have_every_choice() -> None:
    events = (
        event(chat_chunk("one", index=0)),
        event(chat_chunk("two", index=1)),
        event(chat_chunk(finish="length", index=1)),
        event(chat_chunk(" more", index=0)),
        event(chat_chunk(finish="stop", index=0)),
        DONE,
    )
    async with scripted_server(script(*sse(*events))) as (base, _):
        assert await ask(base + "/v1", n=2) == ["one", " more"]
    async with scripted_server(script(*sse(*events))) as (base, _):
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream("m", HELLO, base_url=base + "/v1", n=2) as chat:
                chunks = [c async for c in chat.chunks()]
    assert len(chunks) == 5
    assert chat.finish_reason == "stop"


@pytest.mark.anyio
async def test_events_of_other_types_are_skipped() -> None:
    events = (b"event: ping\ndata: not json\n\n", *GOOD)
    async with scripted_server(script(*sse(*events))) as (base, _):
        assert await ask(base + "/v1") == ["Hi ", "there"]


@pytest.mark.anyio
async def test_first_token_time_is_the_first_content_not_the_first_chunk() -> None:
    events = (event(chat_chunk("", role="assistant")), 0.2, *GOOD[1:])
    async with scripted_server(script(*sse(*events))) as (base, _):
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream("m", HELLO, base_url=base + "/v1") as chat:
                assert [piece async for piece in chat] == ["Hi ", "there"]
    first_byte = chat.timings.first_piece
    assert first_byte is not None
    assert chat.first_token_time is not None
    assert chat.first_token_time - first_byte >= 0.15  # The 0.2 s pause lies between them.


@pytest.mark.anyio
async def test_a_finish_reason_chunk_then_the_end_of_the_body_is_a_legal_end() -> None:
    async with scripted_server(script(*sse(*GOOD[:-1]))) as (base, _):
        assert await ask(base + "/v1") == ["Hi ", "there"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "events",
    [
        pytest.param(GOOD[:3], id="no-finish-no-done"),
        pytest.param((), id="empty-body"),
        pytest.param((event(chat_chunk("x", finish="")),), id="empty-finish-reason"),
    ],
)
async def test_an_answer_cut_short_raises_remote_protocol_error(events: tuple[bytes, ...]) -> None:
    async with scripted_server(script(*sse(*events))) as (base, _):
        with pytest.raises(RemoteProtocolError, match=r"\[DONE\].*finish_reason"):
            await ask(base + "/v1")


@pytest.mark.anyio
async def test_a_200_that_is_not_sse_says_so() -> None:
    body = json.dumps({"object": "chat.completion", "choices": []}).encode()
    reply = response(body, headers=(b"content-type: application/json",))
    async with scripted_server(script(reply)) as (base, _):
        with pytest.raises(RemoteProtocolError, match="application/json"):
            await ask(base + "/v1")


@pytest.mark.anyio
async def test_a_connection_cut_mid_stream_raises_remote_protocol_error() -> None:
    async with scripted_server(script(*sse(*GOOD[:2], end=False))) as (base, _):
        with pytest.raises(RemoteProtocolError):
            await ask(base + "/v1")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b'{"choices": [{"delta": {"content": "x"', "not valid JSON"),
        (b"NaN-ish garbage", "not valid JSON"),
        (b'["a", "list"]', "not a JSON object"),
        (b'{"choices": {"0": {}}}', "'choices' is a dict"),
        (b'{"choices": ["x"]}', "choice is a str"),
        (b'{"choices": [{"delta": "x"}]}', "'delta' is a str"),
        (b'{"choices": [{"delta": {"content": 5}}]}', "'delta.content' is a int"),
        (b'{"choices": [{"delta": {}, "finish_reason": 1}]}', "'finish_reason' is a int"),
        (b'{"usage": [1]}', "'usage' is a list"),
    ],
)
async def test_a_malformed_chunk_raises_remote_protocol_error(data: bytes, match: str) -> None:
    events = (GOOD[0], b"data: " + data + b"\n\n", *GOOD[1:])
    async with scripted_server(script(*sse(*events))) as (base, _):
        with pytest.raises(RemoteProtocolError, match=match):
            await ask(base + "/v1")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error_event", "message", "kind", "code"),
    [
        (
            event(
                {
                    "error": {
                        "message": "model overloaded",
                        "type": "server_error",
                        "code": "overloaded",
                    }
                }
            ),
            "model overloaded",
            "server_error",
            "overloaded",
        ),
        (event({"error": "plain text failure"}), "plain text failure", None, None),
        (event({"error": {"code": 500}}), "error in the stream", None, 500),
        (
            b'event: error\ndata: {"error": {"message": "oops", "type": "t"}}\n\n',
            "oops",
            "t",
            None,
        ),
        (b"event: error\ndata: upstream gone\n\n", "upstream gone", None, None),
    ],
)
async def test_an_error_in_the_stream_raises_stream_error(
    error_event: bytes, message: str, kind: str | None, code: object
) -> None:
    got: list[str] = []
    events = (*GOOD[:2], error_event, *GOOD[2:])
    async with scripted_server(script(*sse(*events))) as (base, _):
        with pytest.raises(StreamError, match=message) as caught:
            await ask_into(got, base + "/v1")
    assert got == ["Hi "]
    assert caught.value.type == kind
    assert caught.value.code == code


@pytest.mark.anyio
async def test_a_non_2xx_raises_http_status_error_with_the_json_body() -> None:
    body = b'{"error": {"message": "Rate limit exceeded.", "type": "rate_limit_error"}}'
    reply = response(
        body,
        status=b"429 Too Many Requests",
        headers=(b"content-type: application/json", b"retry-after: 1"),
    )
    async with scripted_server(script(reply)) as (base, _):
        with pytest.raises(HTTPStatusError) as caught:
            await ask(base + "/v1")
    error = caught.value
    assert error.status_code == 429
    assert error.body == body
    assert ("retry-after", "1") in error.headers
    assert "429 Too Many Requests" in str(error)
    assert "Rate limit exceeded." in str(error)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        b'{"error": {"message": "model \'x\' not found", "type": "invalid_request_error"}}',
        b'{"error": "model \'x\' not found"}',  # Ollama
        b'{"object": "error", "message": "model \'x\' not found", "code": 404}',  # vLLM
    ],
    ids=["openai", "ollama", "vllm"],
)
async def test_the_servers_error_message_is_in_the_http_status_error(body: bytes) -> None:
    reply = response(body, status=b"404 Not Found", headers=(b"content-type: application/json",))
    async with scripted_server(script(reply)) as (base, _):
        with pytest.raises(HTTPStatusError, match=r"404 Not Found.*model 'x' not found") as caught:
            await ask(base + "/v1")
    assert caught.value.body == body


@pytest.mark.anyio
async def test_a_non_json_error_body_keeps_the_plain_message() -> None:
    reply = response(b"<html>bad gateway</html>", status=b"502 Bad Gateway")
    async with scripted_server(script(reply)) as (base, _):
        with pytest.raises(HTTPStatusError) as caught:
            await ask(base + "/v1")
    assert str(caught.value).endswith("/v1/chat/completions")


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["timeout", "stream_timeout"])
async def test_a_stalled_stream_raises_read_timeout(how: str) -> None:
    limit: dict[str, Any] = (
        {"timeout": Timeout(read=0.3)} if how == "timeout" else {"stream_timeout": 0.3}
    )
    got: list[str] = []
    async with scripted_server(script(*sse(*GOOD[:2], end=False), hang=True)) as (base, log):
        with pytest.raises(ReadTimeout):
            await ask_into(got, base + "/v1", **limit)
        with anyio.fail_after(BOUND):
            await log.closed_by_client.wait()
    assert got == ["Hi "]


@pytest.mark.anyio
async def test_breaking_out_closes_the_connection() -> None:
    async with scripted_server(script(*sse(*GOOD[:2], end=False), hang=True)) as (base, log):
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream("m", HELLO, base_url=base + "/v1") as chat:
                async for piece in chat:
                    assert piece == "Hi "
                    break
            await log.closed_by_client.wait()


@pytest.mark.anyio
async def test_leaving_the_block_closes_a_reader_left_open() -> None:
    async with scripted_server(script(*sse(*GOOD))) as (base, _):
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream("m", HELLO, base_url=base + "/v1") as chat:
                reader = aiter(chat)
                assert await anext(reader) == "Hi "
            # Not left to the garbage collector (trio and asyncio finalise those "later").
            assert cast("types.AsyncGeneratorType[str, None]", reader).ag_frame is None
            with pytest.raises(StopAsyncIteration):
                await anext(reader)


def _keepalive_answer(*events: bytes | float) -> Any:
    def answer(connection: int, index: int, request: bytes) -> list[bytes | float | object]:
        return list(sse(*events))

    return answer


@pytest.mark.anyio
async def test_a_slow_body_end_after_done_still_lets_the_connection_be_reused() -> None:
    answer = _keepalive_answer(*GOOD, DRAIN_AFTER_DONE / 5)
    async with keepalive_server(answer) as (base, log), Client(base_url=base + "/v1") as client:
        for _ in range(2):
            assert await OpenAIChat.create_async("m", HELLO, client=client) == "Hi there"
    assert log.connection_ids == [1, 1]


@pytest.mark.anyio
async def test_a_body_that_never_ends_after_done_costs_only_the_connection() -> None:
    def answer(connection: int, index: int, request: bytes) -> list[bytes | float | object]:
        return [*sse(*GOOD, end=False), 30.0, CLOSE]

    async with keepalive_server(answer) as (base, log), Client(base_url=base + "/v1") as client:
        for _ in range(2):
            with anyio.fail_after(BOUND):  # Not the 30 s the server holds the body open.
                assert await OpenAIChat.create_async("m", HELLO, client=client) == "Hi there"
        assert client._pool.open_connections == 0
    assert log.connection_ids == [1, 2]


# --- the API key never shows -------------------------------------------------


def _texts(exc: BaseException) -> Iterator[str]:
    yield str(exc)
    yield repr(exc)
    yield "".join(traceback.format_exception(exc))


@pytest.mark.anyio
async def test_the_api_key_never_appears_in_errors() -> None:
    echoed = json.dumps({"error": {"message": f"bad key {SECRET}", "type": "auth"}}).encode()
    bad_json = b"data: {" + SECRET.encode() + b"\n\n"
    replies: list[list[bytes | float]] = [
        [response(echoed, status=b"401 Unauthorized")],
        sse(*GOOD[:2], b"data: " + echoed + b"\n\n"),
        sse(*GOOD[:2], bad_json),
        sse(*GOOD[:2]),
        sse(*GOOD[:2], end=False),
    ]
    errors: list[BaseException] = []
    for steps in replies:
        async with scripted_server(script(*steps)) as (base, _):
            with pytest.raises(AcytooError) as caught, anyio.fail_after(BOUND):
                await OpenAIChat.create_async("m", HELLO, base_url=base + "/v1", api_key=SECRET)
            errors.append(caught.value)
    async with scripted_server(script(*sse(*GOOD[:2], end=False), hang=True)) as (base, _):
        with pytest.raises(ReadTimeout) as timed_out, anyio.fail_after(BOUND):
            await OpenAIChat.create_async(
                "m", HELLO, base_url=base + "/v1", api_key=SECRET, timeout=0.2
            )
        errors.append(timed_out.value)
    with pytest.raises(ConnectError) as refused:
        await OpenAIChat.create_async("m", HELLO, base_url="http://127.0.0.1:1/v1", api_key=SECRET)
    errors.append(refused.value)
    for bad_key in (SECRET + "\r\nx-injected: 1", " " + SECRET, SECRET + "\x00", SECRET + "é"):
        with pytest.raises(LocalProtocolError, match="api_key") as refused_key:
            await OpenAIChat.create_async(
                "m", HELLO, base_url="http://127.0.0.1:1/v1", api_key=bad_key
            )
        errors.append(refused_key.value)
    kinds = [type(error).__name__ for error in errors]
    assert kinds[:3] == ["HTTPStatusError", "StreamError", "RemoteProtocolError"]
    assert "<api key>" in str(errors[0])  # The server's echo, quoted with the key cut out.
    assert "<api key>" in str(errors[1])
    assert "<api key>" in str(errors[2])
    for error in errors:
        for text in _texts(error):
            assert SECRET not in text, text


@pytest.mark.anyio
async def test_the_api_key_never_appears_in_reprs() -> None:
    async with scripted_server(script(*sse(*GOOD))) as (base, _):
        with anyio.fail_after(BOUND):
            async with OpenAIChat.stream("m", HELLO, base_url=base + "/v1", api_key=SECRET) as chat:
                shown = [repr(chat), repr(chat.response), repr(chat.timings)]
                async for _ in chat:
                    pass
                shown.append(repr(chat))
    assert not any(SECRET in text for text in shown)


# --- the g4f class protocol --------------------------------------------------


def test_class_attributes_g4f_reads() -> None:
    assert issubclass(OpenAIChat, AsyncGeneratorProvider)
    assert OpenAIChat.working is True
    assert OpenAIChat.supports_stream is True
    assert OpenAIChat.supports_message_history is True
    assert OpenAIChat.supports_system_message is True
    assert OpenAIChat.needs_auth is False
    assert OpenAIChat.label == "OpenAIChat"
    assert OpenAIChat.parent == "OpenAIChat"
    assert OpenAIChat.get_dict()["name"] == "OpenAIChat"
    assert OpenAIChat.get_models() == []


def test_get_parameters_lists_the_openai_parameters_and_no_transport_options() -> None:
    parameters = OpenAIChat.get_parameters()
    assert set(parameters) == REQUEST_PARAMETERS - {"stream"}
    signature = inspect.signature(OpenAIChat.create_async_generator).parameters
    for name in ("proxy", "base_url", "ssl_context", "cafile", "client", "headers", "extra_body"):
        assert name in signature
        assert name not in parameters
    # Every named request parameter is an OpenAI one, so the g4f path sends it.
    assert set(parameters) - {"model", "messages", "timeout", "api_key"} <= CHAT_PARAMETERS
    example = OpenAIChat.get_parameters(as_json=True)
    assert json.loads(json.dumps(example)) == example
    assert example["stream"] is True
    assert "api_key" in OpenAIChat.params


def test_reserved_fields_are_the_ones_openaichat_sets() -> None:
    assert {"model", "messages", "stream"} == RESERVED_FIELDS
    assert not RESERVED_FIELDS & CHAT_PARAMETERS


# --- the chunk reader on arbitrary JSON (sans-IO) ----------------------------


class _FakeResponse:
    class _Timings:
        start = 0.0

    timings = _Timings()

    def get_header(self, name: str) -> str | None:
        return "text/event-stream"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_keys = st.sampled_from(
    ["choices", "delta", "content", "finish_reason", "usage", "index", "error", "message"]
)
_chunk_like = st.recursive(
    _json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=200, deadline=None)
@given(_chunk_like)
def test_any_json_data_is_a_chunk_or_a_documented_error(value: object) -> None:
    chat = ChatStream(cast(Response, _FakeResponse()), secret=SECRET)
    try:
        chunk = chat._parse(json.dumps(value))
        content = chat._take(chunk)
    except (RemoteProtocolError, StreamError):
        return
    assert isinstance(content, str)
    assert chat.finish_reason is None or isinstance(chat.finish_reason, str)
    assert chat.usage is None or isinstance(chat.usage, dict)
