"""The module-level functions: each call is a one-shot client, one connection closed at the end.

They repeat :class:`~acytoo_raw.Client`'s request arguments plus the transport
settings a client would carry, so that each has its full signature for IDEs
and type checkers; the work is the client's.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager

from ._client import Client
from ._decoding import check_error_handler
from ._http11 import HeaderInput
from ._response import Response
from ._sse import ServerSentEvent
from ._timeouts import Limits, Timeout

__all__ = ["open_stream", "stream_bytes", "stream_events", "stream_text"]

# A one-shot call keeps nothing: its single connection closes at the end.
_ONE_SHOT_LIMITS = Limits(max_connections=1, max_keepalive=0)


def _one_shot_client(
    proxy: str | None,
    proxy_ssl_context: ssl.SSLContext | None,
    trust_env: bool,
    timeout: Timeout | float | None,
    ssl_context: ssl.SSLContext | None,
) -> Client:
    """The client of one module-function call: one connection, closed at the end."""
    client = Client(
        proxy=proxy,
        proxy_ssl_context=proxy_ssl_context,
        trust_env=trust_env,
        timeout=timeout,
        ssl_context=ssl_context,
        limits=_ONE_SHOT_LIMITS,
        replay_unanswered=False,
    )
    client._keeps_tls_sessions = False
    return client


@asynccontextmanager
async def open_stream(
    url: str,
    *,
    method: str = "POST",
    json: object = None,
    content: bytes | str | None = None,
    headers: HeaderInput = None,
    proxy: str | None = None,
    proxy_ssl_context: ssl.SSLContext | None = None,
    trust_env: bool = False,
    timeout: Timeout | float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    record_pieces: bool = False,
) -> AsyncIterator[Response]:
    """Send one request on a new connection and hold its response open; it closes on exit.

    The response is returned whatever its status (see
    :meth:`Response.raise_for_status`). The request is validated before any
    connection is made.

    Args:
        url: ``http://`` or ``https://`` URL.
        method: the HTTP method.
        json: an object sent as a JSON body (``content-type: application/json``).
        content: a raw body (``str`` is sent as UTF-8).
        headers: extra request headers (mapping or pairs).
        proxy: ``http://[user:pass@]host:port``, ``https://...`` (HTTP proxy:
            ``https://`` origins through CONNECT, ``http://`` origins in
            absolute form), ``socks5://`` (the target resolved here) or
            ``socks5h://`` (resolved by the proxy).
        proxy_ssl_context: verifies an ``https://`` proxy (default: system trust).
        trust_env: when ``proxy`` is ``None``, take the proxy from
            ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, honouring ``NO_PROXY``.
        timeout: a :class:`Timeout`, a number of seconds for connect, read and
            write, or ``None`` for the defaults.
        ssl_context: verifies an ``https://`` origin (default: system trust,
            hostname checked).
        record_pieces: keep the arrival time of every piece in
            ``response.timings.pieces``.

    Raises:
        LocalProtocolError: bad URL, proxy URL, header or body (before connecting).
        ConnectError, ConnectTimeout, TLSError, ProxyError: establishing failed.
        WriteTimeout, ReadTimeout, TotalTimeout, RemoteProtocolError: the
            exchange failed.
    """
    client = _one_shot_client(proxy, proxy_ssl_context, trust_env, timeout, ssl_context)
    async with (
        client,
        client.open_stream(
            url,
            method=method,
            json=json,
            content=content,
            headers=headers,
            record_pieces=record_pieces,
        ) as response,
    ):
        yield response


async def stream_bytes(
    url: str,
    *,
    method: str = "POST",
    json: object = None,
    content: bytes | str | None = None,
    headers: HeaderInput = None,
    proxy: str | None = None,
    proxy_ssl_context: ssl.SSLContext | None = None,
    trust_env: bool = False,
    timeout: Timeout | float | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncGenerator[bytes, None]:
    """Stream the response body as ``bytes`` pieces, as they arrive.

    Arguments and errors as :func:`open_stream`, plus :class:`HTTPStatusError`
    for a non-2xx status. Close the generator (``aclosing``) to release the
    socket at once when leaving the loop early.
    """
    client = _one_shot_client(proxy, proxy_ssl_context, trust_env, timeout, ssl_context)
    pieces = client.stream_bytes(url, method=method, json=json, content=content, headers=headers)
    async with client, aclosing(pieces):
        async for piece in pieces:
            yield piece


async def stream_text(
    url: str,
    *,
    method: str = "POST",
    json: object = None,
    content: bytes | str | None = None,
    headers: HeaderInput = None,
    proxy: str | None = None,
    proxy_ssl_context: ssl.SSLContext | None = None,
    trust_env: bool = False,
    timeout: Timeout | float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    encoding_errors: str = "replace",
) -> AsyncGenerator[str, None]:
    """Stream the response body as decoded ``str`` pieces, as they arrive.

    Arguments and errors as :func:`stream_bytes`; ``encoding_errors`` is the
    codecs error handler (``"strict"`` raises :class:`UnicodeDecodeError`).
    """
    check_error_handler(encoding_errors)  # Before anything is sent.
    client = _one_shot_client(proxy, proxy_ssl_context, trust_env, timeout, ssl_context)
    pieces = client.stream_text(
        url,
        method=method,
        json=json,
        content=content,
        headers=headers,
        encoding_errors=encoding_errors,
    )
    async with client, aclosing(pieces):
        async for piece in pieces:
            yield piece


async def stream_events(
    url: str,
    *,
    method: str = "POST",
    json: object = None,
    content: bytes | str | None = None,
    headers: HeaderInput = None,
    proxy: str | None = None,
    proxy_ssl_context: ssl.SSLContext | None = None,
    trust_env: bool = False,
    timeout: Timeout | float | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncGenerator[ServerSentEvent, None]:
    """Stream the response body as server-sent events (WHATWG rules), as they complete.

    Arguments and errors as :func:`stream_bytes`. Sends ``Accept:
    text/event-stream`` unless ``headers`` name an Accept.
    """
    client = _one_shot_client(proxy, proxy_ssl_context, trust_env, timeout, ssl_context)
    events = client.stream_events(url, method=method, json=json, content=content, headers=headers)
    async with client, aclosing(events):
        async for event in events:
            yield event
