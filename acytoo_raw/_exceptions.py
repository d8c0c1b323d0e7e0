"""The one exception hierarchy of acytoo_raw.

Every error a caller can see derives from :class:`AcytooError`. Foreign
exceptions (``OSError``, ``ssl.SSLError``, anyio and h11 errors) are translated
at the I/O boundary and kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AcytooError",
    "ConnectError",
    "ConnectTimeout",
    "HTTPStatusError",
    "LocalProtocolError",
    "PoolTimeout",
    "ProxyError",
    "ReadTimeout",
    "RemoteProtocolError",
    "StreamError",
    "TLSError",
    "TimeoutException",
    "TotalTimeout",
    "WriteTimeout",
]


class AcytooError(Exception):
    """Base class of every error raised by acytoo_raw."""


class ConnectError(AcytooError):
    """The TCP connection could not be opened (refused, unreachable, unresolvable)."""


class TimeoutException(AcytooError, TimeoutError):
    """Base of the five timeouts; also a builtin :class:`TimeoutError`."""


class PoolTimeout(TimeoutException):
    """No connection slot of a :class:`~acytoo_raw.Client` came free within ``Timeout.pool``."""


class ConnectTimeout(TimeoutException):
    """Connecting (TCP, TLS handshake, proxy tunnel) took longer than ``Timeout.connect``."""


class ReadTimeout(TimeoutException):
    """The peer stayed silent for longer than ``Timeout.read``."""


class WriteTimeout(TimeoutException):
    """Sending the request took longer than ``Timeout.write``."""


class TotalTimeout(TimeoutException):
    """The whole exchange took longer than ``Timeout.total``."""


class TLSError(AcytooError):
    """The TLS handshake failed, for example on an untrusted or mismatched certificate."""


class ProxyError(AcytooError):
    """The proxy refused or broke the tunnel.

    ``status_code`` and ``reason`` hold the proxy's answer to CONNECT when it
    answered with a status line; both are ``None`` when it never did (closed
    early, answered garbage).
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason


class RemoteProtocolError(AcytooError):
    """The server broke HTTP/1.1: malformed or oversized head, truncated body."""


class StreamError(AcytooError):
    """The server reported an error inside a stream it had begun with a 2xx status.

    OpenAI-compatible servers send ``data: {"error": {...}}`` after HTTP 200
    when generation fails; ``message`` and ``type`` are the server's (``type``
    may be ``None``), ``code`` its optional code.
    """

    def __init__(self, message: str, *, type: str | None = None, code: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.code = code


class LocalProtocolError(AcytooError, ValueError):
    """The caller's input cannot be sent (bad URL, CR/LF in a header value, ...).

    Raised before any connection is opened. Also a :class:`ValueError`.
    """


class HTTPStatusError(AcytooError):
    """The server answered with a non-2xx status.

    ``body`` holds at most the first 64 KiB of the error body, read within the
    request's timeouts; ``headers`` are the response headers as
    ``(name, value)`` pairs of ``str``, names lower-cased.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        reason: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason
        self.headers = list(headers)
        self.body = body
