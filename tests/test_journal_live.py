"""The journal while its writer (the daemon) runs in another process: maintenance commands
refuse to run beside it (writer lock), reads and ``verify`` work and see one consistent
snapshot, and an append waits out (then reports) a write lock held by someone else."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from rfqbot.audit.writer_lock import writer_active
from rfqbot.clock import FakeClock
from rfqbot.journal.store import Journal, JournalError, JournalLocked
from tests.fixtures.journal_writer import append_one
from tests.cli_runner import run_cli

ROOT = Path(__file__).resolve().parent.parent
WRITER = ROOT / "tests" / "fixtures" / "journal_writer.py"


run = run_cli


class Writer:
    """tests/fixtures/journal_writer.py in its own process."""

    def __init__(self, mode: str, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, str(WRITER), mode, str(path)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", "the writer did not open the journal"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A journal with some RFQ history (every derived table has rows)."""
    path = tmp_path / "journal.db"
    journal = Journal(path, FakeClock())
    try:
        with journal.batch():
            for n in range(1, 401):
                append_one(journal, n)
    finally:
        journal.close()
    return path


@pytest.fixture
def daemon(filled: Path) -> Iterator[Writer]:
    """Stands for the running daemon: a process holding the journal open as its writer."""
    writer = Writer("hold", filled)
    yield writer
    writer.stop()


def _count(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()


# --- B1: the writer lock ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["rebuild"], ["prune", "--before", "30d"], ["upgrade"]])
def test_maintenance_refuses_while_the_daemon_holds_the_journal(filled: Path, daemon: Writer, capsys,
                                                                command: list[str]) -> None:
    assert writer_active(filled)
    code, out, err = run(capsys, "journal", *command, "--journal", str(filled))
    assert code == 1 and out == ""
    assert "stop rfqbot first: systemctl stop rfqbot" in err and f"rfqbot journal {command[0]}" in err


def test_reads_and_dry_run_work_while_the_daemon_holds_the_journal(filled: Path, daemon: Writer, capsys) -> None:
    for command in (["list"], ["show", "R1"], ["tail", "-n", "2"], ["stats"], ["export", "--table", "quotes"],
                    ["verify"], ["prune", "--before", "30d", "--dry-run"]):
        code, out, err = run(capsys, "journal", *command, "--journal", str(filled))
        assert code == 0, (command, err)


def test_a_second_writer_is_refused_and_the_lock_dies_with_its_holder(filled: Path, capsys) -> None:
    holder = Writer("hold", filled)
    try:
        with pytest.raises(JournalLocked, match="already open for writing by another process"):
            Journal(filled, FakeClock())
    finally:
        holder.stop()  # kill -9: the kernel drops the flock, no stale lock file to clean
    assert not writer_active(filled)
    code, out, _ = run(capsys, "journal", "rebuild", "--journal", str(filled))
    assert code == 0 and "rebuilt from 400 events" in out


def test_the_lock_is_per_open_journal_in_one_process_too(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j.db", FakeClock())
    try:
        with pytest.raises(JournalLocked):
            Journal(tmp_path / "j.db", FakeClock())
        assert oct(os.stat(tmp_path / "j.db.lock").st_mode & 0o777) == "0o600"
    finally:
        first.close()
    Journal(tmp_path / "j.db", FakeClock()).close()  # released on close


# --- B1: a write lock held outside rfqbot is transient, then named --------------------------------

def _hold_write_lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # e.g. sqlite3 / sqlite-utils writing to the journal
    return other


def test_append_waits_out_a_short_write_lock(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", FakeClock(), busy_timeout_ms=20, busy_retry_s=5)
    try:
        journal.append("before", source="t", payload={})
        other = _hold_write_lock(journal.path)
        release = threading.Timer(0.2, lambda: other.execute("ROLLBACK"))  # held ten times the busy timeout
        release.start()
        try:
            assert journal.append("after", source="t", payload={}) == 2
        finally:
            release.join()
            other.close()
        assert journal.verify_chain() is None
    finally:
        journal.close()


def test_append_gives_up_on_a_long_write_lock_naming_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", FakeClock(), busy_timeout_ms=20, busy_retry_s=0.1)
    other = None
    try:
        journal.append("before", source="t", payload={})
        other = _hold_write_lock(journal.path)
        with pytest.raises(JournalError) as caught:
            journal.append("blocked", source="t", payload={})
        message = str(caught.value)
        assert "locked by another connection" in message and "maintenance command" in message
        assert "disk" not in message
        with pytest.raises(JournalError, match="locked by another connection"):
            with journal.batch():
                journal.append("blocked", source="t", payload={})
        other.execute("ROLLBACK")
        assert journal.append("after", source="t", payload={}) == 2  # the chain head did not move
        assert journal.verify_chain() is None
        assert journal.query("PRAGMA busy_timeout") == [{"timeout": 20}]  # restored after the retries
    finally:
        if other is not None:
            other.close()
        journal.close()


# --- B2: verify while the daemon appends ---------------------------------------------------------

def test_verify_while_another_process_appends_passes(filled: Path, capsys) -> None:
    writer = Writer("append", filled)
    try:
        before = _count(filled)
        for _ in range(3):
            code, out, _ = run(capsys, "journal", "verify", "--json", "--journal", str(filled))
            report = json.loads(out)
            assert code == 0, [c for c in report["checks"] if not c["ok"]]
        during = _count(filled)
    finally:
        writer.stop()
    assert during > before  # the writer really was appending while verify ran
    code, _, _ = run(capsys, "journal", "verify", "--journal", str(filled))
    assert code == 0
