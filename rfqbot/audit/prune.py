"""``rfqbot journal prune --before DATE``: drop old events, keep the chain verifiable.

The pruned prefix of ``events`` is replaced by one checkpoint row (kind ``journal.checkpoint``)
that takes the seq and the hash of the last pruned row, so the first kept row still links to it,
and whose payload carries what was pruned: the seq range, how many events, and a digest over
their hashes (``d = sha256(d | hash)`` in seq order, continuing the digest of an earlier
checkpoint), sealed by ``checkpoint_seal``. Anyone who archived the pruned rows (``journal export``
first) can recompute the digest and show the archive is exactly what was pruned.

What is never pruned, whatever the date:
- any event of an RFQ that has an event after the cut (an RFQ's story is never split);
- any RFQ that is not final, or has an accept outstanding or in doubt (restart recovery needs it);
- the last 24 hours (the risk limits re-count the last day's accepts from the journal).
Derived tables are rebuilt from the kept events in the same transaction.

Pruning writes, so it needs the journal's writer lock: it is refused while the daemon runs.
``plan`` (what ``--dry-run`` shows) only reads and works on a read-only connection at any time.
"""

from __future__ import annotations

from rfqbot.clock import DAY_MS

import hashlib
import json
import sqlite3
from dataclasses import dataclass

from rfqbot.audit.views import FINAL_STATUSES
from rfqbot.journal.store import Journal, JournalError, canonical_json, checkpoint_seal, replay_events
from rfqbot.journal.projections import KIND_CHECKPOINT



@dataclass(frozen=True)
class PrunePlan:
    before_ms: int
    first_seq: int | None       # first event that would go (None: nothing to prune)
    last_seq: int | None        # last event that would go (the checkpoint takes its seq)
    events: int                 # events pruned (not counting an earlier checkpoint)
    rfqs: int                   # RFQs whose whole history goes
    held_back_by: str | None    # why the cut is earlier than the date, if it is


def plan_prune(conn: sqlite3.Connection, before_ms: int) -> PrunePlan:
    """Where the cut falls for ``before_ms`` (reads only)."""
    first = conn.execute("SELECT seq, kind FROM events ORDER BY seq LIMIT 1").fetchone()
    if first is None:
        return PrunePlan(before_ms, None, None, 0, 0, None)
    after = conn.execute("SELECT MIN(seq) FROM events WHERE local_ms >= ?", (before_ms,)).fetchone()[0]
    last = (after - 1) if after is not None else conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    held = None
    spanning = conn.execute(
        "SELECT MIN(first_seq) FROM (SELECT MIN(seq) AS first_seq FROM events WHERE rfq_id IS NOT NULL "
        "GROUP BY rfq_id HAVING MAX(seq) > ?)", (last,)).fetchone()[0]
    if spanning is not None and spanning - 1 < last:
        last, held = spanning - 1, "an RFQ with events after the date keeps its whole history"
    finals = ", ".join("?" * len(FINAL_STATUSES))
    open_first = conn.execute(
        f"SELECT MIN(e.seq) FROM rfqs r JOIN events e ON e.rfq_id = r.rfq_id WHERE r.status IS NULL OR "
        f"r.status NOT IN ({finals}) OR r.accept_state IN ('outstanding', 'unknown')", FINAL_STATUSES).fetchone()[0]
    if open_first is not None and open_first - 1 < last:
        last, held = open_first - 1, "an RFQ still open (or with an accept in doubt) is kept"
    start = first[0] + 1 if first[1] == KIND_CHECKPOINT else first[0]
    if last < start:
        return PrunePlan(before_ms, None, None, 0, 0, held)
    count = conn.execute("SELECT COUNT(*) FROM events WHERE seq BETWEEN ? AND ?", (start, last)).fetchone()[0]
    rfqs = conn.execute("SELECT COUNT(DISTINCT rfq_id) FROM events WHERE seq BETWEEN ? AND ? AND rfq_id IS NOT NULL",
                        (start, last)).fetchone()[0]
    return PrunePlan(before_ms, start, last, count, rfqs, held)


def _check_cut(before_ms: int, now_ms: int) -> None:
    if before_ms > now_ms - DAY_MS:
        raise JournalError("prune keeps the last 24 hours (risk limits re-count the last day's accepts from "
                           "the journal); choose --before at least a day ago")


def plan(conn: sqlite3.Connection, before_ms: int, *, now_ms: int) -> PrunePlan:
    """What ``prune`` would do now, from a read-only connection (one snapshot); changes nothing."""
    _check_cut(before_ms, now_ms)
    in_txn = conn.in_transaction
    if not in_txn:
        conn.execute("BEGIN")
    try:
        return plan_prune(conn, before_ms)
    finally:
        if not in_txn:
            conn.execute("ROLLBACK")


def prune(journal: Journal, before_ms: int, *, now_ms: int, dry_run: bool = False) -> PrunePlan:
    """Prune events before ``before_ms`` (see the module doc); returns what was (or would be) pruned."""
    _check_cut(before_ms, now_ms)
    with journal.write_transaction() as conn:
        plan = plan_prune(conn, before_ms)
        if dry_run or plan.last_seq is None:
            return plan
        rows = conn.execute("SELECT seq, local_ms, kind, payload, prev_hash, hash FROM events WHERE seq <= ? "
                            "ORDER BY seq", (plan.last_seq,)).fetchall()
        digest, pruned_from, total = "", rows[0][0], 0
        if rows[0][2] == KIND_CHECKPOINT:
            earlier = json.loads(rows[0][3])
            digest, pruned_from, total = earlier["pruned_digest"], earlier["pruned_from_seq"], earlier["pruned_events"]
            rows = rows[1:]
        for row in rows:
            digest = hashlib.sha256(f"{digest}|{row[5]}".encode("utf-8")).hexdigest()
        last = rows[-1]
        payload = {"pruned_from_seq": pruned_from, "pruned_to_seq": plan.last_seq, "pruned_events": total + len(rows),
                   "pruned_digest": digest, "before_ms": before_ms, "pruned_at_ms": now_ms, "anchor_hash": last[5]}
        payload["seal"] = checkpoint_seal(plan.last_seq, last[1], last[4], last[5], payload)
        conn.execute("DELETE FROM events WHERE seq <= ?", (plan.last_seq,))
        conn.execute("INSERT INTO events (seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload, "
                     "prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (plan.last_seq, last[1], None, "prune", KIND_CHECKPOINT, None, None, canonical_json(payload),
                      last[4], last[5]))
        replay_events(conn)
    return plan
