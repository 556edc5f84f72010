"""Opening a journal for the ``rfqbot journal`` commands: readers that never write, and writers
for maintenance that refuse to run beside the daemon.

Reads go through SQLite's read-only mode: in WAL mode a reader never blocks the daemon's
writes (it reads the last committed snapshot), and waits at most the busy timeout on the rare
locks SQLite itself takes (e.g. WAL recovery after a crash). A reader never migrates an older
journal: an upgrade replays every event inside one write transaction (seconds on a big
journal) and would stall a running daemon. Only the daemon at start, or ``rfqbot journal
upgrade`` with the daemon stopped, upgrades.

Maintenance (rebuild, prune, upgrade) opens the journal as its writer, which takes the writer
lock (``rfqbot.audit.writer_lock``): while the daemon runs, it is refused with what to do.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import structlog

from rfqbot.clock import SystemClock
from rfqbot.journal.store import SCHEMA_VERSION, Journal, JournalError, JournalLocked, open_readonly

log = structlog.get_logger(__name__)

# The oldest schema the read commands understand: list/show/stats need v2's columns and views;
# tail, export of events and verify read any version.
READ_MIN_VERSION = 2
UPGRADE_HINT = "start the daemon once (or run `rfqbot journal upgrade` with the daemon stopped) to upgrade"


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise JournalError(f"journal {path} does not exist; pass --journal PATH, or --config with the "
                           "journal.path the daemon writes")
    if not path.is_file():
        raise JournalError(f"journal {path} is not a file; pass --journal PATH to the SQLite journal")


def _open_checked(target: Path) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to an existing rfqbot journal this rfqbot is not too old for."""
    _check_exists(target)
    try:
        conn = open_readonly(target)
        version = schema_version(conn)
        if version == 0 and not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone():
            conn.close()
            raise JournalError(f"{target} is not an rfqbot journal (no events table); check --journal")
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"cannot read journal {target}: {exc}; is it an rfqbot journal (SQLite)?") from exc
    if version > SCHEMA_VERSION:
        conn.close()
        raise JournalError(f"journal {target} has schema version {version}, newer than this rfqbot "
                           f"({SCHEMA_VERSION}); use the rfqbot that wrote it")
    return conn, version


def connect(path: str | os.PathLike[str], *, min_version: int = READ_MIN_VERSION) -> sqlite3.Connection:
    """A read-only connection to an existing journal of schema ``min_version`` or later.

    Never upgrades: a journal older than ``min_version`` is refused with what to do; one older
    than this rfqbot but readable is read as it is, with a warning (its derived tables lack the
    later projection fixes until it is upgraded).
    """
    target = Path(path)
    conn, version = _open_checked(target)
    if version < min_version:
        conn.close()
        raise JournalError(f"journal {target} has schema v{version}, older than this command reads "
                           f"(v{min_version}+); {UPGRADE_HINT}")
    if version < SCHEMA_VERSION:
        log.warning("journal.older_schema", path=str(target), version=version, current=SCHEMA_VERSION,
                    fix=f"derived tables are as v{version} made them; {UPGRADE_HINT}")
    return conn


def open_writer(path: str | os.PathLike[str], *, command: str) -> Journal:
    """The journal as its writer, for maintenance (``command``: rebuild, prune, upgrade); it must
    exist already. Refused while another process (the daemon) holds the writer lock."""
    target = Path(path)
    _open_checked(target)[0].close()
    try:
        return Journal(target, SystemClock())
    except JournalLocked:
        raise JournalError(f"journal {target} is in use by a running rfqbot (or another `rfqbot journal` "
                           f"maintenance command): stop rfqbot first: systemctl stop rfqbot (or the rfqbot@NAME "
                           f"instance), then run `rfqbot journal {command}` again; reading commands (list, show, "
                           "tail, export, stats, verify) work while it runs") from None


def upgrade_in_place(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Migrate the journal to this rfqbot's schema (as the daemon does at start); returns
    (version before, version after). Refused while the daemon runs."""
    target = Path(path)
    conn, before = _open_checked(target)
    conn.close()
    journal = open_writer(target, command="upgrade")
    try:
        after = journal.schema_version
    finally:
        journal.close()
    if after != before:
        log.warning("journal.upgraded", path=str(target), version_before=before, version=after)
    return before, after
