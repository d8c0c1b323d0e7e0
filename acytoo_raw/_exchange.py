"""One request on one connection: the request made ready, sent, and its head read.

Nothing here knows about pools or reuse: :mod:`._client` decides which
connection an exchange runs on and whether a failed one is replayed. Time is
the client's loop clock (``anyio.current_time()``'s, looked up once), passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import h11

from ._connection import Connection, Route
from ._exceptions import (
    LocalProtocolError,
    ProxyError,
    ReadTimeout,
    RemoteProtocolError,
    TotalTimeout,
    WriteTimeout,
)
from ._http11 import HeaderInput, ResponseHead, ResponseReader, encode_request
from ._network import translate_errors
from ._response import Timings
from ._timeouts import Timeout

__all__ = [
    "INFINITY",
    "Request",
    "exchange",
    "header_pairs",
    "merge_headers",
    "proxy_refused",
    "seconds",
]

INFINITY = float("inf")


class Request:
    """A request validated and encoded before any connection is made."""

    __slots__ = ("body", "content_type", "headers", "method", "route", "url")

    def __init__(
        self,
        url: str,
        route: Route,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes,
        content_type: bytes | None,
    ) -> None:
        self.url = url
        self.route = route
        self.method = method
        self.headers = headers
        self.body = body
        self.content_type = content_type

    def encode(self) -> tuple[bytes, h11.Connection | None]:
        """The request's bytes, and the h11 state that reads its response (``None``:
        made only if the head needs h11, see :class:`ResponseReader`)."""
        route = self.route
        forward = route.mode == "forward"
        proxy = route.proxy
        return encode_request(
            self.method,
            route.target,
            self.headers,
            self.body,
            self.content_type,
            absolute_form=forward,
            proxy_authorization=proxy.authorization() if forward and proxy else None,
        )


async def exchange(
    connection: Connection,
    data: bytes,
    reader: ResponseReader,
    limits: Timeout,
    deadline: float,
    clock: Callable[[], float],
    timings: Timings,
) -> ResponseHead:
    """Send the request and read the response head.

    A send that fails because the server answered early (a 413 or 401 before
    reading a large body, then closing) still returns that answer.
    """
    socket = connection.socket
    send_error: RemoteProtocolError | None = None
    try:
        await _send(connection, data, limits, deadline, clock)
    except RemoteProtocolError as exc:
        send_error = exc
        # Answered before the request was sent whole: whatever the answer,
        # the server may still wait for the rest of it, so no reuse.
        reader.forbid_reuse()
        if socket.early_answer:  # Read through TLS while we waited to write.
            reader.prepend(socket.early_answer)
            socket.early_answer = b""
    timings.mark("sent")
    # The whole head must come within the read timeout (a trickling or
    # 1xx-flooding peer can't hold us), then `read` bounds each silence.
    head_deadline = clock() + seconds(limits.read)
    if head_deadline < deadline:
        message = f"no complete response head within {limits.read} s"
        if connection.route.mode == "forward":  # The proxy answers for the origin.
            message += f" from {connection.route.first_hop}"
        socket.set_read_limits(None, head_deadline, ReadTimeout, message)
    else:
        socket.set_read_limits(None, deadline)
    try:
        with translate_errors("read"):
            head = await reader.receive_head()
    except RemoteProtocolError:
        if send_error is not None and not reader.received_any:
            raise send_error from None
        raise
    socket.set_read_limits(limits.read, deadline)
    return head


async def _send(
    connection: Connection,
    data: bytes,
    limits: Timeout,
    deadline: float,
    clock: Callable[[], float],
) -> None:
    """Write the request; only a send that has to wait is bounded (no cancel scope
    for the common one the kernel takes at once)."""
    socket = connection.socket
    now = clock()
    write = limits.write
    if write is not None and now + write <= deadline:
        error: type[WriteTimeout | TotalTimeout] = WriteTimeout
        end, message = now + write, f"sending the request took longer than {write} s"
    elif deadline != INFINITY:
        error = TotalTimeout
        end, message = deadline, "the request's total timeout ran out while sending"
    else:
        error, end, message = WriteTimeout, INFINITY, ""
    # A TLS layer that must read while writing is bounded the same way.
    socket.set_read_limits(None, end, error, message)
    stream = connection.stream
    socket.set_write_limit(end, error, message, None if stream is socket else stream)
    try:
        with translate_errors("write"):
            await stream.send(data)
    finally:
        socket.set_write_limit()


def proxy_refused(route: Route, head: ResponseHead) -> ProxyError:
    reason = head.reason.decode("latin-1")
    return ProxyError(
        f"{route.first_hop} refused to forward the request to {route.target.authority}: "
        f"{head.status_code} {reason}".rstrip(),
        status_code=head.status_code,
        reason=reason,
    )


def seconds(limit: float | None) -> float:
    return INFINITY if limit is None else limit


def header_pairs(headers: HeaderInput) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    try:
        return [(name, value) for name, value in items]
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(
            f"headers must be a mapping or (name, value) pairs: {exc}"
        ) from exc


def merge_headers(base: list[tuple[str, str]], extra: HeaderInput) -> list[tuple[str, str]]:
    """``base`` with every header named in ``extra`` (any case) replaced by ``extra``'s.

    Always a list of pairs, read from ``extra`` once: ``headers=42`` fails
    here as a LocalProtocolError, and a replay builds from the same pairs.
    """
    pairs = header_pairs(extra)
    if not base:
        return pairs
    if not pairs:
        return base
    replaced = {str(name).lower() for name, _ in pairs if isinstance(name, (str, bytes))}
    kept = [(name, value) for name, value in base if str(name).lower() not in replaced]
    return kept + pairs
