"""A tiny ASGI origin for the real-server tests, served by uvicorn in a subprocess.

Routes (any method; the request body is read and ignored unless noted):

- ``.../api/completions`` -- the Acytoo endpoint: ``n`` pieces of UTF-8 text
  (:func:`piece`), ``delay`` seconds apart, chunked (no Content-Length),
  ``text/plain; charset=utf-8``. Defaults: ``n=4``, ``delay=0.02``; under a
  ``/slow`` prefix (``/slow/api/completions``) the delay is ``SLOW_DELAY``, so
  a ``base_url`` alone can ask for a slow stream. ``?n=&delay=`` override.
- ``/headers`` -- echoes the request head the origin received as a JSON body:
  ``{"method", "path", "headers": [[name, value], ...], "body"}`` (names
  lower-cased as the ASGI server gives them). This is how a test proves what
  the origin saw (for example: never ``Proxy-Authorization``).
- ``/client`` -- the client's port as text: which connection served the request.
- ``/status/<code>`` -- answers with that status and a short text body.
- anything else -- 404.

It imports only the standard library and anyio, so uvicorn can load it with
``--app-dir tests stream_app:app``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_PIECES = 4
DEFAULT_DELAY = 0.02
SLOW_DELAY = 0.25


def piece(i: int) -> str:
    """The ``i``-th streamed piece; non-ASCII on purpose (decoding is part of the path)."""
    return f"piece {i} h\u00e9llo \u2713\n"


def expected_text(n: int = DEFAULT_PIECES) -> str:
    """The whole body of a completions answer with ``n`` pieces."""
    return "".join(piece(i) for i in range(n))


def _query(scope: Scope) -> dict[str, str]:
    raw = bytes(scope.get("query_string", b"")).decode("latin-1")
    return dict(p.split("=", 1) for p in raw.split("&") if "=" in p)


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return bytes(body)


async def _respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _completions(scope: Scope, send: Send, slow: bool) -> None:
    qs = _query(scope)
    n = int(qs.get("n", DEFAULT_PIECES))
    delay = float(qs.get("delay", SLOW_DELAY if slow else DEFAULT_DELAY))
    # No content-length: uvicorn (h11) frames the body as chunked.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    for i in range(n):
        if i:
            await anyio.sleep(delay)
        await send({"type": "http.response.body", "body": piece(i).encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # lifespan is turned off; nothing else is expected
        return
    body = await _read_body(receive)
    path: str = scope["path"]
    if path.endswith("/api/completions"):
        await _completions(scope, send, slow=path.startswith("/slow/"))
    elif path == "/headers":
        seen = {
            "method": scope["method"],
            "path": path,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("utf-8", "replace"),
        }
        await _respond(send, 200, b"application/json", json.dumps(seen).encode())
    elif path == "/client":
        # Which connection served this request: the client's port.
        port = str(scope["client"][1]).encode()
        await _respond(send, 200, b"text/plain", port)
    elif path.startswith("/status/") and path[8:].isdigit():
        status = int(path[8:])
        await _respond(send, status, b"text/plain; charset=utf-8", f"status {status}\n".encode())
    else:
        await _respond(send, 404, b"text/plain; charset=utf-8", b"not found\n")
