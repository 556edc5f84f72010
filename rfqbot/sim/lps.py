"""Who trades with whom: the reference price walk, the simulated LPs and background accounts.

All randomness comes from child generators of the one seeded ``random.Random`` (one per
concern), so the reference price path and each LP's decisions for the n-th RFQ do not depend on
how the other concerns happened to interleave in time.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any, Callable

from rfqbot.sim.config import LpConfig, PairConfig, SimConfig
from rfqbot.sim.market import Later, Market, Quote, Rfq
from rfqbot.sim.venue_errors import VenueReject

BPS = Decimal(10000)


def _uniform_bps(rng: random.Random, width_bps: Decimal) -> Decimal:
    """A uniform draw in [-width, +width] bps on a 1/1000 grid, without floats."""
    return Decimal(rng.randint(-1000, 1000)) * width_bps / 1000


class ReferencePrices:
    """A seeded random walk per pair; step n is the same in every run with the same seed."""

    def __init__(self, pairs: list[PairConfig], rng: random.Random, step_bps: Decimal) -> None:
        self.pairs = list(pairs)
        self._rng = rng
        self._step = step_bps
        self.price: dict[str, Decimal] = {p.symbol: Decimal(p.reference_price) for p in pairs}
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        for pair in self.pairs:
            move = _uniform_bps(self._rng, self._step)
            new = self.price[pair.symbol] * (1 + move / BPS)
            self.price[pair.symbol] = new.quantize(Decimal(pair.quote_precision))

    def of(self, pair: PairConfig) -> Decimal:
        return self.price[pair.symbol]


class LiquidityProviders:
    """Quotes every new RFQ from each enabled LP, after its latency, around the reference."""

    def __init__(self, market: Market, refs: ReferencePrices, lps: list[LpConfig],
                 rng: random.Random, later: Later) -> None:
        self.market = market
        self.refs = refs
        self.lps = [lp for lp in lps if lp.enabled]
        self._rng = rng
        self.later = later
        market.on_rfq_new.append(self._on_rfq)
        market.on_quote_expired.append(self._on_quote_expired)

    def price_for(self, rfq: Rfq, lp: LpConfig, noise_bps: Decimal | None = None) -> Decimal:
        if noise_bps is None:
            noise_bps = _uniform_bps(self._rng, Decimal(lp.noise_bps))
        bps = Decimal(lp.spread_bps) + noise_bps
        ref = self.refs.of(rfq.pair)
        return ref * (1 + bps / BPS) if rfq.buys_base else ref * (1 - bps / BPS)

    def _on_rfq(self, rfq: Rfq) -> None:
        """Draw every LP's latency and noise now, in LP order, so the n-th RFQ gets the same
        draws whatever the timing of other RFQs' quotes."""
        for lp in self.lps:
            jitter = self._rng.randint(-lp.latency_jitter_ms, lp.latency_jitter_ms)
            noise = _uniform_bps(self._rng, Decimal(lp.noise_bps))
            delay_s = max(1, lp.latency_ms + jitter) / 1000
            self.later(self.market.clock.real_s(delay_s), self._quote_action(rfq, lp, noise))

    def _quote_action(self, rfq: Rfq, lp: LpConfig, noise: Decimal) -> Callable[[], None]:
        def act() -> None:
            price = self.price_for(rfq, lp, noise)
            if lp.manual:
                self.market.start_manual(rfq, lp.name, price, lp.mode, lp.manual_delay_ms / 1000,
                                         lp.quote_lifetime_s, lp.confirm_ms / 1000)
            else:
                self.market.add_quote(rfq, lp.name, price, lp.mode, lp.quote_lifetime_s,
                                      lp.confirm_ms / 1000)
        return act

    def _on_quote_expired(self, rfq: Rfq, quote: Quote) -> None:
        lp = next((lp for lp in self.lps if lp.name == quote.lp_name), None)
        if lp is None or not lp.requote or lp.manual or rfq.status != "new":
            return
        latest = [q for q in rfq.quotes if q.lp_name == lp.name and not q.superseded]
        if latest and latest[-1] is quote:
            self.market.add_quote(rfq, lp.name, self.price_for(rfq, lp), lp.mode,
                                  lp.quote_lifetime_s, lp.confirm_ms / 1000)


class BackgroundTraffic:
    """Other accounts creating RFQs (and sometimes accepting), so public streams carry traffic."""

    def __init__(self, market: Market, config: SimConfig, rng: random.Random,
                 later: Later) -> None:
        self.market = market
        self.config = config
        self._rng = rng
        self.later = later
        self.created = 0
        self._pending_accept: set[str] = set()
        market.on_best_quote.append(self._on_best_quote)

    def start(self) -> None:
        if self.config.background_rfqs_per_min > 0:
            self._schedule_next()

    def _schedule_next(self) -> None:
        mean_s = 60.0 / self.config.background_rfqs_per_min
        delay_s = mean_s * self._rng.randint(500, 1500) / 1000
        self.later(self.market.clock.real_s(delay_s), self._create_one)

    def _create_one(self) -> None:
        pairs = [p for p in self.config.pairs if p.trading_status == "OPENED"]
        if pairs:
            pair = pairs[self._rng.randrange(len(pairs))]
            sells_base = self._rng.random() < 0.5
            low = Decimal(pair.min_base if sells_base else pair.min_quote)
            precision = Decimal(pair.base_precision if sells_base else pair.quote_precision)
            amount = (max(low, precision) * self._rng.randint(2, 50)).quantize(precision)
            params: dict[str, Any] = {
                "buyCcy": pair.quote if sells_base else pair.base,
                "sellCcy": pair.base if sells_base else pair.quote,
                "sellAmount": str(amount),
                "rfqMode": "real-time" if self._rng.random() < 0.7 else "delayed",
                "expireSec": "600"}
            owner = f"background-{self._rng.randint(1, 5)}"
            self.market.unqueried_owners.add(owner)
            rfq = self.market.create_rfq(owner, params)
            self.created += 1
            if self._rng.random() < self.config.background_accept_ratio:
                self._pending_accept.add(rfq.rfq_id)
        self._schedule_next()

    def _on_best_quote(self, rfq: Rfq, ranked: list[Quote]) -> None:
        if rfq.rfq_id not in self._pending_accept or rfq.status != "new":
            return
        self._pending_accept.discard(rfq.rfq_id)
        best = ranked[0]
        try:
            self.market.accept(rfq.owner, {"rfqId": rfq.rfq_id, "quoteId": best.quote_id,
                                           "action": "accept"})
        except VenueReject:
            return  # e.g. the quote expired meanwhile: a background taker just moves on
