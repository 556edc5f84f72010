"""Derived tables of the journal, as a pure function of one event row.

The ``events`` table is the truth; ``rfqs``, ``quotes``, ``transitions``, ``decisions``,
``venue_calls`` and ``stream_sessions`` are views of it kept up to date in the same
transaction. ``project(row)`` returns the SQL to apply for one row and reads nothing else, so
the derived tables can always be dropped and rebuilt by replaying ``events`` in ``seq`` order
(``Journal.rebuild_projections``), and a bug here can never lose an event.

Money columns are TEXT holding the exact Decimal string: SQLite's REAL is binary floating point.
"""

from __future__ import annotations

import json
from collections.abc import Mapping  # not typing.Mapping: its isinstance goes through typing's hooks (slow)
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

# Event kinds with a projection. The engine writes these; anything else lives in events only.
KIND_TRANSITION = "rfq.transition"
KIND_RFQ_STATE = "rfq.state"
KIND_DECISION = "decision"
KIND_ACCEPT_RESULT = "accept.result"
KIND_BEST_QUOTES = "frame.best_quotes"
KIND_PUBLIC_QUOTE = "frame.public_quote"
KIND_ACTIVE_QUOTES = "reconcile.active_quotes"
KIND_VENUE_CALL = "venue.call"
KIND_STREAM = "stream.status"
KIND_SPOT = "frame.spot"
KIND_CHECKPOINT = "journal.checkpoint"  # written by prune; stands for the pruned prefix, projects nothing

# REST paths that carry the RFQ id as their last segment (no rfqId parameter).
RFQ_ID_PATHS = ("/api/v1/market-place/rfq-active/",)

DERIVED_TABLES = ("rfqs", "quotes", "transitions", "decisions", "venue_calls", "stream_sessions",
                  "reference_prices")

SCHEMA_V1 = [
    """CREATE TABLE rfqs (
        rfq_id TEXT PRIMARY KEY, pair TEXT, side TEXT, buy_ccy TEXT, sell_ccy TEXT,
        buy_amount TEXT, sell_amount TEXT, mode TEXT, status TEXT, status_raw TEXT,
        accept_state TEXT, accepted_quote_id TEXT, price TEXT, client_order_id TEXT,
        expires_ms INTEGER, created_ms INTEGER, updated_ms INTEGER, own INTEGER NOT NULL DEFAULT 0,
        last_seq INTEGER)""",
    """CREATE TABLE quotes (
        quote_id TEXT PRIMARY KEY, rfq_id TEXT, lp_name TEXT, price TEXT, rank INTEGER, mode TEXT,
        manual INTEGER, buy_amount TEXT, sell_amount TEXT, submitted_ms INTEGER, expires_ms INTEGER,
        first_seen_ms INTEGER, last_seen_ms INTEGER, source TEXT, last_seq INTEGER)""",
    """CREATE TABLE transitions (
        seq INTEGER PRIMARY KEY, rfq_id TEXT NOT NULL, from_status TEXT, to_status TEXT NOT NULL,
        status_raw TEXT, at_ms INTEGER NOT NULL, cause TEXT)""",
    """CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY, rfq_id TEXT NOT NULL, quote_id TEXT, at_ms INTEGER NOT NULL,
        verdicts TEXT NOT NULL, final TEXT NOT NULL, action TEXT NOT NULL, reason TEXT, price TEXT,
        amounts TEXT, latency_ms INTEGER, blocked_by TEXT, result_outcome TEXT, result_seq INTEGER)""",
    """CREATE TABLE venue_calls (
        seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, method TEXT, endpoint TEXT, params TEXT,
        http_status INTEGER, venue_code TEXT, duration_ms TEXT, outcome TEXT, error TEXT)""",
    """CREATE TABLE stream_sessions (
        stream TEXT NOT NULL, session INTEGER NOT NULL, first_ms INTEGER, last_ms INTEGER, state TEXT,
        detail TEXT, connected_ms INTEGER, closed_ms INTEGER, last_seq INTEGER,
        PRIMARY KEY (stream, session))""",
    "CREATE INDEX idx_quotes_rfq ON quotes(rfq_id)",
    "CREATE INDEX idx_transitions_rfq ON transitions(rfq_id, at_ms)",
    "CREATE INDEX idx_decisions_rfq ON decisions(rfq_id)",
    "CREATE INDEX idx_decisions_quote ON decisions(quote_id)",
    "CREATE INDEX idx_decisions_time ON decisions(at_ms)",
    "CREATE INDEX idx_rfqs_status ON rfqs(own, status)",
    "CREATE INDEX idx_venue_calls_time ON venue_calls(at_ms)",
]

# Version 2: what the audits need. Added columns are filled by replaying ``events`` (the
# migration rebuilds every derived table), so an upgraded journal equals a fresh one.
SCHEMA_V2 = [
    "ALTER TABLE rfqs ADD COLUMN first_ms INTEGER",     # local time of the first event about it
    "ALTER TABLE rfqs ADD COLUMN first_seq INTEGER",
    "ALTER TABLE decisions ADD COLUMN lp_name TEXT",    # LP of the chosen quote
    "ALTER TABLE venue_calls ADD COLUMN rfq_id TEXT",   # from the call's rfqId parameter
    "ALTER TABLE venue_calls ADD COLUMN client_order_id TEXT",  # from rfqClOrderId (create-rfq)
    """CREATE TABLE reference_prices (
        seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, pair TEXT NOT NULL, price TEXT NOT NULL, source TEXT)""",
    "CREATE INDEX idx_reference_prices_pair ON reference_prices(pair, seq)",
    "CREATE INDEX idx_rfqs_first ON rfqs(first_ms)",
    "CREATE INDEX idx_rfqs_client ON rfqs(client_order_id)",
    "CREATE INDEX idx_quotes_lp ON quotes(lp_name)",
    "CREATE INDEX idx_transitions_time ON transitions(at_ms)",
    "CREATE INDEX idx_venue_calls_rfq ON venue_calls(rfq_id)",
    "CREATE INDEX idx_venue_calls_client ON venue_calls(client_order_id)",
    "CREATE INDEX idx_events_venue_time ON events(venue_ms)",
]


@dataclass(frozen=True, slots=True)
class EventRow:
    """One ``events`` row with its payload parsed (Decimals are strings in the payload)."""

    seq: int
    local_ms: int
    venue_ms: int | None
    source: str
    kind: str
    rfq_id: str | None
    quote_id: str | None
    payload: Mapping[str, Any]


Op = tuple[str, tuple[Any, ...]]

_RFQ_COLUMNS = ("pair", "side", "buy_ccy", "sell_ccy", "buy_amount", "sell_amount", "mode", "status",
                "status_raw", "accept_state", "accepted_quote_id", "price", "client_order_id", "expires_ms",
                "created_ms", "updated_ms", "own")
_QUOTE_COLUMNS = ("rfq_id", "lp_name", "price", "rank", "mode", "manual", "buy_amount", "sell_amount",
                  "submitted_ms", "expires_ms")


def project(row: EventRow) -> list[Op]:
    """The SQL statements that bring the derived tables up to date with ``row``."""
    ops: list[Op] = []
    p = row.payload
    snapshot = p.get("rfq_state")
    if snapshot is not None and isinstance(snapshot, Mapping) and snapshot.get("rfq_id"):
        ops.append(_upsert_rfq(snapshot, row))
    if row.kind == KIND_TRANSITION:
        ops.append(("INSERT INTO transitions (seq, rfq_id, from_status, to_status, status_raw, at_ms, cause) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (row.seq, row.rfq_id, p.get("from"), p.get("to"), p.get("status_raw"),
                     p.get("at_ms", row.local_ms), p.get("cause"))))
    elif row.kind == KIND_DECISION:
        ops.append(("INSERT INTO decisions (seq, rfq_id, quote_id, at_ms, verdicts, final, action, reason, "
                    "price, amounts, latency_ms, blocked_by, lp_name) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (row.seq, row.rfq_id, row.quote_id, p.get("at_ms", row.local_ms),
                     _json(p.get("verdicts", [])), p.get("final"), p.get("action"), p.get("reason"),
                     p.get("price"), _json(p.get("amounts")) if p.get("amounts") is not None else None,
                     p.get("latency_ms"), p.get("blocked_by"), p.get("lp_name"))))
    elif row.kind == KIND_ACCEPT_RESULT and p.get("decision_seq") is not None:
        ops.append(("UPDATE decisions SET result_outcome = ?, result_seq = ? WHERE seq = ?",
                    (p.get("outcome"), row.seq, p.get("decision_seq"))))
    elif row.kind in (KIND_BEST_QUOTES, KIND_ACTIVE_QUOTES):
        for quote in p.get("quotes", []):
            if isinstance(quote, Mapping):
                ops.append(_upsert_quote(quote, row, "private" if row.kind == KIND_BEST_QUOTES else "rfq-active"))
    elif row.kind == KIND_PUBLIC_QUOTE and isinstance(p.get("quote"), Mapping):
        ops.append(_upsert_quote(p["quote"], row, "public"))
    elif row.kind == KIND_VENUE_CALL:
        params = p.get("params") if isinstance(p.get("params"), Mapping) else {}
        ops.append(("INSERT INTO venue_calls (seq, at_ms, method, endpoint, params, http_status, venue_code, "
                    "duration_ms, outcome, error, rfq_id, client_order_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (row.seq, row.local_ms, p.get("method"), p.get("endpoint"), _json(p.get("params", {})),
                     p.get("http_status"), p.get("venue_code"), _text(p.get("duration_ms")), p.get("outcome"),
                     p.get("error"), row.rfq_id or _text(params.get("rfqId")) or _rfq_id_from_path(p.get("endpoint")),
                     _text(params.get("rfqClOrderId")))))
    elif row.kind == KIND_SPOT and p.get("pair") and p.get("price") is not None:
        ops.append(("INSERT INTO reference_prices (seq, at_ms, pair, price, source) VALUES (?,?,?,?,?)",
                    (row.seq, row.venue_ms if row.venue_ms is not None else row.local_ms, p["pair"],
                     _text(p["price"]), f"spot.{p.get('topic')}" if p.get("topic") else "spot")))
    elif row.kind == KIND_STREAM:
        ops.append(_upsert_session(p, row))
    return ops


_UPSERT_RFQ = ("INSERT INTO rfqs ({}) VALUES ({}) ON CONFLICT(rfq_id) DO UPDATE SET {}".format(
    ", ".join(("rfq_id",) + _RFQ_COLUMNS + ("last_seq", "first_ms", "first_seq")),
    ", ".join("?" * (len(_RFQ_COLUMNS) + 4)),
    ", ".join(f"{c} = excluded.{c}" for c in _RFQ_COLUMNS + ("last_seq",))))


def _upsert_rfq(s: Mapping[str, Any], row: EventRow) -> Op:
    """Latest snapshot wins; ``first_ms``/``first_seq`` are set by the first one only."""
    values = tuple(_text(s.get(c)) if c in ("buy_amount", "sell_amount", "price") else s.get(c)
                   for c in _RFQ_COLUMNS)
    values = values[:-1] + (1 if s.get("own") else 0,)
    return (_UPSERT_RFQ, (s["rfq_id"],) + values + (row.seq, row.local_ms, row.seq))


# Fields whose "not said" is not NULL: the decoder's default mode is 'unknown', and ``manual``
# is a flag that, once seen set, stays set (a source that does not carry it says false).
_QUOTE_MERGE = {"mode": "mode = COALESCE(NULLIF(excluded.mode, 'unknown'), quotes.mode)",
                "manual": "manual = MAX(COALESCE(excluded.manual, 0), COALESCE(quotes.manual, 0))"}


_UPSERT_QUOTE = ("INSERT INTO quotes ({}) VALUES ({}) ON CONFLICT(quote_id) DO UPDATE SET {}".format(
    ", ".join(("quote_id",) + _QUOTE_COLUMNS + ("first_seen_ms", "last_seen_ms", "source", "last_seq")),
    ", ".join("?" * (len(_QUOTE_COLUMNS) + 5)),
    ", ".join([_QUOTE_MERGE.get(c, f"{c} = COALESCE(excluded.{c}, quotes.{c})") for c in _QUOTE_COLUMNS]
              + [f"{c} = excluded.{c}" for c in ("last_seen_ms", "source", "last_seq")])))
_QUOTE_MONEY = frozenset({"price", "buy_amount", "sell_amount"})


def _upsert_quote(q: Mapping[str, Any], row: EventRow, source: str) -> Op:
    """Latest source wins for what it says; what it leaves out (None) keeps the earlier value.

    Sources differ in what they carry: bestQuote has the LP, rank and submit time, REST
    rfq-active has none of them, a public quote has no LP. A later, poorer sighting must not
    erase what an earlier one told us (v2 did: quotes reconciled over REST lost their LP).
    The statement is the same for every quote (one SQL text: ``Journal`` batches public ones).
    """
    get = q.get
    values = [_text(get(c)) if c in _QUOTE_MONEY else get(c) for c in _QUOTE_COLUMNS]
    values[5] = 1 if get("manual") else 0
    return (_UPSERT_QUOTE, (get("quote_id"), *values, row.local_ms, row.local_ms, source, row.seq))


def _rfq_id_from_path(endpoint: Any) -> str | None:
    """The RFQ id of a call like ``GET /api/v1/market-place/rfq-active/{rfqId}`` (percent-decoded)."""
    if not isinstance(endpoint, str):
        return None
    for prefix in RFQ_ID_PATHS:
        if endpoint.startswith(prefix):
            tail = endpoint[len(prefix):].split("?", 1)[0]
            return unquote(tail) or None
    return None


def _upsert_session(p: Mapping[str, Any], row: EventRow) -> Op:
    state = p.get("state")
    connected = row.local_ms if state in ("connected", "subscribed") else None
    closed = row.local_ms if state in ("closed", "stale", "stopped") else None
    return ("INSERT INTO stream_sessions (stream, session, first_ms, last_ms, state, detail, connected_ms, "
            "closed_ms, last_seq) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(stream, session) DO UPDATE SET "
            "last_ms = excluded.last_ms, state = excluded.state, detail = excluded.detail, "
            "connected_ms = COALESCE(stream_sessions.connected_ms, excluded.connected_ms), "
            "closed_ms = COALESCE(excluded.closed_ms, stream_sessions.closed_ms), last_seq = excluded.last_seq",
            (p.get("stream"), p.get("session", 0), row.local_ms, row.local_ms, state, p.get("detail"),
             connected, closed, row.seq))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
