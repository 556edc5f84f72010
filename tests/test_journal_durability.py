"""Durability: a real ``kill -9`` of a writer process loses nothing committed and leaves no half
event; readers never block the writer; the journal and its WAL files are private (0600)."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rfqbot.audit.reader import connect
from rfqbot.audit.verify import verify_connection
from rfqbot.clock import FakeClock
from rfqbot.journal.store import Journal, open_readonly

ROOT = Path(__file__).resolve().parent.parent

# Appends forever: single events and batches of five, each acknowledged on stdout only after
# its commit returned (the "journal before acting" point). Projections run too (rfq.state).
WRITER = r"""
import sys
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from rfqbot.clock import SystemClock
from rfqbot.journal.store import Journal
j = Journal(sys.argv[1], SystemClock())
n = 0
while True:
    n += 1
    if n % 3 == 0:
        with j.batch():
            for i in range(5):
                seq = j.append("test.batch", source="t", rfq_id=f"R{n}", payload={"batch": n, "i": i,
                               "rfq_state": {"rfq_id": f"R{n}", "status": "new", "own": True, "sell_amount": "1.5"}})
    else:
        seq = j.append("test.single", source="t", payload={"n": n, "price": "106000.125"})
    print(seq, flush=True)
"""


@pytest.mark.parametrize("acks_before_kill", [1, 40, 150])
def test_kill_9_loses_nothing_committed_and_leaves_no_half_event(tmp_path: Path, acks_before_kill: int) -> None:
    path = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        while len(acked) < acks_before_kill:
            line = proc.stdout.readline()
            assert line, "writer died before it was killed"
            acked.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)  # mid-loop: the writer keeps appending until this lands
        acked.extend(int(line) for line in proc.stdout.read().split())
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    conn = connect(path, min_version=1)
    try:
        last = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        assert last >= max(acked)  # every acknowledged commit survived
        report = verify_connection(conn, str(path))
        assert report.ok, [c.detail for c in report.checks if not c.ok]
        batches = Counter(r[0] for r in conn.execute(
            "SELECT json_extract(payload, '$.batch') FROM events WHERE kind = 'test.batch'"))
        assert set(batches.values()) <= {5}  # a batch is all there or not at all
        assert len(batches) >= len(acked) // 3  # every third acknowledgement was a batch
        assert conn.execute("SELECT COUNT(*) FROM rfqs").fetchone()[0] == len(batches)
    finally:
        conn.close()
    # and the daemon would carry on from there
    journal = Journal(path, FakeClock())
    try:
        assert journal.append("after.crash", source="t", payload={}) == last + 1
        assert journal.verify_chain() is None
    finally:
        journal.close()


def test_a_reader_in_a_long_read_does_not_block_the_writer(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", FakeClock(), busy_timeout_ms=50)
    try:
        journal.append("note", source="t", payload={})
        reader = open_readonly(journal.path)
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1  # snapshot taken
        for _ in range(3):
            journal.append("note", source="t", payload={})  # would raise "database is locked" if blocked
        assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1  # still its snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 4
        reader.close()
    finally:
        journal.close()


def test_journal_and_wal_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        journal = Journal(tmp_path / "j.db", FakeClock())
        journal.append("note", source="t", payload={})
        for suffix in ("", "-wal", "-shm"):
            assert stat.S_IMODE(os.stat(str(journal.path) + suffix).st_mode) == 0o600, suffix
        journal.close()
    finally:
        os.umask(old)


def test_durability_pragmas(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", FakeClock())
    try:
        conn = sqlite3.connect(journal.path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
        conn.close()
        assert journal.query("PRAGMA synchronous") == [{"synchronous": 2}]  # FULL: fsync per commit
    finally:
        journal.close()


# --- kill -9 INSIDE an open transaction ---------------------------------------------------------
# The loop above kills wherever the writer happens to be, which is almost always between two
# transactions. These kill at a known point inside one: the writer (tests/fixtures/journal_writer.py)
# prints a marker from inside the open batch, or from between an append's INSERT and COMMIT, and
# then blocks, so the SIGKILL certainly lands there.

WRITER_SCRIPT = ROOT / "tests" / "fixtures" / "journal_writer.py"


def _crash_at_marker(path: Path, mode: str, marker: str, *, broken: bool = False) -> list[int]:
    """Run the writer until it prints ``marker``, kill -9 it; returns the seqs it acknowledged."""
    argv = [sys.executable, str(WRITER_SCRIPT), mode, str(path)] + (["--broken"] if broken else [])
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        while True:
            line = proc.stdout.readline().strip()
            assert line, "the writer died before its marker"
            if line == marker:
                break
            acked.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return acked


def crash_problems(path: Path, acked: list[int], in_flight_kind: str) -> list[str]:
    """Everything wrong with a journal after a kill inside the in-flight transaction."""
    problems = []
    conn = connect(path, min_version=1)
    try:
        last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        if last < max(acked):
            problems.append(f"acknowledged seq {max(acked)} lost (journal ends at {last})")
        partial = conn.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (in_flight_kind,)).fetchone()[0]
        if partial:
            problems.append(f"{partial} event(s) of the killed transaction ({in_flight_kind}) were committed")
        report = verify_connection(conn, str(path))  # chain, integrity, schema, derived == rebuild
        problems += [f"{c.name}: {c.detail}" for c in report.checks if not c.ok]
    finally:
        conn.close()
    return problems


@pytest.mark.parametrize(("mode", "marker", "kind"), [("crash-batch", "in-batch", "test.batch"),
                                                      ("crash-single", "in-append", "test.single")])
def test_kill_9_inside_an_open_transaction_leaves_none_of_it(tmp_path: Path, mode: str, marker: str,
                                                             kind: str) -> None:
    path = tmp_path / "crash.db"
    acked = _crash_at_marker(path, mode, marker)
    assert len(acked) == 3
    assert crash_problems(path, acked, kind) == []
    journal = Journal(path, FakeClock())  # the lock died with the writer; the chain carries on
    try:
        assert journal.append("after.crash", source="t", payload={}) == max(acked) + 1
        assert journal.verify_chain() is None
    finally:
        journal.close()


@pytest.mark.parametrize(("mode", "marker", "kind"), [("crash-batch", "in-batch", "test.batch"),
                                                      ("crash-single", "in-append", "test.single")])
def test_the_crash_check_catches_a_writer_that_autocommits(tmp_path: Path, mode: str, marker: str,
                                                           kind: str) -> None:
    """The test above can fail: against a writer whose appends autocommit it does."""
    path = tmp_path / "crash.db"
    acked = _crash_at_marker(path, mode, marker, broken=True)
    problems = crash_problems(path, acked, kind)
    assert any("were committed" in p for p in problems), problems
