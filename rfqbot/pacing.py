"""Client-side pacing and venue back-off state, shared by every client of one API key.

The venue limits each API key to 2 requests/s for queries and 10 requests/s for order-type
calls; answering 429 means "stop for a minute" and ignoring that earns a 418 IP ban. Pacing
here keeps normal operation below the limits, and the pause/ban state makes sure that once the
venue says stop, no client of that key sends anything until it may.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import deque
from typing import Literal

import structlog

from rfqbot.clock import Clock
from rfqbot.errors import Banned, RateLimited

log = structlog.get_logger(__name__)

CallKind = Literal["query", "order"]
WINDOW_S = 1.0
# A little slack on the window so that our "one second later" is after the venue's too.
_WINDOW_SLACK_S = 0.02


class SlidingWindow:
    """At most ``limit`` sends in any ``WINDOW_S`` window; bursts up to the limit go at once."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a rate limit must allow at least one request per second")
        self.limit = limit
        self._sent: deque[float] = deque()

    def reserve(self, now: float) -> float:
        """Book the earliest allowed send time at or after ``now`` and return it."""
        at = now
        if len(self._sent) >= self.limit:
            at = max(now, self._sent[-self.limit] + WINDOW_S + _WINDOW_SLACK_S)
        self._sent.append(at)
        while len(self._sent) > self.limit:
            self._sent.popleft()
        return at


class RateGate:
    """Pacing windows plus the 429 pause and the 418 ban for one API key."""

    def __init__(self, clock: Clock, query_per_s: int = 2, order_per_s: int = 10) -> None:
        self.clock = clock
        self._windows = {"query": SlidingWindow(query_per_s), "order": SlidingWindow(order_per_s)}
        self._paused_until = 0.0
        self._banned = False
        self._lock = threading.Lock()

    @property
    def banned(self) -> bool:
        with self._lock:
            return self._banned

    def paused_for(self) -> float:
        """Seconds left of a 429 pause (0 when not paused)."""
        with self._lock:
            return max(0.0, self._paused_until - self.clock.monotonic())

    def check(self, endpoint: str) -> None:
        """Raise ``Banned`` or ``RateLimited`` if nothing may be sent now."""
        with self._lock:
            if self._banned:
                raise Banned(endpoint, "earlier in this process")
            left = self._paused_until - self.clock.monotonic()
        if left > 0:
            raise RateLimited(left, endpoint)

    def before_send(self, kind: CallKind, endpoint: str) -> None:
        """Wait for this call's slot (on the injected clock), then re-check pause and ban."""
        self.check(endpoint)
        with self._lock:
            now = self.clock.monotonic()
            at = self._windows[kind].reserve(now)
        if at > now:
            self.clock.sleep(at - now)
            self.check(endpoint)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)

    def ban(self) -> None:
        with self._lock:
            self._banned = True


_gates: "weakref.WeakKeyDictionary[object, dict[str, RateGate]]" = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


def key_fingerprint(api_key: str | None) -> str:
    """A short, non-reversible name for an API key (for grouping and logs, never the key)."""
    if not api_key:
        return "anonymous"
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


def gate_for(clock: Clock, api_key: str | None) -> RateGate:
    """The one ``RateGate`` of ``api_key`` on ``clock`` (clients of the same key share it)."""
    fingerprint = key_fingerprint(api_key)
    with _gates_lock:
        per_clock = _gates.setdefault(clock, {})
        gate = per_clock.get(fingerprint)
        if gate is None:
            gate = per_clock[fingerprint] = RateGate(clock)
        return gate
