"""Timeout and pool settings: frozen value objects, validated when built."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._exceptions import LocalProtocolError

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "Limits", "Timeout"]


def _check_seconds(owner: str, name: str, value: object, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name} must be a number or None, not {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{owner}.{name} must be >= 0, not {value!r}")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Per-phase limits in seconds; ``None`` means no limit for that phase.

    Attributes:
        connect: TCP connect, proxy handshake and TLS handshakes, all together.
        read: the longest silence while waiting for the response head or
            between two body pieces.
        write: sending the request.
        total: the whole exchange, from the call to the last body byte.
        pool: waiting for a free connection slot of a :class:`~acytoo_raw.Client`
            (:class:`~acytoo_raw.PoolTimeout` when it runs out).

    The defaults suit a chat stream: a dead host fails in 10 s, a model may
    think for up to 60 s between pieces, a long answer is never cut short by
    an overall limit, and a request queued behind busy connections gives up
    after 10 s.
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    write: float | None = 10.0
    total: float | None = None
    pool: float | None = 10.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "total", "pool"):
            _check_seconds("Timeout", name, getattr(self, name))

    @classmethod
    def of(cls, value: Timeout | float | None) -> Timeout:
        """Coerce a ``timeout=`` argument.

        ``None`` gives the defaults; a number sets ``connect``, ``read``,
        ``write`` and ``pool`` to it and leaves ``total`` unlimited; a
        ``Timeout`` is used as it is.

        Raises:
            LocalProtocolError: anything else, or a negative or NaN number.
        """
        if value is None:
            return DEFAULT_TIMEOUT
        if isinstance(value, Timeout):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LocalProtocolError(f"timeout must be a Timeout, a number or None, not {value!r}")
        try:
            return cls(connect=value, read=value, write=value, total=None, pool=value)
        except ValueError as exc:
            raise LocalProtocolError(str(exc).replace("Timeout.connect", "timeout")) from None


DEFAULT_TIMEOUT = Timeout()


@dataclass(frozen=True, slots=True)
class Limits:
    """How many connections a :class:`~acytoo_raw.Client` opens and keeps.

    Attributes:
        max_connections: connections open at once, busy or idle, across all
            origins; requests beyond it wait (in order) up to ``Timeout.pool``.
        max_keepalive: idle connections kept for reuse; more are closed.
            ``0`` turns keep-alive off.
        keepalive_expiry: seconds an idle connection is kept. Below uvicorn's
            5 s default, so we drop a connection before the server does; a
            server's ``Keep-Alive: timeout=N`` lowers it further.
    """

    max_connections: int = 100
    max_keepalive: int = 20
    keepalive_expiry: float = 4.0

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_keepalive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Limits.{name} must be an int, not {value!r}")
        if self.max_connections < 1:
            raise ValueError(f"Limits.max_connections must be >= 1, not {self.max_connections}")
        if self.max_keepalive < 0:
            raise ValueError(f"Limits.max_keepalive must be >= 0, not {self.max_keepalive}")
        _check_seconds("Limits", "keepalive_expiry", self.keepalive_expiry, allow_none=False)


DEFAULT_LIMITS = Limits()
