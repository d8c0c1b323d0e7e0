"""OpenAIChat against a third-party OpenAI-compatible server: the real llmock.

One llmock process per configuration (its faults are per process), all
started together on first use (tests/llmock_server.py). Observed with llmock
0.2.2: the echo answer is ``"Hello! You said: "`` and the contents of *all*
messages joined with one space, runs of whitespace made one space, cut at 120
characters (not only the last user message, as REAL_COMPONENTS.md has it). A
stream fault hits after 1 to 6 chunks, so the question has enough words for
every fault to land before the ``finish_reason`` chunk; ``truncate`` ends the
HTTP body cleanly without ``finish_reason`` or ``[DONE]``, ``disconnect``
cuts the chunked body, ``malformed`` sends one ``data:`` line of half a JSON
object, ``stall`` goes silent for ``--stream-stall-seconds``;
``--error-rate 429=1.0`` answers 429 with an OpenAI error body and
``retry-after``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest

from acytoo_raw import (
    Client,
    HTTPStatusError,
    ReadTimeout,
    RemoteProtocolError,
    Timeout,
)
from acytoo_raw.openai import OpenAIChat
from tests.llmock_server import LlmockServer, run_llmock_servers

# Seven words: llmock's faults hit within the first six chunks, all before the answer ends.
QUESTION = "one two three four, 世界 🌍 seven"
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
ECHO = "Hello! You said: " + " ".join(" ".join(m["content"] for m in HELLO).split())[:120]
BOUND = 15.0
# The stall outlasts the read timeout by far, and is short so stopping llmock is quick.
STALL_SECONDS = 3
READ_TIMEOUT = 0.5

CONFIGS = {
    "echo": ("--stream-chunk-delay-ms", "5"),
    "truncate": ("--stream-fault", "truncate=1.0"),
    "disconnect": ("--stream-fault", "disconnect=1.0"),
    "malformed": ("--stream-fault", "malformed=1.0"),
    "stall": ("--stream-fault", "stall=1.0", "--stream-stall-seconds", str(STALL_SECONDS)),
    "429": ("--error-rate", "429=1.0"),
}


@pytest.fixture(scope="session")
def llmock() -> Iterator[dict[str, LlmockServer]]:
    with run_llmock_servers(CONFIGS) as servers:
        yield servers


async def ask_into(got: list[str], server: LlmockServer, **kwargs: Any) -> None:
    with anyio.fail_after(BOUND):
        pieces = OpenAIChat.create_async_generator(
            "gpt-4o-mini", HELLO, base_url=server.base_url, **kwargs
        )
        async with aclosing(pieces):
            async for piece in pieces:
                got.append(piece)


@pytest.mark.anyio
async def test_streams_llmocks_echo_answer(llmock: dict[str, LlmockServer]) -> None:
    got: list[str] = []
    await ask_into(got, llmock["echo"], api_key="sk-llmock-test", temperature=0.1, seed=1)
    assert "".join(got) == ECHO
    assert len(got) > 3
    assert all(got)


@pytest.mark.anyio
async def test_finish_reason_usage_and_first_token_from_llmock(
    llmock: dict[str, LlmockServer],
) -> None:
    with anyio.fail_after(BOUND):
        async with OpenAIChat.stream(
            "gpt-4o-mini",
            HELLO,
            base_url=llmock["echo"].base_url,
            stream_options={"include_usage": True},
        ) as chat:
            text = "".join([piece async for piece in chat])
    assert text == ECHO
    assert chat.finish_reason == "stop"
    assert chat.done is True
    usage = chat.usage
    assert usage is not None
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] > 0
    assert chat.first_token_time is not None
    assert chat.timings.head is not None
    assert chat.first_token_time >= chat.timings.head


@pytest.mark.anyio
async def test_a_client_reuses_its_connection_to_llmock(llmock: dict[str, LlmockServer]) -> None:
    reused = []
    async with Client(base_url=llmock["echo"].base_url) as client:
        for _ in range(3):
            with anyio.fail_after(BOUND):
                async with OpenAIChat.stream("gpt-4o-mini", HELLO, client=client) as chat:
                    assert "".join([piece async for piece in chat]) == ECHO
            reused.append(chat.timings.reused)
    assert reused == [False, True, True]


def test_create_completion_blocks_on_llmock(llmock: dict[str, LlmockServer]) -> None:
    pieces = OpenAIChat.create_completion("gpt-4o-mini", HELLO, base_url=llmock["echo"].base_url)
    assert "".join(pieces) == ECHO


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("truncate", r"ended before data: \[DONE\] and without a finish_reason"),
        ("disconnect", r"closed connection before the last \(zero-size\) chunk"),
        ("malformed", "not valid JSON"),
    ],
)
async def test_llmocks_stream_faults_raise_remote_protocol_error(
    llmock: dict[str, LlmockServer], fault: str, match: str
) -> None:
    got: list[str] = []
    with pytest.raises(RemoteProtocolError, match=match):
        await ask_into(got, llmock[fault])
    # Never a silently short answer: whatever came first is a true prefix of the echo.
    assert ECHO.startswith("".join(got))
    assert "".join(got) != ECHO


@pytest.mark.anyio
async def test_llmocks_stall_raises_read_timeout(llmock: dict[str, LlmockServer]) -> None:
    got: list[str] = []
    with pytest.raises(ReadTimeout):
        await ask_into(got, llmock["stall"], timeout=Timeout(read=READ_TIMEOUT))
    assert "".join(got) != ECHO


@pytest.mark.anyio
async def test_llmocks_429_raises_http_status_error(llmock: dict[str, LlmockServer]) -> None:
    got: list[str] = []
    with pytest.raises(HTTPStatusError) as caught:
        await ask_into(got, llmock["429"], api_key="sk-llmock-test")
    error = caught.value
    assert got == []
    assert error.status_code == 429
    body = json.loads(error.body)
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"] in str(error)
    assert dict(error.headers)["retry-after"] == "1"
    assert "sk-llmock-test" not in str(error)


def test_a_missing_llmock_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import llmock_server

    monkeypatch.setattr(llmock_server, "find_llmock", lambda: None)
    monkeypatch.setattr(llmock_server, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="llmock not installed"):
        llmock_server.require_llmock()
    monkeypatch.setattr(llmock_server, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="llmock not installed"):
        llmock_server.require_llmock()
