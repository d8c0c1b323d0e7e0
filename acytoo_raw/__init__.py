"""acytoo_raw: a small raw-socket streaming client for chat APIs (Acytoo, OpenAI-compatible).

anyio for TCP and TLS, h11 for HTTP/1.1, an incremental decoder for text and
server-sent events; runs unchanged on asyncio (uvloop too) and trio.
"""

from ._client import Client, open_stream, stream_bytes, stream_events, stream_text
from ._exceptions import (
    AcytooError,
    ConnectError,
    ConnectTimeout,
    HTTPStatusError,
    LocalProtocolError,
    PoolTimeout,
    ProxyError,
    ReadTimeout,
    RemoteProtocolError,
    StreamError,
    TimeoutException,
    TLSError,
    TotalTimeout,
    WriteTimeout,
)
from ._response import Response, Timings
from ._sse import ServerSentEvent
from ._timeouts import DEFAULT_LIMITS, DEFAULT_TIMEOUT, Limits, Timeout
from .provider import Acytoo

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "Acytoo",
    "AcytooError",
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "HTTPStatusError",
    "Limits",
    "LocalProtocolError",
    "PoolTimeout",
    "ProxyError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Response",
    "ServerSentEvent",
    "StreamError",
    "TLSError",
    "Timeout",
    "TimeoutException",
    "Timings",
    "TotalTimeout",
    "WriteTimeout",
    "open_stream",
    "stream_bytes",
    "stream_events",
    "stream_text",
]

__version__ = "0.2.0"
