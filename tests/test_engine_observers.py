"""Observers (alerts, metrics, the demo's printer, the daemon's reload listener) are told a turn's
journal entries only once that turn committed, and after its accept left: they never see what a
failed commit undid, and never sit between a decision and its accept."""

from __future__ import annotations

from rfqbot.events import BestQuotes, PublicQuote
from rfqbot.journal.store import open_readonly
from tests.test_engine import Harness
from tests.test_journal_failure import fill_disk, run_engine


def test_an_observer_hears_of_a_decision_after_its_commit_and_after_the_accept_left(tmp_path):
    h = Harness(tmp_path)
    reader = open_readonly(h.path)
    seen_when: list[tuple[str, bool, int]] = []

    def observer(kind, entry):
        committed = reader.execute("SELECT count(*) FROM events WHERE seq = ?", (entry["seq"],)).fetchone()[0]
        seen_when.append((kind, committed == 1, len(h.actions.accepts)))

    h.engine.add_observer(observer)
    try:
        h.best(h.quote("Q1", "90", 1))
        assert ("decision", True, 1) in seen_when                     # committed, and the accept had left
        assert all(committed for _, committed, _ in seen_when)
        assert [kind for kind, _, _ in seen_when] == [k for k, _ in h.seen]  # same entries, same order
    finally:
        reader.close()
        h.journal.close()


def test_an_observer_never_hears_of_a_turn_whose_commit_failed(tmp_path):
    h = Harness(tmp_path)
    try:
        h.best(h.quote("Q0", "90", 1, rfq="R0"), rfq="R0")
        told_before = len(h.seen)
        fill_disk(h.journal)
        burst = [PublicQuote(h.now, h.quote(f"P{i}", "95", rfq="X", lp="L" * 3000), "{}") for i in range(5)]
        burst.append(BestQuotes(h.now, "R1", (h.quote("Q1", "90", 1),), "{}"))
        run_engine(h, burst, lambda: h.engine.journal_failure is not None)
        assert h.actions.accepts == [("accept", "R0", "Q0")]
        told = h.seen[told_before:]
        assert [p.get("rfq_id") for _, p in told if p.get("rfq_id") in ("R1", "X")] == []
        assert not [k for k, _ in told if k in ("decision", "frame.best_quotes", "frame.public_quote")]
    finally:
        h.journal.close()
