"""Built-in strategies: price_limit (required by the daemon), time_left, lp_filter, settlement.

Each is a small pure class; parameters are declared so the config loader validates them and
the README's strategy reference lists them.
"""

from __future__ import annotations

from decimal import Decimal

from rfqbot.records import QuoteMode, Side
from strategies.base import DecisionContext, Param, Strategy, Verdict


class PriceLimit(Strategy):
    """Reject every quote worse than ``limit_price`` (quote ccy per unit of base).

    Direction-aware: buying base, lower is better, so a quote above the limit is rejected;
    selling base, higher is better, so a quote below the limit is rejected. A quote at exactly
    the limit is acceptable: the limit is the *worst acceptable* price.
    """

    name = "price_limit"
    params = (
        Param("limit_price", "decimal", "worst acceptable price, quote currency per unit of base",
              minimum=Decimal("0")),
    )
    limit_price: Decimal

    def check(self) -> None:
        if self.limit_price <= 0:
            raise ValueError(f"limit_price must be positive, got {self.limit_price}")

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        buying = ctx.rfq.side is Side.BUY_BASE
        rejected = {}
        for quote in ctx.quotes:
            if buying and quote.price > self.limit_price:
                rejected[quote.quote_id] = f"price {quote.price} above buy limit {self.limit_price}"
            elif not buying and quote.price < self.limit_price:
                rejected[quote.quote_id] = f"price {quote.price} below sell limit {self.limit_price}"
        word = "at or below" if buying else "at or above"
        ok = len(ctx.quotes) - len(rejected)
        return Verdict.allow(f"{ok} of {len(ctx.quotes)} quotes {word} limit {self.limit_price}", rejected)


class TimeLeft(Strategy):
    """Reject quotes with less than ``min_ms`` of validity left by the venue clock.

    The engine has its own hard floor (``engine.min_time_left_ms``); this lets a pair ask for more.
    """

    name = "time_left"
    params = (Param("min_ms", "int", "minimum remaining validity of a quote, milliseconds", minimum=0),)
    min_ms: int

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        rejected = {}
        for quote in ctx.quotes:
            if quote.expires_ms is None:
                rejected[quote.quote_id] = "quote has no expiry time"
            elif quote.expires_ms - ctx.now_ms < self.min_ms:
                rejected[quote.quote_id] = (f"{quote.expires_ms - ctx.now_ms} ms left, "
                                            f"below {self.min_ms} ms")
        return Verdict.allow(f"quotes need at least {self.min_ms} ms left", rejected)


class LpFilter(Strategy):
    """Allow or deny quotes by LP name. With an ``allow`` list, only those LPs are acceptable."""

    name = "lp_filter"
    params = (
        Param("allow", "str_list", "LP names that may be accepted (empty: any LP not denied)", default=()),
        Param("deny", "str_list", "LP names never accepted", default=()),
    )
    allow: tuple[str, ...]
    deny: tuple[str, ...]

    def check(self) -> None:
        both = sorted(set(self.allow) & set(self.deny))
        if both:
            raise ValueError(f"LP {both[0]!r} is in both allow and deny; keep it in one list")

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        rejected = {}
        for quote in ctx.quotes:
            lp = quote.lp_name
            if lp is not None and lp in self.deny:
                rejected[quote.quote_id] = f"LP {lp} is denied"
            elif self.allow and lp not in self.allow:
                rejected[quote.quote_id] = f"LP {lp or '(unnamed)'} is not in the allow list"
        return Verdict.allow("LP allow/deny lists applied", rejected)


class Settlement(Strategy):
    """Accept only ``real-time`` quotes, only ``delayed`` ones, or ``either``."""

    name = "settlement"
    params = (Param("mode", "str", "settlement mode to accept", default="either",
                    choices=("real-time", "delayed", "either")),)
    mode: str

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        if self.mode == "either":
            return Verdict.pass_("any settlement mode")
        wanted = QuoteMode(self.mode)
        rejected = {q.quote_id: f"settles {q.mode.value}, only {wanted.value} allowed"
                    for q in ctx.quotes if q.mode is not wanted}
        return Verdict.allow(f"only {wanted.value} settlement", rejected)


BUILTINS: dict[str, type[Strategy]] = {cls.name: cls for cls in (PriceLimit, TimeLeft, LpFilter, Settlement)}
