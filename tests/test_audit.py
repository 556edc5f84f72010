"""Audit internals on small synthetic journals: tamper detection, prune checkpoints, stats maths,
time parsing, and following a journal while it is written (deterministic: a fake sleep writes)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from rfqbot.audit import queries
from rfqbot.audit.prune import DAY_MS, prune
from rfqbot.audit.prune import plan as prune_plan
from rfqbot.audit.reader import connect
from rfqbot.audit.stats import improvement_bps, percentile
from rfqbot.audit.timeparse import parse_time
from rfqbot.audit.verify import parse_head, verify_connection
from rfqbot.clock import FakeClock
from rfqbot.journal.store import Journal, JournalError

T0 = 1_760_000_000_000


def _snapshot(rfq_id: str, status: str, accept_state: str = "none") -> dict:
    return {"rfq_id": rfq_id, "pair": "BTC/USDT", "side": "buy", "buy_ccy": "BTC", "sell_ccy": "USDT",
            "sell_amount": "5000", "status": status, "status_raw": status, "own": True, "accept_state": accept_state}


def _rfq_life(journal: Journal, clock: FakeClock, rfq_id: str, final: str | None) -> None:
    journal.append("rfq.transition", source="engine", rfq_id=rfq_id,
                   payload={"from": None, "to": "new", "rfq_state": _snapshot(rfq_id, "new")})
    clock.advance(1)
    journal.append("venue.call", source="rest", payload={"method": "POST", "endpoint": "/accept",
                                                         "params": {"rfqId": rfq_id}, "outcome": "ok"})
    if final:
        clock.advance(1)
        journal.append("rfq.transition", source="engine", rfq_id=rfq_id,
                       payload={"from": "new", "to": final, "rfq_state": _snapshot(rfq_id, final)})


@pytest.fixture
def made(tmp_path: Path):
    """A journal with two finished RFQs on day 0, then one open RFQ ten days later."""
    clock = FakeClock(T0)
    journal = Journal(tmp_path / "j.db", clock)
    _rfq_life(journal, clock, "R1", "successful")
    _rfq_life(journal, clock, "R2", "expired")
    clock.advance(10 * 86_400)
    _rfq_life(journal, clock, "R3", None)
    yield journal, clock
    journal.close()


def _report(path: Path):
    conn = connect(path, min_version=1)
    try:
        return verify_connection(conn, str(path))
    finally:
        conn.close()


def _chain(report):
    return next(c for c in report.checks if c.name == "hash chain")


# --- tampering --------------------------------------------------------------------------------

def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_edited_row_is_named(made) -> None:
    journal, _ = made
    _raw(journal.path).execute("UPDATE events SET source = 'someone' WHERE seq = 4")
    chain = _chain(_report(journal.path))
    assert not chain.ok and chain.first_bad == {"seq": 4, "present": True}


def test_deleted_row_is_named(made) -> None:
    journal, _ = made
    _raw(journal.path).execute("DELETE FROM events WHERE seq = 3")
    chain = _chain(_report(journal.path))
    assert not chain.ok and chain.first_bad == {"seq": 3, "present": False} and "missing" in chain.detail


def test_reordered_rows_are_named(made) -> None:
    journal, _ = made
    conn = _raw(journal.path)
    conn.execute("UPDATE events SET seq = -1 WHERE seq = 2")
    conn.execute("UPDATE events SET seq = 2 WHERE seq = 3")
    conn.execute("UPDATE events SET seq = 3 WHERE seq = -1")
    chain = _chain(_report(journal.path))
    assert not chain.ok and chain.first_bad["seq"] == 2


def test_derived_table_edit_is_named_and_events_untouched(made) -> None:
    journal, _ = made
    _raw(journal.path).execute("DELETE FROM venue_calls WHERE seq = 5")
    report = _report(journal.path)
    bad = [c for c in report.checks if not c.ok]
    assert [c.name for c in bad] == ["derived: venue_calls"] and bad[0].first_bad == {"seq": 5}
    assert "is missing" in bad[0].detail


def test_deleting_the_first_row_says_the_chain_lost_its_start(made) -> None:
    journal, _ = made
    _raw(journal.path).execute("DELETE FROM events WHERE seq = 1")
    chain = _chain(_report(journal.path))
    assert not chain.ok and chain.first_bad == {"seq": 1, "present": False}
    assert "does not start at genesis" in chain.detail and "first event is seq 2" in chain.detail


def _failed(report) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


@pytest.mark.parametrize(("sql", "named"), [
    ("DROP VIEW fills; CREATE VIEW fills AS SELECT * FROM rfqs WHERE 0", "redefined: view fills"),
    ("DROP VIEW lp_performance", "missing: view lp_performance"),
    ("DROP TABLE stream_sessions", "missing: table stream_sessions"),
    ("ALTER TABLE quotes ADD COLUMN note TEXT", "redefined: table quotes"),
    ("DROP INDEX idx_events_rfq", "missing: index idx_events_rfq"),
    ("CREATE TRIGGER hide AFTER INSERT ON decisions BEGIN DELETE FROM decisions WHERE action = 'accept'; END",
     "unknown: trigger hide"),
])
def test_verify_detects_schema_changed_by_hand(made, sql: str, named: str) -> None:
    journal, _ = made
    _raw(journal.path).executescript(sql)
    failed = _failed(_report(journal.path))
    assert named in failed.get("schema", ""), failed


def test_verify_tolerates_a_users_own_table_and_names_it(made) -> None:
    journal, _ = made
    _raw(journal.path).execute("CREATE TABLE my_notes (rfq_id TEXT, note TEXT)")
    report = _report(journal.path)
    assert report.ok and "table my_notes" in next(c.detail for c in report.checks if c.name == "schema")


def test_a_schema_version_lowered_by_hand_is_not_silently_skipped(made) -> None:
    journal, _ = made
    _raw(journal.path).execute("DELETE FROM quotes")  # derived tables now wrong ...
    _raw(journal.path).execute("PRAGMA user_version = 2")  # ... and the version lowered to hide it
    report = _report(journal.path)
    assert not report.ok and "schema version" in _failed(report)
    assert "rfqbot journal upgrade" in _failed(report)["schema version"]


def test_expect_head_catches_truncated_and_rewritten_rows(made) -> None:
    journal, clock = made
    head = journal.query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")[0]
    conn = connect(journal.path, min_version=1)
    try:
        assert verify_connection(conn, expect_head=(head["seq"], head["hash"])).ok
        journal.append("later", source="t", payload={})  # growing is fine
        assert verify_connection(conn, expect_head=(head["seq"], head["hash"])).ok
        _raw(journal.path).execute("DELETE FROM events WHERE seq >= ?", (head["seq"],))  # the chain still verifies
        report = verify_connection(conn, expect_head=(head["seq"], head["hash"]))
        assert _chain(report).ok and not report.ok
        assert "cut off (truncated)" in _failed(report)["expected head"]
        report = verify_connection(conn, expect_head=(3, "ab" * 32))
        assert "rewritten" in _failed(report)["expected head"]
    finally:
        conn.close()


def test_parse_head_says_the_form() -> None:
    assert parse_head(f"12:{'A' * 64}") == (12, "a" * 64)
    for bad in ("12", "x:" + "a" * 64, "12:abc"):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            parse_head(bad)


def test_verify_writes_nothing(made) -> None:
    journal, _ = made
    before = journal.path.read_bytes()
    assert _report(journal.path).ok
    assert journal.path.read_bytes() == before


# --- prune --------------------------------------------------------------------------------------

def test_prune_replaces_the_prefix_by_a_sealed_checkpoint(made) -> None:
    journal, clock = made
    hashes = [r["hash"] for r in journal.query("SELECT hash FROM events WHERE seq <= 6 ORDER BY seq")]
    plan = prune(journal, T0 + DAY_MS, now_ms=clock.now_ms())
    assert (plan.first_seq, plan.last_seq, plan.events, plan.rfqs) == (1, 6, 6, 2)
    rows = journal.query("SELECT seq, kind, hash, payload FROM events ORDER BY seq")
    assert [r["seq"] for r in rows] == [6, 7, 8]
    checkpoint = json.loads(rows[0]["payload"])
    assert rows[0]["kind"] == "journal.checkpoint" and rows[0]["hash"] == hashes[-1]
    digest = ""
    for h in hashes:
        digest = hashlib.sha256(f"{digest}|{h}".encode()).hexdigest()
    assert checkpoint["pruned_digest"] == digest and checkpoint["pruned_events"] == 6
    assert [r["rfq_id"] for r in journal.query("SELECT rfq_id FROM rfqs")] == ["R3"]
    assert _report(journal.path).ok
    assert journal.append("note", source="t", payload={}) == 9
    assert _report(journal.path).ok


def test_a_second_prune_continues_the_digest(made) -> None:
    journal, clock = made
    clock.advance(30 * 86_400)
    _rfq_life(journal, clock, "R3", "expired")  # R3 closes late: its first event came at seq 7
    clock.advance(5 * 86_400)
    prune(journal, T0 + DAY_MS, now_ms=clock.now_ms())
    first = json.loads(journal.query("SELECT payload FROM events ORDER BY seq LIMIT 1")[0]["payload"])
    plan = prune(journal, clock.now_ms() - 2 * DAY_MS, now_ms=clock.now_ms())
    second = json.loads(journal.query("SELECT payload FROM events ORDER BY seq LIMIT 1")[0]["payload"])
    assert (plan.first_seq, plan.last_seq) == (7, 11)
    assert second["pruned_from_seq"] == 1 and second["pruned_events"] == 11
    assert second["pruned_digest"] != first["pruned_digest"]
    assert _report(journal.path).ok


def test_prune_never_splits_an_rfq_or_drops_an_open_one(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    journal = Journal(tmp_path / "j.db", clock)
    try:
        journal.append("rfq.transition", source="e", rfq_id="OPEN", payload={"to": "new", "rfq_state": _snapshot("OPEN", "new")})
        _rfq_life(journal, clock, "OLD", "successful")
        clock.advance(5 * 86_400)
        plan = prune(journal, T0 + DAY_MS, now_ms=clock.now_ms())
        assert plan.last_seq is None and "still open" in plan.held_back_by
        journal.append("rfq.transition", source="e", rfq_id="OLD2", payload={"to": "new", "rfq_state": _snapshot("OLD2", "new")})
        clock.advance(5 * 86_400)
        journal.append("rfq.transition", source="e", rfq_id="OLD2",
                       payload={"to": "expired", "rfq_state": _snapshot("OLD2", "expired")})
        plan = prune(journal, T0 + 2 * DAY_MS, now_ms=clock.now_ms())
        assert plan.last_seq is None  # OPEN is first; nothing before it may go
    finally:
        journal.close()


def test_prune_spanning_rfq_keeps_its_whole_history(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    journal = Journal(tmp_path / "j.db", clock)
    try:
        journal.append("note", source="t", payload={})
        journal.append("rfq.transition", source="e", rfq_id="A", payload={"to": "new", "rfq_state": _snapshot("A", "new")})
        clock.advance(3 * 86_400)
        journal.append("rfq.transition", source="e", rfq_id="A", payload={"to": "expired", "rfq_state": _snapshot("A", "expired")})
        clock.advance(3 * 86_400)
        plan = prune(journal, T0 + DAY_MS, now_ms=clock.now_ms())
        assert (plan.first_seq, plan.last_seq) == (1, 1) and "whole history" in plan.held_back_by
        assert [r["seq"] for r in journal.query("SELECT seq FROM events WHERE rfq_id = 'A'")] == [2, 3]
    finally:
        journal.close()


def test_prune_plan_reads_only_and_works_beside_the_writer(made) -> None:
    journal, clock = made  # the writer is open (and holds the writer lock) all along
    conn = connect(journal.path)
    try:
        found = prune_plan(conn, T0 + DAY_MS, now_ms=clock.now_ms())
        assert (found.first_seq, found.last_seq) == (1, 6) and not conn.in_transaction
        with pytest.raises(JournalError, match="24 hours"):
            prune_plan(conn, clock.now_ms() - 3_600_000, now_ms=clock.now_ms())
    finally:
        conn.close()
    assert journal.query("SELECT COUNT(*) AS n FROM events") == [{"n": 8}]


def test_prune_keeps_the_last_day_and_dry_run_changes_nothing(made) -> None:
    journal, clock = made
    with pytest.raises(JournalError, match="24 hours"):
        prune(journal, clock.now_ms() - 3_600_000, now_ms=clock.now_ms())
    plan = prune(journal, T0 + DAY_MS, now_ms=clock.now_ms(), dry_run=True)
    assert plan.last_seq == 6 and journal.query("SELECT COUNT(*) AS n FROM events") == [{"n": 8}]


def test_edited_checkpoint_is_detected(made) -> None:
    journal, clock = made
    prune(journal, T0 + DAY_MS, now_ms=clock.now_ms())
    _raw(journal.path).execute("UPDATE events SET payload = replace(payload, '\"pruned_events\":6', "
                               "'\"pruned_events\":2') WHERE seq = 6")
    assert _chain(_report(journal.path)).first_bad == {"seq": 6, "present": True}


def test_checkpoint_in_the_middle_is_not_accepted(made) -> None:
    journal, clock = made
    prune(journal, T0 + DAY_MS, now_ms=clock.now_ms())
    conn = _raw(journal.path)
    conn.execute("INSERT INTO events SELECT 1, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload, "
                 "prev_hash, hash FROM events WHERE seq = 6")
    assert not _chain(_report(journal.path)).ok


# --- stats maths, time parsing --------------------------------------------------------------------

def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([7], 99) == 7
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)
    assert percentile([5, 1, 3], 50) == 3


def test_improvement_is_signed_for_the_account() -> None:
    assert improvement_bps("buy", "99", "100") == Decimal("100.00")     # bought below reference: good
    assert improvement_bps("sell", "99", "100") == Decimal("-100.00")   # sold below reference: bad
    assert improvement_bps("buy", "100", None) is None and improvement_bps(None, "1", "1") is None


def test_parse_time_forms() -> None:
    now = T0
    assert parse_time("2h", now) == now - 7_200_000 and parse_time("7d", now) == now - 7 * DAY_MS
    assert parse_time("2025-10-09", now) == 1_759_968_000_000
    assert parse_time("2025-10-09T08:53:20Z", now) == T0
    assert parse_time(str(T0), now) == T0
    with pytest.raises(ValueError, match="milliseconds"):
        parse_time("1760000000", now)
    with pytest.raises(ValueError, match="30m, 2h"):
        parse_time("last tuesday", now)


# --- follow ---------------------------------------------------------------------------------------

def test_follow_emits_each_committed_event_once_in_order(made) -> None:
    journal, _ = made
    conn = connect(journal.path)
    seen: list[int] = []
    sleeps = iter(range(3))

    def sleep(_: float) -> None:  # each poll interval, the "daemon" commits something
        n = next(sleeps, None)
        if n is not None:
            with journal.batch():
                for _ in range(n + 1):
                    journal.append("note", source="t", payload={"n": n})

    try:
        last = queries.follow(conn, 8, lambda rows: seen.extend(r["seq"] for r in rows),
                              should_stop=lambda: len(seen) >= 6, sleep=sleep, poll_s=0)
    finally:
        conn.close()
    assert seen == [9, 10, 11, 12, 13, 14] and last == 14


def test_an_event_whose_projection_fails_is_kept_by_rebuild_and_verify(made) -> None:
    journal, _ = made
    journal.append("rfq.transition", source="e", rfq_id="ODD", payload={"note": "no 'to' status"})
    assert journal.rebuild_projections() == 9
    assert _report(journal.path).ok
