"""Keeping the decision path warm: a dry run of it, rolled back, while the engine is idle.

Why: quotes arrive seconds or minutes apart, and on a shared machine whatever else runs in
between evicts rfqbot's code and data from the CPU caches. The same decision (journal the
frame, run the strategy chain and the risk checks, journal the decision, commit) was measured
at ~0.75 ms after 150 ms of idleness against ~0.3 ms when the path had run a few ms before;
with ``synchronous: full`` ~2.0 against ~1.1 ms. So while the queue is empty the engine runs
the path every ``engine.rehearse_every_ms`` on a made-up quote for a made-up RFQ of a
configured pair, inside ``Journal.rehearsal()`` (written, then rolled back).

What a rehearsal must never do, and how it is kept from it:

- leave a trace in the journal: ``Journal.rehearsal`` rolls back and restores the chain head;
- change the engine's state: the made-up RFQ is removed from ``rfqs``, the risk ledger is a
  scratch one, sends and decision log lines are dropped, ``deciding`` / pauses / bans are only
  read;
- be seen: observers (metrics, alerts, the demo) are not called, the kill-switch file is not
  read (a change it would journal would be rolled back and so never journaled: the last known
  state is used instead);
- slow down a real decision for long: it runs only when the queue is empty, holds the engine
  lock for one rehearsal (~0.3 ms), and a rehearsal that fails for any reason other than the
  journal turns rehearsals off for good, with one error logged.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

import structlog

from rfqbot.engine.market import MarketBook
from rfqbot.engine.risk import RiskLedger
from rfqbot.engine.state import OwnRfq
from rfqbot.events import BestQuotes
from rfqbot.journal.store import Journal, JournalError
from rfqbot.records import Pair, Quote, QuoteMode
from strategies import ChainSet

log = structlog.get_logger(__name__)

REHEARSAL_RFQ_ID = "rfqbot-rehearsal"
_QUOTE_LIFETIME_MS = 60_000


def rehearsal_quotes(pair: Pair, market: MarketBook, now_ms: int) -> BestQuotes:
    """A one-quote ``bestQuote`` set for a made-up RFQ buying ``pair``'s base, priced at the
    reference price when one is known (so a price strategy takes its usual branch)."""
    refs = market.context(pair.name).references
    price = next((r.price for r in refs.values() if r.price > 0), Decimal(1))
    quote = Quote("rfqbot-rehearsal-quote", REHEARSAL_RFQ_ID, price, buy_ccy=pair.base, sell_ccy=pair.quote,
                  sell_amount=Decimal(1), lp_name="rehearsal", mode=QuoteMode.REAL_TIME, rank=1,
                  submitted_ms=now_ms, expires_ms=now_ms + _QUOTE_LIFETIME_MS)
    raw = json.dumps({"topic": "bestQuote", "data": {"rfqId": REHEARSAL_RFQ_ID, "quotes": [
        {"quoteId": quote.quote_id, "price": str(price), "buyCcy": pair.base, "sellCcy": pair.quote,
         "sellAmount": "1", "lpName": "rehearsal", "expireTime": quote.expires_ms}]}})
    return BestQuotes(now_ms, REHEARSAL_RFQ_ID, (quote,), raw)


class RehearsalHandlers:
    """Mixin for ``Engine``: ``rehearse()`` runs one dry decision (see the module docstring)."""

    journal: Journal
    chains: ChainSet
    market: MarketBook
    ledger: RiskLedger
    pairs: dict[str, Pair]
    rfqs: dict[str, OwnRfq]
    deciding: bool
    venue_banned: bool
    _sends: list[tuple[str, tuple[Any, ...]]]
    _decision_logs: list[dict[str, Any]]
    _lock: Any
    rehearsing: bool
    rehearsals: int
    rehearsal_off_reason: str | None

    def _on_best_quotes(self, ev: BestQuotes) -> None:
        raise NotImplementedError

    def rehearse(self, now_ms: int) -> bool:
        """One dry decision on a made-up quote; True when it ran. Skipped (False) while nothing
        could be decided anyway (not deciding, banned, no tradable pair with a chain) or after
        a failed rehearsal turned them off. A failed journal raises (``_JOURNAL_WRITE_ERRORS``):
        the caller treats it as any failed write."""
        if self.rehearsal_off_reason is not None or not self.deciding or self.venue_banned:
            return False
        pair = next((p for p in self.pairs.values() if self.chains.for_pair(p.name) is not None
                     and (p.trading_status or "").strip().upper() != "CLOSED"), None)
        if pair is None:
            return False
        with self._lock:
            if self._sends or self._decision_logs or REHEARSAL_RFQ_ID in self.rfqs:
                return False   # only between turns, never on top of real work
            ledger = self.ledger
            self.ledger, self.rehearsing = RiskLedger(), True
            try:
                with self.journal.rehearsal():
                    # The handler itself, not _dispatch: a failure here must not be journaled and
                    # logged as a handler error every few ms, but turn rehearsals off once.
                    self._on_best_quotes(rehearsal_quotes(pair, self.market, now_ms))
            except (sqlite3.Error, JournalError):
                raise
            except Exception as exc:
                self.rehearsal_off_reason = f"{type(exc).__name__}: {exc}"
                log.error("engine.rehearsal_failed", error=self.rehearsal_off_reason,
                          detail="rehearsals are off until restart; deciding is not affected")
                return False
            finally:
                self.ledger, self.rehearsing = ledger, False
                self.rfqs.pop(REHEARSAL_RFQ_ID, None)
                self._sends.clear()
                self._decision_logs.clear()
        self.rehearsals += 1
        return True

