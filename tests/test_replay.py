"""Replay on a journal produced by a short daemon-against-simulator run, and on hand-made journals.

The simulator run happens once per module (a few seconds): the daemon creates BTC and ETH RFQs
every second and decides on their quotes with a spot subscription, exactly as ``rfqbot run``.
"""

from __future__ import annotations

import json
import socket
import time
from decimal import Decimal
from pathlib import Path

import pytest
import structlog

from rfqbot.cli import main
from rfqbot.clock import FakeClock, VenueClock
from rfqbot.config.schema import load_config_text
from rfqbot.config.credentials import Credentials
from rfqbot.demo import simulator_venue_yaml
from rfqbot.engine.loop import Engine
from rfqbot.events import BestQuotes, Note, SpotTick, Tick
from rfqbot.journal.store import Journal
from rfqbot.records import Pair, Quote, QuoteMode
from rfqbot.replay import replay_journal
from rfqbot.replay_journal import ReplayError
from rfqbot.engine.risk import RiskSettings
from strategies import compile_chains
from tests.cli_runner import run_cli

D = Decimal

SIM_YAML = """
{venue}
journal:
  path: "{journal}"
logging:
  level: error
streams:
  spot_symbols: [BTCUSDT, ETHUSDT]
engine:
  min_time_left_ms: 1000
strategies:
  BTC/USDT:
    - use: time_left
      min_ms: 2000
    - use: price_limit
      limit_price: 106400
  ETH/USDT:
    - use: price_limit
      limit_price: "3790"
rfqs:
  - every: 1s
    buy: BTC
    sell: USDT
    sell_amount: 5000
    mode: real-time
    expire_sec: 600
    client_id_prefix: rp-btc
  - every: 1s
    buy: USDT
    sell: ETH
    sell_amount: "0.8"
    mode: real-time
    expire_sec: 600
    client_id_prefix: rp-eth
risk:
  max_accepts_per_minute: 100
  max_open_rfqs: 100
"""


@pytest.fixture(autouse=True)
def _reset_logging():
    """The CLI configures structlog onto pytest's captured stream; later tests must not log into it."""
    yield
    structlog.reset_defaults()


def config_file(tmp: Path, body: str, name: str = "replay.yaml") -> Path:
    path = tmp / name
    path.write_text(body)
    return path


@pytest.fixture(scope="module")
def sim_journal(tmp_path_factory):
    """A journal from ~5 s of the real daemon against the simulator (TLS on 127.0.0.1)."""
    from rfqbot.daemon import Daemon
    from rfqbot.sim import SimConfig, Simulator

    tmp = tmp_path_factory.mktemp("replay-sim")
    journal = tmp / "journal.db"
    sim = Simulator(SimConfig(seed=11, tls=True, bestquote_window_s=0.5, bestquote_min_quotes=2,
                              background_rfqs_per_min=30, reference_tick_s=0.2)).start()
    daemon = None
    try:
        text = SIM_YAML.format(venue=simulator_venue_yaml(sim.rest_url, sim.ws_url, sim.ca_file), journal=journal)
        settings = load_config_text(text, file=str(config_file(tmp, "# unused\n", "sim.yaml")))
        daemon = Daemon(settings, Credentials(sim.api_key, sim.api_secret, source="simulator"), engine_tick_s=0.05)
        daemon.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.25)
            if daemon.engine is not None and _count(journal, "SELECT COUNT(*) FROM decisions WHERE action = "
                                                             "'accept'") >= 4 and time.monotonic() > deadline - 15:
                break
    finally:
        if daemon is not None:
            daemon.stop("test done", drain_s=3)
        sim.stop()
    return journal, tmp


def _count(journal: Path, sql: str) -> int:
    from rfqbot.journal.store import open_readonly

    conn = open_readonly(journal)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def same_config(tmp: Path, **changes: str) -> Path:
    body = SIM_YAML.format(venue=simulator_venue_yaml("https://127.0.0.1:1", "wss://127.0.0.1:1", None),
                           journal="x.db")
    for old, new in changes.items():
        body = body.replace(old, new)
    return config_file(tmp, body, f"cfg{abs(hash(tuple(changes.items())))}.yaml")


def run_replay(capsys, *argv: str) -> tuple[int, str]:
    code, out, _ = run_cli(capsys, *argv)
    return code, out


def test_replay_with_the_same_config_reproduces_the_decisions(sim_journal, capsys):
    journal, tmp = sim_journal
    code, out = run_replay(capsys, "replay", "--journal", str(journal), "--config", str(same_config(tmp)), "--json")
    assert code == 0
    report = json.loads(out)
    from rfqbot.journal.store import open_readonly

    conn = open_readonly(journal)
    once = {row[0] for row in conn.execute("SELECT rfq_id FROM decisions WHERE action = 'accept' GROUP BY rfq_id "
                                           "HAVING COUNT(*) = 1")}
    conn.close()
    # RFQs accepted once (no venue refusal and second try, which replay cannot follow): same quote, same price
    compared = [r for r in report["rfqs"] if r["rfq_id"] in once and r["then"]["action"] == "accept"]
    assert len(compared) >= 2, "the simulator run should have produced accepts to replay"
    for r in compared:
        assert r["now"]["action"] == "accept" and r["now"]["quote_id"] == r["then"]["quote_id"], r
        assert r["now"]["price"] == r["then"]["price"] and r["now"]["at_ms"] == r["then"]["at_ms"]
    assert report["now"]["accepts"] >= report["then"]["accepts"]
    assert set(report["now"]["notional"]) >= {"USDT"}
    assert report["now"]["rfqs"] == report["then"]["rfqs"] == len(report["rfqs"])


def test_replay_stricter_config_accepts_less_and_says_why(sim_journal, capsys):
    journal, tmp = sim_journal
    strict = same_config(tmp, **{"limit_price: 106400": "limit_price: 1000", 'limit_price: "3790"':
                                 'limit_price: "100000"'})
    code, out = run_replay(capsys, "replay", "--journal", str(journal), "--config", str(strict), "--json")
    report = json.loads(out)
    assert code == 0 and report["now"]["accepts"] == 0 and report["now"]["notional"] == {}
    assert report["now"]["unfilled"] == report["now"]["rfqs"] > 0
    reasons = {r["now"]["reason"] for r in report["rfqs"]}
    assert any("above buy limit 1000" in why or "below sell limit 100000" in why for why in reasons)


def test_replay_reference_band_uses_journaled_spot(sim_journal, capsys):
    journal, tmp = sim_journal
    band = same_config(tmp, **{"    - use: time_left\n      min_ms: 2000\n":
                               "    - use: reference_band\n      max_bps: 0\n      max_age_ms: 60000\n"})
    report = json.loads(run_replay(capsys, "replay", "--journal", str(journal), "--config", str(band), "--json")[1])
    btc = [r for r in report["rfqs"] if r["pair"] == "BTC/USDT"]
    assert btc and all(r["now"]["action"] != "accept" for r in btc)
    assert any("bps" in r["now"]["reason"] or "than reference" in r["now"]["reason"] for r in btc)
    assert report["then"]["with_reference"] >= 1, "spot frames were journaled and replayed as the reference"


def test_replay_is_deterministic_and_pure(sim_journal, monkeypatch):
    journal, tmp = sim_journal
    settings = load_config_text(same_config(tmp).read_text(), file="cfg.yaml")

    def no_network(*args, **kwargs):
        raise AssertionError("replay must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    first = replay_journal(journal, settings.chains, settings.risk, min_time_left_ms=1000)
    second = replay_journal(journal, settings.chains, settings.risk, min_time_left_ms=1000)
    assert first == second


def test_replay_table_output_and_since(sim_journal, capsys):
    journal, tmp = sim_journal
    code, out = run_replay(capsys, "replay", "--journal", str(journal), "--config", str(same_config(tmp)),
                        "--since", "1h")
    assert code == 0 and "then" in out and "now" in out and "accepts" in out and "vs reference" in out
    code, out = run_replay(capsys, "replay", "--journal", str(journal), "--config", str(same_config(tmp)),
                        "--since", "1s", "--json")
    assert code == 0 and isinstance(json.loads(out)["rfqs"], list)


def test_replay_errors_are_clear(tmp_path, capsys):
    cfg = config_file(tmp_path, "strategies: {}\n")
    code = main(["replay", "--journal", str(tmp_path / "missing.db"), "--config", str(cfg)])
    assert code == 1 and "does not exist" in capsys.readouterr().err
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 50)
    code = main(["replay", "--journal", str(tmp_path / "junk.db"), "--config", str(cfg)])
    assert code == 1 and "rfqbot journal" in capsys.readouterr().err
    assert main(["replay", "--journal", "x", "--since", "soon"]) == 2
    with pytest.raises(ReplayError):
        replay_journal(tmp_path / "nope.db", compile_chains({}), RiskSettings(), min_time_left_ms=0)


# --- hand-made journals: waits, risk and the kill switch in replay --------------------------------

BTC = Pair("BTC", "USDT", D("0.00001"), D("0.01"), None, None, None, None, "OPENED")


def engine_journal(tmp_path, chains, risk=None):
    clock = FakeClock()
    journal = Journal(tmp_path / "j.db", clock)
    calls = []

    class Actions:
        def accept(self, rfq_id, quote_id, send_by_ms=None):
            calls.append((rfq_id, quote_id))

    engine = Engine(journal, chains, risk or RiskSettings(), Actions(), VenueClock(clock), [BTC], min_time_left_ms=0)
    return clock, journal, engine, calls


def quote(clock, qid, price, rfq="R1", lp="A", manual=False):
    return Quote(qid, rfq, D(price), buy_ccy="BTC", sell_ccy="USDT", sell_amount=D("1000"), lp_name=lp,
                 mode=QuoteMode.REAL_TIME, expires_ms=clock.now_ms() + 30_000, submitted_ms=clock.now_ms(),
                 manual=manual)


def test_replay_honours_waits_and_risk(tmp_path):
    then_chains = compile_chains({"BTC/USDT": [{"use": "price_limit", "limit_price": "100"}]})
    clock, journal, engine, calls = engine_journal(tmp_path, then_chains)
    engine.handle(Note(clock.now_ms(), "clock_sync", {"offset_ms": 0}))
    engine.handle(SpotTick(clock.now_ms(), "BTCUSDT", D("95"), clock.now_ms(), "trade", "{}"))
    engine.handle(BestQuotes(clock.now_ms(), "R1", (quote(clock, "Q1", "99"),), "{}"))
    clock.advance(0.5)
    engine.handle(BestQuotes(clock.now_ms(), "R2", (quote(clock, "Q2", "98", rfq="R2"),), "{}"))
    clock.advance(0.5)
    engine.handle(BestQuotes(clock.now_ms(), "R1", (quote(clock, "Q1", "99"), quote(clock, "Q3", "97", lp="B")),
                             "{}"))
    engine.handle(Tick(clock.now_ms()))
    journal.close()
    assert calls == [("R1", "Q1"), ("R2", "Q2")]

    wait_chains = compile_chains({"BTC/USDT": [
        {"use": "wait_for_quotes", "min_quotes": 2, "max_wait_ms": 5000},
        {"use": "price_limit", "limit_price": "100"}]})
    report = replay_journal(tmp_path / "j.db", wait_chains, RiskSettings(max_accepts_per_minute=1), min_time_left_ms=0)
    by_id = {r.rfq_id: r for r in report.rfqs}
    assert by_id["R1"].then.action == "accept" and by_id["R1"].then.quote_id == "Q1"
    # replay waited for a second LP on R1 and took the better quote when it came
    assert by_id["R1"].now.action == "accept" and by_id["R1"].now.quote_id == "Q3"
    # R2 never got a second LP: its wait ran out 5 s after its quote, then the per-minute limit blocked it
    assert by_id["R2"].now.action == "blocked" and by_id["R2"].now.blocked_by == "max_accepts_per_minute"
    assert by_id["R2"].now.at_ms == by_id["R2"].first_ms + 5000
    assert report.then.accepts == 2 and report.now.accepts == 1 and report.now.unfilled == 1
    # spot 95 is the reference: buying at 97 is 2/95 worse, about -210.53 bps
    assert by_id["R1"].now.vs_reference_bps == D("-210.5263157894736842105263158")
    assert report.now.average_vs_reference_bps == D("-210.53")
    assert report.now.notional == {"BTC": D("1000") / D("97"), "USDT": D("1000")}
    assert report.now.bought == {"BTC": D("1000") / D("97")} and report.now.sold == {"USDT": D("1000")}


def test_replay_totals_keep_bought_and_sold_apart():
    from rfqbot.replay import Outcome, RfqReplay, totals

    rows = [RfqReplay("R1", "BTC/USDT", "buy", now=Outcome("accept", "", amounts={"BTC": D("1"), "USDT": D("100")})),
            RfqReplay("R2", "ETH/USDT", "sell", now=Outcome("accept", "", amounts={"ETH": D("2"), "USDT": D("50")}))]
    t = totals(rows, "now")
    assert t.bought == {"BTC": D("1"), "USDT": D("50")} and t.sold == {"ETH": D("2"), "USDT": D("100")}


def test_replay_kill_switch_state_comes_from_the_journal(tmp_path):
    stop = tmp_path / "STOP"
    stop.touch()
    chains = compile_chains({"BTC/USDT": [{"use": "price_limit", "limit_price": "100"}]})
    clock, journal, engine, calls = engine_journal(tmp_path, chains, RiskSettings(kill_switch_file=str(stop)))
    engine.handle(BestQuotes(clock.now_ms(), "R1", (quote(clock, "Q1", "99"),), "{}"))
    stop.unlink()
    clock.advance(1)
    engine.handle(BestQuotes(clock.now_ms(), "R2", (quote(clock, "Q2", "99", rfq="R2"),), "{}"))
    journal.close()
    stop.touch()  # the file now is irrelevant: replay uses the journaled state
    report = replay_journal(tmp_path / "j.db", chains, RiskSettings(), min_time_left_ms=0)
    now = {r.rfq_id: r.now for r in report.rfqs}
    assert now["R1"].action == "blocked" and now["R1"].blocked_by == "kill_switch_file"
    assert now["R2"].action == "accept"


def test_replay_applies_journaled_pair_closures(tmp_path):
    """A pair closed by a get-pairs refresh is never accepted live; replay must agree."""
    import dataclasses

    from rfqbot.events import PairsRefreshed
    chains = compile_chains({"BTC/USDT": [{"use": "price_limit", "limit_price": "100"}]})
    clock, journal, engine, calls = engine_journal(tmp_path, chains)
    engine.handle(PairsRefreshed(clock.now_ms(), (dataclasses.replace(BTC, trading_status="CLOSED"),)))
    engine.handle(BestQuotes(clock.now_ms(), "R1", (quote(clock, "Q1", "99"),), "{}"))
    clock.advance(1)
    engine.handle(PairsRefreshed(clock.now_ms(), (BTC,)))
    engine.handle(BestQuotes(clock.now_ms(), "R2", (quote(clock, "Q2", "99", rfq="R2"),), "{}"))
    journal.close()
    assert calls == [("R2", "Q2")]
    report = replay_journal(tmp_path / "j.db", chains, RiskSettings(), min_time_left_ms=0)
    now = {r.rfq_id: r.now for r in report.rfqs}
    assert now["R1"].action == "none" and "CLOSED" in now["R1"].reason
    assert now["R2"].action == "accept"
