"""Streamed chat completions (OpenAI-style server-sent events): each piece is one token's
``choices[0].delta.content``.

``stream(url)`` takes the API's base URL (ending in ``/v1``, as the openai SDK's ``base_url``)
and posts ``{"model", "messages", "stream": true}`` to ``{url}/chat/completions``. Every client
keeps its connection alive between requests, as each does by default, so the measured stream
runs on the connection the warm-up request opened.

- acytoo_raw: ``acytoo_raw.OpenAIChat.create_async_generator(..., client=Client)`` when the
  library has it; until then ``Client.stream_events`` + ``json.loads`` per event +
  ``choices[0].delta.content`` (the row's note says which ran).
- the openai SDK: ``AsyncOpenAI(...).chat.completions.create(..., stream=True)`` (httpx below),
  one ``AsyncOpenAI`` per base URL sharing one HTTP client, built before the measurement.
- aiohttp, and the floor: the body split into lines by hand, ``data:`` lines ``json.loads``-ed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import acytoo_raw
from benchmarks.clients.base import Client, Piece
from benchmarks.clients.floor import FloorClient
from benchmarks.clients.floor_parser import ResponseParser

MODEL = "bench"
MESSAGES = [{"role": "user", "content": "Say something, one token at a time."}]
PAYLOAD = {"model": MODEL, "messages": MESSAGES, "stream": True}
MAX_LINE = 1 << 20  # a hand-rolled splitter still needs a bound on an unterminated line


class SSELines:
    """The hand-rolled way: split on LF, take ``data:`` lines, parse each as a JSON chunk.

    Not a full SSE parser (no multi-line ``data`` joining, no ``event``/``id``): what a user
    who needs "just the tokens" writes, and what OpenAI-style servers need.
    """

    def __init__(self) -> None:
        self._tail = b""
        self.done = False

    def feed(self, data: bytes) -> list[str]:
        buffer = self._tail + data if self._tail else data
        lines = buffer.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > MAX_LINE:
            raise ValueError("SSE line too long")
        tokens: list[str] = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            content = _content(json.loads(payload))
            if content:
                tokens.append(content)
        return tokens


def _content(chunk: Any) -> str | None:
    choices = chunk.get("choices")
    if not choices:
        return None
    content: str | None = choices[0].get("delta", {}).get("content")
    return content


class AcytooChatClient(Client):
    _client: acytoo_raw.Client

    async def start(self) -> None:
        self._client = acytoo_raw.Client(ssl_context=self.ssl_context)
        provider = getattr(acytoo_raw, "OpenAIChat", None)
        self.note = (
            "acytoo_raw.OpenAIChat.create_async_generator(client=Client)"
            if provider is not None
            else "acytoo_raw.OpenAIChat not in this build: Client.stream_events + json.loads "
            "per event + choices[0].delta.content"
        )

    async def stop(self) -> None:
        await self._client.aclose()

    def stream(self, url: str) -> AsyncIterator[Piece]:
        provider = getattr(acytoo_raw, "OpenAIChat", None)
        if provider is not None:
            tokens: AsyncIterator[Piece] = provider.create_async_generator(
                MODEL, MESSAGES, base_url=url, client=self._client
            )
            return tokens
        return self._events(url)

    async def _events(self, url: str) -> AsyncIterator[Piece]:
        events = self._client.stream_events(f"{url}/chat/completions", json=PAYLOAD)
        async with aclosing(events):
            async for event in events:
                if event.data == "[DONE]":
                    continue  # read on to the end of the body: the connection stays reusable
                content = _content(json.loads(event.data))
                if content:
                    yield content


class OpenAIChatClient(Client):
    _sdks: dict[str, Any]
    _http: Any

    async def start(self) -> None:
        import openai

        # One HTTP client under every base URL, so the warm-up's connection is reused.
        self._http = openai.DefaultAsyncHttpxClient(trust_env=False)
        self._sdks = {
            url: openai.AsyncOpenAI(
                base_url=url, api_key="x", max_retries=0, http_client=self._http
            )
            for url in self.urls
        }

    async def stop(self) -> None:
        await self._http.aclose()

    def stream(self, url: str) -> AsyncIterator[Piece]:
        return self._stream(url)

    async def _stream(self, url: str) -> AsyncIterator[Piece]:
        sdk = self._sdks[url]
        stream = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        async with stream:
            async for chunk in stream:
                if chunk.choices and (content := chunk.choices[0].delta.content):
                    yield content


class AiohttpChatClient(Client):
    _session: Any

    async def start(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def stop(self) -> None:
        await self._session.close()

    def stream(self, url: str) -> AsyncIterator[Piece]:
        return self._stream(url)

    async def _stream(self, url: str) -> AsyncIterator[Piece]:
        headers = {"Accept": "text/event-stream"}
        async with self._session.post(
            f"{url}/chat/completions", json=PAYLOAD, headers=headers
        ) as response:
            response.raise_for_status()
            lines = SSELines()
            async for data in response.content.iter_any():
                for token in lines.feed(data):
                    yield token


class FloorChatClient(FloorClient):
    """The floor's held connection, a prebuilt POST, and the same hand-rolled line splitter."""

    def request_bytes(self, url: str) -> bytes:
        from urllib.parse import urlsplit

        parts = urlsplit(f"{url}/chat/completions")
        body = json.dumps(PAYLOAD).encode()
        return (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def start(self) -> None:
        self.keepalive = True
        await super().start()

    def stream(self, url: str) -> AsyncIterator[Piece]:
        return self._chat(url)

    async def _chat(self, url: str) -> AsyncIterator[Piece]:
        request = self._requests.get(url)
        if request is None:
            request = self._requests[url] = self.request_bytes(url)
        held = await self.connection(url)
        transport, reader = held
        parser = ResponseParser()
        lines = SSELines()
        try:
            transport.write(request)
            while not parser.done:  # bounded by the body: each read is non-empty or EOF
                data = await reader.read()
                if not data:
                    parser.feed_eof()
                    break
                body = parser.feed(data)
                if body:
                    for token in lines.feed(body):
                        yield token
        finally:
            self.done_with(held, parser.done and not parser.closing)
