"""An accept refused because requests are paused (429) or banned (418) says nothing about the
quote: it must not be crossed off, and the engine must not burn through every other quote of
the RFQ while the pause lasts (found by the fault suite, scenario 5a)."""

from __future__ import annotations

from rfqbot.events import AcceptResult, Tick
from tests.test_engine import Harness


def test_paused_accept_keeps_the_quote_and_retries_after_a_wait(tmp_path):
    h = Harness(tmp_path)
    try:
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
    finally:
        h.journal.close()


def test_banned_accept_is_not_retried_and_keeps_the_quote(tmp_path):
    h = Harness(tmp_path)
    try:
        h.best(h.quote("Q1", "90", 1), h.quote("Q2", "95", 2))
        h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="418", message="banned"))
        h.clock.advance(5)
        h.engine.handle(Tick(h.now))
        assert h.actions.accepts == [("accept", "R1", "Q1")]
        assert "Q1" not in h.engine.rfqs["R1"].refused_quotes
    finally:
        h.journal.close()


def test_a_venue_refusal_still_moves_to_the_next_quote(tmp_path):
    h = Harness(tmp_path)
    try:
        h.best(h.quote("Q1", "90", 1), h.quote("Q2", "95", 2))
        h.engine.handle(AcceptResult(h.now, "R1", "Q1", "accept", "rejected", venue_code="-3003", message="expired"))
        assert h.actions.accepts == [("accept", "R1", "Q1"), ("accept", "R1", "Q2")]
    finally:
        h.journal.close()


def test_a_paused_accept_waits_for_the_whole_pause_the_venue_asked_for(tmp_path):
    """Retrying every second inside a 30 s pause only journals refusals (each is refused locally)."""
    h = Harness(tmp_path)
    try:
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
    finally:
        h.journal.close()
