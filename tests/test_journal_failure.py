"""A journal that cannot be written (disk full, read-only, I/O error): nothing committed is lost,
the hash chain stays whole, no accept leaves without its committed decision, and the engine
stops deciding with a CRITICAL alert instead of silently going on.

Disk full is simulated with SQLite's ``PRAGMA max_page_count`` on the writer connection: the
next page SQLite needs fails with SQLITE_FULL ("database or disk is full"), exactly the error
a full filesystem gives, and like it SQLite rolls the open transaction back on its own. (These
tests run as root in CI, so chmod cannot make a file read-only, and mounting a small tmpfs
needs privileges a test should not ask for.)
"""

from __future__ import annotations

import queue
import sqlite3
import threading

import pytest

from rfqbot.ops.alerts import Alerter, AlertWatch
from rfqbot.events import BestQuotes, CreateRfqCommand, PublicQuote
from rfqbot.journal.store import Journal, JournalError
from rfqbot.records import QuoteMode
from tests.test_engine import D, Harness


def fill_disk(journal: Journal) -> None:
    """No new page may be allocated from now on (SQLITE_FULL on the next one needed)."""
    pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]
    journal._conn.execute(f"PRAGMA max_page_count = {pages}")


def free_disk(journal: Journal) -> None:
    journal._conn.execute("PRAGMA max_page_count = 1073741823")


def big_payload(i: int) -> dict[str, str]:
    return {"blob": f"{i}-" + "x" * 3000}  # more than a page: every append needs new pages


def test_failed_batch_restores_the_chain_head_even_when_sqlite_already_rolled_back(tmp_path):
    from rfqbot.clock import FakeClock
    journal = Journal(tmp_path / "j.db", FakeClock())
    try:
        committed = journal.append("first", source="test", payload={"n": 1})
        fill_disk(journal)
        with pytest.raises(sqlite3.OperationalError, match="full"):
            with journal.batch():
                for i in range(50):
                    journal.append("burst", source="test", payload=big_payload(i))
        assert journal.last_seq == committed  # before the fix: left at the rolled-back rows
        free_disk(journal)
        journal.append("after", source="test", payload={"n": 2})
        assert journal.verify_chain() is None
        kinds = [r["kind"] for r in journal.query("SELECT kind FROM events ORDER BY seq")]
        assert kinds == ["first", "after"]
    finally:
        journal.close()


def test_an_append_after_sqlite_rolled_the_batch_back_is_refused_not_autocommitted(tmp_path):
    from rfqbot.clock import FakeClock
    journal = Journal(tmp_path / "j.db", FakeClock())
    try:
        journal.append("first", source="test", payload={"n": 1})
        fill_disk(journal)
        with pytest.raises(RuntimeError, match="burst failed"):
            with journal.batch():
                with pytest.raises(sqlite3.OperationalError):
                    for i in range(50):
                        journal.append("burst", source="test", payload=big_payload(i))
                free_disk(journal)
                # e.g. the engine recording "engine.error" after a failed handler
                with pytest.raises(JournalError, match="rolled back"):
                    journal.append("would_autocommit", source="test", payload={"n": 2})
                raise RuntimeError("burst failed")
        assert [r["kind"] for r in journal.query("SELECT kind FROM events ORDER BY seq")] == ["first"]
        journal.append("after", source="test", payload={"n": 3})
        assert journal.verify_chain() is None
    finally:
        journal.close()


def test_commit_failure_rolls_back_and_restores_the_chain_head(tmp_path):
    from rfqbot.clock import FakeClock

    journal = Journal(tmp_path / "j.db", FakeClock())

    class FailingCommit:
        """Wraps the connection: COMMIT fails like a full disk when WAL frames are written."""

        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, sql: str, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    try:
        head = journal.append("first", source="test", payload={"n": 1})
        real = journal._conn
        journal._conn = FailingCommit(real)
        with pytest.raises(sqlite3.OperationalError):
            with journal.batch():
                journal.append("burst", source="test", payload={"n": 2})
        journal._conn = real
        assert journal.last_seq == head and not real.in_transaction
        journal.append("after", source="test", payload={"n": 3})
        assert journal.verify_chain() is None
        assert [r["kind"] for r in journal.query("SELECT kind FROM events ORDER BY seq")] == ["first", "after"]
    finally:
        journal.close()


def run_engine(h: Harness, events: list, until) -> None:
    q: "queue.Queue" = queue.Queue()
    for ev in events:
        q.put(ev)
    stop = threading.Event()
    thread = threading.Thread(target=h.engine.run, args=(q, stop, 0.01))
    thread.start()
    try:
        for _ in range(500):
            if until():
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_disk_full_engine_sends_no_accept_stops_deciding_and_keeps_what_was_committed(tmp_path):
    h = Harness(tmp_path)
    try:
        h.best(h.quote("Q0", "90", 1, rfq="R0"), rfq="R0")  # committed and sent before the disk fills
        assert h.actions.accepts == [("accept", "R0", "Q0")]
        before = h.journal.query("SELECT seq, hash FROM events ORDER BY seq")
        fill_disk(h.journal)
        # A burst with market data (each bigger than a page) and an acceptable best quote.
        burst = [PublicQuote(h.now, h.quote(f"P{i}", "95", rfq="X", lp="L" * 3000), "{}") for i in range(5)]
        burst.append(BestQuotes(h.now, "R1", (h.quote("Q1", "90", 1),), "{}"))
        run_engine(h, burst, lambda: h.engine.journal_failure is not None)

        assert h.engine.journal_failure and "full" in h.engine.journal_failure
        assert h.engine.deciding is False
        assert h.actions.accepts == [("accept", "R0", "Q0")]  # the R1 accept never left
        # Space comes back: the engine records again but still decides nothing until restarted.
        free_disk(h.journal)
        h.best(h.quote("Q2", "80", 1, rfq="R2"), rfq="R2")
        h.engine.handle(CreateRfqCommand(h.now, "BTC", "USDT", D("1000"), QuoteMode.REAL_TIME, 60, "c1"))
        assert h.actions.calls == [("accept", "R0", "Q0")]
        skipped = h.rows("SELECT payload FROM events WHERE kind = 'decision.skipped'")
        assert "journal write failed" in skipped[-1]["payload"]
        assert "journal write failed" in h.rows("SELECT payload FROM events WHERE kind='create.refused'")[0]["payload"]
        after = h.journal.query("SELECT seq, hash FROM events ORDER BY seq")
        assert after[:len(before)] == before  # nothing committed was lost
        assert h.journal.verify_chain() is None
    finally:
        h.journal.close()


def test_journal_failure_in_handle_is_contained_and_alerts(tmp_path):
    h = Harness(tmp_path)
    try:
        fill_disk(h.journal)
        h.best(h.quote("Q1", "90", 1, rfq="R1" + "x" * 3000), rfq="R1" + "x" * 3000)  # does not raise
        assert h.actions.calls == [] and h.engine.deciding is False
        alerter = Alerter()
        watch = AlertWatch(alerter)
        for _ in range(2):  # once per episode
            watch.check({"journal_failure": h.engine.journal_failure, "streams": {}})
        assert [(a.kind, a.severity) for a in alerter.sent] == [("journal_failed", "critical")]
        assert "restart" in alerter.sent[0].message
    finally:
        h.journal.close()
