"""A loopback HTTP/1.1 server (anyio + h11) for demos, tests and benchmarks: Acytoo and OpenAI.

Both dialects answer with the same deterministic echo: the last user message,
piece by piece (see :func:`reply_pieces`), with ``delay`` seconds between two
pieces. Runs on asyncio (uvloop too) and trio; no dependency beyond anyio and h11.

Acytoo (the original API)
    ``POST /api/completions`` with the Acytoo JSON payload answers ``200`` with a
    chunked ``text/plain; charset=utf-8`` body, one HTTP chunk per piece.
    Errors answer with a JSON ``{"msg": "..."}`` body, as the original backend did.

OpenAI-compatible (``base_url`` is ``http://HOST:PORT/v1``)
    ``POST /v1/chat/completions`` with ``"stream": true`` answers server-sent
    events (``text/event-stream``, chunked): a role chunk
    (``delta: {"role": "assistant", "content": ""}``), one content chunk per
    piece, a chunk with ``finish_reason: "stop"``, a usage chunk
    (``choices: []``) when ``stream_options.include_usage`` is true, then
    ``data: [DONE]``. Without ``stream`` it answers one ``chat.completion``
    object, after the time streaming would have taken. ``GET /v1/models``
    lists :data:`MODELS`. Any model name is accepted and echoed back
    (:data:`DEFAULT_MODEL` when the request names none). Usage counts words,
    not tokens: ``prompt_tokens`` are the whitespace-separated words of all
    messages, ``completion_tokens`` the number of pieces. Errors under ``/v1``
    have OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.

    Faults on demand, for testing clients: a streamed request with the header
    ``x-acytoo-fault`` (:data:`FAULT_HEADER`) set to one of :data:`FAULTS`
    gets, after ``200``:

    - ``truncate``: the role chunk and the first half of the pieces, then a
      clean HTTP end: no ``finish_reason``, no ``[DONE]``;
    - ``error``: the same first half, then
      ``data: {"error": {"message": ..., "type": "server_error", ...}}`` and a
      clean end;
    - ``malformed``: the first half, one ``data:`` line of cut-off JSON, then
      the rest of the answer and a normal end with ``[DONE]``;
    - ``no-done``: the whole answer and its ``finish_reason`` chunk (and usage),
      but no ``[DONE]``: a legal end.

    An unknown fault name, or a fault on a request that is not streamed, is a 400.

Limits (each a named constant): a request head over :data:`MAX_HEAD_BYTES` is
refused with 431 however it arrives; a body over :data:`MAX_BODY_BYTES` (or
over :data:`MAX_BODY_WIRE_BYTES` of chunked framing) with 413. A connection
silent for ``idle_timeout`` seconds, a head not complete ``head_timeout``
seconds after its first byte, or a body not complete ``body_timeout`` seconds
after its head is dropped without a reply, so a client trickling a byte at a
time cannot hold a connection forever. There is no cap on the number of
connections beyond the process's file-descriptor limit (an ``accept()`` that
fails for lack of them is retried after a pause); the deadlines bound how long
each one can be held without sending a whole request.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import h11
from anyio.abc import ByteStream, SocketAttribute, SocketListener, TaskGroup
from anyio.streams.tls import TLSStream

from . import _server_openai as openai
from ._server_http import (
    MAX_BODY_BYTES,
    MAX_BODY_WIRE_BYTES,
    MAX_HEAD_BYTES,
    BadRequest,
    ConnectionGone,
    Exchange,
    HTTPConnection,
    Timeouts,
    raw_response,
)
from ._server_openai import DEFAULT_MODEL, FAULT_HEADER, FAULTS, MODELS

__all__ = [
    "BODY_TIMEOUT",
    "COMPLETIONS_PATH",
    "DEFAULT_MODEL",
    "DEFAULT_REPLY",
    "FAULTS",
    "FAULT_HEADER",
    "HANDSHAKE_TIMEOUT",
    "HEAD_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_BODY_BYTES",
    "MAX_BODY_WIRE_BYTES",
    "MAX_HEAD_BYTES",
    "MODELS",
    "OPENAI_CHAT_PATH",
    "OPENAI_MODELS_PATH",
    "reply_pieces",
    "serve",
    "serve_forever",
]

COMPLETIONS_PATH = "/api/completions"
OPENAI_CHAT_PATH = openai.CHAT_PATH
OPENAI_MODELS_PATH = openai.MODELS_PATH
# The answer when there is no user message to echo (or it is empty).
DEFAULT_REPLY = "Hello! This is the acytoo_raw loopback server."

# A client silent (or not reading) for this long is dropped, so dead peers don't pin tasks.
IDLE_TIMEOUT = 30.0
# A whole request head, from its first byte: real ones arrive in one packet.
HEAD_TIMEOUT = 10.0
# A whole request body, from the end of its head: a MiB over a slow link, with room.
BODY_TIMEOUT = 30.0
# A TLS handshake stalled this long is dropped; a real one takes milliseconds on loopback.
HANDSHAKE_TIMEOUT = 10.0

# accept() failing (e.g. out of file descriptors): wait for some to free instead of spinning.
_ACCEPT_BACKOFF = 0.1
_JSON = b"application/json"

_WORD = re.compile(r"\s*\S+\s*|\s+")
_log = logging.getLogger(__name__)


def reply_pieces(
    messages: Sequence[Mapping[str, object]], piece_size: int | None = None
) -> list[str]:
    """Split the reply to ``messages`` into the pieces the server streams.

    The reply is the content of the last message whose role is ``"user"``, or
    :data:`DEFAULT_REPLY` when there is none or its content is empty (or not a
    string). ``"".join(pieces)`` always equals that reply exactly.

    Args:
        messages: Acytoo chat messages (mappings with ``role`` and ``content``).
        piece_size: ``None`` for word by word (each word with the whitespace that
            follows it; leading whitespace rides with the first word), or a number
            of characters (code points) per piece.

    Raises:
        ValueError: ``piece_size`` is not ``None`` and smaller than 1.
    """
    if piece_size is not None and piece_size < 1:
        raise ValueError(f"piece_size must be None or >= 1, got {piece_size!r}")
    text = DEFAULT_REPLY
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and content:
                text = content
            break
    if piece_size is None:
        return _WORD.findall(text)
    return [text[i : i + piece_size] for i in range(0, len(text), piece_size)]


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    delay: float = 0.0,
    piece_size: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    head_timeout: float = HEAD_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
) -> AsyncIterator[str]:
    """Run the loopback server for the duration of the ``async with`` block.

    Yields the base URL (``http://127.0.0.1:PORT``, or ``https://`` with
    ``ssl_context``); ``port=0`` picks a free port. Leaving the block stops
    accepting and closes every open connection at once.

    Args:
        host: address to listen on (IPv6 literals are bracketed in the URL).
        port: TCP port, 0 for any free one.
        delay: seconds to wait between two pieces of a reply.
        piece_size: see :func:`reply_pieces`.
        ssl_context: a server-side context with a certificate loaded; enables TLS.
        idle_timeout: seconds a client may stay silent (or not read) before it is dropped.
        head_timeout: seconds a request head may take, from its first byte.
        body_timeout: seconds a request body may take, from the end of its head.

    Raises:
        ValueError: a negative ``delay``, a ``piece_size`` below 1 or a timeout not above 0.
        OSError: the address cannot be bound.
    """
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay!r}")
    if piece_size is not None and piece_size < 1:
        raise ValueError(f"piece_size must be None or >= 1, got {piece_size!r}")
    timeouts = Timeouts(idle=idle_timeout, head=head_timeout, body=body_timeout)
    config = _Config(delay=delay, piece_size=piece_size, ssl_context=ssl_context, timeouts=timeouts)
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound_port = listener.extra(SocketAttribute.local_port)
    url_host = f"[{host}]" if ":" in host else host
    url = f"{'https' if ssl_context else 'http'}://{url_host}:{bound_port}"
    # A task group wraps even the body's own exception in an ExceptionGroup (strict
    # groups on trio): keep the body's exception aside and re-raise it bare.
    failure: BaseException | None = None
    async with listener, anyio.create_task_group() as tg:
        for sub in listener.listeners:  # TCP listeners, typed only as Listener by anyio
            tg.start_soon(_accept_loop, cast(SocketListener, sub), tg, config)
        try:
            yield url
        except BaseException as exc:
            failure = exc
        finally:
            tg.cancel_scope.cancel()
    if failure is not None:
        try:
            raise failure
        finally:
            failure = None  # break the frame <-> traceback cycle


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    delay: float = 0.0,
    piece_size: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    head_timeout: float = HEAD_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the loopback server until cancelled; for the CLI.

    Arguments are those of :func:`serve`; ``on_ready`` is called once with the
    base URL as soon as the server is listening.
    """
    async with serve(
        host,
        port,
        delay=delay,
        piece_size=piece_size,
        ssl_context=ssl_context,
        idle_timeout=idle_timeout,
        head_timeout=head_timeout,
        body_timeout=body_timeout,
    ) as url:
        if on_ready is not None:
            on_ready(url)
        await anyio.sleep_forever()


@dataclass(frozen=True, slots=True)
class _Config:
    delay: float
    piece_size: int | None
    ssl_context: ssl.SSLContext | None
    timeouts: Timeouts
    # Numbers the OpenAI completion ids of this server: deterministic per run.
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


async def _accept_loop(listener: SocketListener, tg: TaskGroup, config: _Config) -> None:
    # Our own loop rather than Listener.serve(): one failed accept() must not stop serving.
    while True:
        try:
            stream = await listener.accept()
        except anyio.ClosedResourceError:
            return
        except (OSError, anyio.BrokenResourceError):
            _log.debug("accept() failed", exc_info=True)
            await anyio.sleep(_ACCEPT_BACKOFF)
            continue
        # anyio already sets TCP_NODELAY on accepted sockets (asyncio and trio alike),
        # so each piece leaves at once.
        tg.start_soon(_handle_connection, stream, config)


async def _handle_connection(stream: ByteStream, config: _Config) -> None:
    try:
        if config.ssl_context is not None:
            with anyio.move_on_after(HANDSHAKE_TIMEOUT):
                stream = await TLSStream.wrap(
                    stream,
                    server_side=True,
                    ssl_context=config.ssl_context,
                    standard_compatible=False,
                )
            if not isinstance(stream, TLSStream):
                return
        await _serve_connection(HTTPConnection(stream, config.timeouts), config)
    except Exception:
        # One client's failure (reset, TLS alert, even a bug of ours) must never reach
        # the accept loop; debug level so nothing is printed unless asked for.
        _log.debug("connection dropped", exc_info=True)
    finally:
        await anyio.aclose_forcefully(stream)


async def _serve_connection(http: HTTPConnection, config: _Config) -> None:
    """Serve requests until the client leaves, keep-alive ends or a request is refused."""
    try:
        while True:
            exchange: Exchange | None = None
            try:
                exchange = await http.next_request()
                if exchange is None:
                    return  # the client hung up between requests
                await _answer(exchange, config)
            except BadRequest as exc:
                if exchange is None:  # h11 never parsed it: no state to answer through
                    body = _error_body(exc.openai, exc.status, str(exc))
                    await http.send_raw(raw_response(exc.status, body, _JSON))
                else:
                    await _send_error(exchange, exc.status, str(exc))
                await http.linger()
                return
            if not exchange.keep_alive:
                if not exchange.body_done:
                    await http.linger()
                return
    except ConnectionGone:
        pass


# Path -> the methods it answers.
_ROUTES: Mapping[bytes, tuple[bytes, ...]] = {
    COMPLETIONS_PATH.encode(): (b"POST",),
    OPENAI_CHAT_PATH.encode(): (b"POST",),
    OPENAI_MODELS_PATH.encode(): (b"GET", b"HEAD"),
}


async def _answer(exchange: Exchange, config: _Config) -> None:
    """Route one request and answer it."""
    request = exchange.request
    path = request.target.split(b"?", 1)[0]
    methods = _ROUTES.get(path)
    status = 404 if methods is None else 405 if request.method not in methods else 200
    body: bytearray | None = None
    if status == 200 or not exchange.waiting_for_continue:
        # Read even a body we will refuse, so the connection stays usable.
        body = await exchange.read_body(send_continue=status == 200)
    shown = f"{request.method.decode('ascii', 'replace')} {path.decode('ascii', 'replace')}"
    if methods is None:
        message = f"Invalid URL ({shown})" if exchange.openai else f"not found: {shown}"
        await _send_error(exchange, 404, message)
    elif status == 405:
        allow = [(b"allow", b", ".join(methods))]
        await _send_error(exchange, 405, f"method not allowed: {shown}", allow)
    elif body is None:
        await _send_error(exchange, 413, exchange.too_large or "request body too large")
    elif path == b"/api/completions":
        await _answer_acytoo(exchange, body, config)
    elif request.method == b"POST":
        await _answer_chat(exchange, body, config)
    else:
        await exchange.send_body(200, openai.models_body(), _JSON)


async def _answer_acytoo(exchange: Exchange, body: bytearray, config: _Config) -> None:
    try:
        messages = _parse_messages(body)
    except _BadPayload as exc:
        await _send_error(exchange, 400, str(exc))
        return
    pieces = reply_pieces(messages, config.piece_size)
    content_type = (b"content-type", b"text/plain; charset=utf-8")
    await exchange.send(h11.Response(status_code=200, headers=[content_type], reason=b"OK"))
    for index, piece in enumerate(pieces):
        if index and config.delay:
            await anyio.sleep(config.delay)
        # One write per piece: a streaming client must see each one arrive alone.
        await exchange.send(h11.Data(data=piece.encode("utf-8")))
    await exchange.send(h11.EndOfMessage())


async def _answer_chat(exchange: Exchange, body: bytearray, config: _Config) -> None:
    try:
        chat = openai.parse_chat_request(body)
    except openai.RequestError as exc:
        await _send_error(exchange, 400, str(exc), param=exc.param)
        return
    fault = _fault(exchange.request)
    if fault is not None and fault not in FAULTS:
        known = ", ".join(sorted(FAULTS))
        await _send_error(exchange, 400, f"unknown {FAULT_HEADER} {fault!r}; known: {known}")
        return
    if fault is not None and not chat.stream:
        await _send_error(exchange, 400, f"{FAULT_HEADER} applies to streamed requests only")
        return
    pieces = reply_pieces(chat.messages, config.piece_size)
    completion_id = f"chatcmpl-acytoo{next(config.ids)}"
    created = int(time.time())
    if not chat.stream:
        if config.delay and len(pieces) > 1:  # answer when streaming would have finished
            await anyio.sleep(config.delay * (len(pieces) - 1))
        answer = openai.completion_body(chat, pieces, completion_id=completion_id, created=created)
        await exchange.send_body(200, answer, _JSON)
        return
    frames = openai.stream_frames(
        chat, pieces, completion_id=completion_id, created=created, fault=fault
    )
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await exchange.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
    first = True
    for frame in frames:
        if frame.paced:
            if not first and config.delay:
                await anyio.sleep(config.delay)
            first = False
        # One write per event: a streaming client must see each one arrive alone.
        await exchange.send(h11.Data(data=frame.data))
    await exchange.send(h11.EndOfMessage())


def _fault(request: h11.Request) -> str | None:
    name = FAULT_HEADER.encode("ascii")
    for key, value in request.headers:
        if key == name:
            return value.decode("ascii", "replace").strip().lower()
    return None


def _error_body(openai_dialect: bool, status: int, message: str, param: str | None = None) -> bytes:
    if openai_dialect:
        return openai.error_body(status, message, param)
    return json.dumps({"msg": message}).encode("utf-8")


async def _send_error(
    exchange: Exchange,
    status: int,
    message: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
    *,
    param: str | None = None,
) -> None:
    body = _error_body(exchange.openai, status, message, param)
    await exchange.send_body(status, body, _JSON, extra)


class _BadPayload(Exception):
    """The Acytoo payload is unusable; the message goes to the client in a 400 reply."""


def _parse_messages(body: bytes | bytearray) -> list[dict[str, Any]]:
    """The ``messages`` of an Acytoo payload; raises _BadPayload with the reason."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
        raise _BadPayload("request body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise _BadPayload("request body must be a JSON object")
    messages = payload.get("messages")
    if not isinstance(messages, list):
        raise _BadPayload("'messages' must be a list")
    for message in messages:
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise _BadPayload("each message must be an object with string 'role' and 'content'")
        try:
            message["content"].encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate from a "\ud800" escape
            raise _BadPayload("message content is not valid Unicode") from exc
    return messages
