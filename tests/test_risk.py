"""Risk limits: each limit blocks with its name, ledger windows, release on rejection, kill switch."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from rfqbot.engine.risk import DAY_MS, KillSwitch, RiskLedger, RiskSettings, check_accept, check_create

D = Decimal
NOW = 1_760_000_000_000


def test_no_limits_allows():
    assert check_accept(RiskSettings(), RiskLedger(), amounts={"USDT": D(10**9)}, now_ms=NOW,
                        kill_switch_engaged=False) is None


def test_kill_switch_blocks_first(tmp_path):
    path = tmp_path / "STOP"
    ks = KillSwitch(str(path))
    assert not ks.engaged()
    path.touch()
    assert ks.engaged()
    block = check_accept(RiskSettings(kill_switch_file=str(path)), RiskLedger(), amounts={}, now_ms=NOW,
                         kill_switch_engaged=ks.engaged())
    assert block.limit == "kill_switch_file" and "remove the file" in block.detail
    assert KillSwitch(None).engaged() is False


def test_max_rfq_amount_per_currency():
    s = RiskSettings(max_rfq_amount={"BTC": D("1")})
    assert check_accept(s, RiskLedger(), amounts={"BTC": D("1")}, now_ms=NOW, kill_switch_engaged=False) is None
    block = check_accept(s, RiskLedger(), amounts={"BTC": D("1.0001"), "USDT": D(5)}, now_ms=NOW,
                         kill_switch_engaged=False)
    assert block.limit == "max_rfq_amount.BTC"


def test_accepts_per_minute_window_slides():
    s = RiskSettings(max_accepts_per_minute=2)
    ledger = RiskLedger()
    ledger.record("a", NOW, {})
    ledger.record("b", NOW + 1000, {})
    block = check_accept(s, ledger, amounts={}, now_ms=NOW + 2000, kill_switch_engaged=False)
    assert block.limit == "max_accepts_per_minute"
    assert check_accept(s, ledger, amounts={}, now_ms=NOW + 60_000, kill_switch_engaged=False) is None


def test_daily_notional_resets_at_utc_midnight_and_release():
    s = RiskSettings(daily_notional={"USDT": D("1000")})
    ledger = RiskLedger()
    ledger.record("a", NOW, {"USDT": D("600")})
    block = check_accept(s, ledger, amounts={"USDT": D("400.01")}, now_ms=NOW, kill_switch_engaged=False)
    assert block.limit == "daily_notional.USDT" and "600" in block.detail
    assert check_accept(s, ledger, amounts={"USDT": D("400")}, now_ms=NOW, kill_switch_engaged=False) is None
    tomorrow = (NOW // DAY_MS + 1) * DAY_MS
    assert check_accept(s, ledger, amounts={"USDT": D("1000")}, now_ms=tomorrow, kill_switch_engaged=False) is None
    ledger.release("a")
    assert ledger.daily_total("USDT", NOW) == 0 and ledger.accepts_in_last_minute(NOW) == 0


def test_create_limits():
    s = RiskSettings(max_open_rfqs=2, max_rfq_amount={"USDT": D("500")})
    assert check_create(s, open_rfqs=1, sell_ccy="USDT", sell_amount=D(500)) is None
    assert check_create(s, open_rfqs=2, sell_ccy="USDT", sell_amount=D(1)).limit == "max_open_rfqs"
    assert check_create(s, open_rfqs=0, sell_ccy="USDT", sell_amount=D(501)).limit == "max_rfq_amount.USDT"


def test_settings_from_config_object():
    obj = SimpleNamespace(max_accepts_per_minute=3, max_open_rfqs=None, max_rfq_amount={"BTC": "2"},
                          daily_notional={"USDT": D("10")}, kill_switch_file="/tmp/x")
    s = RiskSettings.from_any(obj)
    assert s.max_rfq_amount == {"BTC": D(2)} and s.max_accepts_per_minute == 3
    assert RiskSettings.from_any(None) == RiskSettings()


def test_kill_switch_refuses_creations_too():
    block = check_create(RiskSettings(kill_switch_file="/x/STOP"), open_rfqs=0, sell_ccy="USDT",
                         sell_amount=D(1), kill_switch_engaged=True)
    assert block.limit == "kill_switch_file" and "no new RFQs" in block.detail
    assert check_create(RiskSettings(), open_rfqs=0, sell_ccy="USDT", sell_amount=D(1)) is None


def test_config_risk_section_maps_onto_engine_settings():
    from rfqbot.config.schema import load_config_text

    settings = load_config_text("""
risk:
  max_accepts_per_minute: 3
  max_open_rfqs: 4
  max_rfq_amount: {USDT: 5000, BTC: 0.5}
  daily_notional: {USDT: 20000}
  kill_switch_file: /run/rfqbot/STOP
""", file="c.yaml")
    risk = RiskSettings.from_any(settings.risk)
    assert risk == RiskSettings(3, 4, {"USDT": D("5000"), "BTC": D("0.5")}, {"USDT": D("20000")}, "/run/rfqbot/STOP")
    ledger = RiskLedger()
    assert check_accept(risk, ledger, amounts={"BTC": D("0.6")}, now_ms=NOW,
                        kill_switch_engaged=False).limit == "max_rfq_amount.BTC"
    for i in range(3):
        ledger.record(f"r{i}", NOW + i, {"USDT": D("6000")})
    assert check_accept(risk, ledger, amounts={"USDT": D("1")}, now_ms=NOW + 10,
                        kill_switch_engaged=False).limit == "max_accepts_per_minute"
    assert check_accept(risk, ledger, amounts={"USDT": D("2001")}, now_ms=NOW + 60_003,
                        kill_switch_engaged=False).limit == "daily_notional.USDT"
    assert check_create(risk, open_rfqs=4, sell_ccy="USDT", sell_amount=D(1)).limit == "max_open_rfqs"
