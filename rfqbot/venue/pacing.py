"""Client-side pacing and venue back-off state, shared by every client of one API key.

The venue limits each API key to 2 requests/s for queries and 10 requests/s for order-type
calls; answering 429 means "stop for a minute" and ignoring that earns a 418 IP ban. Pacing
here keeps normal operation below the limits; the 429 pause stops every client of that key,
and a 418 (an IP ban) stops every client of the process, whatever its key.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import deque
from typing import Literal

import structlog

from rfqbot.clock import Clock, SystemClock
from rfqbot.errors import Banned, RateLimited

log = structlog.get_logger(__name__)

CallKind = Literal["query", "order"]
WINDOW_S = 1.0
# The venue counts requests by when they *arrive*; we can only time when they leave. Two
# requests one window apart on our side arrive less than a window apart when the first was
# slower in transit than the second, so the slack must cover the spread of one-way latency
# (jitter, a retransmit, TLS record timing), not clock granularity. 100 ms covers ordinary
# internet jitter to the venue and costs at most 10 % of the query rate; a 429 in normal
# operation is a bug (and a second one earns a 418 IP ban), so we pay that gladly.
WINDOW_SLACK_S = 0.1


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
            at = max(now, self._sent[-self.limit] + WINDOW_S + WINDOW_SLACK_S)
        self._sent.append(at)
        while len(self._sent) > self.limit:
            self._sent.popleft()
        return at

    def free_at(self, now: float) -> bool:
        """True when a send at ``now`` needs no wait (``reserve(now)`` would return ``now``)."""
        return len(self._sent) < self.limit or self._sent[-self.limit] + WINDOW_S + WINDOW_SLACK_S <= now


class IpBan:
    """The venue's 418: this *IP address* is banned, so every API key of the process is.

    One flag per process on the real clock (a ``FakeClock`` stands for a simulated process of
    its own); once set it stays until the process restarts, because only a human may decide
    that the ban has lapsed and its cause is fixed.
    """

    def __init__(self) -> None:
        self._banned = False
        self._lock = threading.Lock()

    @property
    def banned(self) -> bool:
        with self._lock:
            return self._banned

    def set(self) -> None:
        with self._lock:
            self._banned = True

    def lift(self) -> None:
        """Tests only: forget the ban."""
        with self._lock:
            self._banned = False


_PROCESS_BAN = IpBan()
_bans: "weakref.WeakKeyDictionary[object, IpBan]" = weakref.WeakKeyDictionary()
_bans_lock = threading.Lock()


def lift_process_ban() -> None:
    """Tests only: a test that met a real-clock 418 must not ban the tests after it."""
    _PROCESS_BAN.lift()


def ban_for(clock: Clock) -> IpBan:
    """The process-wide ban; a ``FakeClock`` (a simulated process) gets its own."""
    if isinstance(clock, SystemClock):
        return _PROCESS_BAN
    with _bans_lock:
        ban = _bans.get(clock)
        if ban is None:
            ban = _bans[clock] = IpBan()
        return ban


class RateGate:
    """Pacing windows and the 429 pause for one API key, plus the process's 418 ban."""

    def __init__(self, clock: Clock, query_per_s: int = 2, order_per_s: int = 10,
                 ip_ban: IpBan | None = None) -> None:
        self.clock = clock
        self._windows = {"query": SlidingWindow(query_per_s), "order": SlidingWindow(order_per_s)}
        self._paused_until = 0.0
        self._ip_ban = ip_ban or ban_for(clock)
        self._lock = threading.Lock()

    @property
    def banned(self) -> bool:
        return self._ip_ban.banned

    def paused_for(self) -> float:
        """Seconds left of a 429 pause (0 when not paused)."""
        with self._lock:
            return max(0.0, self._paused_until - self.clock.monotonic())

    def check(self, endpoint: str) -> None:
        """Raise ``Banned`` or ``RateLimited`` if nothing may be sent now."""
        if self._ip_ban.banned:
            raise Banned(endpoint, "earlier in this process")
        with self._lock:
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

    def try_send(self, kind: CallKind) -> bool:
        """Book this call's slot only if it is free now: never waits. False (nothing booked)
        when banned, paused after a 429, or the slot is later - the caller then goes the
        waiting way (``before_send`` on a worker), which also raises the right error."""
        if self._ip_ban.banned:
            return False
        with self._lock:
            now = self.clock.monotonic()
            window = self._windows[kind]
            if self._paused_until > now or not window.free_at(now):
                return False
            window.reserve(now)
            return True

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)

    def ban(self) -> None:
        """A 418: the IP is banned, so every gate of this process stops (not only this key's)."""
        self._ip_ban.set()


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
