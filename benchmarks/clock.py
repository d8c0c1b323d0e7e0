"""Check that ``time.perf_counter_ns()`` in the server process and here share one clock.

Ping the server over its control pipe: each reply's stamp must lie between our send and receive
times. Intersecting ``[t_send - stamp, t_recv - stamp]`` over all pings bounds the offset.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection

PINGS = 500
REPLY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ClockCheck:
    clock: str
    pings: int
    violations: int
    min_rtt_us: float
    offset_low_us: float
    offset_high_us: float

    @property
    def ok(self) -> bool:
        return self.violations == 0 and self.offset_low_us <= self.offset_high_us

    def describe(self) -> str:
        verdict = "consistent" if self.ok else "NOT consistent: latencies are unreliable"
        return (
            f"clock: perf_counter_ns = {self.clock}; {self.pings} pings to the server process, "
            f"{self.violations} ordering violations, min round trip {self.min_rtt_us:.1f} us, "
            f"server-minus-harness offset within [{self.offset_low_us:+.1f}, "
            f"{self.offset_high_us:+.1f}] us: {verdict}"
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def check(control: Connection, pings: int = PINGS) -> ClockCheck:
    low, high = float("-inf"), float("inf")
    violations = 0
    min_rtt = float("inf")
    for _ in range(pings):
        sent = time.perf_counter_ns()
        control.send("clock")
        if not control.poll(REPLY_TIMEOUT_S):
            raise TimeoutError("server did not answer a clock ping")
        stamp: int = control.recv()
        received = time.perf_counter_ns()
        if not sent <= stamp <= received:
            violations += 1
        min_rtt = min(min_rtt, received - sent)
        low = max(low, stamp - received)
        high = min(high, stamp - sent)
    return ClockCheck(
        clock=time.get_clock_info("perf_counter").implementation,
        pings=pings,
        violations=violations,
        min_rtt_us=min_rtt / 1000,
        offset_low_us=low / 1000,
        offset_high_us=high / 1000,
    )
