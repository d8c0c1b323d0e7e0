"""Timeout settings: one frozen value object, validated when built."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_TIMEOUT", "Timeout"]


@dataclass(frozen=True, slots=True)
class Timeout:
    """Per-phase limits in seconds; ``None`` means no limit for that phase.

    Attributes:
        connect: TCP connect, proxy tunnel and TLS handshakes, all together.
        read: the longest silence while waiting for the response head or
            between two body pieces.
        write: sending the request.
        total: the whole exchange, from connect to the last body byte.

    The defaults suit a chat stream: a dead host fails in 10 s, a model may
    think for up to 60 s between pieces, and a long answer is never cut
    short by an overall limit.
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    write: float | None = 10.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "total"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Timeout.{name} must be a number or None, not {value!r}")
            if math.isnan(value) or value < 0:
                raise ValueError(f"Timeout.{name} must be >= 0, not {value!r}")

    @classmethod
    def of(cls, value: Timeout | float | None) -> Timeout:
        """Coerce a ``timeout=`` argument.

        ``None`` gives the defaults; a number sets ``connect``, ``read`` and
        ``write`` to it and leaves ``total`` unlimited; a ``Timeout`` is used
        as it is.
        """
        if value is None:
            return DEFAULT_TIMEOUT
        if isinstance(value, Timeout):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"timeout must be a Timeout, a number or None, not {value!r}")
        return cls(connect=value, read=value, write=value, total=None)


DEFAULT_TIMEOUT = Timeout()
