"""Schema versions: a journal written by the v1 code (tests/fixtures/journal_v1.sql, made by
make_v1_journal.py from the v1 sources in git) opens and upgrades in place; a fresh journal has
the views and indexes the audits rely on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import rfqbot.journal.store as journal_mod
from rfqbot.audit.reader import connect
from rfqbot.audit.verify import verify_connection
from rfqbot.clock import FakeClock
from rfqbot.journal.store import SCHEMA_VERSION, Journal

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


# --- schema v3: projection fixes, applied to older journals by replaying events -------------------

FIXTURE_V2 = Path(__file__).parent / "fixtures" / "journal_v2.sql"
R3 = "MP700000000000000021"


def v2_journal(tmp_path: Path) -> Path:
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE_V2.read_text())
    conn.close()
    return path


def _rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_v2_fixture_has_the_v2_defects(tmp_path: Path) -> None:
    path = v2_journal(tmp_path)
    assert _rows(path, "PRAGMA user_version") == [(2,)]
    assert _rows(path, "SELECT lp_name, submitted_ms, rank FROM quotes WHERE quote_id = 'MPQ4'") == [(None, None, None)]
    assert _rows(path, "SELECT rfq_id FROM venue_calls WHERE endpoint LIKE '%rfq-active%'") == [(None,)]


def test_v2_journal_upgrades_to_v3_and_gets_the_fixes(tmp_path: Path) -> None:
    path = v2_journal(tmp_path)
    before = _events(path)
    journal = Journal(path, FakeClock())
    try:
        assert journal.schema_version == 3
        assert _events(path) == before
        quote = journal.query("SELECT lp_name, submitted_ms, rank, source FROM quotes WHERE quote_id = 'MPQ4'")
        assert quote == [{"lp_name": "WX", "submitted_ms": 1_760_000_000_400, "rank": 1, "source": "rfq-active"}]
        calls = journal.query("SELECT rfq_id FROM venue_calls WHERE endpoint LIKE '%rfq-active%'")
        assert calls == [{"rfq_id": R3}]
        timeline = journal.query("SELECT kind FROM rfq_timeline WHERE rfq_id = ? AND kind = 'venue.call'", (R3,))
        assert len(timeline) == 1  # `journal show` lists the rfq-active call now
    finally:
        journal.close()
    conn = connect(path)
    try:
        report = verify_connection(conn)
        assert report.ok, [c.detail for c in report.checks if not c.ok]
    finally:
        conn.close()


def test_a_later_source_without_lp_keeps_what_an_earlier_one_said(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", FakeClock())
    best = {"quote_id": "Q1", "rfq_id": "R1", "lp_name": "WX", "price": "100", "rank": 1, "mode": "real-time",
            "manual": True, "submitted_ms": 5, "expires_ms": 60}
    rest = {**best, "lp_name": None, "submitted_ms": None, "rank": 2, "mode": "unknown", "manual": False,
            "price": "101"}
    try:
        journal.append("frame.best_quotes", source="private", rfq_id="R1", payload={"quotes": [best]})
        journal.append("reconcile.active_quotes", source="reconcile", rfq_id="R1", payload={"quotes": [rest]})
        row = journal.query("SELECT lp_name, submitted_ms, rank, mode, manual, price, source FROM quotes")
        # what REST said wins (rank, price); what it lacks or defaults keeps the bestQuote value
        assert row == [{"lp_name": "WX", "submitted_ms": 5, "rank": 2, "mode": "real-time", "manual": 1,
                        "price": "101", "source": "rfq-active"}]
    finally:
        journal.close()


@pytest.mark.parametrize(("endpoint", "rfq_id"), [
    ("/api/v1/market-place/rfq-active/MP1", "MP1"),
    ("/api/v1/market-place/rfq-active/MP%201%2F2", "MP 1/2"),
    ("/api/v1/market-place/rfq-active/", None),
    ("/api/v1/market-place/rfqs", None),
])
def test_venue_call_rfq_id_from_the_path(tmp_path: Path, endpoint: str, rfq_id: str | None) -> None:
    journal = Journal(tmp_path / "j.db", FakeClock())
    try:
        journal.append("venue.call", source="rest", payload={"method": "GET", "endpoint": endpoint, "params": {},
                                                             "outcome": "ok"})
        assert journal.query("SELECT rfq_id FROM venue_calls") == [{"rfq_id": rfq_id}]
    finally:
        journal.close()


def test_a_failed_v3_upgrade_leaves_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = v2_journal(tmp_path)

    def broken(conn: sqlite3.Connection) -> None:
        journal_mod.replay_events(conn)
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setitem(journal_mod._MIGRATIONS, 3, broken)
    with pytest.raises(sqlite3.OperationalError):
        Journal(path, FakeClock())
    assert _rows(path, "PRAGMA user_version") == [(2,)]
    assert _rows(path, "SELECT lp_name FROM quotes WHERE quote_id = 'MPQ4'") == [(None,)]


def test_opening_logs_one_line_for_a_new_journal_and_one_per_upgrade(tmp_path: Path) -> None:
    """A brand-new journal said journal.migrated three times (v1, v2, v3): it was created."""
    from structlog.testing import capture_logs

    with capture_logs() as created:
        Journal(tmp_path / "new.db", FakeClock()).close()
    assert [(e["event"], e["version"]) for e in created] == [("journal.created", SCHEMA_VERSION)]
    path = v1_journal(tmp_path)
    with capture_logs() as upgraded:
        Journal(path, FakeClock()).close()
    assert [(e["event"], e["from_version"], e["version"]) for e in upgraded
            if e["event"] in ("journal.created", "journal.migrated")] == [("journal.migrated", 1, SCHEMA_VERSION)]
    with capture_logs() as reopened:
        Journal(path, FakeClock()).close()
    assert [e for e in reopened if e["event"] in ("journal.created", "journal.migrated")] == []
