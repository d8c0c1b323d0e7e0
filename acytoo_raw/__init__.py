"""acytoo_raw: a small raw-socket streaming client for the Acytoo chat API.

anyio for TCP and TLS, h11 for HTTP/1.1, an incremental decoder for text;
runs unchanged on asyncio and trio.
"""

from ._client import Response, open_stream, stream_bytes, stream_text
from ._exceptions import (
    AcytooError,
    ConnectError,
    ConnectTimeout,
    HTTPStatusError,
    LocalProtocolError,
    ProxyError,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutException,
    TLSError,
    TotalTimeout,
    WriteTimeout,
)
from ._timeouts import DEFAULT_TIMEOUT, Timeout
from .provider import Acytoo

__all__ = [
    "DEFAULT_TIMEOUT",
    "Acytoo",
    "AcytooError",
    "ConnectError",
    "ConnectTimeout",
    "HTTPStatusError",
    "LocalProtocolError",
    "ProxyError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Response",
    "TLSError",
    "Timeout",
    "TimeoutException",
    "TotalTimeout",
    "WriteTimeout",
    "open_stream",
    "stream_bytes",
    "stream_text",
]

__version__ = "0.1.0"
