"""The referees themselves: a count that can never be non-zero would hide a double accept."""

from __future__ import annotations

from typing import Any

from tests.faults.support import duplicate_accepts


class FakeTruth:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = [{**e, "seq": i} for i, e in enumerate(events)]

    def truth(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]


def test_a_second_accept_after_a_5xx_that_was_applied_counts_as_a_duplicate() -> None:
    sim = FakeTruth([
        {"event": "accept_received", "action": "accept", "rfq_id": "R1", "quote_id": "Q1"},
        {"event": "accept_fault", "outcome": "accepted", "applied": True, "rfq_id": "R1"},
        {"event": "accept_received", "action": "accept", "rfq_id": "R1", "quote_id": "Q2"},
    ])
    assert duplicate_accepts(sim) == 1  # type: ignore[arg-type]


def test_a_5xx_that_was_not_applied_leaves_the_rfq_free() -> None:
    sim = FakeTruth([
        {"event": "accept_received", "action": "accept", "rfq_id": "R1", "quote_id": "Q1"},
        {"event": "accept_fault", "outcome": "not applied", "applied": False, "rfq_id": "R1"},
        {"event": "accept_received", "action": "accept", "rfq_id": "R1", "quote_id": "Q2"},
        {"event": "accept_result", "outcome": "accepted", "rfq_id": "R1"},
    ])
    assert duplicate_accepts(sim) == 0  # type: ignore[arg-type]


def test_two_takes_of_one_rfq_count() -> None:
    sim = FakeTruth([
        {"event": "accept_result", "outcome": "accepted", "rfq_id": "R1"},
        {"event": "accept_result", "outcome": "accepted", "rfq_id": "R1"},
    ])
    assert duplicate_accepts(sim) == 1  # type: ignore[arg-type]
