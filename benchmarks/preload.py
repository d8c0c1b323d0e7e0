"""Imported once by the forkserver, so each measurement process starts already warm.

Failures are swallowed here: a client that can't be imported is reported by its worker.
"""

from __future__ import annotations

import importlib

_MODULES = (
    "benchmarks.worker",
    "anyio._backends._asyncio",
    "anyio._backends._trio",
    "uvloop",
    "trio",
    "ssl",
    "benchmarks.clients.floor",
    "benchmarks.clients.peer_aiohttp",
    "benchmarks.clients.peer_httpx",
    "benchmarks.clients.acytoo",
    "benchmarks.clients.chat",
    "openai",
)

for _name in _MODULES:
    try:
        importlib.import_module(_name)
    except Exception:  # reported per measurement instead
        continue
