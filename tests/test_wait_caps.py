"""Waits end: the example plug-in's deadline does not move, and any plug-in wait is cut at the
quotes' expiry minus min_time_left_ms (shared decide path: engine and replay)."""

from __future__ import annotations

from dataclasses import replace

from rfqbot.engine.deciding import decide_quotes
from rfqbot.engine.risk import RiskLedger, RiskSettings
from strategies import DecisionContext, MarketContext, Strategy, Verdict
from strategies.chain import Chain
from tests.test_strategies import NOW, chain, q, rfq

SPREAD = [{"use": "strategies.examples.max_spread:MaxSpreadToBest", "max_gap": "5", "wait_ms": 1000},
          {"use": "price_limit", "limit_price": "100"}]


def test_example_wait_deadline_does_not_move_between_evaluations():
    c = chain(SPREAD)
    lone = q("a", "90", 1, submitted=None)
    view = replace(rfq(), created_ms=NOW - 200)
    deadlines = {c.decide(DecisionContext(view, (lone,), MarketContext(), NOW + step)).until_ms
                 for step in (0, 300, 700)}
    assert deadlines == {NOW + 800}
    assert c.decide(DecisionContext(view, (lone,), MarketContext(), NOW + 800)).kind == "accept"


def test_example_without_any_time_anchor_does_not_wait():
    res = chain(SPREAD).decide(DecisionContext(rfq(), (q("a", "90", 1, submitted=None),), MarketContext(), NOW))
    assert res.kind == "accept"


class Forever(Strategy):
    name = "forever"

    def evaluate(self, ctx):
        return Verdict.wait(ctx.now_ms + 3_600_000, "an hour, please")


def decide(quotes, now=NOW, left=2000):
    return decide_quotes(Chain("BTC/USDT", (Forever.from_config({"use": "x"}, key="k"),)), rfq(), tuple(quotes),
                         MarketContext(), now, min_time_left_ms=left, risk=RiskSettings(), ledger=RiskLedger(),
                         kill_switch=lambda: False)


def test_plugin_wait_is_cut_at_the_last_useful_moment():
    d = decide([q("a", "90", 1, expires=NOW + 10_000), q("b", "91", 2, expires=NOW + 20_000)])
    assert d.action == "wait" and d.until_ms == NOW + 18_000
    assert d.payload["wait_requested_ms"] == NOW + 3_600_000 and "cut" in d.payload["reason"]


def test_wait_when_every_quote_is_already_too_late_is_no_wait():
    d = decide([q("a", "90", 1, expires=NOW + 1_500)])
    assert d.action == "none" and "waiting cannot help" in d.payload["reason"]
