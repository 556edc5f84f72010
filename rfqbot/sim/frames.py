"""Frame and row builders, one per documented message, with the documents' looseness kept.

The field sets come from shared/docs/frames/*.json. The looseness is deliberate because the
real venue sends it: seconds in ``expire_time``/``expireTime``(quotes)/``expiryTime``/history
times, milliseconds in ``bestQuote`` and ``rfq-active``; ``rfqUpdates.price`` a JSON number and
``statusInt`` a string; ``bestQuote`` names (``inquiryOrderId`` ...); modes spelled ``real-time``
in most places and ``REAL_TIME`` in rfq-active. ``Decimal`` values are written as JSON numbers by
``wirejson.dumps``, so every money field that the documents show as a string is ``str`` here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rfqbot.sim.wirejson import dec_text

if TYPE_CHECKING:
    from rfqbot.sim.market import Quote, Rfq

# statusInt is documented only for "accepted" ("2"); the other numbers are the simulator's.
STATUS_INT = {"new": "1", "accepted": "2", "processing": "3", "successful": "4", "expired": "5",
              "cancelled": "6", "declined": "7", "manual-order": "8",
              "manual-order-confirmation": "9", "failed": "10"}
SETTLE_TYPE = {"delayed": 1, "real-time": 2}
UPPER_MODE = {"real-time": "REAL_TIME", "delayed": "DELAYED"}


def rfq_created_frame(rfq: Rfq) -> dict[str, Any]:
    return {"event": "rfqCreated", "topic": "rfqs", "data": {
        "rfqId": rfq.rfq_id, "buyCcy": rfq.buy_ccy, "sellCcy": rfq.sell_ccy, "buyAmount": "",
        "sellAmount": dec_text(rfq.sell_amount), "rfqMode": rfq.mode,
        "expire_time": rfq.expire_ms // 1000}}


def quote_created_frame(rfq: Rfq, quote: Quote) -> dict[str, Any]:
    return {"event": "quotesCreated", "topic": "quotes", "data": {
        "quoteId": quote.quote_id, "rfqId": rfq.rfq_id, "buyCcy": rfq.buy_ccy,
        "sellCcy": rfq.sell_ccy, "buyAmount": dec_text(quote.buy_amount),
        "sellAmount": dec_text(quote.sell_amount), "price": dec_text(quote.price),
        "expireTime": quote.expire_ms // 1000}}


def best_quote_frame(rfq: Rfq, ranked: list[Quote], now_ms: int) -> dict[str, Any]:
    rows = []
    for rank, quote in enumerate(ranked, start=1):
        rows.append({
            "id": quote.seq, "inquiryOrderId": rfq.rfq_id, "lpName": quote.lp_name,
            "quoteOrderId": quote.quote_id, "direction": 1 if rfq.buys_base else 2, "status": 0,
            "buyAssetId": rfq.buy_ccy, "buyAmount": dec_text(quote.buy_amount),
            "sellAssetId": rfq.sell_ccy, "sellAmount": dec_text(quote.sell_amount),
            "price": dec_text(quote.price), "submitTime": quote.submit_ms,
            "dateExpiry": quote.expire_ms,
            "expirySeconds": max(0, (quote.expire_ms - quote.submit_ms) // 1000),
            "remainingTime": max(0, (rfq.expire_ms - now_ms) // 1000),
            "inquirySettleType": SETTLE_TYPE[rfq.mode], "quoteSettleType": SETTLE_TYPE[quote.mode],
            "rank": rank, "isBestPrice": rank == 1, "isRecommendPrice": rank == 1})
    return {"topic": "bestQuote", "data": rows}


def rfq_update_frame(rfq: Rfq, quote: Quote | None) -> dict[str, Any]:
    expiry_ms = min(rfq.expire_ms, quote.expire_ms) if quote else rfq.expire_ms
    return {"event": "update", "topic": "rfqUpdates", "data": {
        "rfqId": rfq.rfq_id, "rfqClOrderId": rfq.cl_order_id, "buyCcy": rfq.buy_ccy,
        "sellCcy": rfq.sell_ccy, "buyAmount": dec_text(quote.buy_amount) if quote else "",
        "sellAmount": dec_text(rfq.sell_amount), "rfqMode": rfq.mode,
        "quoteId": quote.quote_id if quote else "",
        "price": quote.price if quote else None,   # a JSON number, as documented
        "quoteMode": quote.mode if quote else "", "status": rfq.status,
        "statusInt": STATUS_INT.get(rfq.status, "0"), "isLPReject": rfq.lp_reject,
        "expiryTime": expiry_ms // 1000}}


def history_row(rfq: Rfq, quote: Quote | None) -> dict[str, Any]:
    return {
        "rfqCreateTime": rfq.created_ms // 1000, "rfqId": rfq.rfq_id,
        "quoteId": quote.quote_id if quote else "", "rfqClOrderId": rfq.cl_order_id,
        "rfqMode": rfq.mode, "quoteMode": quote.mode if quote else "",
        "buyCcy": rfq.buy_ccy, "sellCcy": rfq.sell_ccy,
        "buyAmount": dec_text(quote.buy_amount) if quote else "",
        "sellAmount": dec_text(rfq.sell_amount), "price": dec_text(quote.price) if quote else "",
        "status": rfq.status,
        "executedTime": rfq.executed_ms // 1000 if rfq.executed_ms else None}


def rfq_active_row(rfq: Rfq, quote: Quote, rank: int) -> dict[str, Any]:
    return {
        "quoteMode": UPPER_MODE[quote.mode], "sellCcy": rfq.sell_ccy, "rfqId": rfq.rfq_id,
        "quoteId": quote.quote_id, "rfqClOrderId": rfq.cl_order_id, "buyCcy": rfq.buy_ccy,
        "rfqMode": UPPER_MODE[rfq.mode], "buyAmount": dec_text(quote.buy_amount),
        "expireTime": quote.expire_ms, "sellAmount": dec_text(quote.sell_amount),
        "price": dec_text(quote.price), "rank": rank, "status": rfq.status}
