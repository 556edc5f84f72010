"""Engine: state machine table, accept-at-most-once, guards, risk, reconciliation, restart, run loop."""

from __future__ import annotations

import queue
import threading
from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace

import pytest

from rfqbot.clock import FakeClock, VenueClock
from rfqbot.engine.loop import Engine
from rfqbot.engine.state import next_status
from rfqbot.events import (
    AcceptResult, ActiveQuotes, BestQuotes, CreateRfqCommand, ListenKeyStatus, Note, PublicQuote, PublicRfq,
    RejectedFrame, ReloadRequested, RfqCreateFailed, RfqReconciled, RfqUpdate, ShutdownRequested, SpotTick,
    StreamStatus, Tick, VenueCall,
)
from rfqbot.journal.store import Journal, open_readonly
from rfqbot.records import Pair, Quote, QuoteMode, Rfq, RfqStatus
from rfqbot.engine.risk import RiskSettings
from strategies import Strategy, Verdict, compile_chains
from strategies.chain import Chain, ChainSet

D = Decimal
S = RfqStatus
BTC = Pair("BTC", "USDT", D("0.00001"), D("0.01"), None, None, None, None, "OPENED")


class FakeActions:
    def __init__(self):
        self.calls = []

    def accept(self, rfq_id, quote_id, send_by_ms=None):
        self.calls.append(("accept", rfq_id, quote_id))

    def decline(self, rfq_id, quote_id):
        self.calls.append(("decline", rfq_id, quote_id))

    def create_rfq(self, cmd):
        self.calls.append(("create", cmd.client_order_id))

    @property
    def accepts(self):
        return [c for c in self.calls if c[0] == "accept"]


class Harness:
    def __init__(self, tmp_path, limit="100", risk=None, chains=None, min_left=1000, path="j.db", clock=None):
        self.clock = clock or FakeClock()
        self.venue = VenueClock(self.clock)
        self.path = tmp_path / path
        self.journal = Journal(self.path, self.clock)
        self.actions = FakeActions()
        self.seen = []
        chains = chains if chains is not None else compile_chains(
            {"BTC/USDT": [{"use": "price_limit", "limit_price": limit}]})
        self.engine = Engine(self.journal, chains, risk or RiskSettings(), self.actions, self.venue, [BTC],
                             min_time_left_ms=min_left, observer=lambda k, p: self.seen.append((k, p)))

    @property
    def now(self):
        return self.clock.now_ms()

    def quote(self, qid, price, rank=None, rfq="R1", buy="BTC", sell="USDT", left_ms=30_000, **kw):
        return Quote(qid, rfq, D(price), buy_ccy=buy, sell_ccy=sell, sell_amount=D("1000"), lp_name=kw.pop("lp", "LP"),
                     rank=rank, expires_ms=self.now + left_ms, submitted_ms=self.now, mode=QuoteMode.REAL_TIME, **kw)

    def best(self, *quotes, rfq="R1"):
        self.engine.handle(BestQuotes(self.now, rfq, tuple(quotes), "{}"))

    def update(self, status, rfq="R1", quote_id=None, raw=None):
        self.engine.handle(RfqUpdate(self.now, Rfq(rfq, buy_ccy="BTC", sell_ccy="USDT", sell_amount=D("1000"),
                                                   status=status, status_raw=raw or status.value,
                                                   quote_id=quote_id), "{}"))

    def result(self, outcome, quote_id="Q1", rfq="R1", status_raw=None):
        self.engine.handle(AcceptResult(self.now, rfq, quote_id, "accept", outcome, status_raw=status_raw))

    def reconciled(self, status, rfq="R1", quote_id=None, asked_ms=None):
        self.engine.handle(RfqReconciled(self.now, Rfq(rfq, status=status, status_raw=status.value,
                                                       quote_id=quote_id), "history",
                                         asked_ms=self.now if asked_ms is None else asked_ms))

    def rows(self, sql, *params):
        return self.journal.query(sql, params)

    def decisions(self):
        return self.rows("SELECT quote_id, final, action, blocked_by, reason FROM decisions ORDER BY seq")


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.journal.close()


# --- the state machine table ----------------------------------------------------------------

@pytest.mark.parametrize("current, observed, moves", [
    (None, S.NEW, True), (S.NEW, S.NEW, False), (S.NEW, S.ACCEPTED, True), (S.ACCEPTED, S.NEW, True),
    (S.ACCEPTED, S.PROCESSING, True), (S.PROCESSING, S.ACCEPTED, False), (S.PROCESSING, S.NEW, False),
    (S.PROCESSING, S.SUCCESSFUL, True), (S.SUCCESSFUL, S.NEW, False), (S.SUCCESSFUL, S.EXPIRED, False),
    (S.NEW, S.EXPIRED, True), (S.NEW, S.MANUAL_ORDER, True), (S.MANUAL_ORDER, S.MANUAL_ORDER_CONFIRMATION, True),
    (S.MANUAL_ORDER_CONFIRMATION, S.MANUAL_ORDER, False), (S.MANUAL_ORDER_CONFIRMATION, S.DECLINED, True),
    (S.NEW, S.UNKNOWN, False), (None, S.UNKNOWN, False), (S.EXPIRED, S.SUCCESSFUL, False),
    (S.ACCEPTED, S.FAILED, True), (S.MANUAL_ORDER, S.NEW, False),
])
def test_status_partial_order(current, observed, moves):
    assert next_status(current, observed).moves is moves


def test_reopen_only_when_allowed():
    assert not next_status(S.ACCEPTED, S.NEW, allow_reopen=False).moves


def test_transitions_journaled_and_unknown_status_kept(h):
    h.update(S.NEW)
    h.update(S.NEW)  # duplicate
    h.update(S.UNKNOWN, raw="half-baked")
    h.update(S.ACCEPTED, quote_id="Qx")
    h.update(S.NEW)  # accepted -> new is legal
    h.update(S.PROCESSING)
    h.update(S.ACCEPTED)  # out of order: ignored
    h.update(S.SUCCESSFUL)
    h.update(S.EXPIRED)  # final sticks
    rows = h.rows("SELECT from_status, to_status FROM transitions ORDER BY seq")
    assert [(r["from_status"], r["to_status"]) for r in rows] == [
        (None, "new"), ("new", "accepted"), ("accepted", "new"), ("new", "processing"),
        ("processing", "successful")]
    assert h.rows("SELECT status FROM rfqs")[0]["status"] == "successful"
    unknown = h.rows("SELECT payload FROM events WHERE kind = 'rfq.unknown_status'")
    assert len(unknown) == 1 and "half-baked" in unknown[0]["payload"]


# --- deciding ---------------------------------------------------------------------------------

def test_accepts_best_quote_within_limit(h):
    h.update(S.NEW)
    h.best(h.quote("Q0", "100.5", 1), h.quote("Q1", "99", 2), h.quote("Q2", "98", 3))
    assert h.actions.accepts == [("accept", "R1", "Q1")]  # rank order among allowed, Q0 above limit
    d = h.decisions()[-1]
    assert d["action"] == "accept" and d["quote_id"] == "Q1"
    assert h.rows("SELECT accept_state FROM rfqs")[0]["accept_state"] == "outstanding"


def committed_accepts(path):
    """Accept decisions another process would see: a separate read-only connection, never the
    writer's own (which also sees its uncommitted rows, so a test reading it could not fail)."""
    conn = open_readonly(path)
    try:
        return conn.execute("SELECT count(*) AS n FROM decisions WHERE action = 'accept'").fetchone()["n"]
    finally:
        conn.close()


def test_decision_committed_before_accept_leaves(h):
    committed = []
    h.actions.accept = lambda r, q, send_by_ms=None: committed.append(committed_accepts(h.path))
    h.best(h.quote("Q1", "99", 1))
    assert committed == [1]


def test_never_above_limit_buying_nor_below_selling(tmp_path):
    h = Harness(tmp_path)
    h.best(h.quote("Q1", "100.01", 1))
    assert h.actions.accepts == [] and h.decisions()[-1]["final"] == "none"
    # selling BTC for USDT: higher is better, below the limit is refused
    h.best(h.quote("S1", "99.99", 1, rfq="R2", buy="USDT", sell="BTC"), rfq="R2")
    assert h.actions.accepts == []
    h.best(h.quote("S2", "100", 1, rfq="R3", buy="USDT", sell="BTC"),
           h.quote("S3", "101", 2, rfq="R3", buy="USDT", sell="BTC"), rfq="R3")
    assert h.actions.accepts == [("accept", "R3", "S2")]
    h.journal.close()


def test_duplicate_best_quote_gives_one_accept(h):
    quotes = (h.quote("Q1", "99", 1), h.quote("Q2", "99.5", 2))
    for _ in range(3):
        h.best(*quotes)
    assert len(h.actions.accepts) == 1
    skipped = h.rows("SELECT payload FROM events WHERE kind = 'decision.skipped'")
    assert len(skipped) == 2 and "at most one accept" in skipped[0]["payload"]


def test_expiring_quote_not_accepted_next_one_is(h):
    h.best(h.quote("Q1", "90", 1, left_ms=500), h.quote("Q2", "95", 2, left_ms=5000))
    assert h.actions.accepts == [("accept", "R1", "Q2")]
    h.best(h.quote("Q3", "90", 1, rfq="R2", left_ms=999), rfq="R2")
    assert len(h.actions.accepts) == 1
    assert "expire too soon" in h.decisions()[-1]["reason"]


def test_expiry_uses_venue_clock(h):
    h.venue.set_offset(29_500)  # the venue is 29.5 s ahead: 500 ms left by its clock
    h.best(h.quote("Q1", "90", 1, left_ms=30_000))
    assert h.actions.accepts == []


def test_unknown_pair_and_missing_chain_never_accept(tmp_path):
    h = Harness(tmp_path, chains=ChainSet({}))
    h.best(h.quote("Q1", "1", 1))
    assert h.actions.accepts == [] and "no strategy chain" in h.decisions()[-1]["reason"]
    h.best(h.quote("Q2", "1", 1, rfq="R2", buy="ETH", sell="USDT"), rfq="R2")
    assert h.actions.accepts == [] and "not a tradable pair" in h.decisions()[-1]["reason"]
    h.journal.close()


def test_final_rfq_skipped(h):
    h.update(S.EXPIRED)
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == []


# --- accept outcomes ----------------------------------------------------------------------

def test_unknown_outcome_blocks_until_reconciled(h):
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))
    h.result("unknown")
    assert h.engine.reconcile_targets() == ["R1"]
    h.best(h.quote("Q2", "80", 1))
    assert len(h.actions.accepts) == 1  # blocked
    h.clock.advance(5)
    h.reconciled(S.SUCCESSFUL, quote_id="Q1")
    assert h.rows("SELECT status, accept_state, accepted_quote_id FROM rfqs")[0] == {
        "status": "successful", "accept_state": "accepted", "accepted_quote_id": "Q1"}
    assert h.engine.reconcile_targets() == []
    h.best(h.quote("Q3", "70", 1))
    assert len(h.actions.accepts) == 1


def test_unknown_outcome_settled_by_reconcile_new_allows_new_accept(h):
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))
    h.result("unknown")
    h.clock.advance(5)
    h.reconciled(S.NEW)
    h.best(h.quote("Q2", "91", 1))
    assert [c[2] for c in h.actions.accepts] == ["Q1", "Q2"]


def test_stale_reconcile_does_not_settle_doubt(h):
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))
    h.result("unknown")
    h.reconciled(S.NEW)  # same instant as the lost answer: may predate the accept
    h.best(h.quote("Q2", "91", 1))
    assert len(h.actions.accepts) == 1


def test_rejection_allows_next_quote_immediately(h):
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1), h.quote("Q2", "95", 2))
    h.result("rejected", "Q1")
    assert [c[2] for c in h.actions.accepts] == ["Q1", "Q2"]
    dec = h.rows("SELECT result_outcome FROM decisions WHERE quote_id = 'Q1' AND action = 'accept'")
    assert dec == [{"result_outcome": "rejected"}]


def test_accepted_then_new_allows_new_accept_but_stale_sources_do_not(h):
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))
    h.result("accepted", status_raw="accepted")
    h.reconciled(S.NEW)  # history may be older than the acceptance: not allowed to reopen
    h.engine.handle(PublicRfq(h.now, Rfq("R1"), "{}"))
    h.best(h.quote("Q2", "90", 1))
    assert len(h.actions.accepts) == 1
    h.update(S.NEW)  # rfqUpdates: the accepted quote lapsed
    h.best(h.quote("Q3", "91", 1))
    assert [c[2] for c in h.actions.accepts] == ["Q1", "Q3"]


def test_accepted_elsewhere_blocks(h):
    h.update(S.ACCEPTED, quote_id="WEB")
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == []


# --- risk -------------------------------------------------------------------------------------

def test_risk_blocks_are_journaled_with_limit(tmp_path):
    h = Harness(tmp_path, risk=RiskSettings(max_rfq_amount={"USDT": D("500")}))
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == []
    assert h.decisions()[-1]["blocked_by"] == "max_rfq_amount.USDT"
    h.journal.close()


def test_kill_switch_stops_accepts_and_is_journaled(tmp_path):
    stop = tmp_path / "STOP"
    stop.touch()
    h = Harness(tmp_path, risk=SimpleNamespace(kill_switch_file=str(stop), max_accepts_per_minute=None,
                                               max_open_rfqs=None, max_rfq_amount={}, daily_notional={}))
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == [] and h.decisions()[-1]["blocked_by"] == "kill_switch_file"
    assert h.rows("SELECT payload FROM events WHERE kind = 'risk.kill_switch'")[0]["payload"].startswith(
        '{"engaged":true')
    stop.unlink()
    h.engine.handle(Tick(h.now))
    h.best(h.quote("Q2", "90", 1, rfq="R2"), rfq="R2")
    assert h.actions.accepts == [("accept", "R2", "Q2")]
    h.journal.close()


def test_accepts_per_minute_counts_across_rfqs(tmp_path):
    h = Harness(tmp_path, risk=RiskSettings(max_accepts_per_minute=1))
    h.best(h.quote("Q1", "90", 1))
    h.best(h.quote("Q2", "90", 1, rfq="R2"), rfq="R2")
    assert len(h.actions.accepts) == 1 and h.decisions()[-1]["blocked_by"] == "max_accepts_per_minute"
    h.journal.close()


def test_create_rfq_and_max_open(tmp_path):
    h = Harness(tmp_path, risk=RiskSettings(max_open_rfqs=1))
    cmd = CreateRfqCommand(h.now, "BTC", "USDT", D("1000"), QuoteMode.REAL_TIME, 600, "cid-1")
    h.engine.handle(cmd)
    h.engine.handle(replace(cmd, client_order_id="cid-2"))
    assert h.actions.calls == [("create", "cid-1")]
    assert h.rows("SELECT payload FROM events WHERE kind = 'create.blocked'")
    h.engine.handle(RfqReconciled(h.now, Rfq("R9", client_order_id="cid-1", status=S.NEW, status_raw="new"),
                                  "create"))
    row = h.rows("SELECT pair, side, own, status, sell_amount FROM rfqs WHERE rfq_id = 'R9'")[0]
    assert row == {"pair": "BTC/USDT", "side": "buy", "own": 1, "status": "new", "sell_amount": "1000"}
    h.engine.handle(RfqCreateFailed(h.now, "cid-x", "rejected", "-1", "bad"))
    h.journal.close()


# --- waits, reload, shutdown, market context, journaling of everything ---------------------------------

class WaitThenAllow(Strategy):
    name = "wait_test"

    def evaluate(self, ctx):
        if ctx.now_ms < 1_760_000_002_000:
            return Verdict.wait(1_760_000_002_000, "waiting for more LPs")
        return Verdict.pass_()


def test_wait_is_honoured_then_tick_decides(tmp_path):
    chains = ChainSet({"*": Chain("*", (WaitThenAllow(),) + compile_chains(
        {"*": [{"use": "price_limit", "limit_price": "100"}]}).for_pair("*").steps)})
    h = Harness(tmp_path, chains=chains)
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == [] and h.decisions()[-1]["action"] == "wait"
    h.clock.advance(1)
    h.engine.handle(Tick(h.now))
    assert h.actions.accepts == []
    h.clock.advance(1)
    h.engine.handle(Tick(h.now))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    h.journal.close()


def test_reload_swaps_chains_and_rejects_bad(h):
    h.engine.handle(ReloadRequested(h.now, error="bad yaml at line 3"))
    h.engine.handle(ReloadRequested(h.now, settings=SimpleNamespace(
        strategies={"BTC/USDT": [{"use": "price_limit", "limit_price": "nope"}]}, risk=None)))
    assert h.rows("SELECT count(*) AS n FROM events WHERE kind = 'reload.rejected'")[0]["n"] == 2
    h.best(h.quote("Q1", "150", 1))
    assert h.actions.accepts == []
    h.engine.handle(ReloadRequested(h.now, settings=SimpleNamespace(
        strategies={"BTC/USDT": [{"use": "price_limit", "limit_price": "200"}]}, risk=RiskSettings())))
    h.best(h.quote("Q2", "150", 1, rfq="R2"), rfq="R2")
    assert h.actions.accepts == [("accept", "R2", "Q2")]


def test_shutdown_stops_deciding(h):
    h.engine.handle(ShutdownRequested(h.now, "SIGTERM"))
    h.best(h.quote("Q1", "1", 1))
    assert h.actions.accepts == []


def test_everything_is_journaled(h):
    h.engine.handle(PublicQuote(h.now, h.quote("P1", "95", rfq="X"), '{"raw":1}'))
    h.engine.handle(SpotTick(h.now, "BTCUSDT", D("95.5"), h.now, "trade", "{}"))
    h.engine.handle(RejectedFrame(h.now, "public", "invalid JSON at char 0", "xx"))
    h.engine.handle(StreamStatus(h.now, "private", "connected", session=1))
    h.engine.handle(ListenKeyStatus(h.now, "created", key_hint="ab12"))
    h.engine.handle(VenueCall(h.now, "POST", "/api/v1/market-place/accept-quote", {"rfqId": "R1"}, 200, None,
                              12.5, "ok"))
    h.engine.handle(Note(h.now, "clock_sync", {"offset_ms": 3}))
    h.engine.handle(ActiveQuotes(h.now, "R5", ()))
    kinds = [r["kind"] for r in h.rows("SELECT kind FROM events ORDER BY seq")]
    assert kinds == ["frame.public_quote", "frame.spot", "frame.rejected", "stream.status", "listen_key",
                     "venue.call", "note.clock_sync", "reconcile.active_quotes"]
    assert h.rows("SELECT endpoint, http_status FROM venue_calls") == [
        {"endpoint": "/api/v1/market-place/accept-quote", "http_status": 200}]
    ctx = h.engine.market.context("BTC/USDT")
    assert ctx.references["spot"].price == D("95.5") and ctx.recent_quotes[0].quote_id == "P1"
    assert h.journal.verify_chain() is None


def test_decision_latency_and_observer(h):
    received = h.now
    h.clock.advance(0.007)
    h.engine.handle(BestQuotes(received, "R1", (h.quote("Q1", "90", 1),), "{}"))
    assert h.rows("SELECT latency_ms FROM decisions")[0]["latency_ms"] == 7
    assert any(k == "decision" and p["action"] == "accept" for k, p in h.seen)


def test_bad_event_does_not_crash(h):
    h.engine.handle(BestQuotes(h.now, "R1", (), "{}"))  # no quotes at all: handled, not raised
    h.engine.handle(object())  # unknown type: ignored


# --- restart -----------------------------------------------------------------------------------

def test_restart_recovers_unknown_accept_and_state(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, clock=clock)
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))  # accept outstanding, then the process dies
    h.update(S.NEW, rfq="R2")
    h.update(S.SUCCESSFUL, rfq="R3")
    h.journal.close()
    clock.advance(1)
    h2 = Harness(tmp_path, clock=clock)
    assert h2.engine.reconcile_targets() == ["R1", "R2"]
    h2.best(h2.quote("Q2", "80", 1))
    assert h2.actions.accepts == []  # in doubt: no second accept
    h2.clock.advance(1)
    h2.reconciled(S.SUCCESSFUL, quote_id="Q1")
    assert h2.engine.reconcile_targets() == ["R2"]
    h2.best(h2.quote("Q3", "80", 1, rfq="R2"), rfq="R2")
    assert h2.actions.accepts == [("accept", "R2", "Q3")]
    assert h2.journal.verify_chain() is None
    h2.journal.close()


def test_restart_restores_daily_notional(tmp_path):
    clock = FakeClock()
    risk = RiskSettings(daily_notional={"USDT": D("1500")})
    h = Harness(tmp_path, clock=clock, risk=risk)
    h.best(h.quote("Q1", "90", 1))
    h.result("accepted", status_raw="accepted")
    h.journal.close()
    h2 = Harness(tmp_path, clock=clock, risk=risk)
    h2.best(h2.quote("Q2", "90", 1, rfq="R2"), rfq="R2")
    assert h2.actions.accepts == [] and h2.decisions()[-1]["blocked_by"] == "daily_notional.USDT"
    h2.journal.close()


# --- the loop -------------------------------------------------------------------------------

def test_run_loop_batches_and_sends_after_commit(h):
    q = queue.Queue()
    stop = threading.Event()
    sent = []

    def accept(rfq_id, quote_id, send_by_ms=None):
        sent.append(committed_accepts(h.path))
        stop.set()

    h.actions.accept = accept
    for i in range(5):
        q.put(PublicQuote(h.now, h.quote(f"P{i}", "95", rfq="X"), "{}"))
    q.put(BestQuotes(h.now, "R1", (h.quote("Q1", "90", 1),), "{}"))
    t = threading.Thread(target=h.engine.run, args=(q, stop, 0.01))
    t.start()
    t.join(10)
    assert not t.is_alive() and sent == [1]
    assert h.rows("SELECT count(*) AS n FROM quotes")[0]["n"] == 6


def test_the_accept_carries_a_send_by_time_of_expiry_minus_min_time_left(h):
    sent = []
    h.actions.accept = lambda r, q, send_by_ms=None: sent.append((q, send_by_ms))
    quote = h.quote("Q1", "99", 1, left_ms=30_000)
    h.best(quote)
    assert sent == [("Q1", quote.expires_ms - h.engine.min_time_left_ms)]
