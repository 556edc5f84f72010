"""Clocks: the one place rfqbot reads time, so tests can drive it with a fake."""

from __future__ import annotations

import threading
import time
from typing import Protocol

DAY_MS = 86_400_000   # one day in the integer milliseconds rfqbot keeps every time in


class Clock(Protocol):
    def now_ms(self) -> int:
        """Local wall-clock time, integer Unix milliseconds."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for durations and pacing)."""

    def sleep(self, seconds: float) -> None:
        """Wait; a fake clock advances instead."""


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to (or when something sleeps on it)."""

    def __init__(self, start_ms: int = 1_760_000_000_000) -> None:
        self._ms = start_ms
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._ms

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._ms += int(round(seconds * 1000))
            self._mono += seconds


class VenueClock:
    """Venue time = local time + offset measured from ``GET /api/v1/time``.

    Thread-safe: the scheduler updates the offset while the engine and REST workers read it.
    """

    def __init__(self, local: Clock) -> None:
        self.local = local
        self._offset_ms = 0
        self._lock = threading.Lock()

    @property
    def offset_ms(self) -> int:
        with self._lock:
            return self._offset_ms

    def set_offset(self, offset_ms: int) -> None:
        with self._lock:
            self._offset_ms = offset_ms

    def now_ms(self) -> int:
        return self.local.now_ms() + self.offset_ms
