"""Keeping the decision path warm: a dry run of it, rolled back, while the engine is idle.

Why: quotes arrive seconds or minutes apart, and on a shared machine whatever else runs in
between evicts rfqbot's code and data from the CPU caches. The same decision (journal the
frame, run the strategy chain and the risk checks, journal the decision, commit) was measured
at ~0.75 ms after 150 ms of idleness against ~0.3 ms when the path had run a few ms before;
with ``synchronous: full`` ~2.0 against ~1.1 ms. So while the queue is empty the engine runs
the path every ``engine.rehearse_every_ms`` on a made-up quote for a made-up RFQ of a
configured pair, inside ``Journal.rehearsal()`` (written, then rolled back). The daemon adds
the two ends of the path as ``rehearse_hooks``, called with the made-up frame after it: the
stream's frame decoder (0.25 ms after idleness against 0.04 ms warm, measured) and the accept
request's signing and encoding (``MarketPlace.rehearse_accept``: 0.21 against 0.02 ms), whose
bytes are dropped - no connection is taken, no pacing slot used, nothing sent. With
``engine.rehearse_sync`` (on by default) each rehearsal also flushes the journal's WAL file,
which the last commit left synced (``Journal.warm_sync``; ``synchronous: full`` only): the
first fsync after a quiet spell was measured at twice or more the cost of one that follows
another by a few ms, and the decision's commit waits for its fsync.

What a rehearsal must never do, and how it is kept from it:

- leave a trace in the journal: ``Journal.rehearsal`` rolls back and restores the chain head;
- change the engine's state: the made-up RFQ never enters ``rfqs`` (``Engine._rfq`` hands out
  a scratch one), the risk ledger and the send and decision-log lists are scratch ones
  (``_after_commit`` also drops anything for the made-up RFQ), ``deciding`` / pauses / bans
  are only read;
- be seen: observers (metrics, alerts, the demo) are not called, the kill-switch file is not
  read (a change it would journal would be rolled back and so never journaled: the last known
  state is used instead), a projection that fails on the made-up rows fails the rehearsal
  instead of being logged every few ms;
- cost when it cannot help: it runs only while the queue is empty and a quote may come (an own
  RFQ open, not expired, with no accept blocking it, or one being created), holds the engine lock for one
  rehearsal (~0.3 ms; longer only if another process holds the journal's write lock, as for
  any write), and a rehearsal that fails turns rehearsals off for good, with one error logged.
  A journal error in one stops deciding only if its transaction could not be rolled back.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable

import structlog

from rfqbot.engine.market import MarketBook
from rfqbot.engine.risk import RiskLedger
from rfqbot.engine.state import BLOCKING_ACCEPT_STATES, OwnRfq
from rfqbot.events import BestQuotes
from rfqbot.journal.store import JOURNAL_WRITE_ERRORS, Journal
from rfqbot.records import Pair, Quote, QuoteMode
from strategies import ChainSet

log = structlog.get_logger(__name__)

REHEARSAL_RFQ_ID = "rfqbot-rehearsal"
_QUOTE_LIFETIME_MS = 60_000


def rehearsal_quotes(pair: Pair, market: MarketBook, now_ms: int) -> BestQuotes:
    """A ``bestQuote`` set of three quotes for a made-up RFQ buying ``pair``'s base, priced at the
    reference price when one is known (so a price strategy takes its usual branch); three, so a
    chain that waits for a minimum number of quotes (``wait_for_quotes``) goes on to accept."""
    refs = market.context(pair.name).references
    price = next((r.price for r in refs.values() if r.price > 0), Decimal(1))
    quotes, rows = [], []
    for rank in (1, 2, 3):
        quote = Quote(f"rfqbot-rehearsal-quote-{rank}", REHEARSAL_RFQ_ID, price, buy_ccy=pair.base,
                      sell_ccy=pair.quote, sell_amount=Decimal(1), lp_name=f"rehearsal-{rank}",
                      mode=QuoteMode.REAL_TIME, rank=rank, submitted_ms=now_ms,
                      expires_ms=now_ms + _QUOTE_LIFETIME_MS)
        quotes.append(quote)
        # The frame as the venue documents it (the daemon's decoder hook decodes this very text).
        rows.append({"id": rank, "inquiryOrderId": REHEARSAL_RFQ_ID, "lpName": quote.lp_name,
                     "quoteOrderId": quote.quote_id, "direction": 1, "status": 0, "buyAssetId": pair.base,
                     "sellAssetId": pair.quote, "sellAmount": "1", "price": str(price), "submitTime": now_ms,
                     "dateExpiry": quote.expires_ms, "expirySeconds": 60, "remainingTime": _QUOTE_LIFETIME_MS,
                     "inquirySettleType": 1, "quoteSettleType": 1, "rank": rank, "isBestPrice": rank == 1,
                     "isRecommendPrice": rank == 1})
    raw = json.dumps({"topic": "bestQuote", "data": rows}, separators=(",", ":"))
    return BestQuotes(now_ms, REHEARSAL_RFQ_ID, tuple(quotes), raw)


class RehearsalHandlers:
    """Mixin for ``Engine``: ``rehearse()`` runs one dry decision (see the module docstring)."""

    journal: Journal
    chains: ChainSet
    market: MarketBook
    ledger: RiskLedger
    pairs: dict[str, Pair]
    rfqs: dict[str, OwnRfq]
    pending_creates: dict[str, Any]
    deciding: bool
    venue_banned: bool
    _sends: list[tuple[str, tuple[Any, ...]]]
    _decision_logs: list[dict[str, Any]]
    _lock: Any
    rehearsing: bool
    rehearsals: int
    rehearsal_off_reason: str | None
    rehearse_hooks: tuple[Callable[[BestQuotes], None], ...]
    rehearse_sync: bool
    # The made-up RFQ while a rehearsal runs: ``Engine._rfq`` hands it out instead of putting
    # it in ``rfqs`` (which health and status lines read without the lock).
    rehearsal_rfq: OwnRfq | None
    _useful_cache: bool | None   # rehearsal_useful's last answer; None: look again
    venue_clock: Any

    def _on_best_quotes(self, ev: BestQuotes) -> None:
        raise NotImplementedError

    def rehearsal_state_changed(self) -> None:
        """Own RFQs, pairs or settings may have changed: ``rehearsal_useful`` looks again."""
        self._useful_cache = None

    def rehearsal_useful(self) -> bool:
        """Rehearse now? Only while a quote may come that the engine would decide on: an own RFQ
        open, not expired and with no accept blocking it (or one being created), in a pair that
        can be rehearsed. Otherwise no CPU is spent: there is no quote to be fast for. Scans
        ``rfqs`` only after a turn that may have changed them (``rehearsal_state_changed``);
        an expiry passing is seen at the next tick's look."""
        if not self._rehearsals_possible():
            return False
        if self._useful_cache is None:
            now = self.venue_clock.now_ms()
            self._useful_cache = self._rehearsal_pair() is not None and (bool(self.pending_creates) or any(
                r.is_open and r.accept_state not in BLOCKING_ACCEPT_STATES
                and (r.expires_ms is None or r.expires_ms > now) for r in self.rfqs.values()))
        return self._useful_cache

    def _rehearsals_possible(self) -> bool:
        """Not turned off by a failed rehearsal, and the engine could decide at all."""
        return self.rehearsal_off_reason is None and self.deciding and not self.venue_banned

    def _rehearsal_pair(self) -> Pair | None:
        """The first pair that is not CLOSED and has a strategy chain: the made-up RFQ's."""
        return next((p for p in self.pairs.values() if self.chains.for_pair(p.name) is not None
                     and (p.trading_status or "").strip().upper() != "CLOSED"), None)

    def rehearse(self, now_ms: int) -> bool:
        """One dry decision on a made-up quote set; True when it ran. False, with nothing done,
        when rehearsals are off (a failed one), nothing can be decided (not deciding, banned),
        no open pair has a strategy chain, or real work is half done (a turn's sends not yet
        flushed). A failure of the journal itself raises (``sqlite3.Error``/``JournalError``):
        the caller (``Engine._rehearse_while_idle``) decides what it means; any other failure
        turns rehearsals off for good, logged once."""
        if not self._rehearsals_possible():
            return False
        pair = self._rehearsal_pair()
        if pair is None:
            return False
        try:
            event = rehearsal_quotes(pair, self.market, now_ms)
            with self._lock:
                if self._sends or self._decision_logs:
                    return False   # only between turns, never on top of real work
                saved = self.ledger, self._sends, self._decision_logs
                # Scratch ledger, RFQ and send lists: whatever the decision does to them is dropped.
                self.ledger, self._sends, self._decision_logs = RiskLedger(), [], []
                self.rehearsal_rfq, self.rehearsing = OwnRfq(REHEARSAL_RFQ_ID), True
                try:
                    with self.journal.rehearsal():
                        # The handler itself, not _dispatch: a failure here must not be journaled
                        # and logged as a handler error every few ms, but turn rehearsals off once.
                        self._on_best_quotes(event)
                finally:
                    self.ledger, self._sends, self._decision_logs = saved
                    self.rehearsal_rfq, self.rehearsing = None, False
        except JOURNAL_WRITE_ERRORS:
            raise
        except Exception as exc:
            self.turn_rehearsals_off(f"{type(exc).__name__}: {exc}")
            return False
        if self.rehearse_sync:   # outside the engine lock: the flush takes ~0.1 ms of waiting
            try:
                self.journal.warm_sync()
            except OSError as exc:
                self.rehearse_sync = False
                log.warning("engine.rehearse_sync_failed", error=f"{type(exc).__name__}: {exc}",
                            detail="the WAL flush warm-up is off until restart; rehearsals and deciding go on")
        for hook in self.rehearse_hooks:   # outside the lock: the stream and send ends
            try:
                hook(event)
            except Exception as exc:
                # The type only: a signing hook's error could quote a character of a credential.
                self.turn_rehearsals_off(f"{type(exc).__name__} in rehearsal hook {getattr(hook, '__name__', hook)!s}")
                return False
        self.rehearsals += 1
        return True

    def turn_rehearsals_off(self, reason: str) -> None:
        self.rehearsal_off_reason = reason
        log.error("engine.rehearsal_failed", error=reason,
                  detail="rehearsals are off until restart; deciding is not affected")
