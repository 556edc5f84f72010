"""Opening a journal for reading: checks that say what to do, and the upgrade of an older schema.

Reads go through SQLite's read-only mode: in WAL mode a reader never blocks the daemon's
writes (it reads the last committed snapshot), and waits at most the busy timeout on the rare
locks SQLite itself takes (e.g. WAL recovery after a crash).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import structlog

from rfqbot.clock import SystemClock
from rfqbot.journal import SCHEMA_VERSION, Journal, JournalError, open_readonly

log = structlog.get_logger(__name__)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise JournalError(f"journal {path} does not exist; pass --journal PATH, or --config with the "
                           "journal.path the daemon writes")
    if not path.is_file():
        raise JournalError(f"journal {path} is not a file; pass --journal PATH to the SQLite journal")


def connect(path: str | os.PathLike[str], *, upgrade: bool = True) -> sqlite3.Connection:
    """A read-only connection to an existing journal.

    A journal of an older schema is upgraded in place first (what the daemon would do on start)
    when ``upgrade`` is true; ``verify`` passes false, since an audit check must not change the
    file it checks.
    """
    target = Path(path)
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
    if version < SCHEMA_VERSION and upgrade:
        conn.close()
        upgrade_in_place(target)
        conn = open_readonly(target)
    return conn


def upgrade_in_place(path: str | os.PathLike[str]) -> int:
    """Open the journal as its writer once (which migrates it); returns the new schema version."""
    try:
        journal = Journal(path, SystemClock())
    except (sqlite3.Error, OSError) as exc:
        raise JournalError(f"journal {path} has an older schema and cannot be upgraded here ({exc}); run any "
                           "rfqbot journal command as the user that owns it, or start the daemon once") from exc
    try:
        log.warning("journal.upgraded", path=str(path), version=journal.schema_version)
        return journal.schema_version
    finally:
        journal.close()


def open_writer(path: str | os.PathLike[str]) -> Journal:
    """The journal as a writer, for maintenance (rebuild, prune); it must exist already."""
    target = Path(path)
    _check_exists(target)
    return Journal(target, SystemClock())
