"""An example user strategy: take the best quote only if the runner-up is close to it.

A wide gap between the two best quotes often means one LP is mispriced or stale; this declines
instead. Use it with ``use: strategies.examples.max_spread:MaxSpreadToBest``.
"""

from __future__ import annotations

from decimal import Decimal

from strategies.base import DecisionContext, Param, Strategy, Verdict


class MaxSpreadToBest(Strategy):
    """Only take the best quote if the runner-up is within ``max_gap`` of it."""

    name = "max_spread_to_best"
    params = (
        Param("max_gap", "decimal", "largest price gap between the two best quotes", minimum=Decimal("0")),
        Param("wait_ms", "int", "how long to wait for a second quote", default=1000, minimum=0),
    )
    max_gap: Decimal
    wait_ms: int

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        if len(ctx.quotes) < 2:
            # The deadline hangs on facts that do not change between evaluations (the first
            # quote's submit time, else the RFQ's creation), never on "now": a deadline computed
            # from now_ms would move with every evaluation and the wait would never end.
            first_seen = min((q.submitted_ms for q in ctx.quotes if q.submitted_ms), default=ctx.rfq.created_ms)
            if first_seen is None:
                return Verdict.pass_("one quote and no time to count the wait from: not waiting")
            return Verdict.wait(first_seen + self.wait_ms, "want two quotes to compare")
        best, second = ctx.quotes[0], ctx.quotes[1]
        gap = abs(best.price - second.price)
        if gap > self.max_gap:
            return Verdict.decline(f"gap {gap} between the two best quotes is above {self.max_gap}")
        return Verdict.pass_(f"gap {gap} within {self.max_gap}")
