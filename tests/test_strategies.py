"""Strategies: parameters, registry errors, built-ins, chain semantics, and the limit property."""

from __future__ import annotations

import sys
import textwrap
from decimal import Decimal

import pytest

from rfqbot.errors import ConfigError
from rfqbot.records import Quote, QuoteMode, Side
from strategies import (
    ChainSet, DecisionContext, MarketContext, RfqView, Strategy, Verdict, compile_chains,
)
from strategies.base import Param

NOW = 1_760_000_000_000


def rfq(side=Side.BUY_BASE, pair="BTC/USDT"):
    base, quote = pair.split("/")
    buy, sell = (base, quote) if side is Side.BUY_BASE else (quote, base)
    return RfqView("R1", pair, side, buy, sell, sell_amount=Decimal("1000"))


def q(qid, price, rank=None, lp="LP", mode=QuoteMode.REAL_TIME, expires=NOW + 60_000, submitted=NOW):
    return Quote(qid, "R1", Decimal(price), lp_name=lp, mode=mode, rank=rank, expires_ms=expires,
                 submitted_ms=submitted)


def ctx(quotes, side=Side.BUY_BASE, now=NOW):
    return DecisionContext(rfq(side), tuple(quotes), MarketContext(), now)


def chain(steps, pair="BTC/USDT"):
    return compile_chains({pair: steps}, file="cfg.yaml").for_pair(pair)


LIMIT = [{"use": "price_limit", "limit_price": "100"}]


def test_buy_accepts_best_within_limit_and_never_above():
    res = chain(LIMIT).decide(ctx([q("a", "101", 1), q("b", "99", 2), q("c", "100", 3)]))
    assert res.kind == "accept" and res.quote_id == "b"  # rank 1 is above the limit
    assert [x.quote_id for x in res.allowed] == ["b", "c"]
    res = chain(LIMIT).decide(ctx([q("a", "100.01"), q("b", "150")]))
    assert res.kind == "none" and "above buy limit" in res.reason


def test_sell_side_is_direction_aware():
    res = chain(LIMIT).decide(ctx([q("a", "99"), q("b", "100"), q("c", "105")], side=Side.SELL_BASE))
    assert res.kind == "accept" and res.quote_id == "c"  # no ranks: highest price first when selling
    res = chain(LIMIT).decide(ctx([q("a", "99.99")], side=Side.SELL_BASE))
    assert res.kind == "none" and "below sell limit" in res.reason


def test_every_verdict_recorded_and_first_decline_wins():
    class No(Strategy):
        name = "no"

        def evaluate(self, ctx):
            return Verdict.decline("first no")

    class No2(No):
        def evaluate(self, ctx):
            return Verdict.decline("second no")

    from strategies.chain import Chain
    c = Chain("BTC/USDT", (chain(LIMIT).steps[0], No(), No2()))
    res = c.decide(ctx([q("a", "90")]))
    assert res.kind == "decline" and res.reason == "no: first no"
    assert [s.verdict.kind for s in res.steps] == ["allow", "decline", "decline"]


def test_wait_honoured_until_deadline_then_passes():
    class Wait(Strategy):
        name = "wait5"

        def evaluate(self, ctx):
            return Verdict.wait(NOW + 5000, "give LPs five seconds")

    from strategies.chain import Chain
    c = Chain("BTC/USDT", (Wait(), chain(LIMIT).steps[0]))
    res = c.decide(ctx([q("a", "90")]))
    assert res.kind == "wait" and res.until_ms == NOW + 5000
    res = c.decide(ctx([q("a", "90")], now=NOW + 5000))
    assert res.kind == "accept" and res.quote_id == "a"


def test_crashing_strategy_declines_instead_of_accepting():
    class Boom(Strategy):
        name = "boom"

        def evaluate(self, ctx):
            raise RuntimeError("bug")

    from strategies.chain import Chain
    res = Chain("*", (Boom(),)).decide(ctx([q("a", "1")]))
    assert res.kind == "decline" and "RuntimeError" in res.reason


def test_builtins_time_left_lp_filter_settlement():
    steps = [{"use": "time_left", "min_ms": 10_000}, {"use": "lp_filter", "deny": ["BAD"]},
             {"use": "settlement", "mode": "real-time"}]
    quotes = [q("short", "1", 1, expires=NOW + 5000), q("bad", "1", 2, lp="BAD"),
              q("slow", "1", 3, mode=QuoteMode.DELAYED), q("ok", "2", 4)]
    res = chain(steps).decide(ctx(quotes))
    assert res.kind == "accept" and res.quote_id == "ok"
    rejected = {k for s in res.steps for k in s.verdict.rejected}
    assert rejected == {"short", "bad", "slow"}
    res = chain([{"use": "lp_filter", "allow": ["GOOD"]}]).decide(ctx([q("a", "1", lp="X"), q("b", "2", lp="GOOD")]))
    assert res.quote_id == "b"


def test_chainset_falls_back_to_star_and_missing_pair_has_none():
    cs = compile_chains({"*": LIMIT}, file=None)
    assert cs.for_pair("ETH/USDT") is not None
    assert compile_chains({"BTC/USDT": LIMIT}).for_pair("ETH/USDT") is None
    assert compile_chains(None).for_pair("BTC/USDT") is None


@pytest.mark.parametrize("raw, key, words", [
    ({"BTC/USDT": [{"use": "price_limit"}]}, "strategies.BTC/USDT[0].limit_price", "missing required"),
    ({"BTC/USDT": [{"use": "price_limit", "limit_price": "abc"}]}, "strategies.BTC/USDT[0].limit_price",
     "decimal number"),
    ({"BTC/USDT": [{"use": "price_limit", "limit_price": 7.5}]}, "strategies.BTC/USDT[0].limit_price", "binary float"),
    ({"BTC/USDT": [{"use": "price_limit", "limit_price": "0"}]}, "strategies.BTC/USDT[0].limit_price",
     "got '0'; limit_price must be a decimal number greater than 0 (e.g. 70000.5)"),
    ({"BTC/USDT": [{"use": "price_limit", "limit_price": "1", "limt": 2}]}, "strategies.BTC/USDT[0].limt",
     "allowed: limit_price"),
    ({"BTC/USDT": [{"use": "nope"}]}, "strategies.BTC/USDT[0].use", "built-ins are"),
    ({"BTC/USDT": [{"limit_price": "1"}]}, "strategies.BTC/USDT[0].use", "missing 'use:'"),
    ({"btc-usdt": LIMIT}, "strategies.btc-usdt", "BASE/QUOTE"),
    ({"BTC/USDT": []}, "strategies.BTC/USDT", "non-empty list"),
    ({"BTC/USDT": [{"use": "no_such_mod_xyz:Thing"}]}, "strategies.BTC/USDT[0].use", "cannot import"),
    ({"BTC/USDT": [{"use": "strategies.builtin:Nope"}]}, "strategies.BTC/USDT[0].use", "no attribute"),
    ({"BTC/USDT": [{"use": "strategies.base:Param"}]}, "strategies.BTC/USDT[0].use", "not a subclass"),
    ({"BTC/USDT": [{"use": "settlement", "mode": "fast"}]}, "strategies.BTC/USDT[0].mode", "one of"),
    ({"BTC/USDT": [{"use": "lp_filter", "allow": ["A"], "deny": ["A"]}]}, "strategies.BTC/USDT[0]", "both"),
])
def test_config_errors_name_the_key(raw, key, words):
    with pytest.raises(ConfigError) as err:
        compile_chains(raw, file="cfg.yaml")
    assert err.value.key == key and err.value.file == "cfg.yaml"
    assert words in str(err.value)


def test_user_strategy_by_module_path(tmp_path, monkeypatch):
    (tmp_path / "my_strats_pkg.py").write_text(textwrap.dedent("""
        from strategies.base import Param, Strategy, Verdict

        class OnlyLp(Strategy):
            name = "only_lp"
            params = (Param("lp", "str", "the LP"),)

            def evaluate(self, ctx):
                return Verdict.allow("one LP", {x.quote_id: "other LP" for x in ctx.quotes if x.lp_name != self.lp})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    c = chain([{"use": "my_strats_pkg:OnlyLp", "lp": "B"}])
    assert c.decide(ctx([q("a", "1", lp="A"), q("b", "2", lp="B")])).quote_id == "b"
    sys.modules.pop("my_strats_pkg", None)


def test_param_describe_mentions_bounds():
    assert "at least 0" in Param("x", "int", "doc", minimum=0).describe()
    assert Param("x", "decimal", "doc", above=Decimal(0)).describe() == "a decimal number greater than 0 (e.g. 70000.5)"


@pytest.mark.parametrize("value", ["abc", "0", "-1", Decimal("0"), Decimal("-0.5")])
def test_price_limit_says_the_same_thing_for_a_non_number_and_for_zero_or_below(value):
    """One wording whatever is wrong: 'abc' used to say "at least 0" and 0 "must be positive"."""
    with pytest.raises(ConfigError) as err:
        compile_chains({"BTC/USDT": [{"use": "price_limit", "limit_price": value}]}, file="cfg.yaml")
    assert err.value.key == "strategies.BTC/USDT[0].limit_price"
    assert err.value.detail == f"got {value!r}; limit_price must be a decimal number greater than 0 (e.g. 70000.5)"


def test_price_limit_built_in_code_also_refuses_zero():
    from strategies.builtin import PriceLimit

    with pytest.raises(ValueError, match="limit_price must be greater than 0, got 0"):
        PriceLimit(limit_price=Decimal(0))


def test_documented_example_strategy():
    steps = [{"use": "strategies.examples.max_spread:MaxSpreadToBest", "max_gap": "5"},
             {"use": "price_limit", "limit_price": "100"}]
    c = chain(steps)
    res = c.decide(ctx([q("a", "90", 1)]))
    assert res.kind == "wait" and res.until_ms == NOW + 1000
    assert c.decide(ctx([q("a", "90", 1)], now=NOW + 1000)).kind == "accept"  # waited long enough: pass
    assert c.decide(ctx([q("a", "90", 1), q("b", "96", 2)])).kind == "decline"
    res = c.decide(ctx([q("a", "90", 1), q("b", "94", 2)]))
    assert res.kind == "accept" and res.quote_id == "a"
