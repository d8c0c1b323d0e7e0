"""The client: a pool of kept-alive connections, and one streamed exchange per call.

Each request is validated and built before anything is opened; then it takes a
connection (an idle one, most recently used first, or a new one in a free
slot), sends head and body in one write, reads the head and hands out the body
as it arrives. Timeouts are cancel scopes around single awaits, never around a
``yield``. The module functions (``_functions.py``) are a one-shot client:
one connection, closed at the end.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, aclosing, suppress
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import h11

from ._connection import Connection, ConnectTimings, Route, establish
from ._decoding import check_error_handler
from ._environment import proxy_from_environment
from ._exceptions import LocalProtocolError, RemoteProtocolError, TotalTimeout
from ._exchange import (
    INFINITY,
    Request,
    exchange,
    header_pairs,
    merge_headers,
    proxy_refused,
    seconds,
)
from ._http11 import HeaderInput, ResponseHead, ResponseReader, encode_body
from ._loop import LoopBinding, bind_to_running_loop
from ._pool import Pool
from ._response import Response, Timings
from ._sse import ServerSentEvent
from ._timeouts import DEFAULT_LIMITS, Limits, Timeout
from ._urls import URL, ProxyURL, check_base_url, join_url, parse_proxy_url, parse_url

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = ["Client"]

# TLS sessions kept for resumption, one per origin: a bound on a client that
# talks to many hosts.
_MAX_TLS_SESSIONS = 100

# Request URLs remembered parsed, per client: a chat program asks the same one
# or two URLs again and again (parsing one costs ~15 µs).
_MAX_PARSED_URLS = 64


def _check_context(value: object, name: str) -> ssl.SSLContext | None:
    if value is not None and not isinstance(value, ssl.SSLContext):
        raise LocalProtocolError(f"{name} must be an ssl.SSLContext, not {type(value).__name__}")
    return value


class Client:
    """A long-lived client: connections are kept alive and reused between requests.

    Use it as ``async with Client(...) as client:`` or call :meth:`aclose`.
    One client belongs to one event loop. Requests are the module functions'
    (:func:`open_stream`, :func:`stream_bytes`, :func:`stream_text`) with the
    transport settings given here once.

    Args:
        base_url: ``http(s)://host[:port][/path]`` that relative request URLs
            are joined to (``"chat/completions"`` or ``"/chat/completions"``
            both go below its path).
        headers: sent with every request; a request's own headers of the same
            name (any case) replace them.
        proxy: ``http://``, ``https://``, ``socks5://`` or ``socks5h://``
            proxy URL, credentials in it.
        proxy_ssl_context: verifies an ``https://`` proxy (default: system trust).
        trust_env: when ``proxy`` is ``None``, take the proxy from
            ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` per request, honouring
            ``NO_PROXY``.
        timeout: the default :class:`Timeout` (or seconds) of every request.
        ssl_context: verifies ``https://`` origins (default: system trust).
            TLS sessions are resumed only with this same context.
        limits: the pool's :class:`Limits`.
        replay_unanswered: replay a request once on a fresh connection when a
            *reused* connection failed before a single response byte came
            (the server closed it while idle: it cannot have answered).
            ``False`` turns this off.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        headers: HeaderInput = None,
        proxy: str | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = False,
        timeout: Timeout | float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits | None = None,
        replay_unanswered: bool = True,
    ) -> None:
        self._base_url = check_base_url(base_url) if base_url is not None else None
        self._headers = header_pairs(headers)
        self._proxy = parse_proxy_url(proxy) if proxy is not None else None
        self._trust_env = bool(trust_env)
        self._timeout = Timeout.of(timeout)
        # None: the system-trust default, built only when a TLS handshake needs it.
        self._ssl_context = _check_context(ssl_context, "ssl_context")
        self._proxy_ssl_context = _check_context(proxy_ssl_context, "proxy_ssl_context")
        if limits is not None and not isinstance(limits, Limits):
            raise LocalProtocolError(f"limits must be a Limits, not {type(limits).__name__}")
        self._limits = limits or DEFAULT_LIMITS
        self._pool = Pool(self._limits)
        self._replay = bool(replay_unanswered)
        self._tls_sessions: dict[object, ssl.SSLSession] = {}
        # False for the module functions' one-shot clients: they never open a
        # second connection, so a session would never be offered again.
        self._keeps_tls_sessions = True
        self._closed = False
        self._portal: BlockingPortal | None = None  # Set when blocking calls drive it.
        self._loop: LoopBinding | None = None  # The event loop it first ran on.
        self._parsed_urls: dict[str, tuple[str, URL]] = {}
        self._connecting: set[anyio.CancelScope] = set()  # Connections being made.

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._pool.open_connections} open"
        return f"<Client base_url={self._base_url!r} {state}>"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection; the client refuses requests from now on.

        Requests waiting for a slot or still connecting fail with
        :class:`LocalProtocolError`; ones reading a body fail as for a
        connection the server closed.
        """
        self._closed = True
        for scope in list(self._connecting):
            scope.cancel()
        self._pool.close()
        self._tls_sessions.clear()

    def close(self) -> None:
        """Close a client used from blocking code (``create_completion(client=...)``).

        Raises:
            LocalProtocolError: the client was not handed to a blocking call;
                close it with ``await client.aclose()`` in its event loop.
        """
        if self._closed:  # Also after the shared loop closed it at exit.
            return
        if self._portal is None:
            raise LocalProtocolError(
                "close() is for a Client used by create_completion; use await client.aclose()"
            )
        self._portal.call(self.aclose)

    def bind_to_portal(self, portal: BlockingPortal) -> None:
        """Run on ``portal``'s loop from now on (blocking calls share one loop thread)."""
        if self._portal is not None and self._portal is not portal:
            raise LocalProtocolError("this Client already runs on another loop thread")
        self._portal = portal

    @property
    def is_closed(self) -> bool:
        return self._closed

    def open_stream(
        self,
        url: str,
        *,
        method: str = "POST",
        json: object = None,
        content: bytes | str | None = None,
        headers: HeaderInput = None,
        timeout: Timeout | float | None = None,
        record_pieces: bool = False,
    ) -> AbstractAsyncContextManager[Response]:
        """Send one request and hold its response open: ``async with client.open_stream(...)``.

        On leaving the block, the connection goes back to the pool when the
        exchange ended cleanly (HTTP/1.1, no ``Connection: close``, a framed
        body read to its end, nothing left over, nothing failed); otherwise
        it is closed. Arguments and errors as :func:`acytoo_raw.open_stream`.

        Raises:
            PoolTimeout: no connection slot came free within ``Timeout.pool``.
            LocalProtocolError: also when the client is closed.
        """
        return _OpenStream(self, url, method, json, content, headers, timeout, record_pieces)

    async def _begin(
        self,
        url: str,
        method: str,
        json: object,
        content: bytes | str | None,
        headers: HeaderInput,
        timeout: Timeout | float | None,
        record_pieces: bool,
    ) -> tuple[Connection, ResponseReader, Response]:
        """Everything before the caller's block: the response, on its connection."""
        timings = Timings(time.perf_counter(), record_pieces=record_pieces)
        if self._closed:
            raise LocalProtocolError("this Client is closed; create a new one")
        request, data, reader_state = self._prepare(url, method, json, content, headers)
        limits = self._timeout if timeout is None else Timeout.of(timeout)
        clock = self._bound_loop().clock
        deadline = clock() + limits.total if limits.total is not None else INFINITY
        connection, reader, head = await self._start(
            request, data, reader_state, limits, deadline, timings
        )
        del reader_state, data  # Not kept alive for as long as the body streams.
        if head.status_code == 407 and request.route.mode == "forward":
            # Proxy authentication is never the origin's answer.
            self._pool.release(connection, reusable=False)
            raise proxy_refused(request.route, head)
        response = Response(
            request.url,
            head.status_code,
            head.reason.decode("latin-1"),
            head.http_version.decode("ascii"),
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers],
            reader,
            timings,
            min(seconds(limits.read), deadline - clock()),
        )
        return connection, reader, response

    async def _end(
        self,
        connection: Connection,
        reader: ResponseReader,
        response: Response,
        cancelled: bool,
    ) -> None:
        """Everything after the caller's block: the connection kept or closed."""
        try:
            if response.has_open_iterators():
                # The body may be half-read: its iterators must not outlive the
                # block (trio warns about generators left to the garbage collector).
                with anyio.CancelScope(shield=True):
                    await response.aclose_iterators()
        finally:
            # A clean exchange keeps its connection even when the caller's own
            # code raised afterwards (an HTTPStatusError after reading a small
            # error body): the reader alone knows whether the bytes were clean.
            reusable = reader.reusable and not cancelled
            self._pool.release(connection, reusable=reusable, expiry=self._expiry(response.headers))

    async def _start(
        self,
        request: Request,
        data: bytes,
        reader_state: h11.Connection | None,
        limits: Timeout,
        deadline: float,
        timings: Timings,
    ) -> tuple[Connection, ResponseReader, ResponseHead]:
        """Get a connection, send, read the head; replay once on a stale reused connection.

        The replay goes out on a new connection opened in the same slot, so
        it never queues behind later requests.
        """
        clock = self._pool.clock
        connection = await self._acquire(request.route, limits, deadline, timings)
        for attempt in (1, 2):
            reader = ResponseReader(connection.stream, reader_state, request.method.encode())
            encrypted_before = connection.tls_bytes_received
            try:
                head = await exchange(connection, data, reader, limits, deadline, clock, timings)
            except BaseException as exc:
                unanswered = (
                    not reader.received_any and connection.tls_bytes_received == encrypted_before
                )
                stale = (
                    timings.reused
                    and attempt == 1
                    and self._replay
                    and unanswered
                    and isinstance(exc, RemoteProtocolError)
                )
                if not stale:
                    self._pool.release(connection, reusable=False)
                    raise
                self._pool.discard(connection)  # Its slot stays ours for the replay.
                reader_state = request.encode()[1]  # A fresh h11 state for the replay.
                connection = await self._open_in_slot(request.route, limits, deadline, timings)
                continue
            timings.mark("head")
            if (
                not timings.reused
                and connection.tls is not None
                and self._keeps_tls_sessions
                and not self._closed
            ):
                # Once per connection, after its first response bytes (a session
                # taken before them has no ticket): reading it copies the whole
                # session, certificates and all (~0.3 ms), and on CPython 3.11
                # (and 3.12 before its late-2024 fix) each read leaks that copy,
                # ~6 KiB of C memory (python/cpython#116810).
                session = connection.tls_session()
                if session is not None:
                    self._remember_session(request.route.key, session)
            return connection, reader, head
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acquire(
        self, route: Route, limits: Timeout, deadline: float, timings: Timings
    ) -> Connection:
        """An idle connection for ``route``, or a new one in a free slot."""
        pool_limit = limits.pool
        left = deadline - self._pool.clock()
        if left < (pool_limit if pool_limit is not None else INFINITY):
            with anyio.move_on_after(left) as scope:
                connection = await self._pool.acquire(route.key, None)
            if scope.cancelled_caught:
                raise TotalTimeout("the request's total timeout ran out waiting for a connection")
        else:
            connection = await self._pool.acquire(route.key, pool_limit)
        timings.mark("queued")
        if connection is not None:
            timings.reused = True
            timings.tls_resumed = False
            return connection
        return await self._open_in_slot(route, limits, deadline, timings)

    async def _open_in_slot(
        self, route: Route, limits: Timeout, deadline: float, timings: Timings
    ) -> Connection:
        """Establish a connection in a slot this request holds; the slot is freed on failure."""
        timings.reused = False
        phases = ConnectTimings()
        try:
            # aclose() cancels this scope: a connection being made is not in
            # the pool's lists yet, and must not outlive the client.
            with anyio.CancelScope() as scope:
                self._connecting.add(scope)
                try:
                    connection: Connection | None = await establish(
                        route,
                        self._ssl_context,
                        self._proxy_ssl_context,
                        tls_session=self._tls_sessions.get(route.key),
                        limit=min(seconds(limits.connect), deadline - self._pool.clock()),
                        connect_limit=limits.connect,
                        timings=phases,
                    )
                finally:
                    self._connecting.discard(scope)
            if scope.cancelled_caught or self._closed:
                if not scope.cancelled_caught and connection is not None:
                    connection.close()
                raise LocalProtocolError("this Client was closed while connecting")
        except BaseException:
            self._pool.release_slot()
            raise
        assert connection is not None
        self._pool.track(connection)
        for name in ("connected", "tunnel", "tls"):
            at = getattr(phases, name)
            if at is not None:
                timings.mark(name, at)
        timings.tls_resumed = connection.tls_resumed
        return connection

    def _remember_session(self, key: object, session: ssl.SSLSession) -> None:
        sessions = self._tls_sessions
        sessions.pop(key, None)
        sessions[key] = session  # Most recent last; the oldest goes past the bound.
        if len(sessions) > _MAX_TLS_SESSIONS:
            del sessions[next(iter(sessions))]

    def _bound_loop(self) -> LoopBinding:
        """A client belongs to the event loop it first ran on; refuse any other, typed."""
        bound = self._loop
        if bound is not None and bound.is_current():
            return bound
        try:
            current = bind_to_running_loop()
        except Exception as exc:  # pragma: no cover - no loop: anyio said why
            raise LocalProtocolError(f"a Client runs inside an event loop: {exc}") from exc
        if bound is None:
            self._loop = current
            self._pool.clock = current.clock
            return current
        if bound.token == current.token:  # pragma: no cover - the quick check is exact
            return bound
        raise LocalProtocolError(
            "this Client belongs to another event loop (a Client, and its pooled "
            "connections, can't move between loops); create one per loop"
        )

    def _prepare(
        self,
        url: str,
        method: str,
        json: object,
        content: bytes | str | None,
        headers: HeaderInput,
    ) -> tuple[Request, bytes, h11.Connection | None]:
        url, target = self._parse(url)
        body, content_type = encode_body(json, content)
        request = Request(
            url,
            Route(target, self._proxy_for(target)),
            method,
            merge_headers(self._headers, headers),
            body,
            content_type,
        )
        data, reader_state = request.encode()
        return request, data, reader_state

    def _parse(self, url: str) -> tuple[str, URL]:
        """The URL to request, joined to ``base_url``, and its parts (remembered)."""
        known = self._parsed_urls.get(url) if type(url) is str else None
        if known is not None:
            return known
        if self._base_url is not None or not isinstance(url, str) or "://" not in url:
            full = join_url(self._base_url, url)
        else:
            full = url
        known = (full, parse_url(full))
        if type(url) is str:  # Not a subclass: a later hit must give back a plain str.
            if len(self._parsed_urls) >= _MAX_PARSED_URLS:
                self._parsed_urls.clear()
            self._parsed_urls[url] = known
        return known

    def _proxy_for(self, target: URL) -> ProxyURL | None:
        if self._proxy is not None:
            return self._proxy
        if not self._trust_env:
            return None
        from_env = proxy_from_environment(target, os.environ)
        return parse_proxy_url(from_env) if from_env is not None else None

    def _expiry(self, headers: list[tuple[str, str]]) -> float:
        expiry = self._limits.keepalive_expiry
        for name, value in headers:
            if name == "keep-alive":
                for parameter in value.split(","):
                    key, _, number = parameter.strip().partition("=")
                    if key.strip().lower() == "timeout":
                        with suppress(ValueError):
                            expiry = min(expiry, float(number.strip()))
        return expiry

    async def stream_bytes(
        self,
        url: str,
        *,
        method: str = "POST",
        json: object = None,
        content: bytes | str | None = None,
        headers: HeaderInput = None,
        timeout: Timeout | float | None = None,
        record_pieces: bool = False,
    ) -> AsyncGenerator[bytes, None]:
        """Stream the body as ``bytes`` pieces; :class:`HTTPStatusError` on a non-2xx status."""
        async with self.open_stream(
            url,
            method=method,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
            record_pieces=record_pieces,
        ) as response:
            await response.raise_for_status()
            async with aclosing(response.aiter_bytes()) as pieces:
                async for piece in pieces:
                    yield piece

    async def stream_text(
        self,
        url: str,
        *,
        method: str = "POST",
        json: object = None,
        content: bytes | str | None = None,
        headers: HeaderInput = None,
        timeout: Timeout | float | None = None,
        record_pieces: bool = False,
        encoding_errors: str = "replace",
    ) -> AsyncGenerator[str, None]:
        """Stream the body as decoded ``str`` pieces; errors as :meth:`stream_bytes`."""
        check_error_handler(encoding_errors)  # Before anything is sent.
        async with self.open_stream(
            url,
            method=method,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
            record_pieces=record_pieces,
        ) as response:
            await response.raise_for_status()
            async with aclosing(response.aiter_text(encoding_errors)) as pieces:
                async for piece in pieces:
                    yield piece

    async def stream_events(
        self,
        url: str,
        *,
        method: str = "POST",
        json: object = None,
        content: bytes | str | None = None,
        headers: HeaderInput = None,
        timeout: Timeout | float | None = None,
        record_pieces: bool = False,
    ) -> AsyncGenerator[ServerSentEvent, None]:
        """Stream the body as server-sent events; errors as :meth:`stream_bytes`.

        Sends ``Accept: text/event-stream`` unless the headers name an Accept.
        """
        headers = merge_headers([("accept", "text/event-stream")], headers)
        async with self.open_stream(
            url,
            method=method,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
            record_pieces=record_pieces,
        ) as response:
            await response.raise_for_status()
            async with aclosing(response.aiter_events()) as events:
                async for event in events:
                    yield event


class _OpenStream(AbstractAsyncContextManager[Response]):
    """The ``async with`` block of :meth:`Client.open_stream`.

    A class rather than ``@asynccontextmanager``: one generator, its frame
    and its wrapper fewer per request.
    """

    __slots__ = ("_arguments", "_client", "_entered", "_held")

    def __init__(
        self,
        client: Client,
        url: str,
        method: str,
        json: object,
        content: bytes | str | None,
        headers: HeaderInput,
        timeout: Timeout | float | None,
        record_pieces: bool,
    ) -> None:
        self._client = client
        self._arguments = (url, method, json, content, headers, timeout, record_pieces)
        self._held: tuple[Connection, ResponseReader, Response] | None = None
        self._entered = False

    async def __aenter__(self) -> Response:
        if self._entered:  # Before the await: two tasks can't both get in.
            raise RuntimeError("this open_stream() block was already entered")
        self._entered = True
        self._held = await self._client._begin(*self._arguments)
        return self._held[2]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        held, self._held = self._held, None
        if held is None:
            raise RuntimeError("this open_stream() block is not open")
        loop = self._client._loop
        cancelled = (
            exc_type is not None and loop is not None and issubclass(exc_type, loop.cancelled)
        )
        await self._client._end(*held, cancelled)
