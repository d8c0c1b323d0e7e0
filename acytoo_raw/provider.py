"""The Acytoo provider, call-compatible with the original gpt4free module.

The original POSTed a fixed JSON payload to ``/api/completions`` with aiohttp
and yielded ``chunk.decode()`` per received piece (which broke on a character
split between reads). This one runs on :func:`acytoo_raw.stream_text` (or a
Client's), and is a g4f provider class without importing g4f: see
:class:`~acytoo_raw._provider_base.AsyncGeneratorProvider`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, ClassVar

from ._client import Client
from ._exceptions import LocalProtocolError
from ._functions import stream_text
from ._network import ssl_context_from_cafile
from ._provider_base import (
    AsyncGeneratorProvider,
    Messages,
    check_client_options,
    resolve_timeout,
)
from ._timeouts import Timeout
from ._urls import join_url

__all__ = ["Acytoo", "AsyncGeneratorProvider", "_create_header", "_create_payload"]

# Relative to base_url, so a base with a path prefix keeps it.
_COMPLETIONS_PATH = "api/completions"


def _create_header() -> dict[str, str]:
    """The request headers the Acytoo service expects."""
    return {"accept": "*/*", "content-type": "application/json"}


def _create_payload(messages: Messages, temperature: float = 0.5, **kwargs: Any) -> dict[str, Any]:
    """The JSON payload of ``/api/completions``; other keyword arguments are ignored."""
    return {
        "key": "",
        "model": "gpt-3.5-turbo",
        "messages": messages,
        "temperature": temperature,
        "password": "",
    }


class Acytoo(AsyncGeneratorProvider):
    """Streaming provider for an Acytoo-compatible ``/api/completions`` endpoint.

    The public service is gone (``working = False``, as in the original); point
    ``base_url`` at a compatible server, such as the one ``acytoo-raw serve``
    runs. With g4f 8.x: ``g4f.client.Client(provider=Acytoo, base_url=...)``,
    ``AsyncClient`` likewise, or ``g4f.ChatCompletion.create(...,
    provider=Acytoo, ignore_working=True, base_url=...)``.
    """

    url = "https://chat.acytoo.com"
    working = False
    needs_auth = False
    supports_stream = True
    supports_message_history = True
    supports_system_message = False
    supports_gpt_35_turbo = True
    supports_gpt_4 = False
    default_model = "gpt-3.5-turbo"
    models: ClassVar[list[str]] = ["gpt-3.5-turbo"]

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Messages,
        proxy: str | None = None,
        *,
        base_url: str | None = None,
        temperature: float = 0.5,
        timeout: Timeout | float | None = None,
        stream_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = False,
        client: Client | None = None,
        media: object = None,
        **kwargs: Any,
    ) -> AsyncGenerator[str, None]:
        """Yield the answer as ``str`` pieces as the server streams them.

        Args:
            model: accepted for compatibility; the service always answers with
                gpt-3.5-turbo (the payload says so).
            messages: the chat history, sent whole (``role``/``content`` dicts).
            proxy: ``http://``/``https://`` proxy URL for this request.
            base_url: the server's root; ``/api/completions`` is appended to
                its path. ``None`` means the ``client``'s base URL when a
                client is given, else :attr:`url` (the dead public host); an
                empty or malformed one is refused. g4f's ``Client`` and
                ``AsyncClient`` pass their ``base_url=`` here.
            temperature: goes into the payload.
            timeout: a :class:`~acytoo_raw.Timeout`, or a number of seconds
                for each phase (connect, read gap, write) with no overall
                limit. g4f's ``timeout=N`` lands here with that meaning (not
                aiohttp's overall limit; pass ``Timeout(total=N)`` for that).
            stream_timeout: g4f's longest wait for one piece; becomes
                ``Timeout.read``.
            ssl_context: TLS settings for an ``https://`` server.
            cafile: a PEM bundle to trust instead of the system's (ignored
                when ``ssl_context`` is given).
            proxy_ssl_context: TLS settings for an ``https://`` proxy.
            trust_env: take the proxy from ``HTTPS_PROXY``/``HTTP_PROXY``/
                ``NO_PROXY`` when ``proxy`` is ``None``.
            client: send through this :class:`acytoo_raw.Client` (its pooled
                connections, proxy and TLS settings) instead of a one-shot
                connection; then ``proxy``, ``proxy_ssl_context``,
                ``ssl_context``, ``cafile`` and ``trust_env`` must not be given.
            media: images or files (g4f's ``media=``): the Acytoo API carries
                text only, so any is refused rather than silently dropped.
            **kwargs: ignored, so g4f's calls work: ``stream`` (this always
                streams; g4f joins the pieces when it wants one string),
                ``api_key`` (the service has no keys), ``conversation`` (the
                whole history is sent every time), ``max_tokens``, ``stop``,
                ``response_format`` and ``tools`` (g4f applies them to the text
                itself), ``provider``, ``ignore_stream``, and sampling options
                the payload has no field for (``top_p``, ``seed``, ...).

        Raises:
            HTTPStatusError: a non-2xx answer, before any piece (never yielded
                as text); the other :class:`~acytoo_raw.AcytooError` subclasses
                as :func:`acytoo_raw.stream_text`.
            LocalProtocolError: a bad ``base_url``, ``media`` given, or
                connection options given together with ``client``; nothing is
                sent.
        """
        if media:
            raise LocalProtocolError(f"{cls.__name__} sends text only; media cannot be sent")
        check_client_options(
            client,
            proxy=proxy,
            proxy_ssl_context=proxy_ssl_context,
            ssl_context=ssl_context,
            cafile=cafile,
            trust_env=trust_env,
        )
        if base_url is None and client is not None:
            endpoint = _COMPLETIONS_PATH  # The client joins it to its own base_url.
        else:
            endpoint = join_url(cls.url if base_url is None else base_url, _COMPLETIONS_PATH)
        payload = _create_payload(messages, temperature=temperature)
        limits = resolve_timeout(timeout, stream_timeout)
        if client is not None:
            pieces = client.stream_text(
                endpoint, method="POST", json=payload, headers=_create_header(), timeout=limits
            )
        else:
            if ssl_context is None and cafile is not None:
                ssl_context = ssl_context_from_cafile(cafile)
            pieces = stream_text(
                endpoint,
                method="POST",
                json=payload,
                headers=_create_header(),
                proxy=proxy,
                proxy_ssl_context=proxy_ssl_context,
                trust_env=trust_env,
                timeout=limits,
                ssl_context=ssl_context,
            )
        async with aclosing(pieces):
            async for piece in pieces:
                yield piece
