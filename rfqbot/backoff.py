"""Jittered exponential backoff, the one implementation every retry loop uses."""

from __future__ import annotations

import random


class Backoff:
    """Delays base, 2*base, 4*base ... capped at ``cap``, each scaled by a random factor.

    "Full jitter" in [0.5, 1.0] of the nominal delay: reconnecting clients spread out instead
    of hammering the venue in lockstep, yet never wait less than half the nominal delay.
    """

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        nominal = min(self.cap_s, self.base_s * (2 ** self.attempt))
        self.attempt += 1
        return nominal * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0
