"""The simulator's sense of time: the server clock and scaled durations.

The server clock stays real time (plus any injected skew) because clients compare it with their
own; only *durations* (listen key life, ping interval, penalty minute, quote lifetimes...) are
divided by ``time_scale`` so that hour-long behaviour can be exercised in seconds.
"""

from __future__ import annotations

import time


class SimClock:
    def __init__(self, time_scale: float = 1.0, skew_ms: int = 0) -> None:
        self.time_scale = time_scale
        self.skew_ms = skew_ms

    def now_ms(self) -> int:
        """Server time in integer Unix ms, skew included (what /api/v1/time answers)."""
        return time.time_ns() // 1_000_000 + self.skew_ms

    def mono_ms(self) -> int:
        """Monotonic ms for the venue's own deadlines: skew changes must not expire quotes."""
        return time.monotonic_ns() // 1_000_000

    def real_s(self, nominal_s: float) -> float:
        """How many real seconds a nominal venue duration lasts at the current scale."""
        return nominal_s / self.time_scale

    def real_ms(self, nominal_s: float) -> int:
        """Same as ``real_s`` in integer ms, for timestamps on the wire."""
        return int(nominal_s * 1000 / self.time_scale)
