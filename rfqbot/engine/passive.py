"""Engine handlers for events that are only journaled (and feed the market context).

Split from ``loop.py`` to keep the decision path short to read. These handlers never change
an RFQ's state: the public stream and connection events are facts for the audit trail and the
strategies' market context, not authority over the account's RFQs.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any

import structlog

from rfqbot.journal import projections as kinds
from rfqbot.clock import VenueClock
from rfqbot.engine.state import OwnRfq
from rfqbot.engine.market import MarketBook
from rfqbot.events import (
    Heartbeat, ListenKeyStatus, Note, PublicQuote, PublicRfq, RejectedFrame, SpotTick, StreamStatus, VenueCall,
)
from rfqbot.records import Quote

log = structlog.get_logger(__name__)

_QUOTE_FIELDS = tuple(f.name for f in fields(Quote))
_quote_values = attrgetter(*_QUOTE_FIELDS)
_SUBMITTED = _QUOTE_FIELDS.index("submitted_ms")


def _submitted_at(quote: Quote, ms: int) -> Quote:
    """``dataclasses.replace(quote, submitted_ms=ms)`` at half the cost (once per public quote)."""
    values = list(_quote_values(quote))
    values[_SUBMITTED] = ms
    return Quote(*values)


class PassiveHandlers:
    """Mixin for ``Engine``: relies on its ``_record``, ``market``, ``venue_clock`` and ``rfqs``."""

    venue_banned: bool

    market: MarketBook
    venue_clock: VenueClock
    rfqs: dict[str, OwnRfq]

    def _record(self, kind: str, source: str, payload: dict[str, Any], *, rfq_id: str | None = None,
                quote_id: str | None = None, venue_ms: int | None = None) -> int:
        raise NotImplementedError

    def _on_public_rfq(self, ev: PublicRfq) -> None:
        # Journal only: the public push of an own RFQ may be older than an acceptance seen on the
        # private stream (different connections, no common order), so it never moves state.
        self._record("frame.public_rfq", "public", {"rfq": ev.rfq, "raw": ev.raw, "received_ms": ev.received_ms,
                                                    "own": ev.rfq.rfq_id in self.rfqs}, rfq_id=ev.rfq.rfq_id)

    def _on_public_quote(self, ev: PublicQuote) -> None:
        # The venue's quotesCreated frame has no creation time: such a quote is aged from when it
        # reached the engine (venue clock), journaled as the row's venue_ms so replay ages it alike.
        seen_ms = self.venue_clock.now_ms()
        quote = ev.quote if ev.quote.submitted_ms is not None else _submitted_at(ev.quote, seen_ms)
        self.market.on_public_quote(quote)
        self._record(kinds.KIND_PUBLIC_QUOTE, "public", {"quote": ev.quote, "raw": ev.raw,
                                                         "received_ms": ev.received_ms},
                     rfq_id=ev.quote.rfq_id, quote_id=ev.quote.quote_id, venue_ms=seen_ms)

    def _on_spot(self, ev: SpotTick) -> None:
        at_ms = ev.venue_ms if ev.venue_ms is not None else self.venue_clock.now_ms()
        pair = self.market.on_spot(ev.symbol, ev.price, at_ms, ev.topic)
        self._record("frame.spot", "public", {"symbol": ev.symbol, "pair": pair, "price": ev.price,
                                              "topic": ev.topic, "raw": ev.raw}, venue_ms=ev.venue_ms)

    def _on_rejected(self, ev: RejectedFrame) -> None:
        log.warning("engine.rejected_frame", stream=ev.stream, reason=ev.reason)
        self._record("frame.rejected", ev.stream, {"reason": ev.reason, "raw": ev.raw, "received_ms": ev.received_ms})

    def _on_stream(self, ev: StreamStatus) -> None:
        self._record(kinds.KIND_STREAM, ev.stream, {"stream": ev.stream, "state": ev.state, "detail": ev.detail,
                                                    "session": ev.session})

    def _on_listen_key(self, ev: ListenKeyStatus) -> None:
        self._record("listen_key", "listenkey", {"action": ev.action, "key_hint": ev.key_hint, "detail": ev.detail})

    def _on_venue_call(self, ev: VenueCall) -> None:
        self._record(kinds.KIND_VENUE_CALL, "rest", {
            "method": ev.method, "endpoint": ev.endpoint, "params": ev.params, "http_status": ev.http_status,
            "venue_code": ev.venue_code, "duration_ms": ev.duration_ms, "outcome": ev.outcome, "error": ev.error})

    def _on_note(self, ev: Note) -> None:
        if ev.kind == "alert.banned":   # the daemon saw an HTTP 418 on any call: stop deciding
            self.venue_banned = True
        self._record(f"note.{ev.kind}", "engine", dict(ev.detail))

    def _on_heartbeat(self, ev: Heartbeat) -> None:
        """Heartbeats belong to the stream threads; one that reaches the engine is ignored."""

