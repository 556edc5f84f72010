"""The two read-only Market Place queries: RFQ history and the active quotes of an RFQ.

Both read the same state the pushes come from, so they always agree with the streams.
"""

from __future__ import annotations

from typing import Any

from rfqbot.sim import venue_errors as err
from rfqbot.sim.frames import history_row, rfq_active_row
from rfqbot.sim.market import Market, digits


def history(market: Market, owner: str, params: dict[str, str]) -> list[dict[str, Any]]:
    for name in ("startTime", "endTime"):
        if not digits(params.get(name, "")):
            raise err.missing(name)
    start, end = int(params["startTime"]), int(params["endTime"])
    if end < start:
        raise err.illegal("endTime", "endTime is before startTime")
    if end - start > 90 * 86_400_000:
        raise err.VenueReject(-2029, "The search is limited to data within the last three "
                              "months")
    limit_text = params.get("limit") or "500"
    if not digits(limit_text) or not 1 <= int(limit_text) <= 1000:
        raise err.illegal("limit", "1-1000")
    rows = []
    for rfq in market.rfqs.values():
        if rfq.owner != owner or not start <= rfq.created_ms <= end:
            continue
        shown = rfq.accepted
        if params.get("rfqId") and rfq.rfq_id != params["rfqId"]:
            continue
        if params.get("rfqClOrderId") and rfq.cl_order_id != params["rfqClOrderId"]:
            continue
        if params.get("quoteId") and (shown is None or shown.quote_id != params["quoteId"]):
            continue
        if params.get("status") and rfq.status != params["status"]:
            continue
        rows.append(history_row(rfq, shown))
    return rows[: int(limit_text)]


def active(market: Market, owner: str, rfq_id: str) -> list[dict[str, Any]]:
    rfq = market.owned(owner, rfq_id)
    return [rfq_active_row(rfq, quote, rank)
            for rank, quote in enumerate(market.valid_quotes(rfq), start=1)]
