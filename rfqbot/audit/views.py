"""SQL views for the common audits, created by the schema-v2 migration.

Views hold no data: they are queries over ``events`` and the derived tables, so they are always
current and need no rebuild. They deliberately do no money arithmetic: prices and amounts stay
the exact decimal TEXT the journal stores (SQLite would turn them into binary floats);
``rfqbot journal stats`` computes ratios and price differences with Python's Decimal.

``TIMELINE_DETAIL`` is one human line per event kind; ``rfqbot journal show`` uses the same
expression, so the CLI and a datasette user read the same words.
"""

from __future__ import annotations

import sqlite3

from rfqbot.records import ACCEPT_TOOK_STATUSES, RfqStatus

# The status words as the journal stores them (RfqStatus values); finality is the records' rule.
FINAL_STATUSES = tuple(s.value for s in RfqStatus if s.is_final)
FILLED_STATUSES = tuple(s.value for s in RfqStatus if s in ACCEPT_TOOK_STATUSES)  # accepted, processing, successful

_J = "json_extract(payload, '{}')"


def _j(path: str) -> str:
    return _J.format(path)


TIMELINE_DETAIL = f"""CASE kind
    WHEN 'rfq.transition' THEN COALESCE({_j('$.from')}, '(first seen)') || ' -> ' || {_j('$.to')}
        || COALESCE(' [' || {_j('$.cause')} || ']', '')
    WHEN 'decision' THEN {_j('$.action')} || COALESCE(' ' || quote_id, '') || COALESCE(' at ' || {_j('$.price')}, '')
        || COALESCE(' (blocked by ' || {_j('$.blocked_by')} || ')', '') || ': ' || COALESCE({_j('$.reason')}, '')
    WHEN 'decision.skipped' THEN 'no decision: ' || COALESCE({_j('$.reason')}, '')
    WHEN 'accept.result' THEN {_j('$.action')} || ' ' || COALESCE(quote_id, '?') || ' -> ' || {_j('$.outcome')}
        || COALESCE(' (venue status ' || {_j('$.status_raw')} || ')', '')
        || COALESCE(' code ' || {_j('$.venue_code')}, '') || COALESCE(': ' || NULLIF({_j('$.message')}, ''), '')
    WHEN 'frame.best_quotes' THEN json_array_length(payload, '$.quotes') || ' quote(s) on bestQuote, best '
        || COALESCE({_j('$.quotes[0].price')}, '?') || ' from ' || COALESCE({_j('$.quotes[0].lp_name')}, '?')
    WHEN 'reconcile.active_quotes' THEN json_array_length(payload, '$.quotes') || ' active quote(s) (REST)'
    WHEN 'frame.public_quote' THEN 'public quote ' || COALESCE(quote_id, '?') || ' at '
        || COALESCE({_j('$.quote.price')}, '?')
    WHEN 'frame.public_rfq' THEN 'public rfqs push'
    WHEN 'frame.rfq_update' THEN 'rfqUpdates: ' || COALESCE({_j('$.rfq.status_raw')}, '?')
        || COALESCE(' quote ' || {_j('$.rfq.quote_id')}, '')
    WHEN 'rfq.reconciled' THEN 'venue says (' || COALESCE({_j('$.source')}, '?') || '): '
        || COALESCE({_j('$.rfq.status_raw')}, '?')
    WHEN 'rfq.unknown_status' THEN 'unknown status word ' || COALESCE({_j('$.status_raw')}, '?') || ' (state kept)'
    WHEN 'rfq.state' THEN COALESCE({_j('$.cause')}, 'state update')
    WHEN 'create.requested' THEN 'create: buy ' || {_j('$.command.buy_ccy')} || ' selling '
        || {_j('$.command.sell_amount')} || ' ' || {_j('$.command.sell_ccy')}
        || ' (' || {_j('$.command.client_order_id')} || ')'
    WHEN 'venue.call' THEN {_j('$.method')} || ' ' || {_j('$.endpoint')} || ' -> '
        || COALESCE({_j('$.http_status')}, '-') || ' ' || COALESCE({_j('$.outcome')}, '?')
        || COALESCE(' code ' || {_j('$.venue_code')}, '') || COALESCE(': ' || NULLIF({_j('$.error')}, ''), '')
        || ' (' || COALESCE({_j('$.duration_ms')}, '?') || ' ms)'
    ELSE NULL END"""



def timeline_items(one_rfq: bool = False) -> str:
    """Events about RFQs: rows tagged with the RFQ's id, the REST calls that name it (by rfqId,
    or by its client order id for create-rfq), and the create request that led to it. With
    ``one_rfq`` each branch is filtered by the ``:rfq_id`` parameter (fast: uses the indexes)."""
    e_only = "AND e.rfq_id = :rfq_id" if one_rfq else ""
    r_only = "AND r.rfq_id = :rfq_id" if one_rfq else ""
    return f"""
    SELECT e.rfq_id, e.seq, e.local_ms, e.venue_ms, e.source, e.kind, e.quote_id, e.payload
      FROM events e WHERE e.rfq_id IS NOT NULL {e_only}
    UNION ALL
    SELECT r.rfq_id, e.seq, e.local_ms, e.venue_ms, e.source, e.kind, e.quote_id, e.payload
      FROM rfqs r JOIN venue_calls v ON v.rfq_id = r.rfq_id
      JOIN events e ON e.seq = v.seq AND e.rfq_id IS NULL WHERE 1 = 1 {r_only}
    UNION ALL
    SELECT r.rfq_id, e.seq, e.local_ms, e.venue_ms, e.source, e.kind, e.quote_id, e.payload
      FROM rfqs r JOIN venue_calls v ON v.rfq_id IS NULL AND v.client_order_id = r.client_order_id
      JOIN events e ON e.seq = v.seq AND e.rfq_id IS NULL WHERE 1 = 1 {r_only}
    UNION ALL
    SELECT r.rfq_id, e.seq, e.local_ms, e.venue_ms, e.source, e.kind, e.quote_id, e.payload
      FROM rfqs r JOIN events e ON e.kind = 'create.requested' AND e.rfq_id IS NULL
       AND json_extract(e.payload, '$.command.client_order_id') = r.client_order_id WHERE 1 = 1 {r_only}"""


def timeline_sql(one_rfq: bool = False) -> str:
    """The timeline query: every item with its time relative to the RFQ's first item."""
    return f"""SELECT rfq_id, seq, local_ms AS at_ms, local_ms - MIN(local_ms) OVER (PARTITION BY rfq_id) AS rel_ms,
               venue_ms, source, kind, quote_id, {TIMELINE_DETAIL} AS detail, payload
          FROM ({timeline_items(one_rfq)}) ORDER BY rfq_id, seq"""

_FINAL = ", ".join(f"'{s}'" for s in FINAL_STATUSES)
_FILLED = ", ".join(f"'{s}'" for s in FILLED_STATUSES)

VIEWS: dict[str, str] = {
    "rfq_timeline": f"CREATE VIEW rfq_timeline AS {timeline_sql()}",
    "fills": f"""CREATE VIEW fills AS
        SELECT r.rfq_id, r.pair, r.side, r.status, r.accepted_quote_id AS quote_id,
               COALESCE(d.lp_name, q.lp_name) AS lp_name, COALESCE(r.price, d.price, q.price) AS price,
               r.buy_ccy, COALESCE(q.buy_amount, r.buy_amount) AS buy_amount,
               r.sell_ccy, COALESCE(q.sell_amount, r.sell_amount) AS sell_amount,
               r.first_ms AS created_ms, d.seq AS decision_seq, d.at_ms AS decided_ms,
               d.latency_ms AS decision_latency_ms, re.local_ms - de.local_ms AS accept_latency_ms,
               d.result_outcome AS accept_outcome, d.seq IS NOT NULL AS by_rfqbot,
               (SELECT rp.price FROM reference_prices rp WHERE rp.pair = r.pair
                   AND rp.seq <= COALESCE(d.seq, r.last_seq) ORDER BY rp.seq DESC LIMIT 1) AS reference_price,
               (SELECT rp.at_ms FROM reference_prices rp WHERE rp.pair = r.pair
                   AND rp.seq <= COALESCE(d.seq, r.last_seq) ORDER BY rp.seq DESC LIMIT 1) AS reference_ms
          FROM rfqs r
          LEFT JOIN decisions d ON d.seq = (SELECT MAX(x.seq) FROM decisions x WHERE x.rfq_id = r.rfq_id
                                            AND x.action = 'accept' AND x.quote_id = r.accepted_quote_id)
          LEFT JOIN quotes q ON q.quote_id = r.accepted_quote_id
          LEFT JOIN events de ON de.seq = d.seq
          LEFT JOIN events re ON re.seq = d.result_seq
         WHERE r.own = 1 AND r.accepted_quote_id IS NOT NULL AND r.status IN ({_FILLED})""",
    "lp_performance": """CREATE VIEW lp_performance AS
        SELECT q.lp_name, COUNT(*) AS quotes, COUNT(DISTINCT q.rfq_id) AS rfqs_quoted,
               SUM(q.rank = 1) AS ranked_best,
               (SELECT COUNT(*) FROM fills f WHERE f.lp_name = q.lp_name) AS fills,
               MIN(q.first_seen_ms) AS first_seen_ms, MAX(q.last_seen_ms) AS last_seen_ms
          FROM quotes q WHERE q.lp_name IS NOT NULL GROUP BY q.lp_name""",
    "daily_summary": f"""CREATE VIEW daily_summary AS
        WITH e AS (SELECT date(local_ms / 1000, 'unixepoch') AS day, COUNT(*) AS events,
                          SUM(kind = 'frame.rejected') AS rejected_frames FROM events GROUP BY 1),
             r AS (SELECT date(first_ms / 1000, 'unixepoch') AS day, COUNT(*) AS rfqs,
                          SUM(status = 'successful') AS successful, SUM(status = 'expired') AS expired,
                          SUM(status IN ('cancelled', 'declined', 'failed')) AS other_final,
                          SUM(status IS NULL OR status NOT IN ({_FINAL})) AS still_open
                     FROM rfqs WHERE own = 1 GROUP BY 1),
             d AS (SELECT date(at_ms / 1000, 'unixepoch') AS day, COUNT(*) AS decisions,
                          SUM(action = 'accept') AS accepts_sent,
                          SUM(action = 'accept' AND result_outcome = 'accepted') AS accepts_confirmed,
                          SUM(action = 'accept' AND result_outcome = 'rejected') AS accepts_refused,
                          SUM(action = 'accept' AND (result_outcome IS NULL OR result_outcome = 'unknown'))
                              AS accepts_in_doubt,
                          SUM(action = 'blocked') AS blocked_by_risk FROM decisions GROUP BY 1),
             v AS (SELECT date(at_ms / 1000, 'unixepoch') AS day, COUNT(*) AS venue_calls,
                          SUM(outcome IS NOT 'ok') AS venue_errors FROM venue_calls GROUP BY 1)
        SELECT e.day, COALESCE(r.rfqs, 0) AS rfqs, COALESCE(r.successful, 0) AS successful,
               COALESCE(r.expired, 0) AS expired, COALESCE(r.other_final, 0) AS other_final,
               COALESCE(r.still_open, 0) AS still_open, COALESCE(d.decisions, 0) AS decisions,
               COALESCE(d.accepts_sent, 0) AS accepts_sent, COALESCE(d.accepts_confirmed, 0) AS accepts_confirmed,
               COALESCE(d.accepts_refused, 0) AS accepts_refused, COALESCE(d.accepts_in_doubt, 0) AS accepts_in_doubt,
               COALESCE(d.blocked_by_risk, 0) AS blocked_by_risk, COALESCE(v.venue_calls, 0) AS venue_calls,
               COALESCE(v.venue_errors, 0) AS venue_errors, e.rejected_frames, e.events
          FROM e LEFT JOIN r USING (day) LEFT JOIN d USING (day) LEFT JOIN v USING (day)""",
}


def create_views(conn: sqlite3.Connection) -> None:
    """(Re)create every view: views are code, so a migration may simply replace them."""
    for name, sql in VIEWS.items():
        conn.execute(f"DROP VIEW IF EXISTS {name}")
        conn.execute(sql)
