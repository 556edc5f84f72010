"""How rows reach the derived tables and ``events``: one event's projection, and a batch's rows in bulk.

Split from ``rfqbot.journal.store`` (the writer: schema, transactions, the chain head) so both stay
short. ``rfqbot.journal.store`` re-exports ``apply_projection``.

- **One event** (``apply_projection``): its statements run together; one that fails (a bug, an
  odd payload) loses that view of the event, never the event, and never stops a replay. Live
  appends, rebuilds, upgrades and verify all go through here, so they agree.
- **A batch's market data** (``apply_deferred``, ``insert_rows``): public rows inside
  ``Journal.batch()`` are written at the flush, many at once, in seq order; the tables end as
  row by row. Why many at once: Python's sqlite3 releases and re-takes the GIL around every
  statement step, so a statement per row handed the GIL to the public stream thread (decoding
  the next frames) and waited to get it back, twice per frame under a flood.
"""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache
from itertools import chain
from typing import Any

import structlog

from rfqbot.journal.projections import EventRow, Op, project

log = structlog.get_logger("rfqbot.journal.store")


def apply_projection(conn: sqlite3.Connection, row: EventRow) -> bool:
    """Apply one event's derived-table updates in a savepoint: a projection that fails (a bug,
    an odd payload) loses that view of the event, never the event, and never stops a replay.
    Live appends, rebuilds, upgrades and verify all go through here, so they agree."""
    ops = project_or_log(row)
    return ops is not None and _apply_ops(conn, row, ops)


def project_or_log(row: EventRow) -> list[Op] | None:
    """``project(row)``, or None (logged) when the projection itself fails on this row."""
    try:
        return project(row)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        _projection_failed(row, exc)
        return None


def _apply_ops(conn: sqlite3.Connection, row: EventRow, ops: list[Op]) -> bool:
    """Run one row's projection statements; a failing one undoes that row's, logged, False."""
    if len(ops) <= 1:
        # One statement is atomic on its own (SQLite undoes a failed statement and keeps the
        # transaction), so the savepoint's two extra round trips are skipped for most events.
        try:
            for sql, params in ops:
                conn.execute(sql, params)
        except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
            if not conn.in_transaction:
                raise  # disk full / I/O error rolled the whole transaction back: not a projection bug
            _projection_failed(row, exc)
            return False
        return True
    conn.execute("SAVEPOINT projection")
    try:
        for sql, params in ops:
            conn.execute(sql, params)
    except (sqlite3.Error, TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        conn.execute("ROLLBACK TO projection")
        conn.execute("RELEASE projection")
        _projection_failed(row, exc)
        return False
    conn.execute("RELEASE projection")
    return True


def _projection_failed(row: EventRow, exc: BaseException) -> None:
    log.error("journal.projection_failed", seq=row.seq, kind=row.kind, error=str(exc),
              fix="the event is kept; fix the projection, then run `rfqbot journal rebuild`")


_ROWS_PER_INSERT = 64  # well under SQLite's bound-variable (32766) and VALUES-list limits
_ONE_ROW_INSERT = re.compile(r"(INSERT INTO [^(]+\([^)]*\) VALUES )(\(\?(?:, ?\?)*\))(.*)", re.DOTALL)


@lru_cache(maxsize=64)
def _multi_row_sql(sql: str, rows: int) -> str | None:
    """``INSERT ... VALUES (?,..)[ ON CONFLICT ...]`` for ``rows`` rows, or None if ``sql`` is
    not a one-row INSERT of that shape."""
    shape = _ONE_ROW_INSERT.fullmatch(sql)
    if shape is None:
        return None
    head, marks, tail = shape.groups()
    return head + ",".join([marks] * rows) + tail


def insert_rows(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """``conn.executemany(sql, rows)`` for a one-row INSERT, written as multi-row INSERTs.

    SQLite applies a multi-row VALUES list one row at a time, in order, exactly as executemany
    would (an upsert sees the rows before it, in the same statement too). The difference is
    the GIL: Python's sqlite3 releases and re-takes it around every statement step, so
    executemany did once per row, and under a flood each of those handed the GIL to the stream
    thread and waited to get it back. Chunks are powers of two, so a few cached statements serve.
    """
    start, total = 0, len(rows)
    while start < total:
        size = min(_ROWS_PER_INSERT, total - start)
        size = 1 << (size.bit_length() - 1)  # largest power of two <= size
        multi = _multi_row_sql(sql, size) if size > 1 else None
        if multi is None:
            conn.executemany(sql, rows[start:])
            return
        conn.execute(multi, list(chain.from_iterable(rows[start:start + size])))
        start += size


def apply_deferred(conn: sqlite3.Connection, deferred: list[tuple[EventRow, list[Op]]]) -> None:
    """Apply several rows' projections in order, each run of one statement with one executemany.

    The same statements in the same order as ``_apply_ops`` row by row, so the derived tables
    end the same. If a statement fails, the whole lot is undone (savepoint) and applied again
    row by row, so only the failing row loses its view, as in the row-by-row path.
    """
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    for _, ops in deferred:
        for sql, params in ops:
            if runs and runs[-1][0] == sql:
                runs[-1][1].append(params)
            else:
                runs.append((sql, [params]))
    if not runs:
        return
    if len(runs) == 1 and len(runs[0][1]) == 1:  # one statement: atomic alone, no savepoint needed
        _apply_each(conn, deferred)
        return
    conn.execute("SAVEPOINT deferred_projections")
    try:
        for sql, many in runs:
            insert_rows(conn, sql, many)
    except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
        if not conn.in_transaction:
            raise  # disk full / I/O error rolled the whole transaction back: not a projection bug
        conn.execute("ROLLBACK TO deferred_projections")
        conn.execute("RELEASE deferred_projections")
        log.warning("journal.deferred_projection_retry", rows=len(deferred), error=str(exc))
        _apply_each(conn, deferred)
        return
    conn.execute("RELEASE deferred_projections")


def _apply_each(conn: sqlite3.Connection, deferred: list[tuple[EventRow, list[Op]]]) -> None:
    for row, ops in deferred:
        _apply_ops(conn, row, ops)
