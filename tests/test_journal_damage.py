"""``rfqbot journal`` on a damaged file, and on a journal in a folder the reader cannot write.

Damage: one page of the ``events`` table overwritten (the page holding a known payload), so the
header and schema still read and SQLite fails only deep in a query, as a disk fault would.
Read-only folders: tests run as root, whom permissions do not stop, so the failing SQLite read
and ``os.access`` are simulated; one test runs the CLI as ``nobody`` where that is possible.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import pytest

from rfqbot.audit.verify import _check_integrity, verify_connection
from rfqbot.clock import FakeClock
from rfqbot.journal import store
from rfqbot.journal.store import Journal
from tests.cli_runner import run_cli

EVENTS = 3000
PAGE = 4096


def _write_journal(path: Path, events: int = EVENTS) -> Path:
    journal = Journal(path, FakeClock())
    with journal.batch():
        for i in range(events):
            journal.append("note", source="test", payload={"i": i, "pad": "x" * 200}, rfq_id=f"R{i}")
    journal.close()
    return path


@pytest.fixture(scope="module")
def sound_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_journal(tmp_path_factory.mktemp("sound") / "journal.db")


@pytest.fixture
def damaged(sound_journal: Path, tmp_path: Path) -> Path:
    """A copy with the events page holding event i=1500 overwritten by 4 KiB of junk."""
    path = tmp_path / "flip.db"
    shutil.copyfile(sound_journal, path)
    path.chmod(0o600)   # as the daemon leaves it: rebuild would warn about a looser mode
    data = path.read_bytes()
    at = data.index(b'"i":1500,')
    with open(path, "r+b") as f:
        f.seek(at - at % PAGE)
        f.write(b"\xa5" * PAGE)
    return path


def test_the_damage_is_real(damaged: Path) -> None:
    conn = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
    conn.close()


def test_verify_reports_damage_as_failed_checks(damaged: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "journal", "verify", "--journal", str(damaged))
    assert code == 1, err
    assert "Traceback" not in err and "rfqbot: error" not in err
    lines = out.splitlines()
    chain = next(line for line in lines if line.startswith("hash chain"))
    assert chain.split()[2] == "FAILED"
    assert "SQLite could not read every event: database disk image is malformed" in chain
    # On this damage PRAGMA integrity_check itself fails: a failed check saying what SQLite said.
    integrity = next(line for line in lines if line.startswith("integrity_check"))
    assert integrity.split()[1] == "FAILED"
    assert "SQLite could not read the file's pages: database disk image is malformed" in integrity
    assert integrity.endswith("restore from a backup, or `sqlite3 journal.db .recover`")
    assert lines[-1] == "JOURNAL FAILED VERIFICATION (see above)"


def test_verify_json_names_what_sqlite_said(damaged: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "journal", "verify", "--json", "--journal", str(damaged))
    assert code == 1
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is False
    assert checks["hash chain"]["first_bad"] == {"sqlite_error": "database disk image is malformed"}
    assert not checks["integrity_check"]["ok"]


def test_a_many_line_integrity_report_is_summarised_on_one_line() -> None:
    """SQLite can put every bad page in one row, one line each (seen on a page overwritten in an
    index): name the first problem, count the rest, keep the table to one line per check."""
    report = ("*** in database main ***\nPage 75: btreeInitPage() returns error code 11\n"
              "On tree page 74 cell 308: invalid page number -1515870811\n"
              "On tree page 74 cell 307: invalid page number -1515870811")

    class Conn:
        def execute(self, sql: str) -> Any:
            assert sql == "PRAGMA integrity_check"
            return types.SimpleNamespace(fetchall=lambda: [(report,), ("row missing from index",)])

    check = _check_integrity(Conn())  # type: ignore[arg-type]
    assert not check.ok
    assert check.detail == ("SQLite reports damage: Page 75: btreeInitPage() returns error code 11 (and 3 more); "
                            "restore from a backup, or `sqlite3 journal.db .recover`")


def test_verify_connection_never_raises_on_a_damaged_file(damaged: Path) -> None:
    conn = store.open_readonly(damaged)
    try:
        report = verify_connection(conn, str(damaged))
        assert not report.ok
        assert not conn.in_transaction   # the read transaction is over, whatever SQLite did with it
    finally:
        conn.close()


@pytest.mark.parametrize("command", [["export"], ["export", "--format", "csv"], ["rebuild"]])
def test_export_and_rebuild_exit_1_with_one_line_naming_the_journal(damaged: Path, capsys,
                                                                    command: list[str]) -> None:
    code, _, err = run_cli(capsys, "journal", *command, "--journal", str(damaged))
    assert code == 1
    assert err.splitlines() == [
        f"rfqbot: error: journal {damaged} is damaged (SQLite: database disk image is malformed); run "
        f"`rfqbot journal verify --journal {damaged}` to see what is affected, then restore it from a backup "
        f"(or `sqlite3 {damaged} .recover | sqlite3 recovered.db`)"]


def test_verify_still_passes_a_sound_journal(sound_journal: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy.db"
    shutil.copyfile(sound_journal, copy)
    code, out, err = run_cli(capsys, "journal", "verify", "--journal", str(copy))
    assert code == 0, out + err
    assert out.splitlines()[-1] == "journal verified"


# --- a WAL journal in a folder this user cannot write ---------------------------------------------

def _cannot_open_wal_files(monkeypatch: pytest.MonkeyPatch, folder_writable: bool, folder: Path) -> None:
    """What SQLite does as a reader who cannot create/open -wal and -shm: fail at the first read."""
    def first_read(_conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    access = os.access

    def fake_access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        if Path(path) == folder and mode & os.W_OK:
            return folder_writable
        return access(path, mode, *args, **kwargs)

    monkeypatch.setattr(store, "_first_read", first_read)
    monkeypatch.setattr(store.os, "access", fake_access)


def test_a_read_only_folder_is_named_as_the_cause(sound_journal: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys) -> None:
    _cannot_open_wal_files(monkeypatch, False, sound_journal.parent.resolve())
    code, out, err = run_cli(capsys, "journal", "stats", "--journal", str(sound_journal))
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert "is it an rfqbot journal" not in line
    assert "the file is probably fine, but it is in WAL mode" in line
    assert f"its folder {sound_journal.parent.resolve()} is not writable for this user" in line
    assert "Copy the journal together with its -wal file" in line
    assert f'sqlite3 {sound_journal.resolve()} ".backup /tmp/journal-copy.db"' in line


def test_another_users_wal_files_are_named_as_the_cause(sound_journal: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys) -> None:
    _cannot_open_wal_files(monkeypatch, True, sound_journal.parent.resolve())
    code, _, err = run_cli(capsys, "journal", "verify", "--journal", str(sound_journal))
    assert code == 1
    assert "journal.db-wal or journal.db-shm there belongs to another user and cannot be opened" in err


def test_the_same_error_on_a_file_that_is_no_wal_journal_is_left_to_the_usual_checks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE t (x)").connection.close()   # rollback journal, not WAL
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 50)
    _cannot_open_wal_files(monkeypatch, False, tmp_path.resolve())
    code, _, err = run_cli(capsys, "journal", "stats", "--journal", str(plain))
    assert code == 1 and "WAL" not in err
    assert "is not an rfqbot journal (no events table)" in err
    code, _, err = run_cli(capsys, "journal", "stats", "--journal", str(junk))
    assert code == 1 and "WAL" not in err
    assert "file is not a database; is it an rfqbot journal (SQLite)?" in err


def test_callers_that_report_sqlite_errors_inline_still_catch_it(sound_journal: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``rfqbot status`` and ``doctor`` catch sqlite3.Error around open_readonly and show it in
    their report; the new error must not escape them."""
    _cannot_open_wal_files(monkeypatch, False, sound_journal.parent.resolve())
    with pytest.raises(sqlite3.OperationalError, match="not writable for this user") as caught:
        store.open_readonly(sound_journal)
    assert isinstance(caught.value, store.JournalError)


def test_a_readable_journal_opens_as_before(sound_journal: Path) -> None:
    conn = store.open_readonly(sound_journal)
    try:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == EVENTS
    finally:
        conn.close()


def _can_switch_to_nobody() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv") is not None


@pytest.mark.skipif(not _can_switch_to_nobody(), reason="needs root and setpriv to read as another user")
def test_as_another_user_in_a_read_only_folder(sound_journal: Path) -> None:
    """The real thing: SQLite itself refuses, for a user who cannot write the folder."""
    folder = Path(tempfile.mkdtemp(prefix="rfqbot-ro-", dir="/tmp"))
    try:
        journal = folder / "journal.db"
        shutil.copyfile(sound_journal, journal)
        journal.chmod(0o644)
        folder.chmod(0o555)
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "rfqbot.cli",
             "journal", "stats", "--journal", str(journal)],
            capture_output=True, text=True, cwd="/tmp", timeout=60)
        if "No module named" in result.stderr or "Permission denied" in result.stderr:
            pytest.skip(f"nobody cannot run this interpreter: {result.stderr.strip()[:200]}")
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert f"its folder {folder} is not writable for this user" in result.stderr
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


# --- the daemon does not trade on a damaged journal ------------------------------------------------

def test_the_daemon_refuses_to_start_on_a_damaged_journal(damaged: Path) -> None:
    """A damaged page can sit unread while the daemon restores state and appends around it (it
    did: a review started and traded on such a file). quick_check at start finds it: exit 78."""
    from rfqbot.daemon import _open_journal
    from rfqbot.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        _open_journal(damaged, FakeClock())
    message = str(caught.value)
    assert "journal.path" in message and "is damaged (SQLite quick_check:" in message
    assert f"rfqbot journal verify --journal {damaged}" in message and "will not trade" in message
    assert caught.value.exit_code == 78
    Journal(damaged, FakeClock()).close()   # the writer lock was released: repair tools can open it


def test_a_sound_journal_passes_the_start_check(sound_journal: Path, tmp_path: Path) -> None:
    from rfqbot.daemon import _open_journal

    copy = tmp_path / "copy.db"
    shutil.copyfile(sound_journal, copy)
    journal = _open_journal(copy, FakeClock())
    try:
        assert journal.quick_check() == []
    finally:
        journal.close()


def test_run_on_a_damaged_journal_exits_78_without_a_traceback(damaged: Path, tmp_path: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RFQBOT_API_KEY", "damaged-journal-test-key")
    monkeypatch.setenv("RFQBOT_API_SECRET", "damaged-journal-test-secret")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(f'venue:\n  name: hashkey-sg-sandbox\n  rest_url: "https://127.0.0.1:9"\n'
                      f'journal:\n  path: "{damaged}"\nlogging:\n  format: json\n')
    code, _, err = run_cli(capsys, "run", "--config", str(config))
    assert code == 78 and "Traceback" not in err and "is damaged" in err


def test_the_start_check_runs_before_any_migration_reads_or_rewrites_the_file(
        damaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    migrated = []
    monkeypatch.setattr(Journal, "_migrate", lambda self: migrated.append(self.path))
    with pytest.raises(store.JournalDamaged) as caught:
        Journal(damaged, FakeClock(), check_first=True)
    assert migrated == [] and caught.value.problems


@pytest.mark.parametrize("cause", [
    sqlite3.OperationalError("database or disk is full"), sqlite3.OperationalError("disk I/O error"),
    OSError(28, "No space left on device"),
])
def test_a_full_disk_at_start_exits_1_so_systemd_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         cause: BaseException) -> None:
    """Not 78: once space is freed a restart works (the engine's own journal_failed alert says
    "free the disk, then restart"); 78 would stop systemd from ever trying again."""
    from rfqbot.daemon import _open_journal
    from rfqbot.errors import ConfigError

    if isinstance(cause, sqlite3.Error):
        cause.sqlite_errorcode = sqlite3.SQLITE_FULL if "full" in str(cause) else sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise store.JournalError("cannot open journal") from cause

    monkeypatch.setattr("rfqbot.daemon.Journal", refuse)
    with pytest.raises(store.JournalError) as caught:
        _open_journal(tmp_path / "journal.db", FakeClock())
    assert not isinstance(caught.value, ConfigError)
    assert "free space on its filesystem" in str(caught.value) and str(cause) in str(caught.value)


def test_an_io_error_during_the_start_check_is_disk_trouble_not_damage(sound_journal: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """quick_check failing on I/O says nothing about the file: exit 1 (retry), not 78 "damaged"."""
    from rfqbot.daemon import _open_journal

    copy = tmp_path / "copy.db"
    shutil.copyfile(sound_journal, copy)

    def io_error(self: Journal) -> list[str]:
        exc = sqlite3.OperationalError("disk I/O error")
        exc.sqlite_errorcode = sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
        raise exc

    monkeypatch.setattr(Journal, "quick_check", io_error)
    with pytest.raises(store.JournalError) as caught:
        _open_journal(copy, FakeClock())
    assert "free space on its filesystem" in str(caught.value) and "disk I/O error" in str(caught.value)
