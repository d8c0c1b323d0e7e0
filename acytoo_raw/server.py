"""An Acytoo-compatible loopback HTTP/1.1 server (anyio + h11) for demos, tests and benchmarks.

``POST /api/completions`` with the Acytoo JSON payload answers ``200`` with a
chunked ``text/plain; charset=utf-8`` body: the last user message echoed back
piece by piece (see :func:`reply_pieces`), with an optional delay between
pieces. Errors answer with a JSON ``{"msg": "..."}`` body, as the original
backend did. Runs on asyncio and trio; no dependency beyond anyio and h11.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import anyio
import h11
from anyio.abc import ByteStream, SocketAttribute, SocketListener, TaskGroup
from anyio.streams.tls import TLSStream

__all__ = [
    "COMPLETIONS_PATH",
    "DEFAULT_REPLY",
    "HANDSHAKE_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "reply_pieces",
    "serve",
    "serve_forever",
]

COMPLETIONS_PATH = "/api/completions"
# The answer when there is no user message to echo (or it is empty).
DEFAULT_REPLY = "Hello! This is the acytoo_raw loopback server."

# Request line + headers; far above any real chat request, refused with 431 beyond.
MAX_HEAD_BYTES = 16 * 1024
# A chat history is kilobytes; anything beyond this is refused with 413 instead of buffered.
MAX_BODY_BYTES = 1024 * 1024
# A client silent (or not reading) for this long is dropped, so dead peers don't pin tasks.
IDLE_TIMEOUT = 30.0
# A TLS handshake stalled this long is dropped; a real one takes milliseconds on loopback.
HANDSHAKE_TIMEOUT = 10.0

# One receive at most; larger reads only grow the buffer h11 has to scan.
_RECEIVE_SIZE = 64 * 1024
# After an early error reply, keep reading what the client still sends for a while,
# so closing doesn't turn into a TCP reset that destroys the reply before it is read.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = MAX_BODY_BYTES
# accept() failing (e.g. out of file descriptors): wait for some to free instead of spinning.
_ACCEPT_BACKOFF = 0.1

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

    Raises:
        ValueError: a negative ``delay`` or a ``piece_size`` below 1.
        OSError: the address cannot be bound.
    """
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay!r}")
    if piece_size is not None and piece_size < 1:
        raise ValueError(f"piece_size must be None or >= 1, got {piece_size!r}")
    config = _Config(delay=delay, piece_size=piece_size, ssl_context=ssl_context)
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
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the loopback server until cancelled; for the CLI.

    Arguments are those of :func:`serve`; ``on_ready`` is called once with the
    base URL as soon as the server is listening.
    """
    async with serve(
        host, port, delay=delay, piece_size=piece_size, ssl_context=ssl_context
    ) as url:
        if on_ready is not None:
            on_ready(url)
        await anyio.sleep_forever()


@dataclass(frozen=True, slots=True)
class _Config:
    delay: float
    piece_size: int | None
    ssl_context: ssl.SSLContext | None


class _Drop(Exception):
    """The connection is beyond saving (timed out, peer gone): close it silently."""


class _BadRequest(Exception):
    """The payload is unusable; the message goes to the client in a 400 reply."""


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
        await _Connection(stream, config).run()
    except Exception:
        # One client's failure (reset, TLS alert, even a bug of ours) must never reach
        # the accept loop; debug level so nothing is printed unless asked for.
        _log.debug("connection dropped", exc_info=True)
    finally:
        await anyio.aclose_forcefully(stream)


class _Connection:
    """One client connection: a loop of request/response exchanges driven by h11."""

    def __init__(self, stream: ByteStream, config: _Config) -> None:
        self._stream = stream
        self._config = config
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._method = b""

    async def run(self) -> None:
        """Serve requests until the client leaves, keep-alive ends or a reply fails."""
        try:
            while await self._exchange():
                if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
                    self._h11.start_next_cycle()
                    continue
                if self._h11.their_state is not h11.MUST_CLOSE:
                    await self._linger()
                return
        except h11.RemoteProtocolError as exc:
            if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self._send_error(exc.error_status_hint, f"malformed request: {exc}")
                await self._linger()
        except _Drop:
            pass

    async def _exchange(self) -> bool:
        """Read one request and answer it; False when the client is gone."""
        request = await self._next_event()
        if not isinstance(request, h11.Request):
            return False  # ConnectionClosed: the client hung up between requests
        self._method = request.method
        path = request.target.split(b"?", 1)[0]
        if path != COMPLETIONS_PATH.encode():
            status = 404
        elif request.method != b"POST":
            status = 405
        else:
            status = 200
        body: bytes | None = None
        if status == 200 or not self._h11.client_is_waiting_for_100_continue:
            # Read even a body we will refuse, so the connection stays usable.
            body = await self._read_body(request, send_continue=status == 200)
        if status == 404:
            await self._send_error(404, f"not found: {path.decode('ascii', 'replace')}")
        elif status == 405:
            await self._send_error(405, "method not allowed", [(b"allow", b"POST")])
        elif body is None:
            await self._send_error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        else:
            await self._answer(body)
        return True

    async def _answer(self, body: bytes) -> None:
        try:
            messages = _parse_messages(body)
        except _BadRequest as exc:
            await self._send_error(400, str(exc))
            return
        await self._stream_reply(reply_pieces(messages, self._config.piece_size))

    async def _read_body(self, request: h11.Request, *, send_continue: bool) -> bytes | None:
        """The whole request body, or None when it exceeds MAX_BODY_BYTES (left unread)."""
        for name, value in request.headers:
            # h11 has already checked the value is digits and consistent.
            if name == b"content-length" and int(value) > MAX_BODY_BYTES:
                return None
        if send_continue and self._h11.client_is_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        parts: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            if not isinstance(event, h11.Data):
                raise _Drop  # h11 reports a cut body as an error, so this is unreachable
            size += len(event.data)
            if size > MAX_BODY_BYTES:
                return None
            parts.append(event.data)

    async def _stream_reply(self, pieces: list[str]) -> None:
        await self._send(
            h11.Response(
                status_code=200,
                headers=[(b"content-type", b"text/plain; charset=utf-8")],
                reason=b"OK",
            )
        )
        for index, piece in enumerate(pieces):
            if index and self._config.delay:
                await anyio.sleep(self._config.delay)
            # One write per piece: a streaming client must see each one arrive alone.
            await self._send(h11.Data(data=piece.encode("utf-8")))
        await self._send(h11.EndOfMessage())

    async def _send_error(
        self, status: int, msg: str, extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        body = json.dumps({"msg": msg}).encode("utf-8")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            *extra,
        ]
        if self._h11.their_state is not h11.DONE:
            # The rest of the request stays unread, so this connection can't carry another.
            headers.append((b"connection", b"close"))
        reason = HTTPStatus(status).phrase.encode("ascii")
        events: list[h11.Event] = [h11.Response(status_code=status, headers=headers, reason=reason)]
        if self._method != b"HEAD":  # h11 refuses a body on a reply to HEAD
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await self._send(*events)

    async def _next_event(self) -> object:
        """The next h11 event, reading from the socket as needed."""
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = b""
            with anyio.move_on_after(IDLE_TIMEOUT) as scope:
                # h11 learns of EOF from b"" (and then spots a request cut short).
                with suppress(anyio.EndOfStream):
                    data = await self._stream.receive(_RECEIVE_SIZE)
            if scope.cancelled_caught:
                raise _Drop
            self._h11.receive_data(data)

    async def _send(self, *events: h11.Event) -> None:
        data = b"".join(self._h11.send(event) or b"" for event in events)
        with anyio.move_on_after(IDLE_TIMEOUT) as scope:
            await self._stream.send(data)
        if scope.cancelled_caught:
            raise _Drop

    async def _linger(self) -> None:
        """Drain what the client still sends, briefly, before the connection closes."""
        # Half-close so the client sees the end of our reply at once; TLS has no
        # half-close, so a TLS client waits out the linger (or closes first).
        with suppress(NotImplementedError, anyio.BrokenResourceError, OSError):
            await self._stream.send_eof()
        with anyio.move_on_after(_LINGER_SECONDS):
            drained = 0
            while drained < _LINGER_BYTES:
                try:
                    drained += len(await self._stream.receive(_RECEIVE_SIZE))
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return


def _parse_messages(body: bytes) -> list[dict[str, Any]]:
    """The ``messages`` of an Acytoo payload; raises _BadRequest with the reason."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
        raise _BadRequest("request body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise _BadRequest("request body must be a JSON object")
    messages = payload.get("messages")
    if not isinstance(messages, list):
        raise _BadRequest("'messages' must be a list")
    for message in messages:
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise _BadRequest("each message must be an object with string 'role' and 'content'")
        try:
            message["content"].encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate from a "\ud800" escape
            raise _BadRequest("message content is not valid Unicode") from exc
    return messages
