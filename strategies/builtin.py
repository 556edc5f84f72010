"""Built-in strategies: price_limit, time_left, lp_filter, settlement, wait_for_quotes, size_limits,
manual_quotes (and reference_band, from ``strategies.reference``).

Each is a small pure class; parameters are declared so the config loader validates them and
the README's strategy reference lists them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from rfqbot.records import QuoteMode, Side
from strategies.base import DecisionContext, Param, Strategy, Verdict, trade_amounts
from strategies.reference import ReferenceBand


class PriceLimit(Strategy):
    """Reject every quote worse than ``limit_price`` (quote ccy per unit of base).

    Direction-aware: buying base, lower is better, so a quote above the limit is rejected;
    selling base, higher is better, so a quote below the limit is rejected. A quote at exactly
    the limit is acceptable: the limit is the *worst acceptable* price.
    """

    name = "price_limit"
    params = (
        Param("limit_price", "decimal", "worst acceptable price, quote currency per unit of base",
              above=Decimal("0")),
    )
    limit_price: Decimal

    def check(self) -> None:
        # The Param bound catches this in YAML; this is for a PriceLimit built in code.
        if self.limit_price <= 0:
            raise ValueError(f"limit_price must be greater than 0, got {self.limit_price}")

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




class WaitForQuotes(Strategy):
    """Hold the decision until ``min_quotes`` distinct LPs quoted or ``max_wait_ms`` passed.

    The wait starts at the first quote's submit time (else the RFQ's creation), so re-evaluating
    never moves the deadline; it never runs past the moment the earliest current quote (or the
    RFQ) comes within ``expiry_margin_ms`` of expiring: waiting must not cost the quotes in hand.
    Once it ends, it has no opinion, and the chain takes the best allowed quote.
    """

    name = "wait_for_quotes"
    params = (
        Param("min_quotes", "int", "distinct LPs (by lpName) to wait for", default=2, minimum=1),
        Param("max_wait_ms", "int", "longest wait after the first quote, milliseconds", default=3000, minimum=0),
        Param("expiry_margin_ms", "int", "stop waiting this long before the earliest quote or the RFQ "
              "expires, milliseconds", default=3000, minimum=0),
    )
    min_quotes: int
    max_wait_ms: int
    expiry_margin_ms: int

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        lps = {q.lp_name or f"(unnamed {q.quote_id})" for q in ctx.quotes}
        if len(lps) >= self.min_quotes:
            return Verdict.pass_(f"{len(lps)} LPs quoted (wanted {self.min_quotes})")
        started = min((q.submitted_ms for q in ctx.quotes if q.submitted_ms is not None),
                      default=ctx.rfq.created_ms)
        ends = [q.expires_ms - self.expiry_margin_ms for q in ctx.quotes if q.expires_ms is not None]
        if ctx.rfq.expires_ms is not None:
            ends.append(ctx.rfq.expires_ms - self.expiry_margin_ms)
        if started is not None:
            ends.append(started + self.max_wait_ms)
        if not ends:
            return Verdict.pass_("no submit or expiry time to time a wait by; not waiting")
        deadline = min(ends)
        if deadline <= ctx.now_ms:
            return Verdict.pass_(f"waited: {len(lps)} of {self.min_quotes} LPs quoted by the deadline")
        return Verdict.wait(deadline, f"{len(lps)} of {self.min_quotes} LPs quoted; waiting until {deadline}")


class SizeLimits(Strategy):
    """Reject quotes whose traded amount of a currency is below ``min`` or above ``max`` for it.

    Amounts are the quote's (else the RFQ's), the missing side derived from the price, so a limit
    on either currency of the pair holds. A limited currency whose amount cannot be known is a
    rejection, not a pass: a size limit that cannot be checked must not let the trade through.
    """

    name = "size_limits"
    params = (
        Param("min", "decimal_map", "smallest amount per currency, e.g. {BTC: 0.01}", default=None,
              minimum=Decimal(0)),
        Param("max", "decimal_map", "largest amount per currency, e.g. {USDT: 250000}", default=None,
              minimum=Decimal(0)),
    )
    min: Mapping[str, Decimal] | None
    max: Mapping[str, Decimal] | None

    def check(self) -> None:
        if not self.min and not self.max:
            raise ValueError("size_limits needs min: or max: (a mapping of currency to amount)")
        for ccy, low in (self.min or {}).items():
            high = (self.max or {}).get(ccy)
            if high is not None and low > high:
                raise ValueError(f"{ccy}: min {low} is above max {high}")

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        rejected = {}
        limited = {ccy for ccy in (*(self.min or {}), *(self.max or {}))
                   if ccy in (ctx.rfq.buy_ccy, ctx.rfq.sell_ccy)}
        for quote in ctx.quotes:
            amounts = trade_amounts(ctx.rfq, quote)
            for ccy in sorted(limited):
                amount = amounts.get(ccy)
                low, high = (self.min or {}).get(ccy), (self.max or {}).get(ccy)
                if amount is None:
                    rejected[quote.quote_id] = f"amount of {ccy} unknown; cannot check its size limit"
                elif low is not None and amount < low:
                    rejected[quote.quote_id] = f"{amount} {ccy} below min {low}"
                elif high is not None and amount > high:
                    rejected[quote.quote_id] = f"{amount} {ccy} above max {high}"
                else:
                    continue
                break
        return Verdict.allow("size limits on " + (", ".join(sorted(limited)) or "no currency of this RFQ"),
                             rejected)


class ManualQuotes(Strategy):
    """What to do with manual quotes (an LP priced the RFQ by hand; the venue lets you decline those).

    Inside ``limit_price`` (direction-aware, as ``price_limit``): ``inside: accept`` leaves them
    acceptable, ``inside: leave`` never accepts them. Outside it: ``outside: decline`` declines
    the quote at the venue - the RFQ then ends (``failed``), so no other quote is taken -
    ``outside: leave`` lets it expire. Without ``limit_price`` every manual quote is inside.
    Quotes that are not manual are left to the rest of the chain.
    """

    name = "manual_quotes"
    params = (
        Param("limit_price", "decimal", "worst acceptable price for a manual quote", default=None,
              above=Decimal(0)),
        Param("inside", "str", "manual quotes within the limit: accept (allowed) or leave (never accepted)",
              default="accept", choices=("accept", "leave")),
        Param("outside", "str", "manual quotes beyond the limit: decline at the venue or leave to expire",
              default="decline", choices=("decline", "leave")),
    )
    limit_price: Decimal | None
    inside: str
    outside: str

    def check(self) -> None:
        if self.limit_price is None and self.outside == "decline":
            raise ValueError("outside: decline needs limit_price (which manual quotes are outside it?); "
                             "set limit_price or outside: leave")

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        rejected = {}
        for quote in ctx.quotes:
            if not quote.manual:
                continue
            if self.limit_price is not None and ctx.better(self.limit_price, quote.price):
                why = f"manual quote at {quote.price} beyond limit {self.limit_price}"
                if self.outside == "decline":
                    return Verdict.decline(why, quote_id=quote.quote_id)
                rejected[quote.quote_id] = f"{why}; left to expire"
            elif self.inside == "leave":
                rejected[quote.quote_id] = "manual quotes are left for a person to handle"
        return Verdict.allow(f"manual quotes: inside {self.inside}, outside {self.outside}", rejected)


BUILTINS: dict[str, type[Strategy]] = {cls.name: cls for cls in (PriceLimit, TimeLeft, LpFilter, Settlement, ReferenceBand, WaitForQuotes,
                                      SizeLimits, ManualQuotes)}
