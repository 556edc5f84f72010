"""The Market Place itself: RFQs, quotes, the status lifecycle and the best-quote rule.

Everything here runs on the simulator's event loop thread (one writer, no locks). It never
touches sockets: it hands finished frames to a ``Publisher`` and asks a ``later`` callable to run
things after a delay, so the lifecycle reads top to bottom in one place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Callable, Protocol

from rfqbot.sim import venue_errors as err
from rfqbot.sim.clock import SimClock
from rfqbot.sim.config import PairConfig, SimConfig
from rfqbot.sim.frames import (best_quote_frame, quote_created_frame, rfq_created_frame,
                               rfq_update_frame)
from rfqbot.sim.truth import GroundTruth

OPEN_STATUSES = ("new", "manual-order", "manual-order-confirmation")
FINAL_STATUSES = ("successful", "expired", "cancelled", "declined", "failed")


def digits(text: str) -> bool:
    """ASCII digits only: str.isdigit would also take '１００' and '²'."""
    return text.isascii() and text.isdigit()


class Publisher(Protocol):
    def public(self, topic: str, frame: dict[str, Any], rfq_id: str) -> None: ...
    def private(self, owner: str, topic: str, frame: dict[str, Any], rfq_id: str) -> None: ...


Later = Callable[[float, Callable[[], None]], Any]


@dataclass
class Quote:
    quote_id: str
    seq: int
    rfq_id: str
    lp_name: str
    price: Decimal
    buy_amount: Decimal
    sell_amount: Decimal
    mode: str
    submit_ms: int
    expire_ms: int
    lifetime_s: float
    confirm_s: float
    expire_mono: int               # deadline on the monotonic clock (expire_ms is for the wire)
    manual: bool = False
    superseded: bool = False
    expired: bool = False          # set by the expiry timer, so the set change is never missed

    def live(self, now_mono: int) -> bool:
        return not (self.superseded or self.expired) and self.expire_mono > now_mono


@dataclass
class Rfq:
    rfq_id: str
    cl_order_id: str
    owner: str
    pair: PairConfig
    buy_ccy: str
    sell_ccy: str
    sell_amount: Decimal
    mode: str
    created_ms: int
    expire_ms: int
    expire_mono: int
    status: str = "new"
    quotes: list[Quote] = field(default_factory=list)
    accepted: Quote | None = None
    executed_ms: int | None = None
    lp_reject: bool = False
    window_over: bool = False
    best_started: bool = False
    last_best: tuple[str, ...] = ()
    manual_quote: Quote | None = None

    @property
    def buys_base(self) -> bool:
        return self.buy_ccy == self.pair.base


class Market:
    """RFQ book of every account. ``owner`` is the API key's account or a background account."""

    def __init__(self, config: SimConfig, clock: SimClock, rng: random.Random,
                 truth: GroundTruth, publisher: Publisher, later: Later) -> None:
        self.config = config
        self.clock = clock
        self.truth = truth
        self.publisher = publisher
        self.later = later
        self.rfqs: dict[str, Rfq] = {}
        self._by_cl_id: dict[tuple[str, str], str] = {}
        self._id_base = rng.randrange(700_000_000_000_000_000, 800_000_000_000_000_000)
        self._next_id = 0
        self._quote_seq = 0
        self.unqueried_owners: set[str] = set()   # background accounts: no history kept
        self.on_rfq_new: list[Callable[[Rfq], None]] = []      # LPs listen here
        self.on_quote_expired: list[Callable[[Rfq, Quote], None]] = []
        self.on_best_quote: list[Callable[[Rfq, list[Quote]], None]] = []

    # ------------------------------------------------------------------ ids and lookups
    def _new_id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}{self._id_base + self._next_id}"

    def pair_for(self, buy_ccy: str, sell_ccy: str) -> PairConfig | None:
        for pair in self.config.pairs:
            if {pair.base, pair.quote} == {buy_ccy, sell_ccy} and buy_ccy != sell_ccy:
                return pair
        return None

    def owned(self, owner: str, rfq_id: str) -> Rfq:
        rfq = self.rfqs.get(rfq_id)
        if rfq is None or rfq.owner != owner:
            raise err.invalid_order_id(rfq_id)
        return rfq

    # ------------------------------------------------------------------ create
    def create_rfq(self, owner: str, params: dict[str, str]) -> Rfq:
        for name in ("buyCcy", "sellCcy", "sellAmount", "rfqMode"):
            if not params.get(name):
                raise err.missing(name)
        mode = params["rfqMode"]
        if mode not in ("real-time", "delayed"):
            raise err.illegal("rfqMode", "use real-time or delayed")
        pair = self.pair_for(params["buyCcy"], params["sellCcy"])
        if pair is None:
            raise err.unsupported_pair()
        if pair.trading_status != "OPENED":
            raise err.VenueReject(-1151, "The trading pair is not open yet")
        try:
            if not params["sellAmount"].isascii():
                raise InvalidOperation
            amount = Decimal(params["sellAmount"])
        except InvalidOperation:
            raise err.missing("sellAmount") from None
        if not amount.is_finite() or amount <= 0:
            raise err.missing("sellAmount")
        sells_base = params["sellCcy"] == pair.base
        precision = Decimal(pair.base_precision if sells_base else pair.quote_precision)
        low = Decimal(pair.min_base if sells_base else pair.min_quote)
        high = Decimal(pair.max_base if sells_base else pair.max_quote)
        if amount < low:
            raise err.VenueReject(-1136, f"Order quantity lower than the minimum ({low})")
        if amount > high:
            raise err.VenueReject(-1135, f"Order quantity greater than the maximum ({high})")
        if amount != amount.quantize(precision, rounding=ROUND_DOWN):
            raise err.precision_illegal()
        expire_text = params.get("expireSec") or "1800"
        if not digits(expire_text) or not 600 <= int(expire_text) <= 3600:
            raise err.illegal("expireSec", "allowed 600-3600 seconds")
        cl_id = params.get("rfqClOrderId") or ""
        if len(cl_id) > 64:
            raise err.VenueReject(-5030, "The Length of rfqClOrderId cannot exceed 64")
        if cl_id and (owner, cl_id) in self._by_cl_id:
            raise err.VenueReject(-1141, "Duplicate order")
        rfq_id = self._new_id("MP")
        now = self.clock.now_ms()
        rfq = Rfq(rfq_id=rfq_id, cl_order_id=cl_id or rfq_id, owner=owner, pair=pair,
                  buy_ccy=params["buyCcy"], sell_ccy=params["sellCcy"], sell_amount=amount,
                  mode=mode, created_ms=now,
                  expire_ms=now + self.clock.real_ms(int(expire_text)),
                  expire_mono=self.clock.mono_ms() + self.clock.real_ms(int(expire_text)))
        self.rfqs[rfq_id] = rfq
        if cl_id:
            self._by_cl_id[(owner, cl_id)] = rfq_id
        self.truth.record("rfq_created", rfq_id=rfq_id, owner=owner, buy_ccy=rfq.buy_ccy,
                          sell_ccy=rfq.sell_ccy, sell_amount=str(amount), rfq_mode=mode,
                          expire_ms=rfq.expire_ms, cl_order_id=rfq.cl_order_id)
        self._status_changed(rfq, None)
        self.later(self.clock.real_s(self.config.bestquote_window_s), lambda: self._window_end(rfq))
        self.later(self.clock.real_s(int(expire_text)), lambda: self._rfq_expiry(rfq))
        for listener in self.on_rfq_new:
            listener(rfq)
        return rfq

    # ------------------------------------------------------------------ quotes
    def add_quote(self, rfq: Rfq, lp_name: str, price: Decimal, mode: str, lifetime_s: float,
                  confirm_s: float, manual: bool = False) -> Quote | None:
        """An LP quotes. Returns None when the RFQ no longer takes quotes."""
        if rfq.status not in OPEN_STATUSES:
            return None
        pair = rfq.pair
        try:
            price = price.quantize(Decimal(pair.quote_precision))
        except InvalidOperation:
            return None           # a price with more digits than the venue can hold
        if price <= 0:
            return None
        if rfq.buys_base:
            buy_amount = (rfq.sell_amount / price).quantize(Decimal(pair.base_precision),
                                                            rounding=ROUND_DOWN)
        else:
            buy_amount = (rfq.sell_amount * price).quantize(Decimal(pair.quote_precision),
                                                            rounding=ROUND_DOWN)
        for older in rfq.quotes:
            if older.lp_name == lp_name:
                older.superseded = True
        self._quote_seq += 1
        now = self.clock.now_ms()
        quote = Quote(quote_id=self._new_id("MPQ"), seq=self._quote_seq, rfq_id=rfq.rfq_id,
                      lp_name=lp_name, price=price, buy_amount=buy_amount,
                      sell_amount=rfq.sell_amount, mode=mode, submit_ms=now,
                      expire_ms=now + self.clock.real_ms(lifetime_s), lifetime_s=lifetime_s,
                      confirm_s=confirm_s, manual=manual,
                      expire_mono=self.clock.mono_ms() + self.clock.real_ms(lifetime_s))
        rfq.quotes.append(quote)
        self.truth.record("quote_created", rfq_id=rfq.rfq_id, quote_id=quote.quote_id,
                          lp=lp_name, price=str(price), buy_amount=str(buy_amount),
                          quote_mode=mode, manual=manual, expire_ms=quote.expire_ms)
        self.publisher.public("quotes", quote_created_frame(rfq, quote), rfq.rfq_id)
        self.later(self.clock.real_s(lifetime_s), lambda: self._quote_expiry(rfq, quote))
        if manual and rfq.status == "manual-order":
            rfq.manual_quote = quote
            self._set_status(rfq, "manual-order-confirmation")
        self._best_quote_check(rfq)
        return quote

    def valid_quotes(self, rfq: Rfq) -> list[Quote]:
        """Latest unexpired quote per LP, ranked: mode match > price > quote time."""
        now = self.clock.mono_ms()
        if rfq.status == "manual-order-confirmation" and rfq.manual_quote:
            candidates = [rfq.manual_quote]
        else:
            candidates = [q for q in rfq.quotes if not q.manual]
        live = [q for q in candidates if q.live(now)]
        sign = 1 if rfq.buys_base else -1
        return sorted(live, key=lambda q: (q.mode != rfq.mode, sign * q.price, q.submit_ms, q.seq))

    def _window_end(self, rfq: Rfq) -> None:
        rfq.window_over = True
        self._best_quote_check(rfq)

    def _best_quote_check(self, rfq: Rfq) -> None:
        """The documented rule: >= 3 valid quotes within 3 s, else all valid quotes after 3 s;
        then again whenever the set (or its order) changes."""
        if rfq.status not in ("new", "manual-order-confirmation"):
            return
        ranked = self.valid_quotes(rfq)
        if not ranked:
            return
        if not rfq.best_started:
            if len(ranked) < self.config.bestquote_min_quotes and not rfq.window_over:
                return
            rfq.best_started = True
        ids = tuple(q.quote_id for q in ranked)
        if ids == rfq.last_best:
            return
        rfq.last_best = ids
        self.publisher.private(rfq.owner, "bestQuote",
                               best_quote_frame(rfq, ranked, self.clock.now_ms()), rfq.rfq_id)
        for listener in self.on_best_quote:
            listener(rfq, ranked)

    def _quote_expiry(self, rfq: Rfq, quote: Quote) -> None:
        quote.expired = True
        if rfq.status == "accepted" and rfq.accepted is quote:
            self.truth.record("accepted_quote_expired", rfq_id=rfq.rfq_id, quote_id=quote.quote_id)
            rfq.accepted = None
            self._back_to_new(rfq)
        elif rfq.status == "manual-order-confirmation" and rfq.manual_quote is quote:
            rfq.manual_quote = None
            self._back_to_new(rfq)
        else:
            self._best_quote_check(rfq)
        for listener in self.on_quote_expired:
            listener(rfq, quote)

    def _back_to_new(self, rfq: Rfq) -> None:
        if self.clock.mono_ms() >= rfq.expire_mono:
            self._set_status(rfq, "expired")
            return
        rfq.last_best = ()
        rfq.best_started = rfq.window_over
        self._set_status(rfq, "new")
        self._best_quote_check(rfq)

    # ------------------------------------------------------------------ manual orders
    def start_manual(self, rfq: Rfq, lp_name: str, price: Decimal, mode: str, delay_s: float,
                     lifetime_s: float, confirm_s: float) -> bool:
        """A manual LP takes the RFQ: manual-order now, its quote after ``delay_s`` (nominal)."""
        if rfq.status != "new":
            return False
        self._set_status(rfq, "manual-order")
        self.later(self.clock.real_s(delay_s),
                   lambda: self.add_quote(rfq, lp_name, price, mode, lifetime_s, confirm_s, True))
        return True

    # ------------------------------------------------------------------ accept / decline
    def accept(self, owner: str, params: dict[str, str]) -> dict[str, Any]:
        for name in ("rfqId", "quoteId", "action"):
            if not params.get(name):
                raise err.missing(name)
        action = params["action"]
        if action not in ("accept", "decline"):
            raise err.illegal("action", "use accept or decline")
        rfq = self.owned(owner, params["rfqId"])
        quote = next((q for q in rfq.quotes if q.quote_id == params["quoteId"]), None)
        if quote is None:
            raise err.invalid_order_id(params["quoteId"])
        if action == "decline":
            if not quote.manual or rfq.status != "manual-order-confirmation" \
                    or rfq.manual_quote is not quote:
                raise err.unsupported_operation("decline only works for a manual quote awaiting "
                                                "confirmation; let other quotes expire")
            rfq.manual_quote = None
            self._set_status(rfq, "failed", quote)
            return {"rfqId": rfq.rfq_id, "quoteId": quote.quote_id, "status": "failed",
                    "expiryTime": None}
        if quote.manual:
            if rfq.manual_quote is not quote:
                raise err.quote_expired()
            allowed = rfq.status == "manual-order-confirmation"
        else:
            allowed = rfq.status == "new"
        if not allowed:
            raise err.illegal("rfqId", f"RFQ is {rfq.status}; only a new RFQ accepts a quote")
        if not quote.live(self.clock.mono_ms()):
            raise err.quote_expired()
        rfq.accepted = quote
        self._set_status(rfq, "accepted", quote)
        self.later(self.clock.real_s(quote.confirm_s), lambda: self._lp_confirms(rfq, quote))
        return {"rfqId": rfq.rfq_id, "quoteId": quote.quote_id, "status": "accepted",
                "expiryTime": min(quote.expire_ms, rfq.expire_ms) // 1000}

    def _lp_confirms(self, rfq: Rfq, quote: Quote) -> None:
        if rfq.status != "accepted" or rfq.accepted is not quote:
            return
        if not quote.live(self.clock.mono_ms()) and not quote.superseded:
            self._quote_expiry(rfq, quote)
            return
        self._set_status(rfq, "processing", quote)
        if quote.mode == "real-time":
            self._settle(rfq, quote)
        else:
            self.later(self.clock.real_s(self.config.settlement_s),
                       lambda: self._settle(rfq, quote))

    def _settle(self, rfq: Rfq, quote: Quote) -> None:
        if rfq.status == "processing":
            rfq.executed_ms = self.clock.now_ms()
            self._set_status(rfq, "successful", quote)

    # ------------------------------------------------------------------ operations commands
    def cancel(self, rfq_id: str) -> bool:
        rfq = self.rfqs.get(rfq_id)
        if rfq is None or rfq.status in FINAL_STATUSES:
            return False
        self._set_status(rfq, "cancelled")
        return True

    def lp_reject(self, rfq_id: str) -> bool:
        """The LP rejects an accepted quote before confirming: status declined, isLPReject."""
        rfq = self.rfqs.get(rfq_id)
        if rfq is None or rfq.status != "accepted":
            return False
        rfq.lp_reject = True
        self._set_status(rfq, "declined", rfq.accepted)
        return True

    def _rfq_expiry(self, rfq: Rfq) -> None:
        if rfq.status in OPEN_STATUSES:
            self._set_status(rfq, "expired")

    # ------------------------------------------------------------------ status changes
    def _set_status(self, rfq: Rfq, status: str, quote: Quote | None = None) -> None:
        previous = rfq.status
        rfq.status = status
        self._status_changed(rfq, previous, quote)
        if status in FINAL_STATUSES:
            self._forget(rfq)

    def _forget(self, rfq: Rfq) -> None:
        """A final RFQ keeps only what history shows, so a venue running for days stays small:
        its accepted quote, and nothing at all for accounts nobody can query."""
        rfq.quotes = [rfq.accepted] if rfq.accepted else []
        rfq.manual_quote = None
        if rfq.owner in self.unqueried_owners:
            self.rfqs.pop(rfq.rfq_id, None)

    def _status_changed(self, rfq: Rfq, previous: str | None, quote: Quote | None = None) -> None:
        shown = quote or rfq.accepted
        self.truth.record("status_change", rfq_id=rfq.rfq_id, owner=rfq.owner,
                          **{"from": previous, "to": rfq.status},
                          quote_id=shown.quote_id if shown else None)
        self.publisher.private(rfq.owner, "rfqUpdates", rfq_update_frame(rfq, shown), rfq.rfq_id)
        if rfq.status == "new":
            self.publisher.public("rfqs", rfq_created_frame(rfq), rfq.rfq_id)
