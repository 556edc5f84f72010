"""Late news: an accept answer older than the private stream's lapse, and RFQs older than the venue's history."""

from __future__ import annotations

from rfqbot.clock import FakeClock
from rfqbot.engine.loop import HISTORY_WINDOW_MS
from rfqbot.engine.risk import DAY_MS, RiskSettings
from rfqbot.records import RfqStatus
from rfqbot.events import CreateRfqCommand
from rfqbot.records import QuoteMode
from decimal import Decimal
from tests.test_engine import Harness

S = RfqStatus


def test_late_accept_answer_does_not_undo_a_lapse_seen_on_the_private_stream(tmp_path):
    h = Harness(tmp_path)
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))
    h.update(S.ACCEPTED, quote_id="Q1")
    h.update(S.NEW)  # the accepted quote lapsed before confirmation
    h.result("accepted", "Q1", status_raw="accepted")  # the accept's answer arrives only now
    rows = h.rows("SELECT from_status, to_status FROM transitions ORDER BY seq")
    assert [(r["from_status"], r["to_status"]) for r in rows] == [(None, "new"), ("new", "accepted"),
                                                                  ("accepted", "new")]
    assert h.rows("SELECT status, accept_state FROM rfqs")[0] == {"status": "new", "accept_state": "none"}
    h.best(h.quote("Q1", "90", 1), h.quote("Q2", "91", 2))
    assert [c[2] for c in h.actions.accepts] == ["Q1", "Q2"]  # free again, but never the lapsed quote
    h.journal.close()


def test_restored_rfq_beyond_the_history_window_is_stale_and_not_counted(tmp_path):
    clock = FakeClock()
    risk = RiskSettings(max_open_rfqs=1)
    h = Harness(tmp_path, clock=clock, risk=risk)
    h.update(S.NEW, rfq="OLD")
    h.journal.close()
    clock.advance((HISTORY_WINDOW_MS + DAY_MS) / 1000)
    h2 = Harness(tmp_path, clock=clock, risk=risk)
    assert h2.engine.reconcile_targets() == [] and h2.engine.open_rfq_count() == 0
    assert h2.rows("SELECT count(*) AS n FROM events WHERE kind = 'rfq.stale'")[0]["n"] == 1
    h2.engine.handle(CreateRfqCommand(h2.now, "BTC", "USDT", Decimal("1000"), QuoteMode.REAL_TIME, 60, "cid-x"))
    assert h2.actions.calls == [("create", "cid-x")]  # not blocked by max_open_rfqs
    h2.journal.close()


def test_restored_rfq_older_than_a_day_is_queried_with_a_wider_window(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, clock=clock)
    h.update(S.NEW, rfq="R2")
    h.engine.rfqs["R2"].created_ms = h.now
    born = h.now
    assert h.engine.reconcile_window_start("R2") is None  # recent: the default 24 h window finds it
    clock.advance(3 * DAY_MS / 1000)
    start = h.engine.reconcile_window_start("R2")
    assert start is not None and start < born and h.now - start < HISTORY_WINDOW_MS
    h.journal.close()


def test_scheduler_passes_the_wider_window_only_when_needed():
    from rfqbot.scheduler import SchedulerJobs

    calls = []

    class Api:
        def sync_clock(self):
            return 0

        def rfq_history(self, **kw):
            calls.append(kw)
            return []

        def active_quotes(self, rfq_id):
            return []

    jobs = SchedulerJobs(marketplace=Api(), post=lambda e: None, reconcile_targets=lambda: ["A", "B"],
                         clock=FakeClock(), window_start=lambda rfq_id: 123 if rfq_id == "B" else None)
    assert jobs.reconcile() == 2
    assert calls == [{"rfq_id": "A"}, {"rfq_id": "B", "start_ms": 123}]


def test_closed_pair_is_never_accepted_and_the_reason_says_so(tmp_path):
    from dataclasses import replace as dc_replace

    from tests.test_engine import BTC

    h = Harness(tmp_path)
    h.engine.pairs["BTC/USDT"] = dc_replace(BTC, trading_status="CLOSED")
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == []
    assert "CLOSED" in h.decisions()[-1]["reason"]
    h.journal.close()
