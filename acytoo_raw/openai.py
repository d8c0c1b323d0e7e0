"""OpenAIChat: streamed chat completions from any OpenAI-compatible server.

The wire format, and nothing else, lives here::

    POST {base_url}/chat/completions         (base_url includes /v1, as the openai SDK's does)
    authorization: Bearer <api_key>          (only when a key is given)
    accept: text/event-stream
    {"model": ..., "messages": [...], "stream": true, <OpenAI parameters>}

The answer is ``text/event-stream``: one ``chat.completion.chunk`` JSON object
per ``data:`` event (usually a role-only chunk first, then content deltas, a
chunk with ``finish_reason``, a usage chunk with ``choices: []`` when
``stream_options.include_usage`` is set) and ``data: [DONE]`` last. vLLM,
llama.cpp's server, Ollama, LM Studio, LiteLLM and OpenAI speak it.

What counts as an answer, and what is an error (never a silently short answer):

- ``data: [DONE]`` ends the answer; so does the end of the body after a chunk
  with a ``finish_reason`` (some servers never send ``[DONE]``).
- A body that ends with neither is :class:`~acytoo_raw.RemoteProtocolError`,
  as is a ``data:`` line that is not a JSON object, or a chunk whose fields
  have the wrong types.
- ``{"error": {...}}`` inside a 2xx stream (or an ``event: error``) is
  :class:`~acytoo_raw.StreamError` with the server's message, type and code.
- A non-2xx status is :class:`~acytoo_raw.HTTPStatusError` (``body`` holds the
  JSON error; the server's ``error.message`` is added to the error's text).

The API key goes only into the ``authorization`` header: it is refused
without being shown when it cannot be sent, and cut out of any server text
that an error message quotes.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Final

from ._chat_stream import DRAIN_AFTER_DONE, ChatStream, quote_server_text
from ._client import Client
from ._exceptions import (
    HTTPStatusError,
    LocalProtocolError,
)
from ._functions import open_stream
from ._network import ssl_context_from_cafile
from ._provider_base import (
    AsyncGeneratorProvider,
    Messages,
    check_client_options,
    resolve_timeout,
)
from ._timeouts import Timeout
from ._urls import join_url

__all__ = ["CHAT_PARAMETERS", "DRAIN_AFTER_DONE", "RESERVED_FIELDS", "ChatStream", "OpenAIChat"]

# Relative to base_url, so "http://host/v1" gives "http://host/v1/chat/completions".
_CHAT_PATH = "chat/completions"

# The request fields of OpenAI's chat-completions API that OpenAIChat takes as
# keyword arguments. An allow-list, not a pass-through: g4f passes its own
# options (conversation, provider, web_search, ...) as keyword arguments, and
# OpenAI answers 400 to a field it does not know. Server-specific fields
# (vLLM's top_k, ...) go in extra_body=.
CHAT_PARAMETERS: Final = frozenset(
    {
        "audio",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)

# Fields OpenAIChat sets itself; extra_body may not replace them ("stream": false
# would turn the answer into one JSON object this reader cannot parse).
RESERVED_FIELDS: Final = frozenset({"model", "messages", "stream"})


def _check_api_key(api_key: object) -> str | None:
    """The key to send, or ``None`` for no ``authorization`` header (``None`` or ``""``).

    The messages never show the key: an h11 error about the header would.
    """
    if api_key is None or api_key == "":
        return None
    if not isinstance(api_key, str):
        raise LocalProtocolError(f"api_key must be a str, not {type(api_key).__name__}")
    if api_key != api_key.strip() or not all(" " <= char <= "~" for char in api_key):
        raise LocalProtocolError(
            "api_key must be printable ASCII without leading or trailing spaces "
            "(the key is not shown here)"
        )
    return api_key


def _payload(
    model: str,
    messages: Messages,
    params: Mapping[str, Any],
    extra_body: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if not isinstance(model, str):
        raise LocalProtocolError(f"model must be a str, not {type(model).__name__}")
    if not isinstance(messages, (list, tuple)):
        raise LocalProtocolError(
            f"messages must be a list of message objects, not {type(messages).__name__}"
        )
    unknown = sorted(set(params) - CHAT_PARAMETERS)
    if unknown:
        raise LocalProtocolError(
            f"unknown chat parameter(s) {', '.join(unknown)}: OpenAI's are taken as keyword "
            "arguments; pass a server's own fields in extra_body="
        )
    payload: dict[str, Any] = {"model": model, "messages": list(messages), "stream": True}
    # None means "not given", as in g4f's calls (max_tokens=None, stop=None).
    payload.update((name, value) for name, value in params.items() if value is not None)
    if extra_body is not None:
        if not isinstance(extra_body, Mapping):
            raise LocalProtocolError(
                f"extra_body must be a mapping, not {type(extra_body).__name__}"
            )
        reserved = sorted(RESERVED_FIELDS.intersection(extra_body))
        if reserved:
            raise LocalProtocolError(f"extra_body cannot set {', '.join(reserved)}")
        payload.update(extra_body)
    return payload


def _headers(api_key: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    merged = {"accept": "text/event-stream"}
    if api_key is not None:
        merged["authorization"] = f"Bearer {api_key}"
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise LocalProtocolError(f"headers must be a mapping, not {type(headers).__name__}")
        for name, value in headers.items():
            # One spelling per name, so the caller's header replaces ours.
            merged[name.lower() if isinstance(name, str) else name] = value
    return merged


def _explain(exc: HTTPStatusError, secret: str | None) -> None:
    """Add the server's error message to ``exc``'s text, from a JSON error body.

    OpenAI and LiteLLM send ``{"error": {"message": ...}}``, Ollama
    ``{"error": "..."}``, vLLM ``{"object": "error", "message": ...}``.
    """
    try:
        body = json.loads(exc.body)
    except (ValueError, RecursionError):
        return
    if not isinstance(body, dict):
        return
    error = body.get("error", body)
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, str) and message:
        exc.args = (f"{exc.args[0]}: {quote_server_text(message, secret)}", *exc.args[1:])


class OpenAIChat(AsyncGeneratorProvider):
    """Streaming provider for any OpenAI-compatible ``/v1/chat/completions`` server.

    Give ``base_url`` with the ``/v1`` (``http://127.0.0.1:8000/v1`` for
    vLLM, ``http://localhost:11434/v1`` for Ollama, ``https://api.openai.com/v1``),
    and ``api_key`` when the server wants one::

        async for text in OpenAIChat.create_async_generator(
            "gpt-4o-mini", [{"role": "user", "content": "Hi"}],
            base_url="https://api.openai.com/v1", api_key=key,
        ):
            print(text, end="")

    The finish reason, the token usage and the time to first token come with
    :meth:`stream`. ``create_completion`` (blocking) and ``create_async`` (one
    string) come from the base, and g4f can drive it like any provider
    (``g4f.client.Client(provider=OpenAIChat, base_url=...)``).
    """

    url = "https://platform.openai.com/docs/api-reference/chat"
    working = True
    needs_auth = False  # Local servers take no key; give api_key= when one does.
    supports_stream = True
    supports_message_history = True
    supports_system_message = True
    supports_gpt_35_turbo = True
    supports_gpt_4 = True
    default_model = None
    models: ClassVar[list[str]] = []

    @classmethod
    @asynccontextmanager
    async def stream(
        cls,
        model: str,
        messages: Messages,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: Timeout | float | None = None,
        stream_timeout: float | None = None,
        proxy: str | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
        client: Client | None = None,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> AsyncIterator[ChatStream]:
        """Send one chat request and hold its streamed answer open as a :class:`ChatStream`::

            async with OpenAIChat.stream(model, messages, base_url=url,
                                         stream_options={"include_usage": True}) as chat:
                async for text in chat:
                    print(text, end="")
            print(chat.finish_reason, chat.usage, chat.first_token_time)

        Leaving the block closes the stream (or, with a Client, returns a
        connection read to its end to the pool).

        Args:
            model: the model name, sent as it is.
            messages: the chat history (``role``/``content`` objects, content
                parts allowed), sent as it is.
            base_url: the API root including ``/v1``; ``chat/completions`` is
                appended to its path. May be left out with ``client=``: then
                the request goes to ``chat/completions`` below the client's
                own ``base_url``.
            api_key: sent as ``authorization: Bearer <key>``; ``None`` or
                ``""`` sends no such header.
            timeout: a :class:`~acytoo_raw.Timeout`, or seconds for each phase
                (``read`` is the longest silence between two chunks).
            stream_timeout: becomes ``Timeout.read`` (g4f's name).
            proxy, proxy_ssl_context, trust_env, ssl_context: as
                :func:`acytoo_raw.open_stream`.
            cafile: a PEM bundle to trust instead of the system's (ignored when
                ``ssl_context`` is given).
            client: send through this :class:`~acytoo_raw.Client` (its pooled
                connections, proxy and TLS settings); then ``proxy``,
                ``proxy_ssl_context``, ``ssl_context``, ``cafile`` and
                ``trust_env`` must not be given.
            headers: more request headers; one of the same name (any case)
                replaces ours (``accept``, ``authorization``).
            extra_body: more JSON fields for servers with their own
                (``{"top_k": 20}``); it cannot set ``model``, ``messages``
                or ``stream``.
            **params: OpenAI chat parameters (``temperature``, ``max_tokens``,
                ``top_p``, ``stop``, ``seed``, ``stream_options``, ``tools``,
                ... see :data:`CHAT_PARAMETERS`), sent as given; ``None`` is
                not sent.

        Raises:
            LocalProtocolError: before anything is sent: an unknown parameter,
                a bad ``base_url``/``api_key``/``extra_body``/``headers``, no
                ``base_url`` without a client, connection options beside a
                client, a body that is not JSON-serialisable.
            HTTPStatusError: a non-2xx answer (``status_code``, ``headers``,
                ``body`` with the server's JSON error).
            ConnectError, ConnectTimeout, TLSError, ProxyError, PoolTimeout,
            WriteTimeout, ReadTimeout, TotalTimeout, RemoteProtocolError: as
                :func:`acytoo_raw.open_stream`; reading the :class:`ChatStream`
                adds :class:`~acytoo_raw.StreamError` and its own
                :class:`~acytoo_raw.RemoteProtocolError` cases.
        """
        secret = _check_api_key(api_key)
        check_client_options(
            client,
            proxy=proxy,
            proxy_ssl_context=proxy_ssl_context,
            ssl_context=ssl_context,
            cafile=cafile,
            trust_env=trust_env,
        )
        if base_url is None:
            if client is None:
                raise LocalProtocolError(
                    "base_url is required without a client, e.g. 'http://127.0.0.1:8000/v1'"
                )
            endpoint = _CHAT_PATH  # The client joins it to its own base_url.
        else:
            endpoint = join_url(base_url, _CHAT_PATH)
        payload = _payload(model, messages, params, extra_body)
        request_headers = _headers(secret, headers)
        limits = resolve_timeout(timeout, stream_timeout)
        if client is not None:
            opened = client.open_stream(
                endpoint, method="POST", json=payload, headers=request_headers, timeout=limits
            )
        else:
            if ssl_context is None and cafile is not None:
                ssl_context = ssl_context_from_cafile(cafile)
            opened = open_stream(
                endpoint,
                method="POST",
                json=payload,
                headers=request_headers,
                proxy=proxy,
                proxy_ssl_context=proxy_ssl_context,
                trust_env=trust_env,
                timeout=limits,
                ssl_context=ssl_context,
            )
        async with opened as response:
            try:
                await response.raise_for_status()
            except HTTPStatusError as exc:
                _explain(exc, secret)
                raise
            chat = ChatStream(response, secret=secret)
            try:
                yield chat
            finally:
                await chat.aclose()

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Messages,
        proxy: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        n: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        stream_options: dict[str, Any] | None = None,
        reasoning_effort: str | None = None,
        timeout: Timeout | float | None = None,
        stream_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = False,
        client: Client | None = None,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        media: object = None,
        **kwargs: Any,
    ) -> AsyncGenerator[str, None]:
        """Yield the answer's text as ``str`` pieces as the server streams them.

        Each piece is a non-empty ``choices[0].delta.content``. Arguments as
        :meth:`stream`, with ``proxy`` also positional (g4f's order). The
        OpenAI parameters g4f lists are named here; other names of
        :data:`CHAT_PARAMETERS` in ``kwargs`` are sent too, and every other
        keyword argument is ignored, so g4f's calls work (``stream``: this
        always streams, g4f joins the pieces when it wants one string;
        ``conversation``, ``provider``, ``ignore_stream``, ...).

        Args:
            media: images or files (g4f's ``media=``): refused rather than
                dropped; put images in ``messages`` as ``image_url`` content
                parts instead.

        Raises:
            as :meth:`stream` and reading a :class:`ChatStream`.
        """
        if media:
            raise LocalProtocolError(
                f"{cls.__name__} does not convert media=; send images as content parts"
            )
        params: dict[str, Any] = {
            name: value for name, value in kwargs.items() if name in CHAT_PARAMETERS
        }
        params.update(
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            stop=stop,
            seed=seed,
            n=n,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            stream_options=stream_options,
            reasoning_effort=reasoning_effort,
        )
        opened = cls.stream(
            model,
            messages,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            stream_timeout=stream_timeout,
            proxy=proxy,
            proxy_ssl_context=proxy_ssl_context,
            trust_env=trust_env,
            ssl_context=ssl_context,
            cafile=cafile,
            client=client,
            headers=headers,
            extra_body=extra_body,
            **params,
        )
        async with opened as chat:
            async for piece in chat:
                yield piece
