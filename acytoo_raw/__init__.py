"""acytoo_raw: a small raw-socket streaming client for chat APIs (Acytoo, OpenAI-compatible).

anyio for TCP and TLS, h11 for HTTP/1.1, an incremental decoder for text and
server-sent events; runs unchanged on asyncio (uvloop too) and trio.

The errors and settings load with the package; everything else loads on first
use (``acytoo_raw.Client``, ``acytoo_raw.stream_text``, ...), so importing the
package costs little more than importing its errors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from ._timeouts import DEFAULT_LIMITS, DEFAULT_TIMEOUT, Limits, Timeout

if TYPE_CHECKING:
    from ._client import Client
    from ._functions import open_stream, stream_bytes, stream_events, stream_text
    from ._response import Response, Timings
    from ._sse import ServerSentEvent
    from .openai import ChatStream, OpenAIChat
    from .provider import Acytoo

# Public name -> the module that defines it, imported on first access.
_LAZY = {
    "Client": "._client",
    "open_stream": "._functions",
    "stream_bytes": "._functions",
    "stream_events": "._functions",
    "stream_text": "._functions",
    "Response": "._response",
    "Timings": "._response",
    "ServerSentEvent": "._sse",
    "Acytoo": ".provider",
    "OpenAIChat": ".openai",
    "ChatStream": ".openai",
}

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "Acytoo",
    "AcytooError",
    "ChatStream",
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "HTTPStatusError",
    "Limits",
    "LocalProtocolError",
    "OpenAIChat",
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # Later lookups don't come here again.
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
