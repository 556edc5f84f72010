"""Journal: durability settings, hash chain and tamper detection, projections, batch, restart state."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from decimal import Decimal

import pytest

from rfqbot.clock import FakeClock
from rfqbot.journal.store import Journal, JournalError, canonical_json, open_readonly
from rfqbot.records import RfqStatus


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "j" / "journal.db", FakeClock())
    yield j
    j.close()


def snapshot(rfq_id="R1", status="new", accept_state="none", **extra):
    return {"rfq_id": rfq_id, "pair": "BTC/USDT", "side": "buy", "buy_ccy": "BTC", "sell_ccy": "USDT",
            "sell_amount": Decimal("1000.50"), "status": status, "status_raw": status, "own": True,
            "accept_state": accept_state, **extra}


def test_pragmas_mode_and_schema_version(journal, tmp_path):
    conn = journal._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert journal.schema_version == 3
    assert stat.S_IMODE(os.stat(journal.path).st_mode) == 0o600


def test_existing_loose_permissions_are_tightened(tmp_path):
    path = tmp_path / "loose.db"
    path.touch()
    os.chmod(path, 0o644)
    Journal(path, FakeClock()).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(JournalError, match="newer than this rfqbot"):
        Journal(path, FakeClock())


def test_append_returns_seq_and_canonical_payload(journal):
    seq = journal.append("note", source="test", payload={"b": Decimal("1.10"), "a": RfqStatus.NEW}, rfq_id="R1")
    assert seq == 1
    row = journal.query("SELECT * FROM events")[0]
    assert row["payload"] == '{"a":"new","b":"1.10"}'
    assert row["rfq_id"] == "R1" and row["local_ms"] == 1_760_000_000_000
    assert canonical_json({"x": [Decimal("2")]}) == '{"x":["2"]}'


def test_hash_chain_verifies_and_detects_tampering(journal, tmp_path):
    for i in range(5):
        journal.append("note", source="test", payload={"i": i})
    assert journal.verify_chain() is None
    journal._conn.execute("UPDATE events SET payload = '{\"i\":99}' WHERE seq = 3")
    assert journal.verify_chain() == 3


def test_deleted_row_detected(journal):
    for i in range(4):
        journal.append("note", source="test", payload={"i": i})
    journal._conn.execute("DELETE FROM events WHERE seq = 2")
    assert journal.verify_chain() == 2
    journal._conn.execute("DELETE FROM events WHERE seq = 1")
    assert journal.verify_chain() == 1  # the chain no longer starts at genesis: seq 1 is missing


def test_chain_continues_across_reopen(tmp_path):
    path = tmp_path / "j.db"
    j = Journal(path, FakeClock())
    j.append("note", source="t", payload={})
    j.close()
    j = Journal(path, FakeClock())
    assert j.append("note", source="t", payload={}) == 2
    assert j.verify_chain() is None
    j.close()


def test_batch_commits_once_and_rolls_back_on_error(journal):
    with journal.batch():
        journal.append("tick", source="t", payload={"n": 1})
        journal.append("tick", source="t", payload={"n": 2})
    assert journal.last_seq == 2
    with pytest.raises(RuntimeError):
        with journal.batch():
            journal.append("tick", source="t", payload={"n": 3})
            raise RuntimeError("boom")
    assert journal.last_seq == 2
    assert journal.append("tick", source="t", payload={"n": 4}) == 3
    assert journal.verify_chain() is None


def test_projections_and_rebuild_are_consistent(journal):
    journal.append("rfq.transition", source="engine", rfq_id="R1",
                   payload={"from": None, "to": "new", "status_raw": "new", "at_ms": 10, "cause": "create",
                            "rfq_state": snapshot()})
    journal.append("frame.best_quotes", source="private", rfq_id="R1",
                   payload={"quotes": [{"quote_id": "Q1", "rfq_id": "R1", "price": "99.5", "lp_name": "A",
                                        "rank": 1, "expires_ms": 99}]})
    dec = journal.append("decision", source="engine", rfq_id="R1", quote_id="Q1",
                         payload={"verdicts": [{"use": "price_limit", "kind": "allow"}], "final": "accept",
                                  "action": "accept", "reason": "ok", "price": "99.5", "latency_ms": 3,
                                  "at_ms": 20, "amounts": {"USDT": "1000.50"},
                                  "rfq_state": snapshot(accept_state="outstanding", accepted_quote_id="Q1")})
    journal.append("accept.result", source="rest", rfq_id="R1", quote_id="Q1",
                   payload={"outcome": "accepted", "decision_seq": dec,
                            "rfq_state": snapshot(status="accepted", accept_state="accepted",
                                                  accepted_quote_id="Q1")})
    journal.append("venue.call", source="rest", payload={"method": "POST", "endpoint": "/accept", "params": {},
                                                         "http_status": 200, "outcome": "ok", "duration_ms": 1.5})
    journal.append("stream.status", source="private", payload={"stream": "private", "session": 1,
                                                               "state": "connected"})
    journal.append("stream.status", source="private", payload={"stream": "private", "session": 1,
                                                               "state": "closed"})
    tables = ("rfqs", "quotes", "transitions", "decisions", "venue_calls", "stream_sessions")
    before = {t: journal.query(f"SELECT * FROM {t} ORDER BY 1") for t in tables}
    assert before["rfqs"][0]["status"] == "accepted" and before["rfqs"][0]["sell_amount"] == "1000.50"
    assert before["decisions"][0]["result_outcome"] == "accepted"
    assert before["quotes"][0]["price"] == "99.5"
    assert before["stream_sessions"][0]["connected_ms"] and before["stream_sessions"][0]["closed_ms"]
    assert journal.rebuild_projections() == 7
    after = {t: journal.query(f"SELECT * FROM {t} ORDER BY 1") for t in tables}
    assert after == before


def test_projection_failure_keeps_the_event(journal):
    journal._conn.execute("DROP TABLE transitions")
    seq = journal.append("rfq.transition", source="engine", rfq_id="R1",
                         payload={"to": "new", "rfq_state": snapshot()})
    assert journal.query("SELECT seq FROM events") == [{"seq": seq}]


def test_load_state_finds_unknown_accepts_and_recent_accepts(journal):
    journal.append("rfq.state", source="engine", rfq_id="R1", payload={"rfq_state": snapshot()})
    journal.append("rfq.state", source="engine", rfq_id="X", payload={"rfq_state": {**snapshot("X"), "own": False}})
    journal.append("decision", source="engine", rfq_id="R1", quote_id="Q1",
                   payload={"verdicts": [], "final": "accept", "action": "accept", "at_ms": 500,
                            "amounts": {"USDT": "10"}, "rfq_state": snapshot(accept_state="outstanding")})
    rejected = journal.append("decision", source="engine", rfq_id="R2", quote_id="Q2",
                              payload={"verdicts": [], "final": "accept", "action": "accept", "at_ms": 600,
                                       "amounts": {"USDT": "20"}})
    journal.append("accept.result", source="rest", rfq_id="R2", payload={"outcome": "rejected",
                                                                         "decision_seq": rejected})
    state = journal.load_state(since_ms=0)
    assert set(state.rfqs) == {"R1"} and state.rfqs["R1"]["sell_amount"] == Decimal("1000.50")
    assert [(u["rfq_id"], u["quote_id"]) for u in state.unknown_accepts] == [("R1", "Q1")]
    assert [a["amounts"] for a in state.recent_accepts] == [{"USDT": Decimal("10")}]
    assert journal.load_state(since_ms=501).recent_accepts == []


def test_readonly_reader_sees_commits_and_cannot_write(journal):
    journal.append("note", source="t", payload={"x": 1})
    reader = open_readonly(journal.path)
    try:
        assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 1
        with pytest.raises(sqlite3.OperationalError):
            reader.execute("INSERT INTO events (local_ms, source, kind, payload, prev_hash, hash) "
                           "VALUES (1,'a','b','{}','x','y')")
    finally:
        reader.close()


def test_append_from_another_thread(journal):
    seqs = []
    t = threading.Thread(target=lambda: seqs.append(journal.append("note", source="t", payload={})))
    t.start()
    t.join(5)
    assert seqs == [1]


def test_unopenable_path_says_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="journal.path"):
        Journal(blocker / "sub" / "j.db", FakeClock())
