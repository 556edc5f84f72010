"""Reference prices for a pair, and ``reference_band``: accept only near the market.

A quote can be within the desk's ``price_limit`` and still far from where the market is (a
stale limit, a fast market, a mispriced LP). ``reference_band`` compares every quote with a
reference the venue itself publishes: the spot market of the pair (public ``realtimes``,
``trade`` or ``depth`` on the spot symbol, subscribed with ``streams.spot_symbols``), or the
median of the recent public quotes on the pair. No reference, or one older than ``max_age_ms``,
means no accept: without a market to compare with, the band cannot vouch for any price.

``reference_price`` is a plain function so replay reports "average price vs reference" with
exactly the reference a strategy would have seen.
"""

from __future__ import annotations

from decimal import Decimal

from rfqbot.records import Side
from strategies.base import DecisionContext, MarketContext, Param, ReferencePrice, Strategy, Verdict

SPOT_SOURCES = ("spot", "spot.realtimes", "spot.trade", "spot.depth")
PUBLIC_QUOTES = "public_quotes"
BPS = Decimal(10_000)


def median(values: list[Decimal]) -> Decimal:
    """The median; of an even count, the mean of the two middle values (exact in Decimal)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def public_quotes_median(market: MarketContext, *, now_ms: int, max_age_ms: int, min_quotes: int,
                         exclude_rfq: str | None = None) -> tuple[ReferencePrice | None, str]:
    """Median price of the public quotes on the pair submitted within ``max_age_ms`` of ``now_ms``.

    Quotes on ``exclude_rfq`` (the RFQ being decided) are left out: they are the very quotes
    being judged, and would otherwise vouch for themselves. Quotes without a submit time cannot
    be aged and are left out too.
    """
    fresh = [q for q in market.recent_quotes
             if q.rfq_id != exclude_rfq and q.submitted_ms is not None and q.price > 0
             and 0 <= now_ms - q.submitted_ms <= max_age_ms]
    if len(fresh) < min_quotes:
        return None, (f"{len(fresh)} public quotes on the pair in the last {max_age_ms} ms "
                      f"(other RFQs); need {min_quotes}")
    oldest = min(q.submitted_ms or 0 for q in fresh)
    price = median([q.price for q in fresh])
    return ReferencePrice(price, oldest, PUBLIC_QUOTES), f"median of {len(fresh)} public quotes"


def reference_price(market: MarketContext, source: str, *, now_ms: int, max_age_ms: int, min_quotes: int = 3,
                    exclude_rfq: str | None = None) -> tuple[ReferencePrice | None, str]:
    """The usable reference from ``source``, or None with the reason there is none."""
    if source == PUBLIC_QUOTES:
        return public_quotes_median(market, now_ms=now_ms, max_age_ms=max_age_ms, min_quotes=min_quotes,
                                    exclude_rfq=exclude_rfq)
    ref = market.references.get(source)
    if ref is None:
        return None, (f"no {source} reference price for the pair yet (is its spot symbol in "
                      "streams.spot_symbols?)")
    if ref.age_ms(now_ms) > max_age_ms:
        return None, f"{source} reference is {ref.age_ms(now_ms)} ms old, older than max_age_ms {max_age_ms}"
    if ref.price <= 0:
        return None, f"{source} reference price {ref.price} is not positive"
    return ref, f"{ref.source} {ref.price}, {ref.age_ms(now_ms)} ms old"


def bps_worse(price: Decimal, reference: Decimal, buying_base: bool) -> Decimal:
    """How many basis points ``price`` is worse than ``reference`` for the account (negative: better)."""
    diff = price - reference if buying_base else reference - price
    return diff / reference * BPS


class ReferenceBand(Strategy):
    """Reject quotes more than ``max_bps`` away from a reference price; no fresh reference, no accept."""

    name = "reference_band"
    params = (
        Param("max_bps", "decimal", "largest distance from the reference, in basis points (1 bps = 0.01%)",
              minimum=Decimal(0)),
        Param("source", "str", "where the reference comes from: the pair's spot market (latest of any "
              "spot topic, or one topic) or the median of recent public quotes on the pair",
              default="spot", choices=(*SPOT_SOURCES, PUBLIC_QUOTES)),
        Param("max_age_ms", "int", "oldest usable reference (public quotes: oldest quote counted), "
              "milliseconds of venue time", default=5000, minimum=1),
        Param("direction", "str", "'both': reject quotes too far either side; 'adverse': only quotes "
              "worse than the reference for you", default="both", choices=("both", "adverse")),
        Param("min_quotes", "int", "public_quotes only: fewest quotes for a median", default=3, minimum=1),
    )
    max_bps: Decimal
    source: str
    max_age_ms: int
    direction: str
    min_quotes: int

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        ref, why = reference_price(ctx.market, self.source, now_ms=ctx.now_ms, max_age_ms=self.max_age_ms,
                                   min_quotes=self.min_quotes, exclude_rfq=ctx.rfq.rfq_id)
        if ref is None:
            return Verdict.allow(f"no accept: {why}", {q.quote_id: why for q in ctx.quotes})
        buying = ctx.rfq.side is Side.BUY_BASE
        rejected = {}
        for quote in ctx.quotes:
            worse = bps_worse(quote.price, ref.price, buying)
            off = worse if self.direction == "adverse" else abs(worse)
            if off > self.max_bps:
                side = "worse" if worse > 0 else "better"
                rejected[quote.quote_id] = (f"price {quote.price} is {abs(worse):.2f} bps {side} than reference "
                                            f"{ref.price}; band {self.max_bps} bps")
        return Verdict.allow(f"within {self.max_bps} bps of {why}", rejected)
