"""Operating-system knobs and facts: CPU pinning, fd limits, CPU time of a process, the machine."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
import platform
import resource
import sys
from importlib import metadata

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TUNED_MALLOC_BYTES = 256 * 1024 * 1024
_PEERS = (
    "acytoo_raw",
    "aiohttp",
    "httpx",
    "openai",
    "h11",
    "anyio",
    "trio",
    "uvloop",
    "matplotlib",
)


def usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pin(core: int | None) -> None:
    """Run this process on ``core`` only (no-op when None or unsupported)."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


FD_LIMIT = 16384  # 5000 concurrent streams and their server side, with room to spare


def raise_fd_limit(wanted: int = FD_LIMIT) -> None:
    """``ulimit -n``: 1000-5000 concurrent streams need more descriptors than the common soft
    limit of 1024 (raised up to the hard limit; never lowered)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds in this process (what the MALLOC_*_ env vars do).

    Returns False where that isn't possible (not glibc).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, TUNED_MALLOC_BYTES)
        and mallopt(_M_TRIM_THRESHOLD, TUNED_MALLOC_BYTES)
    )


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    if name == "acytoo_raw":
        # What runs may be a checkout on PYTHONPATH, not the (older) copy
        # whose metadata is installed: ask the module itself.
        return str(getattr(importlib.import_module(name), "__version__", "unknown"))
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    try:
        return str(getattr(importlib.import_module(name), "__version__", "unknown"))
    except Exception:
        return "not installed"


def machine() -> dict[str, object]:
    return {
        "cpu": _cpu_model(),
        "cores_usable": len(usable_cores()),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "versions": {name: _version(name) for name in _PEERS},
    }
