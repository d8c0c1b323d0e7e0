"""The clients under test. To add one: write a module with a ``Client`` subclass, add a line here.

Keys are stable identifiers (used by ``--clients`` and in the JSON); labels are for the table.
"""

from __future__ import annotations

from benchmarks.clients.base import ClientSpec

_ACYTOO = "benchmarks.clients.acytoo:AcytooClient"
_FLOOR = "benchmarks.clients.floor:FloorClient"
_AIOHTTP = "benchmarks.clients.peer_aiohttp:AiohttpClient"
_AIOHTTP_PROVIDER = "benchmarks.clients.peer_aiohttp:AiohttpProviderClient"
_HTTPX = "benchmarks.clients.peer_httpx:HttpxClient"

CLIENTS: tuple[ClientSpec, ...] = (
    ClientSpec("floor-text", "floor text (asyncio)", _FLOOR, "text", floor=True),
    ClientSpec("floor-bytes", "floor bytes (asyncio)", _FLOOR, "bytes", floor=True),
    ClientSpec("acytoo-text-asyncio", "acytoo_raw text (asyncio)", _ACYTOO, "text"),
    ClientSpec("acytoo-text-uvloop", "acytoo_raw text (uvloop)", _ACYTOO, "text", "uvloop"),
    ClientSpec("acytoo-text-trio", "acytoo_raw text (trio)", _ACYTOO, "text", "trio"),
    ClientSpec("acytoo-bytes-asyncio", "acytoo_raw bytes (asyncio)", _ACYTOO, "bytes"),
    ClientSpec("acytoo-bytes-uvloop", "acytoo_raw bytes (uvloop)", _ACYTOO, "bytes", "uvloop"),
    ClientSpec("acytoo-bytes-trio", "acytoo_raw bytes (trio)", _ACYTOO, "bytes", "trio"),
    ClientSpec("aiohttp-provider", "aiohttp iter_any+decode()", _AIOHTTP_PROVIDER, "text"),
    ClientSpec("aiohttp-text", "aiohttp incremental decode", _AIOHTTP, "text"),
    ClientSpec("httpx-text", "httpx aiter_text", _HTTPX, "text"),
    ClientSpec("httpx-raw", "httpx aiter_raw", _HTTPX, "bytes"),
)


def floor_for(spec: ClientSpec, among: tuple[ClientSpec, ...] = CLIENTS) -> ClientSpec | None:
    """The floor a client is compared with: the floor of the same kind (text or bytes)."""
    return next((c for c in among if c.floor and c.kind == spec.kind), None)
