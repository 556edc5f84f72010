"""Built-ins added with the strategies issue: reference_band, wait_for_quotes, size_limits, manual_quotes;
decimal parameters straight from the YAML loader."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest

from rfqbot.config.schema import load_config_text
from rfqbot.errors import ConfigError
from rfqbot.records import Quote, QuoteMode, Side
from strategies import DecisionContext, MarketContext, ReferencePrice, RfqView, compile_chains
from strategies.base import trade_amounts
from strategies.reference import bps_worse, median, reference_price
from tests.readme import readme_section

D = Decimal
NOW = 1_760_000_000_000


def rfq(side=Side.BUY_BASE, sell_amount="1000", buy_amount=None, created=None, expires=None):
    buy, sell = ("BTC", "USDT") if side is Side.BUY_BASE else ("USDT", "BTC")
    return RfqView("R1", "BTC/USDT", side, buy, sell, D(buy_amount) if buy_amount else None,
                   D(sell_amount) if sell_amount else None, QuoteMode.REAL_TIME, expires, created)


def q(qid, price, lp="LP", submitted=NOW, expires=NOW + 60_000, manual=False, rfq_id="R1"):
    return Quote(qid, rfq_id, D(price), lp_name=lp, submitted_ms=submitted, expires_ms=expires, manual=manual)


def spot(price, at=NOW, topic="trade"):
    ref = ReferencePrice(D(price), at, f"spot.{topic}")
    return MarketContext(MappingProxyType({"spot": ref, f"spot.{topic}": ref}))


def decide(steps, quotes, *, side=Side.BUY_BASE, market=None, now=NOW, view=None):
    chain = compile_chains({"BTC/USDT": steps}, file="cfg.yaml").for_pair("BTC/USDT")
    return chain.decide(DecisionContext(view or rfq(side), tuple(quotes), market or MarketContext(), now))


# --- reference_band ------------------------------------------------------------------------

BAND = {"use": "reference_band", "max_bps": "10"}


def test_reference_band_spot_both_sides_of_the_band():
    quotes = [q("cheap", "99.80"), q("near", "100.05"), q("dear", "100.20")]
    res = decide([BAND], quotes, market=spot("100"))
    assert res.kind == "accept" and res.quote_id == "near"
    band = res.steps[0].verdict
    assert set(band.rejected) == {"cheap", "dear"}
    assert "better" in band.rejected["cheap"] and "worse" in band.rejected["dear"]


def test_reference_band_adverse_only_keeps_better_prices():
    res = decide([{**BAND, "direction": "adverse"}], [q("cheap", "99.80"), q("dear", "100.20")], market=spot("100"))
    assert res.kind == "accept" and res.quote_id == "cheap"
    # selling base: lower is worse
    res = decide([{**BAND, "direction": "adverse"}], [q("low", "99.80"), q("high", "100.20")],
                 side=Side.SELL_BASE, market=spot("100"))
    assert res.quote_id == "high" and "low" in res.steps[0].verdict.rejected


def test_reference_band_exactly_at_edge_is_inside():
    assert decide([BAND], [q("edge", "100.10")], market=spot("100")).kind == "accept"
    assert decide([BAND], [q("out", "100.1001")], market=spot("100")).kind == "none"


@pytest.mark.parametrize("market, words", [
    (MarketContext(), "no spot reference"),
    (spot("100", at=NOW - 5001), "older than max_age_ms"),
])
def test_reference_band_no_or_stale_reference_means_no_accept(market, words):
    res = decide([BAND], [q("a", "100")], market=market)
    assert res.kind == "none" and words in res.reason


def test_reference_band_age_limit_is_inclusive_and_topic_selectable():
    assert decide([BAND], [q("a", "100")], market=spot("100", at=NOW - 5000)).kind == "accept"
    res = decide([{**BAND, "source": "spot.depth"}], [q("a", "100")], market=spot("100", topic="trade"))
    assert res.kind == "none" and "spot.depth" in res.reason


def test_reference_band_public_quote_median_excludes_own_rfq_and_stale():
    recent = (q("o1", "100", rfq_id="X"), q("o2", "101", rfq_id="Y"), q("o3", "102", rfq_id="Z"),
              q("old", "500", rfq_id="W", submitted=NOW - 10_000), q("mine", "1", rfq_id="R1"))
    market = MarketContext(recent_quotes=recent)
    ref, why = reference_price(market, "public_quotes", now_ms=NOW, max_age_ms=5000, exclude_rfq="R1")
    assert ref.price == D("101") and ref.source == "public_quotes" and "3 public quotes" in why
    steps = [{"use": "reference_band", "max_bps": "50", "source": "public_quotes"}]
    res = decide(steps, [q("a", "101.4"), q("b", "101.6")], market=market)
    assert res.quote_id == "a" and "b" in res.steps[0].verdict.rejected
    res = decide([{**steps[0], "min_quotes": 4}], [q("a", "101")], market=market)
    assert res.kind == "none" and "need 4" in res.reason


def test_median_and_bps_helpers():
    assert median([D(3), D(1), D(2)]) == 2 and median([D(1), D(2), D(4), D(3)]) == D("2.5")
    assert bps_worse(D("101"), D("100"), True) == 100 and bps_worse(D("101"), D("100"), False) == -100


# --- wait_for_quotes -----------------------------------------------------------------------

WAIT = {"use": "wait_for_quotes", "min_quotes": 2, "max_wait_ms": 3000, "expiry_margin_ms": 2000}


def test_wait_until_enough_lps_then_best():
    res = decide([WAIT], [q("a", "100", lp="A")])
    assert res.kind == "wait" and res.until_ms == NOW + 3000
    res = decide([WAIT], [q("a", "100", lp="A"), q("a2", "99", lp="A")], now=NOW + 100)
    assert res.kind == "wait", "two quotes from one LP are one LP"
    res = decide([WAIT], [q("a", "100", lp="A"), q("b", "99", lp="B", submitted=NOW + 500)], now=NOW + 600)
    assert res.kind == "accept" and res.quote_id == "b"


def test_wait_deadline_is_stable_and_ends_with_best():
    for now in (NOW, NOW + 1000, NOW + 2999):
        assert decide([WAIT], [q("a", "100", lp="A")], now=now).until_ms == NOW + 3000
    res = decide([WAIT], [q("a", "100", lp="A")], now=NOW + 3000)
    assert res.kind == "accept" and "waited" in res.steps[0].verdict.reason


def test_wait_never_past_quote_or_rfq_expiry_minus_margin():
    res = decide([WAIT], [q("a", "100", lp="A", expires=NOW + 4000)])
    assert res.until_ms == NOW + 2000
    res = decide([WAIT], [q("a", "100", lp="A")], view=rfq(expires=NOW + 2500))
    assert res.until_ms == NOW + 500
    assert decide([WAIT], [q("a", "100", lp="A", expires=NOW + 1500)]).kind == "accept"


def test_wait_without_any_time_to_go_by_does_not_wait_forever():
    res = decide([WAIT], [q("a", "100", lp="A", submitted=None, expires=None)])
    assert res.kind == "accept" and "not waiting" in res.steps[0].verdict.reason
    res = decide([WAIT], [q("a", "100", lp="A", submitted=None, expires=None)], view=rfq(created=NOW - 500))
    assert res.kind == "wait" and res.until_ms == NOW + 2500


# --- size_limits ---------------------------------------------------------------------------

def test_size_limits_per_currency_both_sides_derived_from_price():
    view = rfq(sell_amount="1000")  # buying BTC with 1000 USDT
    steps = [{"use": "size_limits", "min": {"BTC": "0.01"}, "max": {"USDT": "5000"}}]
    res = decide(steps, [q("cheap", "50000"), q("dear", "200000")], view=view)
    # 1000 USDT buys 0.02 BTC at 50000 (ok) but 0.005 BTC at 200000 (below min 0.01)
    assert res.quote_id == "cheap" and "below min 0.01" in res.steps[0].verdict.rejected["dear"]
    res = decide(steps, [q("a", "50000")], view=rfq(sell_amount="6000"))
    assert res.kind == "none" and "above max 5000" in res.reason
    assert trade_amounts(view, q("a", "50000")) == {"USDT": D("1000"), "BTC": D("0.02")}


def test_size_limits_unknown_amount_rejects_and_other_currencies_ignored():
    view = RfqView("R1", "BTC/USDT", Side.BUY_BASE, "BTC", "USDT")
    res = decide([{"use": "size_limits", "max": {"BTC": "1"}}], [q("a", "100")], view=view)
    assert res.kind == "none" and "unknown" in res.reason
    res = decide([{"use": "size_limits", "max": {"ETH": "1"}}], [q("a", "100")], view=view)
    assert res.kind == "accept"


@pytest.mark.parametrize("step, key, words", [
    ({"use": "size_limits"}, "strategies.BTC/USDT[0]", "needs min: or max:"),
    ({"use": "size_limits", "min": {"BTC": "2"}, "max": {"BTC": "1"}}, "strategies.BTC/USDT[0]", "above max"),
    ({"use": "size_limits", "max": {"btc": "1"}}, "strategies.BTC/USDT[0].max", "upper-case"),
    ({"use": "size_limits", "max": {"BTC": 1.5}}, "strategies.BTC/USDT[0].max", "BTC"),
    ({"use": "size_limits", "max": ["BTC"]}, "strategies.BTC/USDT[0].max", "mapping of currency"),
    ({"use": "reference_band"}, "strategies.BTC/USDT[0].max_bps", "missing required"),
    ({"use": "reference_band", "max_bps": "5", "source": "mid"}, "strategies.BTC/USDT[0].source", "public_quotes"),
    ({"use": "wait_for_quotes", "min_quotes": 0}, "strategies.BTC/USDT[0].min_quotes", "at least 1"),
    ({"use": "manual_quotes"}, "strategies.BTC/USDT[0]", "needs limit_price"),
    ({"use": "manual_quotes", "limit_price": "0"}, "strategies.BTC/USDT[0].limit_price",
     "limit_price must be a decimal number greater than 0 (e.g. 70000.5)"),
    ({"use": "manual_quotes", "limit_price": "x"}, "strategies.BTC/USDT[0].limit_price",
     "limit_price must be a decimal number greater than 0 (e.g. 70000.5)"),
    ({"use": "size_limits", "max": {"BTC": "-1"}}, "strategies.BTC/USDT[0].max", "decimal number at least 0"),
    ({"use": "reference_band", "max_bps": "-1"}, "strategies.BTC/USDT[0].max_bps",
     "max_bps must be a decimal number at least 0"),
    ({"use": "manual_quotes", "inside": "take", "outside": "leave"}, "strategies.BTC/USDT[0].inside", "one of"),
])
def test_new_builtin_config_errors_name_the_key(step, key, words):
    with pytest.raises(ConfigError) as err:
        compile_chains({"BTC/USDT": [step]}, file="cfg.yaml")
    assert err.value.key == key and words in str(err.value)


# --- manual_quotes -------------------------------------------------------------------------

MANUAL = {"use": "manual_quotes", "limit_price": "100"}


def test_manual_outside_limit_is_declined_at_the_venue():
    res = decide([MANUAL], [q("auto", "99"), q("man", "101", manual=True)])
    assert res.kind == "decline" and res.quote_id == "man" and "beyond limit" in res.reason


def test_manual_inside_limit_accepted_or_left():
    res = decide([MANUAL], [q("man", "99", manual=True)])
    assert res.kind == "accept" and res.quote_id == "man"
    res = decide([{**MANUAL, "inside": "leave"}], [q("man", "99", manual=True), q("auto", "99.5")])
    assert res.quote_id == "auto" and "person" in res.steps[0].verdict.rejected["man"]


def test_manual_outside_leave_and_no_limit():
    res = decide([{**MANUAL, "outside": "leave"}], [q("man", "101", manual=True)])
    assert res.kind == "none" and "left to expire" in res.reason
    res = decide([{"use": "manual_quotes", "outside": "leave"}], [q("man", "1000", manual=True)])
    assert res.kind == "accept"  # no limit: every manual quote is inside
    res = decide([{**MANUAL}], [q("man", "99", manual=True)], side=Side.SELL_BASE)
    assert res.kind == "decline"  # selling base: below the limit is beyond it


# --- parameters straight from the YAML loader ------------------------------------------------

def test_unquoted_yaml_numbers_reach_params_exactly():
    settings = load_config_text("""
streams:
  spot_symbols: [BTCUSDT]
strategies:
  BTC/USDT:
    - use: price_limit
      limit_price: 70000.1
    - use: reference_band
      max_bps: 12.5
    - use: size_limits
      max: {BTC: 0.3, USDT: 25000}
""", file="c.yaml")
    steps = settings.chains.describe()["BTC/USDT"]
    assert steps[0]["limit_price"] == "70000.1" and steps[1]["max_bps"] == "12.5"
    assert steps[2]["max"] == {"BTC": "0.3", "USDT": "25000"}
    limit = settings.chains.for_pair("BTC/USDT").steps[0].limit_price
    assert isinstance(limit, Decimal) and limit == D("70000.1")


def test_yaml_param_error_has_file_key_and_line():
    with pytest.raises(ConfigError) as err:
        load_config_text("strategies:\n  BTC/USDT:\n    - use: reference_band\n      max_bps: lots\n", file="c.yaml")
    assert err.value.key == "strategies.BTC/USDT[0].max_bps" and err.value.line == 4


def test_example_user_strategy_through_the_config_loader():
    settings = load_config_text("""
strategies:
  BTC/USDT:
    - use: strategies.examples.max_spread:MaxSpreadToBest
      max_gap: 50
    - use: price_limit
      limit_price: 70000
""", file="c.yaml")
    chain = settings.chains.for_pair("BTC/USDT")
    assert chain.steps[0].max_gap == D("50")
    res = chain.decide(DecisionContext(rfq(), (q("a", "69900"), q("b", "69940")), MarketContext(), NOW))
    assert res.kind == "accept" and res.quote_id == "a"
    res = chain.decide(DecisionContext(rfq(), (q("a", "69900"), q("b", "69960")), MarketContext(), NOW))
    assert res.kind == "decline" and "gap 60" in res.reason


def test_every_yaml_example_in_the_strategies_readme_section_loads():
    import re
    from pathlib import Path

    text = readme_section("Strategies")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    for block in blocks:
        load_config_text(block, file="README example")
    # and the reference table names every built-in
    from strategies import BUILTINS

    for name, cls in BUILTINS.items():
        assert f"| `{name}` |" in text, name
        for param in cls.params:
            assert f"`{param.name}`" in text, (name, param.name)


def test_the_readme_quotes_the_limit_price_error_as_rfqbot_words_it():
    """The README's example error and its reference table must say what the loader says."""
    with pytest.raises(ConfigError) as err:
        compile_chains({"BTC/USDT": [{"use": "price_limit", "limit_price": "abc"}]}, file="config.yaml")
    text = readme_section("Strategies")
    assert f"strategies.BTC/USDT[0].limit_price: {err.value.detail}\n" in text
    assert "| `price_limit` | `limit_price` | decimal, > 0 |" in text
    assert "| `manual_quotes` | `limit_price` | decimal, > 0 |" in text


def test_the_readme_does_not_ask_for_quoted_decimals():
    """It says plain numbers are read exactly; a comment asking to quote them contradicted that."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "write decimals quoted" not in readme and "Quoting is not needed" in readme
