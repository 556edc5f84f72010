"""The engine's inbox: private events first, public market data bounded.

Why not one ``queue.Queue``: under a flood of public ``rfqs``/``quotes`` frames the stream
threads decode faster than the engine journals, so an unbounded queue grew RSS by ~80 MB in the
ingest benchmark, and a ``bestQuote`` (money) waited behind every public frame queued before it.

So there are two lanes:

- **private** (everything that is not public market data: ``bestQuote``, ``rfqUpdates``, accept
  results, reconciles, commands, status): unbounded, never dropped, always taken first;
- **public** (``PublicRfq``, ``PublicQuote``, ``SpotTick``): at most ``public_max`` waiting. A
  full lane makes the public stream thread wait (TCP pushes back on the venue, nothing lost) for
  up to ``public_block_s``; only if the engine stays stuck that long is the frame dropped and
  counted. The engine journals the count as a ``frames.dropped`` entry (``take_dropped``), so a
  gap in market data is always visible in the journal.

A private event may thus overtake public ones that arrived before it. Public data is only
market context (reference prices, other takers' RFQs); seeing it a moment later is the same as
it arriving a moment later, whereas a late accept loses the quote.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import Deque

from rfqbot.events import Event, PublicQuote, PublicRfq, SpotTick

PUBLIC_EVENT_TYPES: tuple[type, ...] = (PublicRfq, PublicQuote, SpotTick)
DEFAULT_PUBLIC_MAX = 2000
DEFAULT_PUBLIC_BLOCK_S = 1.0


class EventQueue:
    """Drop-in for the ``queue.Queue`` subset the daemon and engine use (put, get, get_nowait,
    qsize, empty), with a private lane that jumps ahead and a bounded public lane."""

    def __init__(self, public_max: int = DEFAULT_PUBLIC_MAX, public_block_s: float = DEFAULT_PUBLIC_BLOCK_S) -> None:
        if public_max < 1:
            raise ValueError(f"public_max must be at least 1, got {public_max}")
        self.public_max = int(public_max)
        self.public_block_s = float(public_block_s)
        self._private: Deque[Event] = collections.deque()
        self._public: Deque[Event] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._dropped: dict[str, int] = {}
        # A waiting producer is woken only once the lane has drained to half: waking it per
        # taken frame made the two threads trade the GIL on every frame.
        self._low_water = self.public_max // 2

    def put(self, event: Event, block: bool = True, timeout: float | None = None) -> None:
        """Queue ``event``. Private events never wait; a public one waits for room at most
        ``public_block_s`` (``block``/``timeout`` are accepted for Queue compatibility and only
        shorten that wait), then is dropped and counted."""
        with self._lock:
            if isinstance(event, PUBLIC_EVENT_TYPES):
                if len(self._public) >= self.public_max:
                    wait_s = self.public_block_s if timeout is None else min(timeout, self.public_block_s)
                    deadline = time.monotonic() + (wait_s if block else 0.0)
                    while len(self._public) > self._low_water:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            name = type(event).__name__
                            self._dropped[name] = self._dropped.get(name, 0) + 1
                            return
                        self._not_full.wait(remaining)
                self._public.append(event)
            else:
                self._private.append(event)
            self._not_empty.notify()

    def put_nowait(self, event: Event) -> None:
        self.put(event, block=False)

    def _take(self) -> Event:
        if self._private:
            return self._private.popleft()
        event = self._public.popleft()
        if len(self._public) <= self._low_water:
            self._not_full.notify_all()
        return event

    def get(self, block: bool = True, timeout: float | None = None) -> Event:
        """The oldest private event, else the oldest public one; ``queue.Empty`` on timeout."""
        with self._lock:
            if not block:
                if not (self._private or self._public):
                    raise queue.Empty
                return self._take()
            if timeout is None:
                while not (self._private or self._public):
                    self._not_empty.wait()
            else:
                deadline = time.monotonic() + timeout
                while not (self._private or self._public):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise queue.Empty
                    self._not_empty.wait(remaining)
            return self._take()

    def get_nowait(self) -> Event:
        return self.get(block=False)

    def qsize(self) -> int:
        with self._lock:
            return len(self._private) + len(self._public)

    def empty(self) -> bool:
        return self.qsize() == 0

    def private_waiting(self) -> bool:
        """True when a private event is queued (the engine ends a public burst early for it)."""
        return bool(self._private)

    def take_dropped(self) -> dict[str, int]:
        """Public events dropped since the last call, by event type; resets the counts."""
        with self._lock:
            dropped, self._dropped = self._dropped, {}
            return dropped
