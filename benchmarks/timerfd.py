"""A kernel timer (Linux ``timerfd`` on CLOCK_MONOTONIC) that a selector can wait on.

``time.perf_counter_ns()`` reads CLOCK_MONOTONIC on Linux, so a deadline taken from it can be
armed as an absolute timerfd expiry: the server then wakes within a few microseconds of each
due time instead of the ~1 ms granularity of a selector timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import time

_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class KernelTimer:
    """One-shot absolute timer; readable (for a selector) once its deadline has passed."""

    def __init__(self) -> None:
        # Through libc on every Python version (os.timerfd_* only exist from 3.13).
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd: int = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd

    @classmethod
    def create(cls) -> KernelTimer | None:
        """A timer, or None where the platform has none (pacing then falls back to timeouts)."""
        if not sys.platform.startswith("linux"):
            return None
        if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
            return None
        try:
            return cls()
        except (OSError, AttributeError):
            return None

    def fileno(self) -> int:
        return self._fd

    def arm(self, deadline_ns: int) -> None:
        """Expire at ``deadline_ns`` on the perf_counter_ns() clock (0 would disarm: clamp)."""
        deadline_ns = max(deadline_ns, 1)
        spec = _Itimerspec()
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) < 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def clear(self) -> None:
        """Consume the expiry count so the descriptor stops being readable."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 8)

    def close(self) -> None:
        os.close(self._fd)
