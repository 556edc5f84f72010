"""Record decoders shared by the REST client and the stream decoder.

The same concept arrives under different names depending on the message (``rfqId`` vs
``inquiryOrderId``, ``buyCcy`` vs ``buyAssetId``, ``expire_time`` vs ``expireTime`` vs
``dateExpiry``). Each record has exactly one decoder here; REST results and stream frames both
go through it, so a venue quirk is absorbed in one place.
"""

from __future__ import annotations

from typing import Any, Mapping

from rfqbot.normalise import MAX_TIMESTAMP_MS, NormaliseError, to_decimal, to_int, to_ms, to_mode, to_status, to_text
from rfqbot.records import Pair, Quote, QuoteMode, Rfq


def _first(d: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in d and d[name] is not None and d[name] != "":
            return d[name]
    return None


def _required_text(d: Mapping[str, Any], *names: str) -> str:
    value = to_text(_first(d, *names))
    if value is None:
        raise NormaliseError(f"missing required field {' / '.join(names)}")
    return value


def rfq_from_json(d: Mapping[str, Any]) -> Rfq:
    """An RFQ from a history row, ``rfqCreated``, ``rfqUpdates`` or a create-rfq result."""
    if not isinstance(d, Mapping):
        raise NormaliseError(f"expected an RFQ object, got {type(d).__name__}")
    status_value = _first(d, "status")
    status, status_raw = to_status(status_value) if status_value is not None else (None, None)
    quote_mode_value = _first(d, "quoteMode")
    rfq_mode_value = _first(d, "rfqMode")
    rfq_mode, rfq_mode_raw = to_mode(rfq_mode_value)
    quote_mode, quote_mode_raw = to_mode(quote_mode_value) if quote_mode_value is not None else (None, None)
    lp_reject = d.get("isLPReject")
    return Rfq(
        rfq_id=_required_text(d, "rfqId", "inquiryOrderId"),
        client_order_id=to_text(_first(d, "rfqClOrderId")),
        buy_ccy=to_text(_first(d, "buyCcy", "buyAssetId")),
        sell_ccy=to_text(_first(d, "sellCcy", "sellAssetId")),
        buy_amount=to_decimal(d.get("buyAmount"), "buyAmount"),
        sell_amount=to_decimal(d.get("sellAmount"), "sellAmount"),
        rfq_mode=rfq_mode,
        status=status,
        status_raw=status_raw,
        status_int=to_int(d.get("statusInt"), "statusInt"),
        quote_id=to_text(_first(d, "quoteId", "quoteOrderId")),
        price=to_decimal(d.get("price"), "price"),
        quote_mode=quote_mode,
        created_ms=to_ms(_first(d, "rfqCreateTime", "createTime"), "rfqCreateTime"),
        executed_ms=to_ms(_first(d, "executedTime"), "executedTime"),
        expires_ms=to_ms(_first(d, "expire_time", "expireTime", "expiryTime"), "expiry"),
        lp_rejected=lp_reject if isinstance(lp_reject, bool) else None,
        mode_raw=rfq_mode_raw if rfq_mode_value is not None else None,
        quote_mode_raw=quote_mode_raw,
    )


def quote_from_json(d: Mapping[str, Any]) -> Quote:
    """A quote from a ``bestQuote`` entry, an ``rfq-active`` row or ``quotesCreated``."""
    if not isinstance(d, Mapping):
        raise NormaliseError(f"expected a quote object, got {type(d).__name__}")
    price = to_decimal(d.get("price"), "price")
    if price is None:
        raise NormaliseError("missing required field price")
    if price <= 0:
        raise NormaliseError(f"price: must be positive, got {price}")
    mode_value = _first(d, "quoteMode", "quoteSettleType")
    return Quote(
        quote_id=_required_text(d, "quoteId", "quoteOrderId"),
        rfq_id=_required_text(d, "rfqId", "inquiryOrderId"),
        price=price,
        buy_ccy=to_text(_first(d, "buyCcy", "buyAssetId")),
        sell_ccy=to_text(_first(d, "sellCcy", "sellAssetId")),
        buy_amount=to_decimal(d.get("buyAmount"), "buyAmount"),
        sell_amount=to_decimal(d.get("sellAmount"), "sellAmount"),
        lp_name=to_text(_first(d, "lpName")),
        mode=to_mode(mode_value)[0] if mode_value is not None else QuoteMode.UNKNOWN,
        rank=to_int(d.get("rank"), "rank"),
        submitted_ms=to_ms(_first(d, "submitTime"), "submitTime"),
        expires_ms=to_ms(_first(d, "dateExpiry", "expireTime", "expiryTime"), "expiry"),
        status_raw=to_text(d.get("status")),
        manual=bool(d.get("isManual") is True or d.get("manual") is True),
        mode_raw=to_mode(mode_value)[1] if mode_value is not None else None,
    )


def pair_from_json(d: Mapping[str, Any]) -> Pair:
    """A pair from ``get-pairs`` ``quotePair[]``."""
    if not isinstance(d, Mapping):
        raise NormaliseError(f"expected a pair object, got {type(d).__name__}")
    base_precision = to_decimal(d.get("basePrecision"), "basePrecision")
    quote_precision = to_decimal(d.get("quotePrecision"), "quotePrecision")
    return Pair(
        base=_required_text(d, "baseCcy"),
        quote=_required_text(d, "quoteCcy"),
        base_precision=base_precision if base_precision is not None else to_decimal("1e-8"),
        quote_precision=quote_precision if quote_precision is not None else to_decimal("1e-8"),
        min_base=to_decimal(d.get("minTradeBaseQuantity"), "minTradeBaseQuantity"),
        max_base=to_decimal(d.get("maxTradeBaseQuantity"), "maxTradeBaseQuantity"),
        min_quote=to_decimal(d.get("minTradeQuoteQuantity"), "minTradeQuoteQuantity"),
        max_quote=to_decimal(d.get("maxTradeQuoteQuantity"), "maxTradeQuoteQuantity"),
        trading_status=to_text(d.get("tradingStatus")) or "UNKNOWN",
    )


def server_time_from_json(body: Any) -> int:
    """``serverTime`` of ``GET /api/v1/time``: integer milliseconds, as documented.

    The one reading of it (``to_int``, no seconds-vs-ms guess): ``RestClient.sync_clock`` and
    ``MarketPlace.server_time()`` both call this, so the offset and the time never disagree.
    """
    value = to_int(body.get("serverTime") if isinstance(body, Mapping) else None, "serverTime")
    if value is None:
        raise NormaliseError("response has no serverTime")
    if not 0 < value <= MAX_TIMESTAMP_MS:
        # An absurd venue time would become the clock offset of every decision and journal row
        # (and past 64 bits, a journal write error): refused, the previous offset stays.
        raise NormaliseError(f"serverTime {value} is not a time between 1970 and the year 9999")
    return value
