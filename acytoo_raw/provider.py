"""The Acytoo provider, call-compatible with the original gpt4free module.

The original POSTed a fixed JSON payload to ``/api/completions`` with aiohttp
and yielded ``chunk.decode()`` per received piece (which broke on a character
split between reads). This one runs on :func:`acytoo_raw.stream_text`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing
from typing import Any, Final

from anyio.from_thread import start_blocking_portal

from ._client import stream_text
from ._network import ssl_context_from_cafile
from ._timeouts import Timeout

__all__ = ["Acytoo", "_create_header", "_create_payload"]

Messages = list[dict[str, str]]


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


class _Done:
    """Marks the end of an async generator driven from another thread."""


_DONE: Final = _Done()


async def _next_or_done(agen: AsyncGenerator[str, None]) -> str | _Done:
    # StopAsyncIteration must not cross the portal: it would be mistaken for
    # the end of the portal call itself.
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return _DONE


class Acytoo:
    """Streaming provider for an Acytoo-compatible ``/api/completions`` endpoint.

    The public service is gone (``working = False``); point ``base_url`` at a
    compatible server, such as the one ``acytoo-raw serve`` runs.
    """

    url = "https://chat.acytoo.com"
    working = False
    supports_message_history = True
    supports_gpt_35_turbo = True
    supports_stream = True

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Messages,
        proxy: str | None = None,
        *,
        base_url: str | None = None,
        timeout: Timeout | float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = False,
        **kwargs: Any,
    ) -> AsyncGenerator[str, None]:
        """Yield the answer as ``str`` pieces as the server streams them.

        ``model`` is accepted for compatibility; the service always answers
        with gpt-3.5-turbo. ``temperature`` goes into the payload; other
        unknown keyword arguments (g4f passes ``stream=``) are ignored.
        ``cafile`` is a PEM bundle to trust instead of the system's (ignored
        when ``ssl_context`` is given).

        Raises:
            HTTPStatusError: a non-2xx answer; the other
                :class:`~acytoo_raw.AcytooError` subclasses as
                :func:`acytoo_raw.stream_text`.
        """
        if ssl_context is None and cafile is not None:
            ssl_context = ssl_context_from_cafile(cafile)
        endpoint = f"{(base_url or cls.url).rstrip('/')}/api/completions"
        pieces = stream_text(
            endpoint,
            method="POST",
            json=_create_payload(messages, **kwargs),
            headers=_create_header(),
            proxy=proxy,
            proxy_ssl_context=proxy_ssl_context,
            trust_env=trust_env,
            timeout=timeout,
            ssl_context=ssl_context,
        )
        async with aclosing(pieces):
            async for piece in pieces:
                yield piece

    @classmethod
    async def create_async(cls, model: str, messages: Messages, **kwargs: Any) -> str:
        """The whole answer as one string."""
        pieces = cls.create_async_generator(model, messages, **kwargs)
        async with aclosing(pieces):
            return "".join([piece async for piece in pieces])

    @classmethod
    def create_completion(
        cls, model: str, messages: Messages, stream: bool = True, **kwargs: Any
    ) -> Iterator[str]:
        """A blocking iterator of answer pieces, for code without an event loop.

        The request runs on an event loop in a helper thread, so this also
        works when called from inside a running asyncio or trio loop (it
        blocks that loop while it waits). With ``stream=False`` the whole
        answer comes as one piece. Closing the iterator closes the socket.
        """
        with start_blocking_portal() as portal:
            agen = cls.create_async_generator(model, messages, **kwargs)
            in_flight = False  # A portal call is running the generator right now.
            try:
                in_flight = True
                if not stream:
                    answer = portal.call(_join, agen)
                    in_flight = False
                    yield answer
                    return
                while True:
                    piece = portal.call(_next_or_done, agen)
                    in_flight = False
                    if isinstance(piece, _Done):
                        return
                    yield piece
                    in_flight = True
            finally:
                # Interrupted mid-call (Ctrl-C): the generator is still running
                # there; leaving the portal cancels it, which closes the socket.
                if not in_flight:
                    portal.call(agen.aclose)


async def _join(agen: AsyncGenerator[str, None]) -> str:
    return "".join([piece async for piece in agen])
