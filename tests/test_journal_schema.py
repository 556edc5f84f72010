"""Schema versions: a journal written by the v1 code (tests/fixtures/journal_v1.sql, made by
make_v1_journal.py from the v1 sources in git) opens and upgrades in place; a fresh journal has
the views and indexes the audits rely on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import rfqbot.journal as journal_mod
from rfqbot.audit.reader import connect
from rfqbot.audit.verify import verify_connection
from rfqbot.clock import FakeClock
from rfqbot.journal import SCHEMA_VERSION, Journal

FIXTURE = Path(__file__).parent / "fixtures" / "journal_v1.sql"
VIEWS = {"rfq_timeline", "fills", "lp_performance", "daily_summary"}


def v1_journal(tmp_path: Path) -> Path:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    return path


def _events(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_fixture_is_a_v1_journal(tmp_path: Path) -> None:
    path = v1_journal(tmp_path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert not conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall()
    conn.close()


def test_v1_journal_opens_and_upgrades_in_place(tmp_path: Path) -> None:
    path = v1_journal(tmp_path)
    before = _events(path)
    journal = Journal(path, FakeClock())
    try:
        assert journal.schema_version == SCHEMA_VERSION == 3
        assert _events(path) == before  # the truth is untouched
        assert journal.verify_chain() is None
        views = {r["name"] for r in journal.query("SELECT name FROM sqlite_master WHERE type = 'view'")}
        assert views == VIEWS
        # new columns were back-filled by replaying the v1 events
        accept_call = journal.query("SELECT rfq_id FROM venue_calls WHERE endpoint LIKE '%accept-quote'")
        assert accept_call == [{"rfq_id": "MP700000000000000001"}]
        create_call = journal.query("SELECT client_order_id FROM venue_calls WHERE endpoint LIKE '%create-rfq'")
        assert create_call == [{"client_order_id": "demo-btc-1"}]
        assert journal.query("SELECT rfq_id, first_seq FROM rfqs ORDER BY first_seq")[0] == {
            "rfq_id": "MP700000000000000001", "first_seq": 7}
        assert journal.query("SELECT lp_name FROM decisions WHERE seq = 9") == [{"lp_name": "WX"}]
        fills = journal.query("SELECT rfq_id, lp_name, price, accept_latency_ms FROM fills")
        assert fills == [{"rfq_id": "MP700000000000000001", "lp_name": "WX", "price": "106106.05514",
                          "accept_latency_ms": 4}]
        # restart recovery still reads it: R3's refused accept is settled, nothing in doubt
        state = journal.load_state(since_ms=0)
        assert set(state.rfqs) == {"MP700000000000000001", "MP700000000000000011", "MP700000000000000021"}
        assert state.unknown_accepts == []
        assert journal.append("note", source="t", payload={}) == 24
    finally:
        journal.close()
    conn = connect(path, min_version=1)
    try:
        report = verify_connection(conn)
        assert report.ok and report.schema_version == 3, [c.detail for c in report.checks if not c.ok]
    finally:
        conn.close()


def test_reopening_an_upgraded_journal_changes_nothing(tmp_path: Path) -> None:
    path = v1_journal(tmp_path)
    Journal(path, FakeClock()).close()
    schema = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    Journal(path, FakeClock()).close()
    assert sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema


def test_a_failed_upgrade_leaves_the_old_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = v1_journal(tmp_path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE rfqs ADD COLUMN first_ms INTEGER")
        raise sqlite3.OperationalError("disk full (simulated)")

    monkeypatch.setitem(journal_mod._MIGRATIONS, 2, broken)
    with pytest.raises(sqlite3.OperationalError):
        Journal(path, FakeClock())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "first_ms" not in [r[1] for r in conn.execute("PRAGMA table_info(rfqs)")]
    conn.close()
    monkeypatch.undo()
    Journal(path, FakeClock()).close()  # the real upgrade then succeeds


@pytest.mark.parametrize(("sql", "index"), [
    ("SELECT * FROM events WHERE rfq_id = 'x'", "idx_events_rfq"),
    ("SELECT * FROM events WHERE quote_id = 'x'", "idx_events_quote"),
    ("SELECT * FROM events WHERE local_ms >= 5", "idx_events_time"),
    ("SELECT * FROM events WHERE venue_ms >= 5", "idx_events_venue_time"),
    ("SELECT * FROM quotes WHERE rfq_id = 'x'", "idx_quotes_rfq"),
    ("SELECT * FROM decisions WHERE quote_id = 'x'", "idx_decisions_quote"),
    ("SELECT * FROM decisions WHERE at_ms >= 5", "idx_decisions_time"),
    ("SELECT * FROM transitions WHERE rfq_id = 'x'", "idx_transitions_rfq"),
    ("SELECT * FROM rfqs WHERE first_ms >= 5", "idx_rfqs_first"),
    ("SELECT * FROM venue_calls WHERE rfq_id = 'x'", "idx_venue_calls_rfq"),
])
def test_audit_lookups_use_an_index(tmp_path: Path, sql: str, index: str) -> None:
    journal = Journal(tmp_path / "j.db", FakeClock())
    try:
        plan = " ".join(r["detail"] for r in journal.query("EXPLAIN QUERY PLAN " + sql))
        assert index in plan, plan
    finally:
        journal.close()
