"""The clients under test. To add one: write a module with a ``Client`` subclass, add a line here.

Keys are stable identifiers (used by ``--clients``, by the scenarios' client lists and in the
JSON); labels are for the table. Which scenarios a client runs in is decided by the scenario
(``Scenario.clients``), and every figure is compared with the floor of the same family and kind.
"""

from __future__ import annotations

from benchmarks.clients.base import ClientSpec

_ACYTOO = "benchmarks.clients.acytoo:AcytooClient"
_ACYTOO_RECORDING = "benchmarks.clients.acytoo:AcytooRecordingClient"
_ACYTOO_FRESH = "benchmarks.clients.acytoo:AcytooFreshClient"
_FLOOR = "benchmarks.clients.floor:FloorClient"
_AIOHTTP = "benchmarks.clients.peer_aiohttp:AiohttpClient"
_AIOHTTP_PROVIDER = "benchmarks.clients.peer_aiohttp:AiohttpProviderClient"
_HTTPX = "benchmarks.clients.peer_httpx:HttpxClient"
_CHAT = "benchmarks.clients.chat:"

CLIENTS: tuple[ClientSpec, ...] = (
    ClientSpec("floor-text", "floor text (asyncio)", _FLOOR, "text", floor=True),
    ClientSpec("floor-bytes", "floor bytes (asyncio)", _FLOOR, "bytes", floor=True),
    ClientSpec("acytoo-text-asyncio", "acytoo_raw text (asyncio)", _ACYTOO, "text"),
    ClientSpec("acytoo-text-uvloop", "acytoo_raw text (uvloop)", _ACYTOO, "text", "uvloop"),
    ClientSpec("acytoo-text-trio", "acytoo_raw text (trio)", _ACYTOO, "text", "trio"),
    ClientSpec("acytoo-bytes-asyncio", "acytoo_raw bytes (asyncio)", _ACYTOO, "bytes"),
    ClientSpec("acytoo-bytes-uvloop", "acytoo_raw bytes (uvloop)", _ACYTOO, "bytes", "uvloop"),
    ClientSpec("acytoo-bytes-trio", "acytoo_raw bytes (trio)", _ACYTOO, "bytes", "trio"),
    ClientSpec(
        "acytoo-pieces-asyncio",
        "acytoo_raw text, record_pieces (asyncio)",
        _ACYTOO_RECORDING,
        "text",
    ),
    ClientSpec(
        "acytoo-fresh-asyncio", "acytoo_raw text, new Client each (asyncio)", _ACYTOO_FRESH, "text"
    ),
    ClientSpec("aiohttp-provider", "aiohttp iter_any+decode()", _AIOHTTP_PROVIDER, "text"),
    ClientSpec("aiohttp-text", "aiohttp incremental decode", _AIOHTTP, "text"),
    ClientSpec("httpx-text", "httpx aiter_text", _HTTPX, "text"),
    ClientSpec("httpx-raw", "httpx aiter_raw", _HTTPX, "bytes"),
    ClientSpec(
        "chat-floor",
        "floor SSE lines + json.loads (asyncio)",
        _CHAT + "FloorChatClient",
        "text",
        floor=True,
        family="chat",
    ),
    ClientSpec(
        "chat-acytoo-asyncio",
        "acytoo_raw chat (asyncio)",
        _CHAT + "AcytooChatClient",
        "text",
        family="chat",
    ),
    ClientSpec(
        "chat-acytoo-uvloop",
        "acytoo_raw chat (uvloop)",
        _CHAT + "AcytooChatClient",
        "text",
        "uvloop",
        family="chat",
    ),
    ClientSpec(
        "chat-acytoo-trio",
        "acytoo_raw chat (trio)",
        _CHAT + "AcytooChatClient",
        "text",
        "trio",
        family="chat",
    ),
    ClientSpec(
        "chat-openai",
        "openai SDK AsyncOpenAI (httpx)",
        _CHAT + "OpenAIChatClient",
        "text",
        family="chat",
    ),
    ClientSpec(
        "chat-aiohttp",
        "aiohttp + SSE lines by hand",
        _CHAT + "AiohttpChatClient",
        "text",
        family="chat",
    ),
    # Import time: ``target`` is the comma-separated modules imported in a fresh interpreter.
    ClientSpec(
        "import-floor",
        "import anyio, h11, ssl",
        "anyio,h11,ssl",
        "text",
        floor=True,
        family="import",
    ),
    ClientSpec("import-acytoo", "import acytoo_raw", "acytoo_raw", "text", family="import"),
    ClientSpec("import-aiohttp", "import aiohttp", "aiohttp", "text", family="import"),
    ClientSpec("import-httpx", "import httpx", "httpx", "text", family="import"),
)


def floor_for(spec: ClientSpec, among: tuple[ClientSpec, ...] = CLIENTS) -> ClientSpec | None:
    """The floor a client is compared with: the floor of the same family and kind."""
    return next(
        (c for c in among if c.floor and c.kind == spec.kind and c.family == spec.family), None
    )
