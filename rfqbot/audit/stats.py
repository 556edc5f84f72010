"""``rfqbot journal stats``: how the desk's RFQs went, overall or by day, pair or LP.

Per group: RFQs, fills and fill rate; decisions and decision latency (frame received -> decision
journaled) p50/p99; accepts sent and accept latency (accept decision committed -> the venue's
answer journaled) p50/p99; for fills with a reference price (spot, when ``streams.spot_symbols``
is configured), the average price improvement against it in basis points, positive when the fill
was better than the reference for the account. All arithmetic is Decimal; percentiles are
nearest-rank over integer milliseconds.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from decimal import Decimal
from typing import Any, Callable, Iterable

from rfqbot.audit.queries import rows
from rfqbot.audit.timeparse import day_of

GROUPINGS = ("day", "pair", "lp")
_BPS = Decimal(10_000)
_CENT = Decimal("0.01")


def percentile(values: list[int], p: int) -> int | None:
    """Nearest-rank percentile (p in 1..100) of integer samples; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = -(-p * len(ordered) // 100)  # ceil without floats
    return ordered[max(rank, 1) - 1]


def improvement_bps(side: str | None, price: str | None, reference: str | None) -> Decimal | None:
    """Basis points by which a fill beat the reference for the account (buy: lower is better)."""
    if not (price and reference and side in ("buy", "sell")):
        return None
    p, ref = Decimal(price), Decimal(reference)
    if ref == 0:
        return None
    diff = (ref - p) if side == "buy" else (p - ref)
    return (diff / ref * _BPS).quantize(_CENT)


def compute_stats(conn: sqlite3.Connection, *, by: str | None = None, since_ms: int | None = None) -> list[dict[str, Any]]:
    """One summary dict per group (one overall group when ``by`` is None), sorted by group key."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}")
    since = since_ms if since_ms is not None else -1
    rfqs = rows(conn, "SELECT rfq_id, pair, first_ms FROM rfqs WHERE own = 1 AND COALESCE(first_ms, 0) >= ?",
                (since,))
    fills = rows(conn, "SELECT rfq_id, pair, side, lp_name, price, reference_price, created_ms FROM fills "
                       "WHERE COALESCE(created_ms, 0) >= ?", (since,))
    decisions = rows(conn, "SELECT d.seq, d.rfq_id, d.at_ms, d.action, d.latency_ms, d.lp_name, r.pair, "
                           "re.local_ms - de.local_ms AS accept_latency_ms, d.result_outcome "
                           "FROM decisions d LEFT JOIN rfqs r ON r.rfq_id = d.rfq_id "
                           "JOIN events de ON de.seq = d.seq LEFT JOIN events re ON re.seq = d.result_seq "
                           "WHERE d.at_ms >= ?", (since,))
    quoted = rows(conn, "SELECT DISTINCT q.lp_name, q.rfq_id, r.pair, r.first_ms FROM quotes q "
                        "JOIN rfqs r ON r.rfq_id = q.rfq_id AND r.own = 1 "
                        "WHERE q.lp_name IS NOT NULL AND COALESCE(r.first_ms, 0) >= ?", (since,))
    key: dict[str, Callable[[dict[str, Any]], Any]] = {
        "day": lambda r: day_of(r.get("first_ms") or r.get("created_ms") or r.get("at_ms")),
        "pair": lambda r: r.get("pair"),
        "lp": lambda r: r.get("lp_name"),
    }
    group = key[by] if by else (lambda r: "all")
    rfq_rows = quoted if by == "lp" else rfqs  # by LP, an RFQ counts for every LP that quoted it
    groups: dict[Any, dict[str, list[Any]]] = defaultdict(lambda: {"rfqs": [], "fills": [], "decisions": []})
    for name, items in (("rfqs", rfq_rows), ("fills", fills), ("decisions", decisions)):
        for item in items:
            groups[group(item)][name].append(item)
    return [_summarise(by or "all", name, data) for name, data in sorted(groups.items(), key=lambda kv: str(kv[0]))]


def _summarise(by: str, name: Any, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    rfqs, fills, decisions = data["rfqs"], data["fills"], data["decisions"]
    accepts = [d for d in decisions if d["action"] == "accept"]
    bps = [b for b in (improvement_bps(f["side"], f["price"], f["reference_price"]) for f in fills) if b is not None]
    out: dict[str, Any] = {
        by: name if name is not None else "(unknown)",
        "rfqs": len(rfqs),
        "fills": len(fills),
        "fill_rate_pct": _pct(len(fills), len(rfqs)),
        "decisions": len(decisions),
        "decision_latency_p50_ms": percentile(_ints(d["latency_ms"] for d in decisions), 50),
        "decision_latency_p99_ms": percentile(_ints(d["latency_ms"] for d in decisions), 99),
        "accepts_sent": len(accepts),
        "accepts_confirmed": sum(1 for d in accepts if d["result_outcome"] == "accepted"),
        "accept_latency_p50_ms": percentile(_ints(d["accept_latency_ms"] for d in accepts), 50),
        "accept_latency_p99_ms": percentile(_ints(d["accept_latency_ms"] for d in accepts), 99),
        "fills_with_reference": len(bps),
        "avg_vs_reference_bps": (sum(bps, Decimal(0)) / len(bps)).quantize(_CENT) if bps else None,
    }
    if by == "pair":
        prices = [Decimal(f["price"]) for f in fills if f["price"]]
        exponent = min((int(p.as_tuple().exponent) for p in prices), default=0)
        mean = (sum(prices, Decimal(0)) / len(prices)) if prices else None
        out["avg_fill_price"] = None if mean is None else mean.quantize(Decimal(1).scaleb(exponent))
    return out


def _ints(values: Iterable[Any]) -> list[int]:
    return [int(v) for v in values if v is not None]


def _pct(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1")) if whole else None
