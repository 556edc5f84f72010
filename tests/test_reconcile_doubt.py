"""An accept whose answer was lost (5xx) is settled only by evidence asked AFTER the loss.

Regression for: a history query sent before the accept, answered after its 5xx, cleared the
doubt, and the rfq-active answer right after it made the engine accept the same quote again.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from rfqbot.events import AcceptResult
from rfqbot.records import Rfq, RfqStatus
from rfqbot.scheduler import SchedulerJobs
from tests.test_engine import Harness

S = RfqStatus


class SlowVenue:
    """rfq_history answers 'new'; while the first query is on the wire, the accept's 5xx lands."""

    def __init__(self, h: Harness, quotes):
        self.h = h
        self.quotes = quotes
        self.during_history = []

    def sync_clock(self):
        return 0

    def rfq_history(self, *, rfq_id=None):
        self.h.clock.advance(0.005)
        for action in self.during_history:
            action()
        self.during_history = []
        self.h.clock.advance(0.005)
        return [Rfq(rfq_id, buy_ccy="BTC", sell_ccy="USDT", sell_amount=Decimal("1000"), status=S.NEW,
                    status_raw="new")]

    def active_quotes(self, rfq_id):
        self.h.clock.advance(0.005)
        return list(self.quotes())


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.journal.close()


def _jobs(h, venue):
    return SchedulerJobs(marketplace=venue, post=h.engine.handle, reconcile_targets=lambda: ["R1"], clock=h.clock)


def test_query_sent_before_the_5xx_does_not_clear_the_doubt(h):
    h.update(S.NEW)
    q1 = h.quote("Q1", "90", 1, left_ms=60_000)
    h.best(q1)
    assert [c[2] for c in h.actions.accepts] == ["Q1"]
    venue = SlowVenue(h, lambda: [q1])
    venue.during_history.append(
        lambda: h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "unknown", message="HTTP 502")))
    assert _jobs(h, venue).reconcile() == 1
    assert [c[2] for c in h.actions.accepts] == ["Q1"]  # no second accept of anything
    assert h.rows("SELECT accept_state FROM rfqs")[0]["accept_state"] == "unknown"
    assert h.engine.reconcile_targets() == ["R1"]


def test_later_query_clears_the_doubt_but_never_reaccepts_the_doubted_quote(h):
    h.update(S.NEW)
    q1 = h.quote("Q1", "90", 1, left_ms=60_000)
    h.best(q1)
    h.result("unknown", "Q1")
    h.clock.advance(1)
    offered = [q1]
    venue = SlowVenue(h, lambda: offered)
    _jobs(h, venue).reconcile()  # asked after the 5xx: 'new' is evidence the accept did not take
    assert h.rows("SELECT accept_state FROM rfqs")[0]["accept_state"] == "none"
    assert [c[2] for c in h.actions.accepts] == ["Q1"]  # Q1 itself is never accepted again
    offered = [q1, h.quote("Q2", "91", 2, left_ms=60_000)]
    _jobs(h, venue).reconcile()
    assert [c[2] for c in h.actions.accepts] == ["Q1", "Q2"]


def test_reconciled_without_send_time_is_no_evidence(h):
    from rfqbot.events import RfqReconciled
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))
    h.result("unknown", "Q1")
    h.clock.advance(5)
    h.engine.handle(RfqReconciled(h.now, Rfq("R1", status=S.NEW, status_raw="new"), "history"))
    assert h.rows("SELECT accept_state FROM rfqs")[0]["accept_state"] == "unknown"


def test_restored_doubt_refuses_the_doubted_quote(tmp_path):
    from rfqbot.clock import FakeClock
    clock = FakeClock()
    h = Harness(tmp_path, clock=clock)
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1, left_ms=60_000))  # outstanding; the process dies
    h.journal.close()
    clock.advance(1)
    h2 = Harness(tmp_path, clock=clock)
    h2.clock.advance(1)
    h2.reconciled(S.NEW)  # asked after the restart: the accept did not take
    h2.best(h2.quote("Q1", "90", 1, left_ms=60_000))
    assert h2.actions.accepts == []
    h2.best(h2.quote("Q1", "90", 1, left_ms=60_000), h2.quote("Q2", "92", 2, left_ms=60_000))
    assert h2.actions.accepts == [("accept", "R1", "Q2")]
    h2.journal.close()


def test_first_sighting_by_best_quote_then_old_history_new_keeps_the_doubt(h):
    """An RFQ first seen through bestQuote (no status yet, e.g. created elsewhere): the history
    answer 'new' to a question asked before the 5xx used to be applied as its first status, and
    that 'first sighting' cleared the doubt, so Q2 was accepted while Q1 may have executed."""
    q1 = h.quote("Q1", "90", 1, left_ms=60_000)
    h.best(q1)  # no rfqUpdates before it: the RFQ's status is unknown to the engine
    assert [c[2] for c in h.actions.accepts] == ["Q1"]
    q2 = h.quote("Q2", "91", 2, left_ms=60_000)
    venue = SlowVenue(h, lambda: [q2])
    venue.during_history.append(
        lambda: h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "unknown", message="timeout")))
    _jobs(h, venue).reconcile()
    h.best(q2)
    assert [c[2] for c in h.actions.accepts] == ["Q1"]  # still in doubt: no second accept
    assert h.rows("SELECT accept_state FROM rfqs")[0]["accept_state"] == "unknown"


def test_a_new_push_without_an_accepted_before_it_does_not_clear_the_doubt(h):
    q1 = h.quote("Q1", "90", 1, left_ms=60_000)
    h.best(q1)
    h.result("unknown", "Q1")
    h.update(S.NEW)  # first rfqUpdates the engine sees: says nothing about our accept
    h.best(h.quote("Q2", "91", 2, left_ms=60_000))
    assert [c[2] for c in h.actions.accepts] == ["Q1"]


def test_accepted_then_new_is_the_documented_reopen_and_frees_the_rfq(h):
    h.update(S.NEW)
    q1 = h.quote("Q1", "90", 1, left_ms=60_000)
    h.best(q1)
    h.result("unknown", "Q1")
    h.update(S.ACCEPTED, quote_id="Q1")
    h.update(S.NEW)  # the accepted quote lapsed before confirmation
    h.best(h.quote("Q2", "91", 2, left_ms=60_000))
    assert [c[2] for c in h.actions.accepts] == ["Q1", "Q2"]




def test_a_doubt_settled_before_a_restart_still_refuses_the_doubted_quote_after_it(tmp_path):
    """Settled as "not taken" (asked after the loss: still new), then restarted: the restored RFQ
    is open with no accept in doubt, and must still never accept the doubted quote again."""
    from rfqbot.clock import FakeClock
    clock = FakeClock()
    h = Harness(tmp_path, clock=clock)
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1, left_ms=60_000))
    h.result("unknown", "Q1")
    h.clock.advance(1)
    h.reconciled(S.NEW)                        # the doubt is settled: the RFQ is free again
    assert h.rows("SELECT accept_state FROM rfqs")[0]["accept_state"] == "none"
    h.journal.close()
    clock.advance(1)
    h2 = Harness(tmp_path, clock=clock)
    h2.best(h2.quote("Q1", "90", 1, left_ms=60_000))
    assert h2.actions.accepts == []            # before the fix: ("accept", "R1", "Q1") again
    h2.best(h2.quote("Q1", "90", 1, left_ms=60_000), h2.quote("Q2", "92", 2, left_ms=60_000))
    assert h2.actions.accepts == [("accept", "R1", "Q2")]
    h2.journal.close()


def test_after_a_restart_a_quote_rejected_for_429_may_be_accepted_but_a_refused_one_not(tmp_path):
    from rfqbot.clock import FakeClock
    clock = FakeClock()
    h = Harness(tmp_path, clock=clock)
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1, left_ms=60_000))
    h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="429", message="paused"))
    h.clock.advance(1.1)                       # past the pause (1 s without a Retry-After)
    h.best(h.quote("Q2", "91", 2, left_ms=60_000))
    h.engine.handle(AcceptResult(h.now, "R1", "Q2", "accept", "rejected", venue_code="-3003",
                                 message="quote expired"))
    h.journal.close()
    clock.advance(1)
    h2 = Harness(tmp_path, clock=clock)
    h2.best(h2.quote("Q2", "91", 2, left_ms=60_000))
    assert h2.actions.accepts == []            # the venue refused Q2 itself
    h2.best(h2.quote("Q1", "90", 1, left_ms=60_000), h2.quote("Q2", "91", 2, left_ms=60_000))
    assert h2.actions.accepts == [("accept", "R1", "Q1")]   # a 429 said nothing about Q1
    h2.journal.close()


def test_restore_decided_quotes_sorts_rows_into_refused_and_declined():
    from rfqbot.engine.state import OwnRfq, restore_decided_quotes
    rfqs = {"R1": OwnRfq("R1")}
    restore_decided_quotes(rfqs, [
        {"rfq_id": "R1", "quote_id": "D1", "action": "decline", "result_outcome": "declined", "venue_code": None},
        {"rfq_id": "R1", "quote_id": "A1", "action": "accept", "result_outcome": None, "venue_code": None},
        {"rfq_id": "R1", "quote_id": "A2", "action": "accept", "result_outcome": "rejected", "venue_code": "418"},
        {"rfq_id": "R9", "quote_id": "X", "action": "accept", "result_outcome": "unknown", "venue_code": None},
    ])
    assert rfqs["R1"].declined_quotes == {"D1"} and rfqs["R1"].refused_quotes == {"A1"}
    assert list(rfqs) == ["R1"]
