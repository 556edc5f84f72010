"""Risk limits, applied after the strategies: the last word before an accept or a create leaves.

The checks are pure functions of the settings, a ``RiskLedger`` (what was accepted when) and
venue time, so the engine can test them with plain values and replay gives the same answers.
The one piece of I/O, the kill-switch file, is read by ``KillSwitch.engaged()`` and handed to
the checks as a fact. Every block names the limit that blocked it, for the journal.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

import structlog

from rfqbot.clock import DAY_MS  # noqa: F401 - also imported from here by engine/loop.py

log = structlog.get_logger(__name__)

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """The ``risk:`` section; the config loader's object with the same fields works as well."""

    max_accepts_per_minute: int | None = None
    max_open_rfqs: int | None = None
    max_rfq_amount: Mapping[str, Decimal] = field(default_factory=dict)
    daily_notional: Mapping[str, Decimal] = field(default_factory=dict)
    kill_switch_file: str | None = None

    @classmethod
    def from_any(cls, obj: Any) -> "RiskSettings":
        """Accept the config engineer's ``settings.risk`` (any object with these fields) or None."""
        if obj is None:
            return cls()
        if isinstance(obj, cls):
            return obj
        return cls(
            max_accepts_per_minute=getattr(obj, "max_accepts_per_minute", None),
            max_open_rfqs=getattr(obj, "max_open_rfqs", None),
            max_rfq_amount={k: Decimal(str(v)) for k, v in (getattr(obj, "max_rfq_amount", None) or {}).items()},
            daily_notional={k: Decimal(str(v)) for k, v in (getattr(obj, "daily_notional", None) or {}).items()},
            kill_switch_file=getattr(obj, "kill_switch_file", None),
        )


@dataclass(frozen=True, slots=True)
class RiskBlock:
    """Why an action was blocked: ``limit`` is the config key, ``detail`` the numbers."""

    limit: str
    detail: str

    def __str__(self) -> str:
        return f"risk.{self.limit}: {self.detail}"


class KillSwitch:
    """Presence of the configured file stops every accept at once (operators ``touch`` it)."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def engaged(self) -> bool:
        if not self.path:
            return False
        try:
            return os.path.exists(self.path)
        except OSError:
            return True  # cannot tell: fail safe


def utc_day(ms: int) -> int:
    """The UTC day number of a venue timestamp: daily caps reset at 00:00 UTC."""
    return ms // DAY_MS


class RiskLedger:
    """Accepts sent (not definitively refused), for the per-minute and daily-notional limits.

    An accept counts from the moment it is sent, also if its outcome is unknown: a limit must
    hold even when the venue did not answer. A definitive rejection releases it.
    """

    def __init__(self) -> None:
        self._recent: deque[tuple[int, str]] = deque()
        self._daily: dict[tuple[int, str], Decimal] = {}
        self._by_rfq: dict[str, tuple[int, dict[str, Decimal]]] = {}

    def record(self, rfq_id: str, at_ms: int, amounts: Mapping[str, Decimal]) -> None:
        self._recent.append((at_ms, rfq_id))
        day = utc_day(at_ms)
        for ccy, amount in amounts.items():
            self._daily[(day, ccy)] = self._daily.get((day, ccy), Decimal(0)) + amount
        self._by_rfq[rfq_id] = (at_ms, dict(amounts))

    def release(self, rfq_id: str) -> None:
        """The venue refused the accept for ``rfq_id``: it no longer counts."""
        entry = self._by_rfq.pop(rfq_id, None)
        if entry is None:
            return
        at_ms, amounts = entry
        day = utc_day(at_ms)
        for ccy, amount in amounts.items():
            self._daily[(day, ccy)] = self._daily.get((day, ccy), Decimal(0)) - amount
        try:
            self._recent.remove((at_ms, rfq_id))
        except ValueError:
            pass

    def forget_before(self, before_ms: int) -> None:
        """Drop what no limit counts any more: accepts sent before ``before_ms`` (their days are
        over; a late refusal of one changes no current total) and past days' totals."""
        for rfq_id in [rfq_id for rfq_id, (at_ms, _) in self._by_rfq.items() if at_ms < before_ms]:
            del self._by_rfq[rfq_id]
        today = utc_day(before_ms)
        for key in [key for key in self._daily if key[0] < today]:
            del self._daily[key]

    def accepts_in_last_minute(self, now_ms: int) -> int:
        while self._recent and self._recent[0][0] <= now_ms - MINUTE_MS:
            self._recent.popleft()
        return len(self._recent)

    def daily_total(self, ccy: str, now_ms: int) -> Decimal:
        return self._daily.get((utc_day(now_ms), ccy), Decimal(0))


def check_accept(settings: RiskSettings, ledger: RiskLedger, *, amounts: Mapping[str, Decimal],
                 now_ms: int, kill_switch_engaged: bool) -> RiskBlock | None:
    """The first limit an accept of ``amounts`` (per currency) would break, or None."""
    if kill_switch_engaged:
        return RiskBlock("kill_switch_file", f"{settings.kill_switch_file} exists; all accepts stopped "
                                             "(remove the file to resume)")
    for ccy, amount in sorted(amounts.items()):
        cap = settings.max_rfq_amount.get(ccy)
        if cap is not None and amount > cap:
            return RiskBlock(f"max_rfq_amount.{ccy}", f"{amount} {ccy} exceeds the per-RFQ maximum {cap}")
    if settings.max_accepts_per_minute is not None:
        count = ledger.accepts_in_last_minute(now_ms)
        if count >= settings.max_accepts_per_minute:
            return RiskBlock("max_accepts_per_minute",
                             f"{count} accepts in the last minute; limit {settings.max_accepts_per_minute}")
    for ccy, amount in sorted(amounts.items()):
        cap = settings.daily_notional.get(ccy)
        if cap is not None:
            used = ledger.daily_total(ccy, now_ms)
            if used + amount > cap:
                return RiskBlock(f"daily_notional.{ccy}",
                                 f"{used} + {amount} {ccy} today would exceed the daily cap {cap}")
    return None


def check_create(settings: RiskSettings, *, open_rfqs: int, sell_ccy: str, sell_amount: Decimal,
                 kill_switch_engaged: bool = False) -> RiskBlock | None:
    """The first limit a new RFQ would break, or None. An engaged kill switch refuses creations
    too: an RFQ that may not be accepted only makes LPs quote for nothing."""
    if kill_switch_engaged:
        return RiskBlock("kill_switch_file", f"{settings.kill_switch_file} exists; no new RFQs "
                                             "(remove the file to resume)")
    if settings.max_open_rfqs is not None and open_rfqs >= settings.max_open_rfqs:
        return RiskBlock("max_open_rfqs", f"{open_rfqs} own RFQs open; limit {settings.max_open_rfqs}")
    cap = settings.max_rfq_amount.get(sell_ccy)
    if cap is not None and sell_amount > cap:
        return RiskBlock(f"max_rfq_amount.{sell_ccy}", f"{sell_amount} {sell_ccy} exceeds the per-RFQ maximum {cap}")
    return None
