"""``rfqbot journal verify``: is this journal intact, and does every derived table match its events?

Three checks, each naming the first bad row it finds:

1. the hash chain over ``events`` (an edited, deleted or reordered row breaks it at its seq);
2. ``PRAGMA integrity_check`` (the file itself: pages, indexes);
3. the derived tables against a rebuild: the events are replayed into TEMP copies of the derived
   tables on the read-only connection and compared row by row, so checking writes nothing.

A hash chain without an external anchor proves the rows are consistent with each other, not who
wrote them: someone who rewrites every row from some point on and recomputes the hashes is not
caught. Keep the head hash that ``verify`` prints somewhere else (a ticket, another host) and
compare it later; a truncated tail is caught the same way.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from rfqbot.journal import SCHEMA_VERSION, apply_projection, verify_rows
from rfqbot.projections import DERIVED_TABLES, EventRow

# The columns that identify a row of each derived table, to name the first bad one.
_KEYS = {"rfqs": ("rfq_id",), "quotes": ("quote_id",), "transitions": ("seq",), "decisions": ("seq",),
         "venue_calls": ("seq",), "stream_sessions": ("stream", "session"), "reference_prices": ("seq",)}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    first_bad: dict[str, Any] | None = None


@dataclass
class VerifyReport:
    path: str
    schema_version: int
    events: int
    head_seq: int | None
    head_hash: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def verify_connection(conn: sqlite3.Connection, path: str = "") -> VerifyReport:
    """Run every check on a (read-only) connection."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    count = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    head = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    report = VerifyReport(path, version, count, head[0] if head else None, head[1] if head else None)
    report.checks.append(_check_chain(conn))
    report.checks.append(_check_integrity(conn))
    if version == SCHEMA_VERSION:
        report.checks.extend(_check_derived(conn))
    else:
        report.checks.append(Check("derived tables", True, f"not compared: schema v{version} is older than "
                                   f"v{SCHEMA_VERSION}; they are rebuilt from events when the journal upgrades"))
    return report


def _check_chain(conn: sqlite3.Connection) -> Check:
    bad = verify_rows(conn)
    if bad is None:
        first = conn.execute("SELECT seq, kind FROM events ORDER BY seq LIMIT 1").fetchone()
        start = "starts at a prune checkpoint" if first and first[1] == "journal.checkpoint" else "starts at genesis"
        return Check("hash chain", True, f"every event links to the one before ({start})")
    row = conn.execute("SELECT seq, local_ms, kind, rfq_id FROM events WHERE seq >= ? ORDER BY seq LIMIT 1",
                       (bad,)).fetchone()
    missing = row is None or row[0] != bad
    detail = (f"event seq {bad} is missing (deleted, or rows reordered)" if missing else
              f"event seq {bad} ({row[2]}) does not match its hash or the previous row: edited, inserted or "
              "reordered")
    return Check("hash chain", False, detail + "; everything from there on is unproven",
                 {"seq": bad, "present": not missing})


def _check_integrity(conn: sqlite3.Connection) -> Check:
    messages = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    if messages == ["ok"]:
        return Check("integrity_check", True, "SQLite reports the file intact")
    return Check("integrity_check", False, f"SQLite reports damage: {messages[0]}"
                 + (f" (and {len(messages) - 1} more)" if len(messages) > 1 else "")
                 + "; restore from a backup, or `sqlite3 journal.db .recover`", {"message": messages[0]})


def _check_derived(conn: sqlite3.Connection) -> list[Check]:
    """Replay events into TEMP shadows of the derived tables and compare."""
    tables = [t for t in DERIVED_TABLES if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)).fetchone()]
    for table in tables:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()[0]
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        conn.execute(re.sub(r"^\s*CREATE\s+TABLE\s+", "CREATE TEMP TABLE ", sql, count=1, flags=re.I))
    try:
        # Unqualified names resolve to TEMP first, so the projection's SQL fills the shadows.
        for row in conn.execute("SELECT seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload "
                                "FROM main.events ORDER BY seq").fetchall():
            apply_projection(conn, EventRow(*row[:7], json.loads(row[7])))
        return [_compare(conn, table) for table in tables]
    finally:
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        conn.commit()


def _compare(conn: sqlite3.Connection, table: str) -> Check:
    keys = _KEYS[table]
    order = ", ".join(keys)
    extra = conn.execute(f"SELECT * FROM (SELECT * FROM main.{table} EXCEPT SELECT * FROM temp.{table}) "
                         f"ORDER BY {order} LIMIT 1").fetchone()
    lacking = conn.execute(f"SELECT * FROM (SELECT * FROM temp.{table} EXCEPT SELECT * FROM main.{table}) "
                           f"ORDER BY {order} LIMIT 1").fetchone()
    if extra is None and lacking is None:
        return Check(f"derived: {table}", True, "equals a rebuild from events")
    candidates = [r for r in (extra, lacking) if r is not None]
    first = min(candidates, key=lambda r: tuple(r[k] for k in keys))
    key = {k: first[k] for k in keys}
    in_journal = conn.execute(f"SELECT 1 FROM main.{table} WHERE " + " AND ".join(f"{k} = ?" for k in keys),
                              tuple(key.values())).fetchone() is not None
    in_rebuild = conn.execute(f"SELECT 1 FROM temp.{table} WHERE " + " AND ".join(f"{k} = ?" for k in keys),
                              tuple(key.values())).fetchone() is not None
    what = ("differs from" if in_journal and in_rebuild else
            "is not in" if in_journal else "is missing; it is in")
    named = ", ".join(f"{k}={v}" for k, v in key.items())
    return Check(f"derived: {table}", False, f"{table} row {named} {what} a rebuild from events; "
                 "`rfqbot journal rebuild` regenerates derived tables (events are the truth)", key)
