"""An accept refused because requests are paused (429) or banned (418) says nothing about the
quote: it must not be crossed off, and the engine must not burn through every other quote of
the RFQ while the pause lasts (found by the fault suite, scenario 5a)."""

from __future__ import annotations

import pytest

from rfqbot.events import AcceptResult, Tick
from tests.test_engine import Harness


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.journal.close()


def test_paused_accept_keeps_the_quote_and_retries_after_a_wait(h):
    h.best(h.quote("Q1", "90", 1), h.quote("Q2", "95", 2))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="429",
                                 message="rate limited"))
    assert h.actions.accepts == [("accept", "R1", "Q1")]  # not Q2 at once, not Q1 in a loop
    h.clock.advance(0.5)
    h.engine.handle(Tick(h.now))
    assert len(h.actions.accepts) == 1
    h.clock.advance(0.6)
    h.engine.handle(Tick(h.now))
    assert h.actions.accepts == [("accept", "R1", "Q1"), ("accept", "R1", "Q1")]  # the best one again


def test_banned_accept_is_not_retried_and_keeps_the_quote(h):
    h.best(h.quote("Q1", "90", 1), h.quote("Q2", "95", 2))
    h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="418", message="banned"))
    h.clock.advance(5)
    h.engine.handle(Tick(h.now))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    assert "Q1" not in h.engine.rfqs["R1"].refused_quotes


def test_a_venue_refusal_still_moves_to_the_next_quote(h):
    h.best(h.quote("Q1", "90", 1), h.quote("Q2", "95", 2))
    h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="-3003", message="expired"))
    assert h.actions.accepts == [("accept", "R1", "Q1"), ("accept", "R1", "Q2")]


def test_a_paused_accept_waits_for_the_whole_pause_the_venue_asked_for(h):
    """Retrying every second inside a 30 s pause only journals refusals (each is refused locally)."""
    h.best(h.quote("Q1", "90", 1, left_ms=120_000))
    h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="429",
                                 message="rate limited", retry_after_ms=30_000))
    for _ in range(29):
        h.clock.advance(1)
        h.engine.handle(Tick(h.now))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    h.clock.advance(1.1)
    h.engine.handle(Tick(h.now))
    assert h.actions.accepts == [("accept", "R1", "Q1"), ("accept", "R1", "Q1")]
    results = h.rows("SELECT payload FROM events WHERE kind = 'accept.result'")
    assert '"retry_after_ms":30000' in results[0]["payload"]


def test_new_quote_pushes_inside_the_pause_wait_for_it_too(h):
    """Found by review: each bestQuote push inside a 60 s pause decided again (one more refused
    accept journaled per push). Pushes now only update the quotes; the tick after the pause decides."""
    h.best(h.quote("Q1", "90", 1, left_ms=120_000))
    h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="429",
                                 message="rate limited", retry_after_ms=60_000))
    for _ in range(5):
        h.clock.advance(1)
        h.best(h.quote("Q1", "90", 1, left_ms=120_000), h.quote("Q2", "91", 2, left_ms=120_000))
        h.best(h.quote("Q3", "89", 1, left_ms=120_000, rfq="R2"), rfq="R2")   # another RFQ too
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    h.clock.advance(56)
    h.engine.handle(Tick(h.now))
    assert sorted(h.actions.accepts[1:]) == [("accept", "R1", "Q1"), ("accept", "R2", "Q3")]
    assert len(h.rows("SELECT seq FROM decisions")) == 3


def test_the_pause_holds_every_way_to_a_decision_not_only_pushes(h):
    """Found by review: a refusal of another RFQ's accept decided on its next quote at once,
    inside the pause (one more accept refused locally)."""
    h.best(h.quote("Q1", "90", 1, left_ms=120_000))
    h.best(h.quote("Q3", "91", 1, left_ms=120_000, rfq="R2"), h.quote("Q4", "92", 2, left_ms=120_000, rfq="R2"),
           rfq="R2")
    assert h.actions.accepts == [("accept", "R1", "Q1"), ("accept", "R2", "Q3")]
    h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="429",
                                 message="rate limited", retry_after_ms=60_000))
    h.engine.handle(AcceptResult(h.now, "R2", "Q3", "accept", "rejected", venue_code="-3003",
                                 message="quote expired"))
    assert len(h.actions.accepts) == 2            # R2's next quote waits for the pause too
    h.clock.advance(61)
    h.engine.handle(Tick(h.now))
    assert sorted(h.actions.accepts[2:]) == [("accept", "R1", "Q1"), ("accept", "R2", "Q4")]


@pytest.mark.parametrize("how", ["accept answered 418", "daemon ban alert"])
def test_after_a_ban_quotes_are_journaled_as_skipped_not_decided(h, how):
    """Found by review: after a 418 each push still journaled an accept decision (refused locally)."""
    from rfqbot.events import Note
    h.best(h.quote("Q1", "90", 1))
    if how == "accept answered 418":
        h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="418", message="banned"))
    else:
        h.engine.handle(Note(h.now, "alert.banned", {"error": "banned"}))
    decisions = len(h.rows("SELECT seq FROM decisions"))
    for n in range(3):
        h.clock.advance(1)
        h.best(h.quote(f"Q{n + 2}", "89", 1, rfq="R2"), rfq="R2")   # a fresh RFQ: only the ban stops it
        h.engine.handle(Tick(h.now))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    assert len(h.rows("SELECT seq FROM decisions")) == decisions
    skipped = h.rows("SELECT payload FROM events WHERE kind = 'decision.skipped'")
    assert len(skipped) == 3 and all("HTTP 418" in r["payload"] for r in skipped)
