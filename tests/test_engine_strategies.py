"""The engine with the market-aware built-ins: spot ticks feed reference_band, wait_for_quotes is
re-decided at its deadline by a Tick, manual quotes are declined at the venue, every verdict and
every risk block is journaled."""

from __future__ import annotations

import json
from decimal import Decimal

from rfqbot.events import CreateRfqCommand, PublicQuote, SpotTick, Tick
from rfqbot.records import Quote, QuoteMode
from rfqbot.engine.risk import RiskSettings
from strategies import compile_chains
from tests.test_engine import Harness

D = Decimal


def chains(*steps):
    return compile_chains({"BTC/USDT": list(steps)})


def verdicts(h):
    return [json.loads(r["verdicts"]) for r in h.rows("SELECT verdicts FROM decisions ORDER BY seq")]


def test_reference_band_uses_spot_ticks_and_their_venue_time(tmp_path):
    h = Harness(tmp_path, chains=chains({"use": "reference_band", "max_bps": "20", "max_age_ms": 2000},
                                        {"use": "price_limit", "limit_price": "200"}))
    h.best(h.quote("Q1", "100", 1))
    assert h.actions.accepts == [] and "no spot reference" in h.decisions()[-1]["reason"]
    h.engine.handle(SpotTick(h.now, "BTCUSDT", D("100.1"), h.now - 3000, "trade", "{}"))
    h.best(h.quote("Q1", "100", 1))
    assert h.actions.accepts == [] and "older than max_age_ms" in h.decisions()[-1]["reason"]
    h.engine.handle(SpotTick(h.now, "BTCUSDT", D("100.1"), h.now - 100, "trade", "{}"))
    h.best(h.quote("Q1", "100", 1))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    steps = verdicts(h)[-1]
    assert [s["use"] for s in steps] == ["reference_band", "price_limit"], "every step's verdict is journaled"
    h.journal.close()


def test_reference_band_public_quote_median_from_the_stream(tmp_path):
    h = Harness(tmp_path, chains=chains({"use": "reference_band", "max_bps": "50", "source": "public_quotes",
                                         "min_quotes": 2}))
    for i, price in enumerate(("99", "101")):
        quote = Quote(f"P{i}", f"OTHER{i}", D(price), buy_ccy="USDT", sell_ccy="BTC", submitted_ms=h.now)
        h.engine.handle(PublicQuote(h.now, quote, "{}"))
    h.best(h.quote("Q1", "100.6", 1), h.quote("Q2", "100.4", 2))
    assert h.actions.accepts == [("accept", "R1", "Q2")]
    h.journal.close()


def test_wait_for_quotes_then_tick_takes_best(tmp_path):
    h = Harness(tmp_path, chains=chains({"use": "wait_for_quotes", "min_quotes": 2, "max_wait_ms": 1500},
                                        {"use": "price_limit", "limit_price": "100"}))
    h.best(h.quote("Q1", "95", 1, lp="A"))
    assert h.actions.accepts == [] and h.decisions()[-1]["action"] == "wait"
    h.clock.advance(1)
    h.engine.handle(Tick(h.now))
    assert h.actions.accepts == []
    h.clock.advance(0.5)
    h.engine.handle(Tick(h.now))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    h.journal.close()


def test_wait_for_quotes_ends_early_when_enough_lps(tmp_path):
    h = Harness(tmp_path, chains=chains({"use": "wait_for_quotes", "min_quotes": 2, "max_wait_ms": 60_000}))
    h.best(h.quote("Q1", "95", None, lp="A"))
    h.clock.advance(0.2)
    h.best(h.quote("Q1", "95", None, lp="A"), h.quote("Q2", "94", None, lp="B"))
    assert h.actions.accepts == [("accept", "R1", "Q2")]
    h.journal.close()


def test_manual_quote_beyond_limit_declined_once(tmp_path):
    h = Harness(tmp_path, chains=chains({"use": "manual_quotes", "limit_price": "100"}))
    manual = h.quote("M1", "120", 1, manual=True)
    h.best(manual)
    assert h.actions.calls == [("decline", "R1", "M1")]
    h.best(manual)
    assert h.actions.calls == [("decline", "R1", "M1")], "a decline is sent once"
    assert [d["action"] for d in h.decisions()] == ["decline", "none"]
    h.journal.close()


def test_size_limits_and_risk_block_both_journaled(tmp_path):
    h = Harness(tmp_path, chains=chains({"use": "size_limits", "max": {"BTC": "20"}},
                                        {"use": "price_limit", "limit_price": "100"}),
                risk=RiskSettings(daily_notional={"BTC": D("5")}))
    h.best(h.quote("Q1", "40", 1))   # 1000 USDT buys 25 BTC: above size max 20
    assert h.actions.accepts == [] and "above max 20" in h.decisions()[-1]["reason"]
    h.best(h.quote("Q2", "90", 1))   # 11.1 BTC: inside the size limit, above the daily BTC cap
    last = h.decisions()[-1]
    assert last["action"] == "blocked" and last["blocked_by"] == "daily_notional.BTC"
    h.journal.close()


def test_kill_switch_refuses_creations_and_is_journaled(tmp_path):
    stop = tmp_path / "STOP"
    stop.touch()
    h = Harness(tmp_path, risk=RiskSettings(kill_switch_file=str(stop)))
    h.engine.handle(CreateRfqCommand(h.now, "BTC", "USDT", D("10"), QuoteMode.REAL_TIME, 600, "c1"))
    assert h.actions.calls == []
    blocked = h.rows("SELECT payload FROM events WHERE kind = 'create.blocked'")
    assert json.loads(blocked[0]["payload"])["blocked_by"] == "kill_switch_file"
    assert len(h.rows("SELECT seq FROM events WHERE kind = 'risk.kill_switch'")) == 1
    h.journal.close()


def test_public_quotes_without_submit_time_are_aged_from_arrival(tmp_path):
    step = {"use": "reference_band", "max_bps": "50", "source": "public_quotes", "min_quotes": 2,
            "max_age_ms": 1000}
    h = Harness(tmp_path, chains=chains(step))
    for i, price in enumerate(("99", "101")):  # the venue's quotesCreated frame has no creation time
        h.engine.handle(PublicQuote(h.now, Quote(f"P{i}", f"OTHER{i}", D(price), buy_ccy="BTC", sell_ccy="USDT"), "{}"))
    row = h.rows("SELECT venue_ms, payload FROM events WHERE kind = 'frame.public_quote'")[0]
    assert row["venue_ms"] == h.now and json.loads(row["payload"])["quote"]["submitted_ms"] is None
    h.clock.advance(0.5)
    h.best(h.quote("Q1", "100.2", 1))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    h.clock.advance(1)
    h.best(h.quote("Q2", "100.2", 1, rfq="R2"), rfq="R2")
    assert h.actions.accepts == [("accept", "R1", "Q1")] and "public quotes" in h.decisions()[-1]["reason"]
    h.journal.close()

    from rfqbot.replay import replay_journal

    report = replay_journal(h.path, chains(step), RiskSettings(), min_time_left_ms=1000)
    assert [(r.rfq_id, r.now.action) for r in report.rfqs] == [("R1", "accept"), ("R2", "none")]
