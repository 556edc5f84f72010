"""The engine's state: the RFQ status partial order, per-RFQ records, and market context.

Kept apart from the event loop so the rules can be read (and tested) on their own.

Status order. Updates can arrive twice (stream and reconciliation) or out of order (a stream
reconnect replays, a history query is older than a push). An observed status moves an RFQ only
forward along::

    new < manual-order < manual-order-confirmation < accepted < processing < final

where final is successful, expired, cancelled, declined or failed. Final statuses stick. The
one documented backward step is ``accepted -> new`` (the accepted quote lapsed before
confirmation). An unknown status word never moves the RFQ: it is journaled with its raw text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from rfqbot.records import ACCEPT_TOOK_STATUSES, FINAL_STATUS_WORDS, Pair, Quote, QuoteMode, RfqStatus, Side
from rfqbot.engine.market import MarketBook  # noqa: F401 - moved to rfqbot.engine.market; old import path kept

_RANK = {
    RfqStatus.NEW: 0,
    RfqStatus.MANUAL_ORDER: 1,
    RfqStatus.MANUAL_ORDER_CONFIRMATION: 2,
    RfqStatus.ACCEPTED: 3,
    RfqStatus.PROCESSING: 4,
}
_FINAL_RANK = 5

# accept_state values: the accept-at-most-once bookkeeping of one RFQ.
ACCEPT_NONE = "none"                # no accept outstanding or standing: an accept may be sent
ACCEPT_OUTSTANDING = "outstanding"  # sent (journaled first), no answer yet
ACCEPT_UNKNOWN = "unknown"          # answer lost (5xx/timeout/restart): blocked until reconciled
ACCEPT_ACCEPTED = "accepted"        # the venue took an accept (ours or one made elsewhere)
BLOCKING_ACCEPT_STATES = frozenset({ACCEPT_OUTSTANDING, ACCEPT_UNKNOWN, ACCEPT_ACCEPTED})
_TOOK = ACCEPT_TOOK_STATUSES


def status_rank(status: RfqStatus) -> int:
    return _FINAL_RANK if status.is_final else _RANK.get(status, -1)


@dataclass(frozen=True, slots=True)
class StatusStep:
    """Whether an observed status moves the RFQ, and why (journaled as the cause detail)."""

    moves: bool
    why: str


def next_status(current: RfqStatus | None, observed: RfqStatus, *, allow_reopen: bool = True) -> StatusStep:
    """Apply the partial order (module docstring) to one observation.

    ``allow_reopen=False`` refuses the ``accepted -> new`` step: only the private stream's
    ordered ``rfqUpdates`` may reopen an RFQ; a history answer or a public push may be older
    than the acceptance, and believing it could allow a second accept.
    """
    if observed is RfqStatus.UNKNOWN:
        return StatusStep(False, "unknown status word; state kept")
    if current is None:
        return StatusStep(True, "first seen")
    if current is observed:
        return StatusStep(False, "duplicate")
    if current.is_final:
        return StatusStep(False, f"{current.value} is final")
    if current is RfqStatus.ACCEPTED and observed is RfqStatus.NEW:
        if not allow_reopen:
            return StatusStep(False, "accepted -> new is taken only from rfqUpdates (this source may be stale)")
        return StatusStep(True, "accepted quote lapsed; RFQ is new again")
    if status_rank(observed) > status_rank(current):
        return StatusStep(True, "forward")
    return StatusStep(False, f"stale: {observed.value} is behind {current.value}")


def accept_state_after(accept_state: str, new_status: RfqStatus, before: RfqStatus | None = None) -> str:
    """How a (moved-to) status settles the accept bookkeeping.

    - the venue shows the RFQ accepted/processing/successful: an accept took (ours or made
      elsewhere), so no accept may be sent - unless ours is still in flight (stays outstanding);
    - back to ``new`` FROM ``accepted`` (the venue's documented reopen: the accepted quote lapsed
      before confirmation) after an accept that took or whose outcome was unknown: the venue
      says it did not stick, so a new accept is allowed. A ``new`` seen without an ``accepted``
      before it (a first sighting, an answer to a question asked before our accept) proves
      nothing about our accept: only reconciliation asked after the doubt began may settle it;
    - any other final status: nothing more will happen; an unknown outcome is settled.
    """
    if new_status in _TOOK:
        return accept_state if accept_state == ACCEPT_OUTSTANDING else ACCEPT_ACCEPTED
    if (new_status is RfqStatus.NEW and before is RfqStatus.ACCEPTED
            and accept_state in (ACCEPT_ACCEPTED, ACCEPT_UNKNOWN)):
        return ACCEPT_NONE
    if new_status.is_final and accept_state == ACCEPT_UNKNOWN:
        return ACCEPT_NONE
    return accept_state


@dataclass
class OwnRfq:
    """Everything the engine knows about one of the account's RFQs (mutable, engine thread only)."""

    rfq_id: str
    pair: str | None = None
    side: Side | None = None
    buy_ccy: str | None = None
    sell_ccy: str | None = None
    buy_amount: Decimal | None = None
    sell_amount: Decimal | None = None
    mode: QuoteMode = QuoteMode.UNKNOWN
    status: RfqStatus | None = None
    status_raw: str | None = None
    client_order_id: str | None = None
    expires_ms: int | None = None
    created_ms: int | None = None
    updated_ms: int | None = None
    accept_state: str = ACCEPT_NONE
    accepted_quote_id: str | None = None
    price: Decimal | None = None
    decision_seq: int | None = None
    inflight_quote_id: str | None = None
    doubt_since_ms: int | None = None
    wait_until_ms: int | None = None
    last_quotes: tuple[Quote, ...] = ()
    last_quotes_ms: int | None = None
    refused_quotes: set[str] = field(default_factory=set)
    declined_quotes: set[str] = field(default_factory=set)
    # Quotes whose acceptance the private stream showed lapsing (accepted -> new): a late
    # accept answer about one of them is old news and must not move the RFQ back to accepted.
    lapsed_quotes: set[str] = field(default_factory=set)
    # Restored from the journal but older than the venue's history window: nobody can tell
    # what became of it, so it is no longer queried nor counted as open (journaled once).
    stale: bool = False

    @property
    def is_final(self) -> bool:
        return self.status is not None and self.status.is_final

    @property
    def is_open(self) -> bool:
        """Counts against max_open_rfqs and is reconciled: not final, and not given up as stale."""
        return not self.is_final and not self.stale

    def learn(self, *, buy_ccy: str | None = None, sell_ccy: str | None = None,
              buy_amount: Decimal | None = None, sell_amount: Decimal | None = None,
              mode: QuoteMode | None = None, expires_ms: int | None = None, created_ms: int | None = None,
              client_order_id: str | None = None) -> None:
        """Fill in facts not known yet; known facts are not overwritten by later, partial messages."""
        self.buy_ccy = self.buy_ccy or buy_ccy
        self.sell_ccy = self.sell_ccy or sell_ccy
        self.buy_amount = self.buy_amount if self.buy_amount is not None else buy_amount
        self.sell_amount = self.sell_amount if self.sell_amount is not None else sell_amount
        if self.mode is QuoteMode.UNKNOWN and mode is not None:
            self.mode = mode
        self.expires_ms = self.expires_ms or expires_ms
        self.created_ms = self.created_ms or created_ms
        self.client_order_id = self.client_order_id or client_order_id

    def resolve_pair(self, pairs: Iterable[Pair]) -> None:
        if self.pair is not None or not (self.buy_ccy and self.sell_ccy):
            return
        for pair in pairs:
            side = pair.side_of(self.buy_ccy, self.sell_ccy)
            if side is not None:
                self.pair, self.side = pair.name, side
                return

    def snapshot(self) -> dict[str, Any]:
        """The ``rfqs`` row for the journal's projection."""
        return {
            "rfq_id": self.rfq_id, "pair": self.pair, "side": self.side.value if self.side else None,
            "buy_ccy": self.buy_ccy, "sell_ccy": self.sell_ccy, "buy_amount": self.buy_amount,
            "sell_amount": self.sell_amount, "mode": self.mode.value,
            "status": self.status.value if self.status else None, "status_raw": self.status_raw,
            "accept_state": self.accept_state, "accepted_quote_id": self.accepted_quote_id, "price": self.price,
            "client_order_id": self.client_order_id, "expires_ms": self.expires_ms,
            "created_ms": self.created_ms, "updated_ms": self.updated_ms, "own": True,
        }


# --- which RFQs the engine keeps in memory ------------------------------------------------------

SETTLED_KEPT_MS = 3_600_000
"""How long a settled RFQ stays in the engine's memory after it became final.

Settled: final, and no accept of ours outstanding or in doubt. Nothing can happen to such an
RFQ any more; it stays an hour so that late pushes about it are compared in memory, then it is
dropped (``Engine.forget_settled``), so that a daemon running for months holds (and checks on
every tick) only its live RFQs. A later message about a dropped RFQ reads it back from the
journal (``Engine._rfq``), and a restart loads only live RFQs (``live_own_rfqs_where``): the
journal keeps everything; memory keeps what can still change.
"""

_UNSETTLED_ACCEPTS = (ACCEPT_OUTSTANDING, ACCEPT_UNKNOWN)


def is_settled_before(rfq: OwnRfq, before_ms: int) -> bool:
    """``rfq`` is settled and became final before ``before_ms`` (local ms): it may be dropped
    from memory. The same rule as ``live_own_rfqs_where``, in SQL for a restart."""
    return (rfq.is_final and rfq.accept_state not in _UNSETTLED_ACCEPTS and rfq.inflight_quote_id is None
            and (rfq.updated_ms or rfq.created_ms or 0) < before_ms)


def live_own_rfqs_where(settled_before_ms: int) -> tuple[str, tuple[Any, ...]]:
    """The ``rfqs`` rows a restart loads: ``is_settled_before``'s complement, in SQL.

    Also kept: an RFQ with an accept decision whose result was never journaled or is unknown,
    so that ``restore_rfqs`` can tell (from its row's ``last_seq``) whether that doubt was
    already settled, rather than seeing the doubt without its RFQ.
    """
    finals = ", ".join("?" for _ in FINAL_STATUS_WORDS)
    unsettled = ", ".join("?" for _ in _UNSETTLED_ACCEPTS)
    sql = (f"NOT (status IN ({finals}) AND COALESCE(accept_state, '{ACCEPT_NONE}') NOT IN ({unsettled}) "
           "AND COALESCE(updated_ms, created_ms, 0) < ? AND rfq_id NOT IN (SELECT rfq_id FROM decisions "
           "WHERE action = 'accept' AND (result_outcome IS NULL OR result_outcome = 'unknown')))")
    return sql, (*FINAL_STATUS_WORDS, *_UNSETTLED_ACCEPTS, settled_before_ms)


def own_rfq_from_row(row: dict[str, Any], pairs: Iterable[Pair]) -> OwnRfq:
    """An own RFQ as its journal ``rfqs`` row left it (money already ``Decimal``). An accept that
    was outstanding has no worker any more in this process: its outcome is unknown."""
    rfq = OwnRfq(row["rfq_id"])
    rfq.buy_ccy, rfq.sell_ccy = row["buy_ccy"], row["sell_ccy"]
    rfq.mode = QuoteMode.parse(row["mode"] or "")
    rfq.buy_amount, rfq.sell_amount, rfq.price = row["buy_amount"], row["sell_amount"], row["price"]
    rfq.status = RfqStatus.parse(row["status"]) if row["status"] else None
    rfq.status_raw, rfq.client_order_id = row["status_raw"], row["client_order_id"]
    rfq.expires_ms, rfq.created_ms, rfq.updated_ms = row["expires_ms"], row["created_ms"], row["updated_ms"]
    rfq.accept_state = row["accept_state"] or ACCEPT_NONE
    rfq.accepted_quote_id = row["accepted_quote_id"]
    rfq.resolve_pair(pairs)
    if rfq.accept_state == ACCEPT_OUTSTANDING:
        rfq.accept_state = ACCEPT_UNKNOWN
    return rfq


def restore_rfqs(rows: dict[str, dict[str, Any]], unknown_accepts: list[dict[str, Any]], pairs: Iterable[Pair],
                 now_ms: int) -> dict[str, OwnRfq]:
    """Rebuild own RFQs from ``Journal.load_state`` after a restart.

    An accept that was outstanding when the process stopped has no worker any more: its outcome
    is unknown, and the RFQ stays blocked until reconciliation asks the venue.
    """
    pairs = list(pairs)
    out: dict[str, OwnRfq] = {row["rfq_id"]: own_rfq_from_row(row, pairs) for row in rows.values()}
    for doubt in unknown_accepts:
        row = rows.get(doubt["rfq_id"])
        if row is not None and (row["last_seq"] or 0) >= doubt["decision_seq"]:
            continue  # the rfqs row already reflects this decision and what followed it
        rfq = out.setdefault(doubt["rfq_id"], OwnRfq(doubt["rfq_id"]))
        if rfq.accept_state == ACCEPT_NONE and not rfq.is_final:
            rfq.accept_state, rfq.accepted_quote_id = ACCEPT_UNKNOWN, doubt["quote_id"]
    for rfq in out.values():
        if rfq.accept_state == ACCEPT_UNKNOWN:
            rfq.doubt_since_ms = now_ms
            if rfq.accepted_quote_id:
                rfq.refused_quotes.add(rfq.accepted_quote_id)  # never accepted a second time
    return out


# Accept results that say nothing about the quote itself (the venue paused or banned us before
# judging it): such a quote may be accepted again, in memory and after a restart alike.
_NOT_JUDGED_CODES = ("429", "418")


def decided_quotes_sql(rfq_id: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The query behind ``restore_decided_quotes``: accept/decline decisions of own RFQs that are
    not final (of ``rfq_id`` only, if given), with the venue code of each accept's result (from
    its accept.result event)."""
    finals = ", ".join("?" for _ in FINAL_STATUS_WORDS)
    sql = ("SELECT d.rfq_id, d.quote_id, d.action, d.result_outcome, "
           "json_extract(e.payload, '$.venue_code') AS venue_code "
           "FROM decisions d LEFT JOIN events e ON e.seq = d.result_seq "
           "WHERE d.action IN ('accept', 'decline') AND d.quote_id IS NOT NULL AND d.rfq_id IN "
           f"(SELECT rfq_id FROM rfqs WHERE own = 1 AND (status IS NULL OR status NOT IN ({finals})))")
    if rfq_id is None:
        return sql, FINAL_STATUS_WORDS
    return sql + " AND d.rfq_id = ?", (*FINAL_STATUS_WORDS, rfq_id)


def restore_decided_quotes(rfqs: dict[str, OwnRfq], rows: Iterable[dict[str, Any]]) -> None:
    """Put back, after a restart, the quotes an open RFQ must not be offered again.

    In memory every quote the engine tried to accept ends up refused (rejected by the venue, in
    doubt, or accepted and then lapsed) unless a 429/418 kept the venue from judging it, and
    every declined quote stays declined. Without this a restart forgot both sets: a quote whose
    accept was in doubt and then settled as "not taken" could be accepted a second time (and
    the venue may still act on the first request late).
    """
    for row in rows:
        rfq = rfqs.get(row["rfq_id"])
        if rfq is None:
            continue
        if row["action"] == "decline":
            rfq.declined_quotes.add(row["quote_id"])
        elif not (row["result_outcome"] == "rejected" and row["venue_code"] in _NOT_JUDGED_CODES):
            rfq.refused_quotes.add(row["quote_id"])
