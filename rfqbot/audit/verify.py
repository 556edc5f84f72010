"""``rfqbot journal verify``: is this journal intact, and does every derived table match its events?

Checks, each naming the first bad row or object it finds:

1. the hash chain over ``events`` (an edited, deleted or reordered row breaks it at its seq; a
   chain that does not start at seq 1 or at a prune checkpoint lost its start);
2. with ``--expect-head SEQ:HASH`` (a head recorded earlier, elsewhere): that row is still there
   with that hash, so newest rows cut off or rewritten are caught;
3. ``PRAGMA integrity_check`` (the file itself: pages, indexes);
4. the schema: tables, indexes and views as this rfqbot creates them, no unknown triggers;
5. the derived tables against a rebuild: the events are replayed into TEMP copies of the derived
   tables on the read-only connection and compared row by row, so checking writes nothing.

All of it runs in ONE read transaction: the daemon may append while ``verify`` runs, and every
check must see the same snapshot (else rows committed mid-check look like derived rows that a
rebuild lacks). A journal of an older schema is not compared with this code's derived tables;
that is a failed check saying how to upgrade, never a silent skip.

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
from typing import Any, Callable

from rfqbot.audit import schema_check
from rfqbot.journal.store import SCHEMA_VERSION, apply_projection, verify_rows
from rfqbot.journal.projections import DERIVED_TABLES, KIND_CHECKPOINT, EventRow

UPGRADE_HINT = "start the daemon once (or run `rfqbot journal upgrade` with the daemon stopped), then verify again"
DAMAGE_HINT = "restore from a backup, or `sqlite3 journal.db .recover`"

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
    events: int | None   # None: SQLite could not count them (a damaged file; a check says so)
    head_seq: int | None
    head_hash: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as ``verify`` prints it) -> (seq, hash); ValueError says the expected form."""
    seq, sep, digest = text.strip().partition(":")
    if not sep or not seq.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", digest.lower()):
        raise ValueError(f"expected SEQ:HASH (e.g. 1234:{'ab' * 32}), got {text!r}")
    return int(seq), digest.lower()


def verify_connection(conn: sqlite3.Connection, path: str = "", *,
                      expect_head: tuple[int, str] | None = None) -> VerifyReport:
    """Run every check on a (read-only) connection, all in one read transaction (one snapshot)."""
    saved = conn.isolation_level
    conn.isolation_level = None  # we issue BEGIN/ROLLBACK ourselves; nothing is ever committed
    conn.execute("BEGIN")
    try:
        return _verify(conn, path, expect_head)
    finally:
        if conn.in_transaction:  # SQLite may have ended it itself after an error on a damaged file
            conn.execute("ROLLBACK")  # also drops the TEMP shadows
        conn.isolation_level = saved


def _verify(conn: sqlite3.Connection, path: str, expect_head: tuple[int, str] | None) -> VerifyReport:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    report = _report_head(conn, path, version)  # the snapshot starts here
    report.checks.extend(_guarded("hash chain", "every event", lambda: _check_chain(conn)))
    if expect_head is not None:
        report.checks.extend(_guarded("expected head", "the recorded head's row",
                                      lambda: _check_head(conn, *expect_head)))
    report.checks.extend(_guarded("integrity_check", "the file's pages", lambda: _check_integrity(conn)))
    if version != SCHEMA_VERSION:
        report.checks.append(Check("schema version", False, f"schema v{version} is not this rfqbot's "
                                   f"v{SCHEMA_VERSION}: the schema and derived tables cannot be compared with "
                                   f"this code's; {UPGRADE_HINT}", {"schema_version": version}))
        return report
    try:
        diff = schema_check.compare(conn)
    except sqlite3.DatabaseError as exc:
        report.checks.append(_unreadable("schema", "the schema", exc))
        return report
    report.checks.append(_schema_result(diff))
    report.checks.extend(_guarded("derived tables", "the events or derived tables",
                                  lambda: _check_derived(conn, skip=schema_check.changed_tables(diff))))
    return report


def _report_head(conn: sqlite3.Connection, path: str, version: int) -> VerifyReport:
    """The report with the event count and head; both None when SQLite cannot read them (the
    checks that follow say why), so a damaged file still gets every check it can."""
    try:
        count = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        head = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    except sqlite3.DatabaseError:
        return VerifyReport(path, version, None, None, None)
    return VerifyReport(path, version, count, head[0] if head else None, head[1] if head else None)


def _guarded(name: str, what: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one check; SQLite failing to read the file (a damaged page) fails that check with
    what SQLite said instead of ending verify with a traceback: a damaged journal is exactly
    what verify is for, and the other checks still run."""
    try:
        result = check()
    except sqlite3.DatabaseError as exc:
        return [_unreadable(name, what, exc)]
    return result if isinstance(result, list) else [result]


def _unreadable(name: str, what: str, exc: sqlite3.DatabaseError) -> Check:
    return Check(name, False, f"SQLite could not read {what}: {exc}; the file is damaged, so this is "
                 f"unproven; {DAMAGE_HINT}", {"sqlite_error": str(exc)})


def _schema_result(diff: schema_check.SchemaDiff) -> Check:
    extra = f" (also present, not rfqbot's: {', '.join(diff.extra)})" if diff.extra else ""
    if diff.ok:
        return Check("schema", True, "tables, indexes and views are as this rfqbot creates them" + extra)
    problems = ([f"missing: {', '.join(diff.missing)}"] if diff.missing else []) + \
               ([f"redefined: {', '.join(diff.changed)}"] if diff.changed else []) + \
               ([f"unknown: {', '.join(diff.unknown_triggers)}"] if diff.unknown_triggers else [])
    first = (diff.missing + diff.changed + diff.unknown_triggers)[0]
    return Check("schema", False, "; ".join(problems) + extra + ": someone changed the schema by hand; derived "
                 "tables and views are code (`rfqbot journal rebuild` with the daemon stopped recreates them), "
                 "a trigger must be dropped by hand after finding out who added it", {"object": first})


def _check_chain(conn: sqlite3.Connection) -> Check:
    bad = verify_rows(conn)
    if bad is None:
        first = conn.execute("SELECT seq, kind FROM events ORDER BY seq LIMIT 1").fetchone()
        start = "starts at a prune checkpoint" if first and first[1] == "journal.checkpoint" else "starts at genesis"
        return Check("hash chain", True, f"every event links to the one before ({start})")
    row = conn.execute("SELECT seq, local_ms, kind, rfq_id FROM events WHERE seq >= ? ORDER BY seq LIMIT 1",
                       (bad,)).fetchone()
    missing = row is None or row[0] != bad
    first = conn.execute("SELECT MIN(seq) FROM events").fetchone()[0]
    detail = (f"the chain does not start at genesis: event seq {bad} is missing (the first event is seq "
              f"{first}, not a prune checkpoint: deleted)" if missing and bad == 1 and first != 1 else
              f"event seq {bad} is missing (deleted, or rows reordered)" if missing else
              f"event seq {bad} ({row[2]}) does not match its hash or the previous row: edited, inserted or "
              "reordered")
    return Check("hash chain", False, detail + "; everything from there on is unproven",
                 {"seq": bad, "present": not missing})


def _check_integrity(conn: sqlite3.Connection) -> Check:
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    if rows == ["ok"]:
        return Check("integrity_check", True, "SQLite reports the file intact")
    # One row may hold many lines ("*** in database main ***" then one per bad page): name the
    # first problem and count the rest, so the table stays readable.
    messages = [line for row in rows for line in str(row).splitlines()
                if line.strip() and not line.startswith("***")] or rows
    return Check("integrity_check", False, f"SQLite reports damage: {messages[0]}"
                 + (f" (and {len(messages) - 1} more)" if len(messages) > 1 else "")
                 + f"; {DAMAGE_HINT}", {"message": messages[0]})


def _check_head(conn: sqlite3.Connection, seq: int, digest: str) -> Check:
    """The head recorded earlier is still in the chain, unchanged (the chain check proves the rest)."""
    name = "expected head"
    row = conn.execute("SELECT hash, kind FROM events WHERE seq = ?", (seq,)).fetchone()
    if row is not None and row[0] == digest:
        return Check(name, True, f"event seq {seq} is there with the recorded hash")
    if row is not None:
        return Check(name, False, f"event seq {seq} has hash {row[0]}, not the recorded {digest}: rewritten since "
                     "the head was recorded", {"seq": seq})
    last, first = conn.execute("SELECT MAX(seq), MIN(seq) FROM events").fetchone()
    if last is None or seq > last:
        return Check(name, False, f"event seq {seq} is missing: the journal ends at seq {last}; rows after it "
                     "were cut off (truncated) since the head was recorded", {"seq": seq, "present": False})
    start = conn.execute("SELECT kind FROM events WHERE seq = ?", (first,)).fetchone()[0]
    why = ("pruned (the chain starts at a prune checkpoint after it); compare with the export archived before "
           "the prune" if start == KIND_CHECKPOINT and seq < first else "deleted")
    return Check(name, False, f"event seq {seq} is missing: {why}", {"seq": seq, "present": False})


def _check_derived(conn: sqlite3.Connection, *, skip: frozenset[str] | set[str] = frozenset()) -> list[Check]:
    """Replay events into TEMP shadows of the derived tables (defined as the code defines them)
    and compare. The caller holds the read transaction; its ROLLBACK drops the shadows."""
    reference = schema_check.table_sql()
    tables = [t for t in DERIVED_TABLES if t in reference and t not in skip]
    checks = [Check(f"derived: {t}", False, f"{t} not compared: its definition is not this rfqbot's (see schema)",
                    {"table": t}) for t in DERIVED_TABLES if t in skip]
    for table in tables:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        conn.execute(re.sub(r"^\s*CREATE\s+TABLE\s+", "CREATE TEMP TABLE ", reference[table], count=1, flags=re.I))
    # Unqualified names resolve to TEMP first, so the projection's SQL fills the shadows.
    for row in conn.execute("SELECT seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload "
                            "FROM main.events ORDER BY seq").fetchall():
        try:
            payload = json.loads(row[7])
        except ValueError:
            continue  # not JSON: the chain check names this row (its hash cannot match)
        apply_projection(conn, EventRow(*row[:7], payload))
    return checks + [_compare(conn, table) for table in tables]


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
