"""Field sets and value types of every message, against the documented examples.

The expected sets are those of the venue examples in tests/fixtures/frames/*.json (made valid JSON);
they are spelled out here so the test runs without the shared folder.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable

from rfqbot.sim import Simulator
from tests.sim.helpers import VenueClient, WsReader, open_private, open_public

RFQ_CREATED = {"rfqId", "buyCcy", "sellCcy", "buyAmount", "sellAmount", "rfqMode", "expire_time"}
QUOTES_CREATED = {"quoteId", "rfqId", "buyCcy", "sellCcy", "buyAmount", "sellAmount", "price",
                  "expireTime"}
BEST_QUOTE_ROW = {"id", "inquiryOrderId", "lpName", "quoteOrderId", "direction", "status",
                  "buyAssetId", "buyAmount", "sellAssetId", "sellAmount", "price", "submitTime",
                  "dateExpiry", "expirySeconds", "remainingTime", "inquirySettleType",
                  "quoteSettleType", "rank", "isBestPrice", "isRecommendPrice"}
RFQ_UPDATE = {"rfqId", "rfqClOrderId", "buyCcy", "sellCcy", "buyAmount", "sellAmount", "rfqMode",
              "quoteId", "price", "quoteMode", "status", "statusInt", "isLPReject", "expiryTime"}
HISTORY_ROW = {"rfqCreateTime", "rfqId", "quoteId", "rfqClOrderId", "rfqMode", "quoteMode",
               "buyCcy", "sellCcy", "buyAmount", "sellAmount", "price", "status", "executedTime"}
ACTIVE_ROW = {"quoteMode", "sellCcy", "rfqId", "quoteId", "rfqClOrderId", "buyCcy", "rfqMode",
              "buyAmount", "expireTime", "sellAmount", "price", "rank", "status"}
PAIR = {"baseCcy", "quoteCcy", "basePrecision", "quotePrecision", "retailAllowed",
        "minTradeBaseQuantity", "maxTradeBaseQuantity", "minTradeQuoteQuantity",
        "maxTradeQuoteQuantity", "piAllowed", "corporateAllowed", "omnibusAllowed",
        "institutionAllowed", "tradingStatus"}


def test_every_message_has_the_documented_fields_and_types(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim = make_sim(bestquote_min_quotes=1)
    client = VenueClient(sim)
    pairs = client.json("GET", "/api/v1/market-place/get-pairs")["quotePair"]
    assert all(set(p) - {"isSTO"} == PAIR for p in pairs)
    assert "isSTO" in next(p for p in pairs if p["baseCcy"] == "BTC")
    public = open_public(sim, readers, "rfqs", "quotes")
    private = open_private(sim, readers, client.listen_key())
    created = client.json("POST", "/api/v1/market-place/create-rfq",
                          {"buyCcy": "BTC", "sellCcy": "USDT", "sellAmount": "10000",
                           "rfqMode": "delayed"})
    assert set(created) == {"rfqId", "rfqClOrderId", "status"}
    rfq_id = created["rfqId"]
    rfq_frame = public.topic("rfqs", rfq_id)
    assert (rfq_frame["event"], set(rfq_frame["data"])) == ("rfqCreated", RFQ_CREATED)
    assert rfq_frame["data"]["rfqMode"] == "delayed" and rfq_frame["data"]["expire_time"] < 1e10
    quote_id = sim.faults.quote(rfq_id, "106050", mode="delayed", confirm_s=1000)
    quote_frame = public.topic("quotes", rfq_id)
    assert (quote_frame["event"], set(quote_frame["data"])) == ("quotesCreated", QUOTES_CREATED)
    assert isinstance(quote_frame["data"]["price"], str)
    best = private.topic("bestQuote", rfq_id)
    assert set(best) == {"topic", "data"}
    [row] = best["data"]
    assert set(row) == BEST_QUOTE_ROW
    assert row["submitTime"] > 1e12 and row["dateExpiry"] - row["submitTime"] == 60_000
    assert row["quoteSettleType"] == 1 and row["inquirySettleType"] == 1
    assert isinstance(row["price"], str) and isinstance(row["id"], int)
    [active] = client.json("GET", f"/api/v1/market-place/rfq-active/{rfq_id}")
    assert set(active) == ACTIVE_ROW and active["quoteMode"] == "DELAYED"
    accepted = client.accept(rfq_id, quote_id).json(parse_float=Decimal)
    assert set(accepted) == {"rfqId", "quoteId", "status", "expiryTime"}
    update = private.topic("rfqUpdates", rfq_id, status="accepted")
    assert (update["event"], set(update["data"])) == ("update", RFQ_UPDATE)
    data = update["data"]
    assert isinstance(data["price"], (int, Decimal)) and data["statusInt"] == "2"   # number
    assert data["quoteMode"] == "delayed" and data["expiryTime"] < 1e10
    assert any(b'"topic":"rfqUpdates"' in raw and b'"price":106050,' in raw
               for raw in private.raw_seen)                     # a bare JSON number on the wire
    [history] = client.history(rfqId=rfq_id)
    assert set(history) == HISTORY_ROW and history["executedTime"] is None
    assert history["rfqCreateTime"] < 1e10 and history["price"] == "106050"

