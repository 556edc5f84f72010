"""What the engine keeps in memory over a long run: live RFQs only; the journal keeps the rest.

A daemon that runs for months creates thousands of RFQs. Settled ones (final, no accept of ours
outstanding or in doubt) are dropped from memory an hour after they became final, and a
restart loads only live ones; a later message about a dropped RFQ reads it back from the
journal, so it meets the RFQ's final state, never a blank one that could be accepted on.
"""

from __future__ import annotations

from decimal import Decimal

from rfqbot.clock import DAY_MS, FakeClock
from rfqbot.engine.loop import FORGET_EVERY_MS
from rfqbot.engine.risk import RiskLedger
from rfqbot.engine.state import ACCEPT_NONE, ACCEPT_UNKNOWN, SETTLED_KEPT_MS
from rfqbot.events import Tick
from rfqbot.records import RfqStatus
from tests.test_engine import Harness

S = RfqStatus
D = Decimal


def _accepted_and_settled(h: Harness, rfq: str, quote: str) -> None:
    h.update(S.NEW, rfq=rfq)
    h.best(h.quote(quote, "90", 1, rfq=rfq), rfq=rfq)
    h.result("accepted", quote, rfq=rfq, status_raw="accepted")
    h.update(S.SUCCESSFUL, rfq=rfq)


def _tick(h: Harness) -> None:
    h.engine.handle(Tick(h.now))


def _transitions(h: Harness, rfq: str) -> list[tuple[str | None, str]]:
    return [(r["from_status"], r["to_status"])
            for r in h.rows("SELECT from_status, to_status FROM transitions WHERE rfq_id = ? ORDER BY seq", rfq)]


def test_settled_rfqs_leave_memory_an_hour_after_they_became_final_and_live_ones_stay(tmp_path):
    h = Harness(tmp_path)
    _accepted_and_settled(h, "DONE", "Q1")
    h.update(S.NEW, rfq="OPEN")
    _tick(h)
    assert set(h.engine.rfqs) == {"DONE", "OPEN"}       # settled, but not for an hour yet
    h.clock.advance((SETTLED_KEPT_MS - FORGET_EVERY_MS) / 1000)
    _tick(h)
    assert set(h.engine.rfqs) == {"DONE", "OPEN"}
    h.clock.advance(2 * FORGET_EVERY_MS / 1000)
    _tick(h)
    assert set(h.engine.rfqs) == {"OPEN"}
    assert h.engine.open_rfq_count() == 1 and h.engine.reconcile_targets() == ["OPEN"]
    # The journal still has all of it.
    assert {r["rfq_id"] for r in h.rows("SELECT rfq_id FROM rfqs WHERE own = 1")} == {"DONE", "OPEN"}
    h.journal.close()


def test_final_rfq_with_its_accept_still_unanswered_is_kept(tmp_path):
    h = Harness(tmp_path)
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))                      # accept sent, no answer yet
    h.update(S.EXPIRED)                                 # final, while our accept is in flight
    rfq = h.engine.rfqs["R1"]
    assert rfq.is_final and rfq.inflight_quote_id == "Q1"
    h.clock.advance(3 * SETTLED_KEPT_MS / 1000)
    _tick(h)
    assert "R1" in h.engine.rfqs                        # its answer will still come to it
    h.result("rejected", "Q1")
    h.clock.advance(3 * SETTLED_KEPT_MS / 1000)
    _tick(h)
    assert "R1" not in h.engine.rfqs
    h.journal.close()


def test_a_late_best_quote_for_a_forgotten_rfq_is_never_accepted(tmp_path):
    h = Harness(tmp_path)
    _accepted_and_settled(h, "R1", "Q1")
    h.clock.advance(2 * SETTLED_KEPT_MS / 1000)
    _tick(h)
    assert "R1" not in h.engine.rfqs
    before = _transitions(h, "R1")
    h.best(h.quote("Q2", "80", 1))                      # a stray push for the settled RFQ
    h.update(S.SUCCESSFUL)                              # and a replayed status
    assert [c[2] for c in h.actions.accepts] == ["Q1"]  # no second accept
    assert _transitions(h, "R1") == before              # no "first seen" transition from a blank RFQ
    assert h.engine.rfqs["R1"].status is S.SUCCESSFUL   # read back from the journal
    h.journal.close()


def test_a_restart_loads_only_live_rfqs_and_reads_the_rest_back_when_mentioned(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, clock=clock)
    _accepted_and_settled(h, "OLD", "Q1")
    h.update(S.NEW, rfq="OPEN")
    clock.advance(2 * SETTLED_KEPT_MS / 1000)
    _accepted_and_settled(h, "RECENT", "Q2")
    h.journal.close()
    h2 = Harness(tmp_path, clock=clock)
    assert set(h2.engine.rfqs) == {"OPEN", "RECENT"}
    before = _transitions(h2, "OLD")
    h2.best(h2.quote("Q3", "80", 1, rfq="OLD"), rfq="OLD")
    assert h2.actions.accepts == [] and _transitions(h2, "OLD") == before
    assert h2.engine.rfqs["OLD"].status is S.SUCCESSFUL
    h2.journal.close()


def test_a_restart_keeps_an_rfq_whose_accept_decision_has_no_result_and_does_not_doubt_it(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, clock=clock)
    h.update(S.NEW)
    h.best(h.quote("Q1", "90", 1))
    h.result("unknown", "Q1")                           # 5xx: the decision's outcome stays 'unknown'
    h.reconciled(S.EXPIRED)                             # the venue's history settles it: not taken
    assert h.engine.rfqs["R1"].accept_state == ACCEPT_NONE
    assert h.rows("SELECT result_outcome FROM decisions WHERE action = 'accept'") == [{"result_outcome": "unknown"}]
    h.journal.close()
    clock.advance(2 * SETTLED_KEPT_MS / 1000)
    h2 = Harness(tmp_path, clock=clock)
    # Loaded (an accept decision without a definitive result), so that restore sees from the
    # RFQ's row that the doubt was settled after it: not in doubt again, nothing to reconcile.
    assert "R1" in h2.engine.rfqs
    assert h2.engine.rfqs["R1"].accept_state == ACCEPT_NONE and h2.engine.reconcile_targets() == []
    h2.journal.close()


def test_what_a_restart_loads_is_what_the_running_engine_keeps(tmp_path):
    """``live_own_rfqs_where`` (SQL, at a restart) and ``is_settled_before`` (in memory) are one
    rule written twice: the same history gives the same live set either way."""
    clock = FakeClock()
    h = Harness(tmp_path, clock=clock)
    _accepted_and_settled(h, "SETTLED", "Q1")
    h.update(S.NEW, rfq="OPEN")
    h.update(S.NEW, rfq="EXPIRED")
    h.update(S.EXPIRED, rfq="EXPIRED")
    h.update(S.NEW, rfq="DOUBT")
    h.best(h.quote("Q2", "90", 1, rfq="DOUBT"), rfq="DOUBT")
    h.result("unknown", "Q2", rfq="DOUBT")                # 5xx: in doubt until reconciled
    clock.advance(2 * SETTLED_KEPT_MS / 1000)
    h.update(S.NEW, rfq="YOUNG")
    h.update(S.CANCELLED, rfq="YOUNG")
    _tick(h)
    kept = set(h.engine.rfqs)
    assert kept == {"OPEN", "DOUBT", "YOUNG"}
    assert h.engine.rfqs["DOUBT"].accept_state == ACCEPT_UNKNOWN
    h.journal.close()
    h2 = Harness(tmp_path, clock=clock)
    assert set(h2.engine.rfqs) == kept
    h2.journal.close()


def test_risk_ledger_forgets_accepts_no_limit_counts_and_keeps_today():
    ledger = RiskLedger()
    day0 = 20_000 * DAY_MS
    ledger.record("OLD", day0 + 1000, {"USDT": D("100")})
    ledger.record("NOW", day0 + 3 * DAY_MS, {"USDT": D("50")})
    ledger.forget_before(day0 + 3 * DAY_MS - 2 * DAY_MS)
    assert set(ledger._by_rfq) == {"NOW"}
    assert {day for day, _ in ledger._daily} == {20_003}
    ledger.release("OLD")                                 # a late refusal of a forgotten accept: no-op
    assert ledger.daily_total("USDT", day0 + 3 * DAY_MS) == D("50")
    assert ledger.accepts_in_last_minute(day0 + 3 * DAY_MS) == 1
    assert ledger._by_rfq["NOW"][1] == {"USDT": D("50")}
