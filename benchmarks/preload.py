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

# acytoo_raw imports its parts on first use: touch them here, not in each worker's warm-up.
_LAZY_NAMES = ("Client", "open_stream", "stream_text", "Timings", "OpenAIChat")

for _name in _MODULES:
    try:
        importlib.import_module(_name)
    except Exception:  # reported per measurement instead
        continue
try:
    _library = importlib.import_module("acytoo_raw")
    for _name in _LAZY_NAMES:
        getattr(_library, _name, None)
except Exception:  # reported per measurement instead
    pass
