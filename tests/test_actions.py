"""RestActions: venue results and errors become the right events; drain bounds shutdown."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from rfqbot.engine.actions import RestActions
from rfqbot.clock import FakeClock
from rfqbot.errors import Banned, NotSent, OutcomeUnknown, RateLimited, TransportError, VenueError
from rfqbot.events import AcceptResult, CreateRfqCommand, RfqCreateFailed, RfqReconciled
from rfqbot.venue.marketplace import AcceptAck, accept_ack_from_json
from rfqbot.normalise import NormaliseError
from rfqbot.records import QuoteMode, Rfq, RfqStatus


class FakeMarket:
    def __init__(self, outcome):
        self.outcome = outcome
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()

    def _answer(self, *args):
        self.calls.append(args)
        self.gate.wait(5)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def begin_accept(self, rfq_id, quote_id, send_by_ms=None, action="accept"):
        return None   # never "sent now": the worker sends (SendNowMarket below covers the other way)

    def accept_quote(self, rfq_id, quote_id, send_by_ms=None):
        return self._answer("accept", rfq_id, quote_id)

    def decline_quote(self, rfq_id, quote_id):
        return self._answer("decline", rfq_id, quote_id)

    def create_rfq(self, buy, sell, amount, mode, expire_sec=None, client_order_id=None):
        return self._answer("create", buy, sell, amount, mode, expire_sec, client_order_id)


def run(outcome, action="accept"):
    posted = []
    market = FakeMarket(outcome)
    actions = RestActions(market, posted.append, workers=1, clock=FakeClock())
    getattr(actions, action)("R1", "Q1").result(5)
    assert actions.drain(5)
    assert len(posted) == 1
    return posted[0]


ACK = AcceptAck("R1", "Q1", RfqStatus.ACCEPTED, "accepted", 1717392500000)


@pytest.mark.parametrize("outcome, expected, code", [
    (ACK, "accepted", None),
    (AcceptAck("R1", "Q1", RfqStatus.NEW, "new", None), "unknown", None),
    (OutcomeUnknown("/accept-quote", "HTTP 502"), "unknown", None),
    (TransportError("/accept-quote", "reset"), "unknown", None),
    (VenueError("0001", "quote expired", 400), "rejected", "0001"),
    (RateLimited(60), "rejected", "429"),
    (Banned(), "rejected", "418"),
    (NotSent("bad id"), "rejected", None),
    (ValueError("decode failed after the answer"), "unknown", None),
    (NormaliseError("rfqId: expected text"), "unknown", None),
    (KeyError("weird"), "unknown", None),
])
def test_accept_outcomes(outcome, expected, code):
    ev = run(outcome)
    assert isinstance(ev, AcceptResult) and ev.action == "accept"
    assert (ev.rfq_id, ev.quote_id, ev.outcome, ev.venue_code) == ("R1", "Q1", expected, code)
    if expected == "accepted":
        assert ev.status_raw == "accepted" and ev.expires_ms == 1717392500000


def test_decline_outcome():
    ev = run(AcceptAck("R1", "Q1", RfqStatus.FAILED, "failed", None), action="decline")
    assert ev.action == "decline" and ev.outcome == "declined"


def cmd():
    return CreateRfqCommand(1, "BTC", "USDT", Decimal("1000"), QuoteMode.REAL_TIME, 600, "cid-1")


def test_create_success_and_failures():
    for outcome, kind, detail in [
        (Rfq("R9", client_order_id="cid-1", status=RfqStatus.NEW, status_raw="new"), RfqReconciled, "create"),
        (VenueError("-1", "bad", 400), RfqCreateFailed, "rejected"),
        (OutcomeUnknown("/create-rfq", "timeout"), RfqCreateFailed, "unknown"),
    ]:
        posted = []
        market = FakeMarket(outcome)
        actions = RestActions(market, posted.append, workers=1, clock=FakeClock())
        actions.create_rfq(cmd()).result(5)
        actions.drain(5)
        assert market.calls[0] == ("create", "BTC", "USDT", Decimal("1000"), QuoteMode.REAL_TIME, 600, "cid-1")
        ev = posted[0]
        assert isinstance(ev, kind)
        assert (ev.source if kind is RfqReconciled else ev.outcome) == detail


def test_drain_times_out_and_refuses_new_work():
    market = FakeMarket(ACK)
    market.gate.clear()
    posted = []
    actions = RestActions(market, posted.append, workers=1, clock=FakeClock())
    actions.accept("R1", "Q1")
    assert actions.in_flight() == 1
    assert actions.drain(0.05) is False
    with pytest.raises(RuntimeError):
        actions.accept("R2", "Q2")
    market.gate.set()


def test_broken_post_does_not_kill_worker():
    def post(_):
        raise RuntimeError("queue gone")
    actions = RestActions(FakeMarket(ACK), post, workers=1, clock=FakeClock())
    actions.accept("R1", "Q1").result(5)
    assert actions.drain(5)


class DecodingMarket(FakeMarket):
    """Answers HTTP 200 with ``body`` and decodes it the way MarketPlace does."""

    def accept_quote(self, rfq_id, quote_id, send_by_ms=None):
        return accept_ack_from_json(self._answer("accept", rfq_id, quote_id), rfq_id, quote_id)


@pytest.mark.parametrize("body, expected", [
    ({"rfqId": {"odd": 1}, "quoteId": ["x"], "status": "accepted"}, "accepted"),
    ({"rfqId": {"odd": 1}, "status": {"odd": "object"}}, "unknown"),
    ({"rfqId": "R1", "status": "accepted", "expiryTime": {"no": 1}}, "accepted"),
    ({"rfqId": "R1", "status": True}, "unknown"),
    ([1, 2, 3], "unknown"),
    ("<html>", "unknown"),
])
def test_odd_answer_after_http_200_is_never_rejected(body, expected):
    """After the venue answered, an unreadable field cannot mean 'not sent' (a second accept could follow)."""
    posted = []
    actions = RestActions(DecodingMarket(body), posted.append, workers=1, clock=FakeClock())
    actions.accept("R1", "Q1").result(5)
    assert actions.drain(5)
    assert posted[0].outcome == expected and (posted[0].rfq_id, posted[0].quote_id) == ("R1", "Q1")


def test_ack_decoding_never_raises():
    ack = accept_ack_from_json({"rfqId": {"a": 1}, "quoteId": [1], "status": {"s": 1}, "expiryTime": []}, "R1", "Q1")
    assert (ack.rfq_id, ack.quote_id, ack.status, ack.expires_ms) == ("R1", "Q1", RfqStatus.UNKNOWN, None)


def test_create_failures_share_the_accept_mapping():
    for outcome, expected, code in [(NotSent("mode"), "rejected", None), (ValueError("late"), "unknown", None),
                                    (RateLimited(5), "rejected", "429"), (TransportError("/c", "bad"), "unknown", None)]:
        posted = []
        actions = RestActions(FakeMarket(outcome), posted.append, workers=1, clock=FakeClock())
        actions.create_rfq(cmd()).result(5)
        actions.drain(5)
        assert isinstance(posted[0], RfqCreateFailed) and (posted[0].outcome, posted[0].venue_code) == (expected, code)


def test_an_accept_not_sent_for_lateness_is_rejected_not_unknown():
    from rfqbot.errors import NotSent

    result = run(NotSent("/api/v1/market-place/accept-quote: not sent, 12 ms past its send-by time"))
    assert result.outcome == "rejected" and "not sent" in result.message and "send-by" in result.message


class SendNowMarket(FakeMarket):
    """A market whose accept can leave on the caller's thread (Marketplace.begin_accept)."""

    def __init__(self, outcome, send_now=True, begin_raises=None):
        super().__init__(outcome)
        self.send_now = send_now
        self.begin_raises = begin_raises
        self.begun_on = None
        self.answered_on = None

    def begin_accept(self, rfq_id, quote_id, send_by_ms=None, action="accept"):
        self.begun_on = threading.current_thread()
        if self.begin_raises is not None:
            raise self.begin_raises
        if not self.send_now:
            return None
        self.calls.append(("begin", action, rfq_id, quote_id))

        def answer():
            self.answered_on = threading.current_thread()
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome
        return answer


def test_an_accept_that_can_leave_now_is_sent_on_the_callers_thread_and_answered_on_a_worker():
    posted = []
    market = SendNowMarket(ACK)
    actions = RestActions(market, posted.append, workers=1, clock=FakeClock())
    actions.accept("R1", "Q1").result(5)
    assert market.begun_on is threading.current_thread()
    assert market.answered_on is not None and market.answered_on is not threading.current_thread()
    assert market.calls == [("begin", "accept", "R1", "Q1")]       # accept_quote never called
    assert [ev.outcome for ev in posted] == ["accepted"]
    assert actions.drain(5)


def test_when_it_cannot_leave_now_the_worker_sends_it():
    posted = []
    market = SendNowMarket(ACK, send_now=False)
    actions = RestActions(market, posted.append, workers=1, clock=FakeClock())
    actions.accept("R1", "Q1").result(5)
    assert market.calls == [("accept", "R1", "Q1")]
    assert [ev.outcome for ev in posted] == ["accepted"]
    assert actions.drain(5)


@pytest.mark.parametrize("failure", [OutcomeUnknown("/accept-quote", "HTTP 502"), RuntimeError("bug after the write")])
def test_a_send_now_failure_is_never_resent(failure):
    posted = []
    market = SendNowMarket(failure, begin_raises=failure if isinstance(failure, RuntimeError) else None)
    actions = RestActions(market, posted.append, workers=1, clock=FakeClock())
    actions.accept("R1", "Q1").result(5)
    assert ("accept", "R1", "Q1") not in market.calls            # no second send on the worker
    assert [ev.outcome for ev in posted] == ["unknown"]
    assert actions.drain(5)


def test_after_drain_nothing_is_sent_now():
    market = SendNowMarket(ACK)
    actions = RestActions(market, lambda ev: None, workers=1, clock=FakeClock())
    assert actions.drain(1)
    with pytest.raises(RuntimeError):
        actions.accept("R1", "Q1")
    assert market.begun_on is None


def test_a_429_result_carries_the_pause():
    ev = run(RateLimited(7.5, "/accept-quote"))
    assert (ev.outcome, ev.venue_code, ev.retry_after_ms) == ("rejected", "429", 7500)


def test_every_worker_thread_is_started_up_front():
    """A thread started lazily inside submit() (after the work item is queued) could fail and make
    a sent accept look "not sent"; all of them start in the constructor instead."""
    before = {t for t in threading.enumerate() if t.name.startswith("rfqbot-rest")}
    actions = RestActions(FakeMarket(ACK), lambda ev: None, workers=3, clock=FakeClock())
    started = {t for t in threading.enumerate() if t.name.startswith("rfqbot-rest")} - before
    assert len(started) == 3 and all(t.is_alive() for t in started)
    actions.accept("R1", "Q1").result(5)
    after = {t for t in threading.enumerate() if t.name.startswith("rfqbot-rest")} - before
    assert after == started          # submit() never had to start one
    assert actions.drain(5)


def test_a_worker_thread_that_cannot_start_is_a_clear_error_and_nothing_is_left_waiting(monkeypatch):
    real_start = threading.Thread.start
    started = []

    def start(self):
        if self.name.startswith("rfqbot-rest") and started:
            raise RuntimeError("can't start new thread")
        started.append(self)
        real_start(self)
    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="engine.accept_workers"):
        RestActions(FakeMarket(ACK), lambda ev: None, workers=3, clock=FakeClock())
    monkeypatch.setattr(threading.Thread, "start", real_start)
    for thread in started:          # the one worker that did start was released, not left in the barrier
        thread.join(5)
        assert not thread.is_alive()
