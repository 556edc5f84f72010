"""Listen keys: created by POST, extended to a full life by PUT, gone on DELETE or expiry.

A key's life is a venue duration (60 minutes) and so is scaled by ``time_scale``. When a key
ends, the private streams opened with it are closed (``on_end``), as the venue stops the stream.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any, Callable

from rfqbot.sim import venue_errors as err
from rfqbot.sim.clock import SimClock
from rfqbot.sim.truth import GroundTruth

KEY_ALPHABET = string.ascii_letters


@dataclass
class ListenKey:
    key: str
    owner: str
    timer: Any = None
    extend_fails: bool = False
    muted: bool = False


class ListenKeys:
    def __init__(self, life_s: float, clock: SimClock, rng: random.Random, truth: GroundTruth,
                 later: Callable[[float, Callable[[], None]], Any],
                 on_end: Callable[[str, str], None]) -> None:
        self.life_s = life_s
        self.clock = clock
        self._rng = rng
        self.truth = truth
        self.later = later
        self.on_end = on_end
        self.keys: dict[str, ListenKey] = {}

    def create(self, owner: str) -> str:
        key = "".join(self._rng.choice(KEY_ALPHABET) for _ in range(64))
        entry = ListenKey(key, owner)
        self.keys[key] = entry
        self._arm(entry)
        self.truth.record("listen_key", action="created", owner=owner, key_tail=key[-6:])
        return key

    def _arm(self, entry: ListenKey) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = self.later(self.clock.real_s(self.life_s),
                                 lambda: self._end(entry.key, "expired"))

    def _lookup(self, owner: str, key: str) -> ListenKey:
        if not key:
            raise err.missing("listenKey")
        entry = self.keys.get(key)
        if entry is None or entry.owner != owner:
            raise err.illegal("listenKey", "unknown, expired or deleted listen key; create a new "
                              "one with POST /api/v1/userDataStream")
        return entry

    def extend(self, owner: str, key: str) -> None:
        entry = self._lookup(owner, key)
        if entry.extend_fails:
            raise err.illegal("listenKey", "listen key is no longer valid; create a new one")
        self._arm(entry)
        self.truth.record("listen_key", action="extended", owner=owner, key_tail=key[-6:])

    def delete(self, owner: str, key: str) -> None:
        self._lookup(owner, key)
        self._end(key, "deleted")

    def owner_of(self, key: str) -> str | None:
        entry = self.keys.get(key)
        return entry.owner if entry else None

    def is_muted(self, key: str) -> bool:
        entry = self.keys.get(key)
        return bool(entry and entry.muted)

    def _end(self, key: str, why: str) -> None:
        entry = self.keys.pop(key, None)
        if entry is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        self.truth.record("listen_key", action=why, owner=entry.owner, key_tail=key[-6:])
        self.on_end(key, why)

    def expire_now(self, key: str) -> bool:
        """Test hook: end the key as if its life had run out."""
        if key not in self.keys:
            return False
        self._end(key, "expired")
        return True
