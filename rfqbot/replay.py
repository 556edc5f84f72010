"""Replay: run the journaled RFQs and quotes through a config, and compare with what was decided.

This is how a desk checks a new YAML before reloading it. The journal holds every quote set the
engine saw (``frame.best_quotes``, ``reconcile.active_quotes``), the market around it
(``frame.spot``, ``frame.public_quote``), the venue's refusals and status changes, and what the
engine decided then. Replay walks those events in the engine's order and, at every quote set
and every wait deadline, asks ``deciding.decide_quotes`` - the daemon's own decision code - what
the given chains and risk limits would do, at the journaled venue time.

Pure and deterministic: no venue calls, no clock reads, no kill-switch file (its journaled
state is used). Assumptions, stated in the report's docs:

- an accept replay decides is taken to fill (replay cannot know what the venue would have said);
  quotes the venue refused in reality are out of the running from the refusal on;
- an RFQ stops being decidable once the journal shows it accepted or final;
- risk limits count the accepts replay decides inside the replayed window only.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from rfqbot.engine.deciding import Decision, decide_quotes
from rfqbot.engine.market import MarketBook
from rfqbot.records import ACCEPT_TOOK_STATUSES, QuoteMode, Quote, RfqStatus, Side
from rfqbot.replay_journal import Row, dec, integer, pairs_in, quote_of, quotes_of, read_rows
from rfqbot.engine.risk import RiskLedger, RiskSettings
from strategies import ChainSet, RfqView
from strategies.reference import PUBLIC_QUOTES, bps_worse, reference_price

REFERENCE_MAX_AGE_MS = 60_000  # for the report's "price vs reference", not for any decision
_DONE = ACCEPT_TOOK_STATUSES


@dataclass(frozen=True, slots=True)
class Outcome:
    """One side of the comparison: what was (or would be) done with an RFQ, and why."""

    action: str                        # accept, decline, blocked, wait, none
    reason: str
    at_ms: int | None = None
    quote_id: str | None = None
    price: Decimal | None = None
    amounts: Mapping[str, Decimal] = field(default_factory=dict)
    lp_name: str | None = None
    vs_reference_bps: Decimal | None = None  # positive: better than the reference for the account
    blocked_by: str | None = None


@dataclass
class RfqReplay:
    rfq_id: str
    pair: str | None = None
    side: str | None = None
    then: Outcome | None = None
    now: Outcome | None = None
    quote_sets: int = 0
    first_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    rfqs: int
    accepts: int
    declines: int
    blocked: int
    unfilled: int                               # RFQs with quotes and no accept (declines included)
    notional: Mapping[str, Decimal]             # volume per currency: bought + sold (see bought/sold)
    average_price: Mapping[str, Decimal]        # per pair, weighted by base amount
    average_vs_reference_bps: Decimal | None     # mean over accepts with a reference
    with_reference: int
    # Per currency, what the accepts would buy and what they would sell, kept apart: USDT spent
    # buying BTC and USDT received selling ETH are not one number a desk can use.
    bought: Mapping[str, Decimal] = field(default_factory=dict)
    sold: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    journal: str
    since_ms: int | None
    rfqs: list[RfqReplay]
    then: Totals
    now: Totals


@dataclass
class _Live:
    """Replay's view of one own RFQ while walking."""

    rfq_id: str
    state: dict[str, Any] = field(default_factory=dict)
    quotes: tuple[Quote, ...] = ()
    refused: set[str] = field(default_factory=set)
    declined: set[str] = field(default_factory=set)
    closed: bool = False
    settled: bool = False              # replay accepted or declined: no more decisions
    wait_until: int | None = None


class Replayer:
    """Walks the rows once; ``report()`` afterwards. Use ``replay_journal`` unless testing."""

    def __init__(self, chains: ChainSet, risk: RiskSettings, *, min_time_left_ms: int) -> None:
        self.chains, self.risk, self.min_time_left_ms = chains, risk, min_time_left_ms
        self.ledger = RiskLedger()
        self.kill = (False, risk.kill_switch_file)
        self.offset_ms = 0
        self.market = MarketBook(())
        self.live: dict[str, _Live] = {}
        self.out: dict[str, RfqReplay] = {}
        self._waits: list[tuple[int, str]] = []
        self._decided_at: dict[int, tuple[int, int]] = {}
        self._deferred: dict[int, tuple[_Live, int]] = {}
        self.since_ms: int | None = None
        # Pairs a journaled get-pairs refresh closed (pairs.changed): never accepted, as live.
        self.closed_pairs: set[str] = set()

    def run(self, rows: list[Row], *, since_ms: int | None = None) -> list[RfqReplay]:
        self.market = MarketBook(pairs_in(rows))
        self.since_ms = since_ms
        self._decided_at = decision_times(rows)
        for row in rows:
            self._fire_waits(self._venue_time(row))
            self._apply(row)
        self._fire_waits(None)
        for record in self.out.values():
            then = record.then
            if then is not None and then.action == "accept" and then.quote_id in self._live(record.rfq_id).refused:
                record.then = replace(then, action="refused", reason=f"the venue refused the accept; {then.reason}")
        return [r for r in sorted(self.out.values(), key=lambda r: (r.first_ms or 0, r.rfq_id)) if r.quote_sets]

    # --- time --------------------------------------------------------------------------------

    def _venue_time(self, row: Row) -> int:
        """The venue time the engine used for this row: its decision's ``at_ms`` for a quote set
        it decided on, the frame's venue time for spot, else local receipt time + clock offset."""
        if row.seq in self._decided_at:
            return self._decided_at[row.seq][0]
        if row.venue_ms is not None:
            return row.venue_ms
        received = integer(row.payload.get("received_ms"))
        return (received if received is not None else row.local_ms) + self.offset_ms

    def _fire_waits(self, until: int | None) -> None:
        while self._waits and (until is None or self._waits[0][0] <= until):
            at, rfq_id = heapq.heappop(self._waits)
            live = self.live.get(rfq_id)
            if live is not None and live.wait_until == at and not live.closed and not live.settled:
                live.wait_until = None
                self._decide(live, at)

    # --- rows --------------------------------------------------------------------------------

    def _apply(self, row: Row) -> None:
        p, kind = row.payload, row.kind
        state = p.get("rfq_state")
        if row.rfq_id and isinstance(state, Mapping):
            self._live(row.rfq_id).state.update({k: v for k, v in state.items() if v is not None})
        if kind == "note.clock_sync" and integer(p.get("offset_ms")) is not None:
            self.offset_ms = p["offset_ms"]
        elif kind == "frame.spot":
            price = dec(p.get("price"))
            if price is not None and isinstance(p.get("symbol"), str):
                self.market.on_spot(p["symbol"], price, self._venue_time(row), str(p.get("topic") or "spot"))
        elif kind == "frame.public_quote":
            quote = quote_of(p.get("quote"))
            if quote is not None:
                if quote.submitted_ms is None:  # aged from arrival, as the engine did
                    quote = replace(quote, submitted_ms=self._venue_time(row))
                self.market.on_public_quote(quote)
        elif kind == "pairs.changed":
            for change in p.get("changes") or ():
                if isinstance(change, Mapping) and isinstance(change.get("pair"), str):
                    if str(change.get("to") or "").strip().upper() == "CLOSED":
                        self.closed_pairs.add(change["pair"])
                    else:
                        self.closed_pairs.discard(change["pair"])
        elif kind == "risk.kill_switch":
            self.kill = (p.get("engaged") is True, p.get("file") or self.risk.kill_switch_file)
        elif kind in ("frame.best_quotes", "reconcile.active_quotes") and row.rfq_id:
            self._on_quotes(row)
        elif kind == "decision" and row.rfq_id:
            deferred = self._deferred.pop(row.seq, None)
            if deferred is not None and not deferred[0].closed and not deferred[0].settled:
                self._decide(*deferred)
            self._on_then_decision(row)
        elif kind == "accept.result" and row.rfq_id and p.get("outcome") == "rejected" and row.quote_id:
            self._live(row.rfq_id).refused.add(row.quote_id)
        if row.rfq_id and isinstance(state, Mapping) and state.get("status"):
            status = RfqStatus.parse(str(state["status"]))
            if status.is_final or status in _DONE:
                self._live(row.rfq_id).closed = True

    def _live(self, rfq_id: str) -> _Live:
        if rfq_id not in self.live:
            self.live[rfq_id] = _Live(rfq_id)
        return self.live[rfq_id]

    def _on_quotes(self, row: Row) -> None:
        quotes = quotes_of(row.payload.get("quotes"))
        if not quotes:
            return
        live = self._live(row.rfq_id or "")
        now = self._venue_time(row)
        if self.since_ms is not None and row.rfq_id not in self.out and now - self.offset_ms < self.since_ms:
            return
        record = self.out.setdefault(live.rfq_id, RfqReplay(live.rfq_id, first_ms=now))
        record.quote_sets += 1
        live.quotes, live.wait_until = quotes, None
        if live.closed or live.settled:
            return
        if row.seq in self._decided_at:
            # Decide where the engine did: journaled with its decision row (a kill-switch change
            # read during that decision is journaled just before it).
            self._deferred[self._decided_at[row.seq][1]] = (live, now)
            return
        self._decide(live, now)

    def _view(self, live: _Live) -> RfqView | None:
        s = live.state
        if not s.get("pair") or not s.get("side"):
            first = live.quotes[0] if live.quotes else None
            pair = self.market.pair_of(first.buy_ccy, first.sell_ccy) if first else None
            if pair is None or first is None:
                return None
            s = {**s, "pair": pair.name, "side": pair.side_of(first.buy_ccy or "", first.sell_ccy or "").value,
                 "buy_ccy": first.buy_ccy, "sell_ccy": first.sell_ccy}
        return RfqView(live.rfq_id, s["pair"], Side(s["side"]), s.get("buy_ccy") or "", s.get("sell_ccy") or "",
                       dec(s.get("buy_amount")), dec(s.get("sell_amount")), QuoteMode.parse(str(s.get("mode") or "")),
                       integer(s.get("expires_ms")), integer(s.get("created_ms")))

    def _decide(self, live: _Live, now: int) -> None:
        view = self._view(live)
        record = self.out.setdefault(live.rfq_id, RfqReplay(live.rfq_id, first_ms=now))
        if view is not None:
            record.pair, record.side = view.pair, view.side.value
        quotes = tuple(q for q in live.quotes if q.quote_id not in live.refused)
        engaged, file = self.kill
        risk = replace(self.risk, kill_switch_file=file) if engaged else self.risk
        chain = self.chains.for_pair(view.pair) if view is not None else None
        decision = decide_quotes(chain, view, quotes, self.market.context(view.pair if view else ""), now,
                                 min_time_left_ms=self.min_time_left_ms, risk=risk, ledger=self.ledger,
                                 kill_switch=lambda: engaged, declined=live.declined,
                                 pair_text=f"{live.state.get('buy_ccy')}/{live.state.get('sell_ccy')}",
                                 trading_status="CLOSED" if view is not None and view.pair in self.closed_pairs
                                 else None)
        record.now = self._outcome(decision, now, view)
        if decision.action == "wait" and decision.until_ms is not None:
            live.wait_until = decision.until_ms
            heapq.heappush(self._waits, (decision.until_ms, live.rfq_id))
        elif decision.action == "accept":
            live.settled = True
            self.ledger.record(live.rfq_id, now, decision.amounts)
        elif decision.action == "decline":
            live.settled = True

    def _outcome(self, d: Decision, now: int, view: RfqView | None) -> Outcome:
        p = d.payload
        vs = self._vs_reference(d.quote.price, view, now) if d.quote is not None and view is not None else None
        return Outcome(d.action, str(p.get("reason", "")), now, d.quote_id, d.quote.price if d.quote else None,
                       dict(d.amounts), d.quote.lp_name if d.quote else None, vs, p.get("blocked_by"))

    def _vs_reference(self, price: Decimal, view: RfqView, now: int) -> Decimal | None:
        market = self.market.context(view.pair)
        for source in ("spot", PUBLIC_QUOTES):
            ref, _ = reference_price(market, source, now_ms=now, max_age_ms=REFERENCE_MAX_AGE_MS, min_quotes=1,
                                     exclude_rfq=view.rfq_id)
            if ref is not None:
                return -bps_worse(price, ref.price, view.side is Side.BUY_BASE)
        return None

    def _on_then_decision(self, row: Row) -> None:
        """Keep the decision that mattered then: the last accept not refused, else the last one."""
        record = self.out.get(row.rfq_id or "")
        if record is None:
            return
        p = row.payload
        at = integer(p.get("at_ms"))
        if at is not None:
            self.offset_ms = at - row.local_ms
        if record.then is not None and record.then.action == "accept" and record.then.quote_id not in \
                self._live(record.rfq_id).refused:
            return
        price = dec(p.get("price"))
        view = self._view(self._live(record.rfq_id))
        vs = self._vs_reference(price, view, at or row.local_ms) if price is not None and view is not None else None
        amounts = {k: v for k, v in ((k, dec(v)) for k, v in (p.get("amounts") or {}).items()) if v is not None}
        record.then = Outcome(str(p.get("action", "none")), str(p.get("reason", "")), at, row.quote_id, price,
                              amounts, p.get("lp_name"), vs, p.get("blocked_by"))


def decision_times(rows: list[Row]) -> dict[int, tuple[int, int]]:
    """Quote-set row seq -> (venue time ``at_ms``, seq) of the decision the engine made on it.

    The engine journals a quote set and decides on it in the same step, so the first decision
    for the RFQ triggered by a quote set, before the next quote set, belongs to it.
    """
    pending: dict[str, int] = {}
    out: dict[int, tuple[int, int]] = {}
    for row in rows:
        if row.kind in ("frame.best_quotes", "reconcile.active_quotes") and row.rfq_id:
            pending[row.rfq_id] = row.seq
        elif row.kind == "decision" and row.rfq_id in pending and \
                row.payload.get("trigger") in ("bestQuote", "rfq-active"):
            at = integer(row.payload.get("at_ms"))
            seq = pending.pop(row.rfq_id or "")
            if at is not None:
                out[seq] = (at, row.seq)
    return out


def totals(rows: list[RfqReplay], side: str) -> Totals:
    """Totals over ``then`` or ``now`` outcomes."""
    outcomes = [getattr(r, side) for r in rows]
    accepts = [(r, o) for r, o in zip(rows, outcomes) if o is not None and o.action == "accept"]
    notional: dict[str, Decimal] = {}
    weighted: dict[str, tuple[Decimal, Decimal]] = {}
    vs = [o.vs_reference_bps for _, o in accepts if o.vs_reference_bps is not None]
    bought: dict[str, Decimal] = {}
    sold: dict[str, Decimal] = {}
    for r, o in accepts:
        base, _, quote_ccy = (r.pair or "").partition("/")
        buys = base if r.side == Side.BUY_BASE.value else quote_ccy if r.side == Side.SELL_BASE.value else None
        for ccy, amount in o.amounts.items():
            notional[ccy] = notional.get(ccy, Decimal(0)) + amount
            if buys:
                into = bought if ccy == buys else sold
                into[ccy] = into.get(ccy, Decimal(0)) + amount
        base = (r.pair or "/").split("/")[0]
        if r.pair and o.price is not None and base in o.amounts:
            total, qty = weighted.get(r.pair, (Decimal(0), Decimal(0)))
            weighted[r.pair] = (total + o.price * o.amounts[base], qty + o.amounts[base])
    average = {pair: (t / q).quantize(Decimal("0.00000001")).normalize() for pair, (t, q) in weighted.items() if q}
    mean = (sum(vs, Decimal(0)) / len(vs)).quantize(Decimal("0.01")) if vs else None
    count = lambda action: sum(1 for o in outcomes if o is not None and o.action == action)  # noqa: E731
    return Totals(len(rows), len(accepts), count("decline"), count("blocked"),
                  len(rows) - len(accepts), dict(sorted(notional.items())), average, mean, len(vs),
                  dict(sorted(bought.items())), dict(sorted(sold.items())))


def replay_journal(path: str | Path, chains: ChainSet, risk: Any, *, min_time_left_ms: int,
                   since_ms: int | None = None) -> ReplayReport:
    """Replay the journal at ``path`` through ``chains`` and ``risk`` (the ``risk:`` section or a
    ``RiskSettings``); ``since_ms`` (local wall-clock ms) limits it to RFQs first quoted since then."""
    warmup = None if since_ms is None else since_ms - 10 * 60_000  # market context before the window
    rows = list(read_rows(path, since_local_ms=warmup))
    replayer = Replayer(chains, RiskSettings.from_any(risk), min_time_left_ms=min_time_left_ms)
    result = replayer.run(rows, since_ms=since_ms)
    return ReplayReport(str(path), since_ms, result, totals(result, "then"), totals(result, "now"))
