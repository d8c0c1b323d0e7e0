"""The engine: one streamed HTTP/1.1 request, as a context manager or a generator.

Connect (TCP, optional CONNECT tunnel, optional TLS), send the request in one
write, read the head, then hand out body pieces as they arrive. Timeouts are
cancel scopes around single awaits, never around a ``yield``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from functools import cache
from typing import TypeVar

import anyio
from anyio.abc import ByteStream

from ._decoding import TextDecoder, charset_from_content_type, check_error_handler
from ._exceptions import (
    AcytooError,
    ConnectError,
    ConnectTimeout,
    HTTPStatusError,
    ProxyError,
    ReadTimeout,
    TotalTimeout,
    WriteTimeout,
)
from ._http11 import HeaderInput, ResponseReader, build_request, encode_body
from ._network import SocketStream, connect_tcp, start_tls, translate_errors
from ._proxy import Tunnel
from ._timeouts import Timeout
from ._urls import URL, parse_proxy_url, parse_url, proxy_from_environment

__all__ = ["ERROR_BODY_LIMIT", "Response", "open_stream", "stream_bytes", "stream_text"]

# The part of an error body kept on HTTPStatusError: enough for any JSON error
# message, bounded so a hostile server can't make us buffer without limit.
ERROR_BODY_LIMIT = 64 * 1024

_INFINITY = float("inf")

_Piece = TypeVar("_Piece", bytes, str)


def _unchanged(data: bytes) -> bytes:
    return data


@cache
def default_ssl_context() -> ssl.SSLContext:
    """The system-trust verifying context, built once: building one costs ~0.3 ms."""
    return ssl.create_default_context()


class Response:
    """The head of a streamed response and the means to read its body.

    Valid only inside the ``async with open_stream(...)`` block that made it.

    Attributes:
        status_code: e.g. ``200``.
        reason: the reason phrase, e.g. ``"OK"`` (may be empty).
        http_version: ``"1.1"`` or ``"1.0"``.
        headers: ``(name, value)`` pairs in order, names lower-cased.
        url: the URL requested.
    """

    __slots__ = (
        "_reader",
        "headers",
        "http_version",
        "reason",
        "status_code",
        "url",
    )

    def __init__(
        self,
        url: str,
        status_code: int,
        reason: str,
        http_version: str,
        headers: list[tuple[str, str]],
        reader: ResponseReader,
    ) -> None:
        self.url = url
        self.status_code = status_code
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self._reader = reader

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason}]>"

    def get_header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    @property
    def charset(self) -> str | None:
        """The ``charset`` of ``Content-Type``, or ``None`` when absent."""
        return charset_from_content_type(self.get_header("content-type"))

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        """Body pieces as they arrive: one ``bytes`` per socket read, never empty.

        Raises:
            RemoteProtocolError: malformed or truncated body.
            ReadTimeout, TotalTimeout: the server fell silent / time ran out.
        """
        return self._pieces(_unchanged, None)

    def aiter_text(self, errors: str = "replace") -> AsyncGenerator[str, None]:
        """Body pieces decoded as text; a character split between reads is decoded whole.

        The charset comes from ``Content-Type`` (UTF-8 when absent or unknown).
        Empty strings are never yielded. ``errors`` is a codecs error handler;
        with ``"strict"``, undecodable bytes raise :class:`UnicodeDecodeError`.
        Errors as :meth:`aiter_bytes`.
        """
        decoder = TextDecoder(self.charset, errors)
        return self._pieces(decoder.decode, decoder.flush)

    async def _pieces(
        self, convert: Callable[[bytes], _Piece], flush: Callable[[], _Piece] | None
    ) -> AsyncGenerator[_Piece, None]:
        # One loop for bytes and text, so text costs no extra generator hop per piece.
        receive = self._reader.receive_body
        with translate_errors("read"):
            while True:
                data = await receive()
                if not data:
                    break
                piece = convert(data)
                if piece:
                    yield piece
        if flush is not None:
            tail = flush()
            if tail:
                yield tail

    async def aread(self, limit: int | None = None) -> bytes:
        """The rest of the body, or its first ``limit`` bytes."""
        chunks: list[bytes] = []
        await self._read_into(chunks, limit)
        body = b"".join(chunks)
        return body if limit is None else body[:limit]

    async def _read_into(self, chunks: list[bytes], limit: int | None) -> None:
        size = 0
        async with aclosing(self.aiter_bytes()) as pieces:
            async for piece in pieces:
                chunks.append(piece)
                size += len(piece)
                if limit is not None and size >= limit:
                    return

    async def raise_for_status(self) -> None:
        """Raise :class:`HTTPStatusError` unless the status is 2xx.

        The error keeps the first 64 KiB of the body, read within the
        request's timeouts. When reading it fails (a timeout, a cut body),
        the error still comes as :class:`HTTPStatusError` with what was
        read, and the read failure as ``__cause__``.
        """
        if self.is_success:
            return
        chunks: list[bytes] = []
        failure: AcytooError | None = None
        try:
            await self._read_into(chunks, ERROR_BODY_LIMIT)
        except AcytooError as exc:
            failure = exc
        message = f"server answered {self.status_code} {self.reason}".rstrip()
        error = HTTPStatusError(
            f"{message} for {self.url}",
            status_code=self.status_code,
            reason=self.reason,
            headers=self.headers,
            body=b"".join(chunks)[:ERROR_BODY_LIMIT],
        )
        raise error from failure


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
) -> AsyncIterator[Response]:
    """Send one request and hold its response open; the socket closes on exit.

    The response is returned whatever its status (see
    :meth:`Response.raise_for_status`). The request is validated before any
    connection is made.

    Args:
        url: ``http://`` or ``https://`` URL.
        method: the HTTP method.
        json: an object sent as a JSON body (``content-type: application/json``).
        content: a raw body (``str`` is sent as UTF-8).
        headers: extra request headers (mapping or pairs).
        proxy: ``http://[user:pass@]host:port`` or ``https://...``: an HTTP
            CONNECT proxy; ``http://`` and ``https://`` origins both go
            through the tunnel.
        proxy_ssl_context: verifies an ``https://`` proxy (default: system trust).
        trust_env: when ``proxy`` is ``None``, take the proxy from
            ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, honouring ``NO_PROXY``.
        timeout: a :class:`Timeout`, a number of seconds for connect, read and
            write, or ``None`` for the defaults.
        ssl_context: verifies an ``https://`` origin (default: system trust,
            hostname checked).

    Raises:
        LocalProtocolError: bad URL, proxy URL, header or body (before connecting).
        ConnectError, ConnectTimeout, TLSError, ProxyError: establishing failed.
        WriteTimeout, ReadTimeout, TotalTimeout, RemoteProtocolError: the
            exchange failed.
    """
    target = parse_url(url)
    if proxy is None and trust_env:
        proxy = proxy_from_environment(target, os.environ)
    proxy_url = parse_proxy_url(proxy) if proxy is not None else None
    body, content_type = encode_body(json, content)
    connection, request = build_request(method, target, headers, body, content_type)
    tunnel = Tunnel(target, proxy_url) if proxy_url is not None else None
    limits = Timeout.of(timeout)

    start = anyio.current_time()
    deadline = start + limits.total if limits.total is not None else _INFINITY
    socket, stream = await _establish(
        target, tunnel, ssl_context, proxy_ssl_context, limits, deadline
    )
    try:
        await _send(stream, request, limits, deadline)
        reader = ResponseReader(stream, connection, method.encode("ascii"))
        # The whole head must come within the read timeout (a trickling or
        # 1xx-flooding peer can't hold us), then `read` bounds each silence.
        head_deadline = anyio.current_time() + _seconds_left(limits.read)
        if head_deadline < deadline:
            message = f"no complete response head within {limits.read} s"
            socket.set_read_limits(None, head_deadline, ReadTimeout, message)
        else:
            socket.set_read_limits(None, deadline)
        with translate_errors("read"):
            head = await reader.receive_head()
        socket.set_read_limits(limits.read, deadline)
        yield Response(
            url,
            head.status_code,
            head.reason.decode("latin-1"),
            head.http_version.decode("ascii"),
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers],
            reader,
        )
    except BaseException:
        # Cancelled or failed: close without waiting for anything (no TLS goodbye).
        await anyio.aclose_forcefully(stream)
        raise
    else:
        await stream.aclose()  # standard_compatible=False: TLS sends no close_notify here.


async def _establish(
    target: URL,
    tunnel: Tunnel | None,
    ssl_context: ssl.SSLContext | None,
    proxy_ssl_context: ssl.SSLContext | None,
    limits: Timeout,
    deadline: float,
) -> tuple[SocketStream, ByteStream]:
    """TCP, tunnel and TLS, all under the one connect timeout."""
    limit = min(_seconds_left(limits.connect), deadline - anyio.current_time())
    with anyio.move_on_after(limit), translate_errors("connect"):
        return await _connect(target, tunnel, ssl_context, proxy_ssl_context)
    if limits.connect is not None and limit >= limits.connect:
        raise ConnectTimeout(f"connecting to {target.host_header} took longer than {limit} s")
    raise TotalTimeout("the request's total timeout ran out while connecting")


async def _connect(
    target: URL,
    tunnel: Tunnel | None,
    ssl_context: ssl.SSLContext | None,
    proxy_ssl_context: ssl.SSLContext | None,
) -> tuple[SocketStream, ByteStream]:
    if tunnel is None:
        socket = await connect_tcp(target.host, target.port)
    else:
        proxy = tunnel.proxy
        try:
            socket = await connect_tcp(proxy.host, proxy.port)
        except ConnectError as exc:
            raise ProxyError(f"cannot reach the proxy: {exc}") from exc
    stream: ByteStream = socket
    try:
        if tunnel is not None:
            if tunnel.proxy.is_tls:
                context = proxy_ssl_context or default_ssl_context()
                stream = await start_tls(stream, tunnel.proxy.host, context, peer="proxy")
            stream = await tunnel.open(stream)
        if target.is_tls:
            stream = await start_tls(stream, target.host, ssl_context or default_ssl_context())
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    return socket, stream


async def _send(stream: ByteStream, request: bytes, limits: Timeout, deadline: float) -> None:
    limit = min(_seconds_left(limits.write), deadline - anyio.current_time())
    with anyio.move_on_after(limit) as scope, translate_errors("write"):
        await stream.send(request)
    if scope.cancelled_caught:
        if limits.write is not None and limit >= limits.write:
            raise WriteTimeout(f"sending the request took longer than {limit} s")
        raise TotalTimeout("the request's total timeout ran out while sending")


def _seconds_left(limit: float | None) -> float:
    return _INFINITY if limit is None else limit


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
    async with open_stream(
        url,
        method=method,
        json=json,
        content=content,
        headers=headers,
        proxy=proxy,
        proxy_ssl_context=proxy_ssl_context,
        trust_env=trust_env,
        timeout=timeout,
        ssl_context=ssl_context,
    ) as response:
        await response.raise_for_status()
        async with aclosing(response.aiter_bytes()) as pieces:
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
    async with open_stream(
        url,
        method=method,
        json=json,
        content=content,
        headers=headers,
        proxy=proxy,
        proxy_ssl_context=proxy_ssl_context,
        trust_env=trust_env,
        timeout=timeout,
        ssl_context=ssl_context,
    ) as response:
        await response.raise_for_status()
        async with aclosing(response.aiter_text(encoding_errors)) as pieces:
            async for piece in pieces:
                yield piece
