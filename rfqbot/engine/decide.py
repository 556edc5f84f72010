"""The engine's decision path: quotes in, a journaled decision out, then (maybe) one send.

Split from ``loop.py`` so the accept-at-most-once path reads in one place. The decision
itself is ``rfqbot.engine.deciding.decide_quotes`` (pure, shared with replay); this mixin applies it:
RFQ state, journal first, then the send - queued, and flushed only after the commit.
"""

from __future__ import annotations

from typing import Any

import structlog

from rfqbot.journal import projections as kinds
from rfqbot.clock import Clock, VenueClock
from rfqbot.engine.deciding import decide_quotes
from rfqbot.engine.state import ACCEPT_OUTSTANDING, BLOCKING_ACCEPT_STATES, OwnRfq
from rfqbot.engine.market import MarketBook
from rfqbot.records import Quote
from rfqbot.engine.risk import KillSwitch, RiskLedger, RiskSettings
from strategies import ChainSet, RfqView

log = structlog.get_logger(__name__)


class DecisionHandlers:
    """Mixin for ``Engine``: relies on the attributes declared below and on ``_record``/``_rfq``."""

    chains: ChainSet
    risk: RiskSettings
    kill_switch: KillSwitch
    ledger: RiskLedger
    market: MarketBook
    venue_clock: VenueClock
    local_clock: Clock
    min_time_left_ms: int
    deciding: bool
    requests_paused_until_ms: int
    venue_banned: bool
    pairs: dict[str, Any]
    _sends: list[tuple[str, tuple[Any, ...]]]
    _decision_logs: list[dict[str, Any]]
    _kill_engaged: bool
    rehearsing: bool

    def _record(self, kind: str, source: str, payload: dict[str, Any], *, rfq_id: str | None = None,
                quote_id: str | None = None, venue_ms: int | None = None) -> int:
        raise NotImplementedError

    def _rfq(self, rfq_id: str) -> OwnRfq:
        raise NotImplementedError

    def _on_quotes(self, rfq_id: str, quotes: tuple[Quote, ...], received_ms: int, trigger: str) -> None:
        rfq = self._rfq(rfq_id)  # private-stream RFQs are own, also ones created elsewhere
        if quotes:  # an empty set (every quote withdrawn) still replaces the last one
            rfq.learn(buy_ccy=quotes[0].buy_ccy, sell_ccy=quotes[0].sell_ccy)
            rfq.resolve_pair(self.pairs.values())
        rfq.last_quotes, rfq.last_quotes_ms = quotes, received_ms
        rfq.wait_until_ms = None
        skip = self._skip_reason(rfq)
        if skip is not None:
            self._record("decision.skipped", "engine", {"trigger": trigger, "reason": skip}, rfq_id=rfq_id)
            return
        self._decide(rfq, received_ms, trigger)

    def _skip_reason(self, rfq: OwnRfq) -> str | None:
        if not self.deciding:
            if getattr(self, "journal_failure", None):
                return "journal write failed: no new decisions until restart"
            return "shutting down: no new decisions"
        if rfq.is_final:
            return f"RFQ is {rfq.status.value if rfq.status else '?'} (final)"
        if rfq.accept_state in BLOCKING_ACCEPT_STATES:
            return f"accept {rfq.accept_state} for quote {rfq.accepted_quote_id}; at most one accept per RFQ"
        if self.venue_banned:
            return "the venue banned this IP (HTTP 418): nothing is sent until an operator restarts rfqbot"
        return None

    def _decide(self, rfq: OwnRfq, received_ms: int, trigger: str) -> None:
        now = self.venue_clock.now_ms()
        if self.requests_paused_until_ms > now:
            # The venue paused every request (429): a decision now could only be refused at once
            # and journaled as one more rejected accept. The quotes are kept; the tick after the
            # pause decides on the latest set (whatever asked: a push, a refusal, a wait deadline).
            rfq.wait_until_ms = self.requests_paused_until_ms
            return
        quotes = tuple(q for q in rfq.last_quotes if q.quote_id not in rfq.refused_quotes)
        view = None
        if rfq.pair is not None and rfq.side is not None:
            view = RfqView(rfq.rfq_id, rfq.pair, rfq.side, rfq.buy_ccy or "", rfq.sell_ccy or "", rfq.buy_amount,
                           rfq.sell_amount, rfq.mode, rfq.expires_ms, rfq.created_ms)
        chain = self.chains.for_pair(rfq.pair) if rfq.pair else None
        market = self.market.context(rfq.pair) if rfq.pair else self.market.context("")
        decision = decide_quotes(chain, view, quotes, market, now, min_time_left_ms=self.min_time_left_ms,
                                 risk=self.risk, ledger=self.ledger, kill_switch=self._check_kill_switch,
                                 declined=rfq.declined_quotes, pair_text=f"{rfq.buy_ccy}/{rfq.sell_ccy}",
                                 trading_status=getattr(self.pairs.get(rfq.pair or ""), "trading_status", None))
        payload = {"trigger": trigger, "at_ms": now, **decision.payload}
        if decision.action == "wait":
            rfq.wait_until_ms = decision.until_ms
        elif decision.action == "decline" and decision.quote is not None:
            rfq.declined_quotes.add(decision.quote.quote_id)
            self._journal_decision(rfq, received_ms, payload, quote_id=decision.quote_id)
            self._sends.append(("decline", (rfq.rfq_id, decision.quote.quote_id)))
            return
        elif decision.action == "accept" and decision.quote is not None:
            self._send_accept(rfq, decision.quote, received_ms, now, payload, decision.amounts)
            return
        self._journal_decision(rfq, received_ms, payload, quote_id=decision.quote_id)

    def _send_accept(self, rfq: OwnRfq, chosen: Quote, received_ms: int, now: int, payload: dict[str, Any],
                     amounts: dict[str, Any]) -> None:
        """Journal (commit) the accept first; only then queue the request. A failed journal write
        leaves the RFQ as it was and sends nothing."""
        prior = (rfq.accept_state, rfq.accepted_quote_id, rfq.price, rfq.inflight_quote_id)
        rfq.accept_state, rfq.accepted_quote_id, rfq.price = ACCEPT_OUTSTANDING, chosen.quote_id, chosen.price
        rfq.inflight_quote_id = chosen.quote_id
        try:
            rfq.decision_seq = self._journal_decision(rfq, received_ms, payload, quote_id=chosen.quote_id)
        except BaseException:
            rfq.accept_state, rfq.accepted_quote_id, rfq.price, rfq.inflight_quote_id = prior
            raise
        self.ledger.record(rfq.rfq_id, now, amounts)
        # The same floor the decision used, enforced again when the request actually leaves.
        send_by = None if chosen.expires_ms is None else chosen.expires_ms - self.min_time_left_ms
        self._sends.append(("accept", (rfq.rfq_id, chosen.quote_id, send_by)))

    def _journal_decision(self, rfq: OwnRfq, received_ms: int, payload: dict[str, Any],
                          quote_id: str | None = None) -> int:
        latency = max(0, self.local_clock.now_ms() - received_ms)
        payload = {**payload, "latency_ms": latency, "pair": rfq.pair, "rfq_state": rfq.snapshot()}
        seq = self._record(kinds.KIND_DECISION, "engine", payload, rfq_id=rfq.rfq_id, quote_id=quote_id)
        # Logged by _after_commit once committed and any request has left: the log line (~0.1 ms
        # at info) is not on the path to the venue, and never reports a decision rolled back.
        self._decision_logs.append({"rfq_id": rfq.rfq_id, "pair": rfq.pair, "final": payload.get("final"),
                                    "action": payload.get("action"), "quote_id": quote_id,
                                    "price": str(payload.get("price", "")), "reason": payload.get("reason"),
                                    "latency_ms": latency, "seq": seq})
        return seq

    def _check_kill_switch(self) -> bool:
        """Read the kill-switch file; journal each change (engaged/released) once. A rehearsal
        (``rfqbot.engine.rehearsal``) gets the last known state: what it journals is rolled back."""
        if self.rehearsing:
            return self._kill_engaged
        engaged = self.kill_switch.engaged()
        if engaged != self._kill_engaged:
            self._kill_engaged = engaged
            self._record("risk.kill_switch", "risk", {"engaged": engaged, "file": self.kill_switch.path})
            log.warning("engine.kill_switch", engaged=engaged, file=self.kill_switch.path)
        return engaged
