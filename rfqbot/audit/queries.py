"""The read queries behind ``rfqbot journal list | show | tail | export``.

They return plain dicts (money stays the exact decimal TEXT the journal holds) so the CLI can
print a table for people or JSON for machines from the same rows.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from typing import Any, Callable, Iterable, Iterator, TextIO

from rfqbot.audit.views import FILLED_STATUSES, FINAL_STATUSES, TIMELINE_DETAIL, timeline_sql

Row = dict[str, Any]

# Exportable tables and views, with the time column --since filters on (None: no time filter).
EXPORTS: dict[str, str | None] = {
    "events": "local_ms", "rfqs": "first_ms", "quotes": "first_seen_ms", "transitions": "at_ms",
    "decisions": "at_ms", "venue_calls": "at_ms", "stream_sessions": "first_ms", "reference_prices": "at_ms",
    "fills": "created_ms", "rfq_timeline": "at_ms", "lp_performance": None, "daily_summary": None,
}
STATUS_GROUPS = {"open": "not final yet", "final": "any final status", "filled": "accepted, processing or successful"}


def rows(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[Row]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def list_rfqs(conn: sqlite3.Connection, *, status: str | None = None, pair: str | None = None,
              since_ms: int | None = None, limit: int | None = 100) -> list[Row]:
    """Own RFQs, newest first, with the accepted quote's LP and how many decisions were taken."""
    where, params = ["r.own = 1"], []
    if status:
        group = status.lower()
        if group == "open":
            where.append(f"(r.status IS NULL OR r.status NOT IN ({_marks(FINAL_STATUSES)}))")
            params += FINAL_STATUSES
        elif group == "final":
            where.append(f"r.status IN ({_marks(FINAL_STATUSES)})")
            params += FINAL_STATUSES
        elif group == "filled":
            where.append(f"r.status IN ({_marks(FILLED_STATUSES)})")
            params += FILLED_STATUSES
        else:
            where.append("r.status = ?")
            params.append(group)
    if pair:
        where.append("REPLACE(UPPER(r.pair), '/', '') = ?")
        params.append(pair.upper().replace("/", "").replace("-", ""))
    if since_ms is not None:
        where.append("r.first_ms >= ?")
        params.append(since_ms)
    sql = ("SELECT r.rfq_id, r.first_ms AS created_ms, r.pair, r.side, r.buy_ccy, r.buy_amount, r.sell_ccy, "
           "r.sell_amount, r.mode, r.status, r.accept_state, r.accepted_quote_id, r.price, "
           "(SELECT q.lp_name FROM quotes q WHERE q.quote_id = r.accepted_quote_id) AS lp_name, "
           "r.client_order_id, r.updated_ms, "
           "(SELECT COUNT(*) FROM decisions d WHERE d.rfq_id = r.rfq_id) AS decisions "
           f"FROM rfqs r WHERE {' AND '.join(where)} ORDER BY r.first_ms DESC, r.rfq_id DESC")
    if limit:
        sql += f" LIMIT {int(limit)}"
    return rows(conn, sql, params)


def find_rfq(conn: sqlite3.Connection, ident: str) -> Row | None:
    """An RFQ by venue id, or by the client order id rfqbot gave it."""
    for column in ("rfq_id", "client_order_id"):
        found = rows(conn, f"SELECT * FROM rfqs WHERE {column} = ? ORDER BY last_seq DESC LIMIT 1", (ident,))
        if found:
            return found[0]
    return None


def rfq_detail(conn: sqlite3.Connection, rfq: Row) -> Row:
    """Everything about one RFQ: timeline (relative ms), quotes, decisions with verdicts, venue calls."""
    rfq_id = rfq["rfq_id"]
    timeline = rows(conn, timeline_sql(one_rfq=True), {"rfq_id": rfq_id})
    for item in timeline:
        item.pop("payload", None)
    quotes = rows(conn, "SELECT quote_id, lp_name, price, rank, mode, manual, buy_amount, sell_amount, "
                        "submitted_ms, expires_ms, first_seen_ms, last_seen_ms, source FROM quotes "
                        "WHERE rfq_id = ? ORDER BY first_seen_ms, quote_id", (rfq_id,))
    decisions = rows(conn, "SELECT d.seq, d.at_ms, d.final, d.action, d.quote_id, d.lp_name, d.price, d.reason, "
                           "d.blocked_by, d.latency_ms, d.verdicts, d.result_outcome, d.result_seq, "
                           "json_extract(e.payload, '$.trigger') AS trigger FROM decisions d "
                           "JOIN events e ON e.seq = d.seq WHERE d.rfq_id = ? ORDER BY d.seq", (rfq_id,))
    for decision in decisions:
        decision["verdicts"] = json.loads(decision["verdicts"] or "[]")
    calls = rows(conn, "SELECT seq, at_ms, method, endpoint, params, http_status, venue_code, duration_ms, outcome, "
                       "error FROM venue_calls WHERE rfq_id = ? OR (rfq_id IS NULL AND client_order_id = ?) "
                       "ORDER BY seq", (rfq_id, rfq.get("client_order_id") or "\x00"))
    for call in calls:
        call["params"] = json.loads(call["params"] or "{}")
    start = timeline[0]["at_ms"] if timeline else None
    for call in calls:
        call["rel_ms"] = None if start is None else call["at_ms"] - start
    for decision in decisions:
        event_ms = next((t["at_ms"] for t in timeline if t["seq"] == decision["seq"]), None)
        decision["rel_ms"] = None if start is None or event_ms is None else event_ms - start
    return {"rfq": rfq, "timeline": timeline, "quotes": quotes, "decisions": decisions, "venue_calls": calls}


_EVENT_COLUMNS = f"seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, {TIMELINE_DETAIL} AS detail, payload"


def events_after(conn: sqlite3.Connection, after_seq: int, limit: int = 500) -> list[Row]:
    """Events with seq > ``after_seq`` in order, with the one-line detail the timeline uses."""
    return rows(conn, f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))


def last_events(conn: sqlite3.Connection, count: int) -> list[Row]:
    """The last ``count`` events, oldest first."""
    recent = rows(conn, f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?", (max(count, 0),))
    recent.reverse()
    return recent


def follow(conn: sqlite3.Connection, after_seq: int, emit: Callable[[list[Row]], None], *,
           should_stop: Callable[[], bool], sleep: Callable[[float], None], poll_s: float = 0.5) -> int:
    """Poll for events after ``after_seq`` until ``should_stop()``; returns the last seq emitted.

    Polling by seq on the read-only connection never takes a lock the writer waits for; each
    poll is its own read of the latest commit, so nothing committed is skipped or repeated.
    """
    last = after_seq
    while not should_stop():
        batch = events_after(conn, last)
        if batch:
            emit(batch)
            last = batch[-1]["seq"]
            if len(batch) == 500:
                continue  # more waiting: drain before sleeping
        sleep(poll_s)
    return last


def export_rows(conn: sqlite3.Connection, table: str, since_ms: int | None = None) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """Column names and a row iterator for a table or view (``EXPORTS``), oldest first."""
    if table not in EXPORTS:
        raise ValueError(f"cannot export {table!r}; choose one of {', '.join(EXPORTS)}")
    column = EXPORTS[table]
    if since_ms is not None and column is None:
        raise ValueError(f"--since does not apply to {table} (it has no time column); leave it out")
    where = f" WHERE {column} >= ?" if since_ms is not None else ""
    order = f" ORDER BY {column}" if column else ""
    if table == "rfq_timeline":
        order = " ORDER BY at_ms, seq"
    elif table == "events":
        order = " ORDER BY seq"
    cursor = conn.execute(f"SELECT * FROM {table}{where}{order}", (since_ms,) if since_ms is not None else ())
    return [d[0] for d in cursor.description], iter(cursor)


def write_csv(out: TextIO, names: list[str], data: Iterable[tuple[Any, ...]]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    count = 0
    for record in data:
        writer.writerow(["" if v is None else v for v in record])
        count += 1
    return count


def write_jsonl(out: TextIO, names: list[str], data: Iterable[tuple[Any, ...]]) -> int:
    """One JSON object per line. ``payload`` (canonical JSON in the journal) is embedded as the
    object it is, byte for byte, so exported events re-hash to the journal's chain."""
    count = 0
    for record in data:
        parts = []
        for name, value in zip(names, record):
            text = value if name == "payload" and isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            parts.append(f"{json.dumps(name)}:{text}")
        out.write("{" + ",".join(parts) + "}\n")
        count += 1
    return count


def _marks(values: Iterable[Any]) -> str:
    return ", ".join("?" for _ in values)
