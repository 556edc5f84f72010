"""create-rfq validation and every RFQ lifecycle path, seen through REST and both streams."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Callable

import pytest

from rfqbot.sim import Simulator
from tests.sim.helpers import VenueClient, WsReader, open_private, open_public, wait_until

CREATE = "/api/v1/market-place/create-rfq"


@pytest.mark.parametrize("params, code", [
    ({"buyCcy": "BTC", "sellCcy": "DOGE", "sellAmount": "10", "rfqMode": "real-time"}, -5031),
    ({"buyCcy": "BTC", "sellCcy": "BTC", "sellAmount": "10", "rfqMode": "real-time"}, -5031),
    ({"buyCcy": "BTC", "sellCcy": "USDT", "sellAmount": "100", "rfqMode": "real-time",
      "expireSec": "599"}, -1130),
    ({"buyCcy": "BTC", "sellCcy": "USDT", "sellAmount": "100", "rfqMode": "real-time",
      "expireSec": "3601"}, -1130),
    ({"buyCcy": "BTC", "sellCcy": "USDT", "sellAmount": "5", "rfqMode": "real-time"}, -1136),
    ({"buyCcy": "USDT", "sellCcy": "BTC", "sellAmount": "0.0001", "rfqMode": "real-time"}, -1136),
    ({"buyCcy": "USDT", "sellCcy": "BTC", "sellAmount": "0.0010001", "rfqMode": "real-time"},
     -5032),
    ({"buyCcy": "BTC", "sellCcy": "USDT", "sellAmount": "100", "rfqMode": "instant"}, -1130),
    ({"buyCcy": "BTC", "sellCcy": "USDT", "rfqMode": "real-time"}, "0001"),
])
def test_create_rfq_rejects_with_documented_codes(client: VenueClient, params: dict,
                                                   code: object) -> None:
    response = client.call("POST", CREATE, params)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_duplicate_client_order_id_is_rejected(client: VenueClient) -> None:
    client.create_rfq(rfqClOrderId="mine-1")
    response = client.call("POST", CREATE, {"buyCcy": "BTC", "sellCcy": "USDT",
                                            "sellAmount": "100", "rfqMode": "real-time",
                                            "rfqClOrderId": "mine-1"})
    assert response.json()["code"] == -1141


def test_real_time_accept_goes_new_accepted_processing_successful(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=20)
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    public = open_public(sim, readers, "rfqs", "quotes")
    rfq_id = client.create_rfq(amount="10000", rfqClOrderId="cl-1")
    created = public.topic("rfqs", rfq_id)["data"]
    assert created["sellAmount"] == "10000" and created["buyAmount"] == ""
    assert abs(created["expire_time"] - (time.time() + 1800 / 20)) < 5   # seconds, scaled life
    quote_id = sim.faults.quote(rfq_id, "100000")
    quoted = public.topic("quotes", rfq_id)["data"]
    assert quoted["quoteId"] == quote_id and quoted["buyAmount"] == "0.1"
    best = private.topic("bestQuote", rfq_id)["data"]
    assert [row["quoteOrderId"] for row in best] == [quote_id]
    answer = client.accept(rfq_id, quote_id).json()
    assert answer["status"] == "accepted" and answer["rfqId"] == rfq_id
    assert abs(answer["expiryTime"] - (time.time() + 60 / 20)) < 3     # seconds
    for status in ("accepted", "processing", "successful"):
        update = private.topic("rfqUpdates", rfq_id, status=status)["data"]
        assert update["quoteId"] == quote_id and update["rfqClOrderId"] == "cl-1"
        assert update["price"] == Decimal("100000") and isinstance(update["statusInt"], str)
    [row] = client.history(rfqId=rfq_id)
    assert row["status"] == "successful" and row["quoteId"] == quote_id
    assert row["buyAmount"] == "0.1" and row["price"] == "100000"
    assert 0 < time.time() - row["executedTime"] < 10 and row["rfqCreateTime"] < 1e10


def test_delayed_quote_stays_processing_then_settles(make_sim: Callable[..., Simulator],
                                                     readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=10, settlement_s=3.0)
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq(mode="delayed")
    quote_id = sim.faults.quote(rfq_id, "100000", mode="delayed", confirm_s=0)
    assert client.accept(rfq_id, quote_id).status_code == 200
    processing = private.topic("rfqUpdates", rfq_id, status="processing")
    assert processing["data"]["quoteMode"] == "delayed"
    assert client.history(rfqId=rfq_id)[0]["status"] == "processing"
    private.topic("rfqUpdates", rfq_id, status="successful", timeout=3)
    changes = [e for e in sim.truth("status_change") if e["rfq_id"] == rfq_id]
    spent_ns = changes[-1]["mono_ns"] - changes[-2]["mono_ns"]
    assert spent_ns >= 0.29e9   # 3 s nominal at time scale 10


def test_rfq_expires(make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=1000)
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq(expireSec="600")
    update = private.topic("rfqUpdates", rfq_id, status="expired", timeout=3)
    assert update["data"]["statusInt"] == "5"
    assert client.history(status="expired")[0]["rfqId"] == rfq_id


def test_accepted_quote_that_expires_before_confirmation_goes_back_to_new(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=10)
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    public = open_public(sim, readers, "rfqs")
    rfq_id = client.create_rfq()
    public.topic("rfqs", rfq_id)
    quote_id = sim.faults.quote(rfq_id, "100000", lifetime_s=3, confirm_s=1000)
    assert client.accept(rfq_id, quote_id).json()["status"] == "accepted"
    private.topic("rfqUpdates", rfq_id, status="accepted")
    again = private.topic("rfqUpdates", rfq_id, status="new", timeout=3)
    assert again["data"]["quoteId"] == ""
    public.topic("rfqs", rfq_id)                      # pushed on rfqs again, as documented
    assert client.history(rfqId=rfq_id)[0]["status"] == "new"
    fresh = sim.faults.quote(rfq_id, "100001")
    assert client.accept(rfq_id, fresh).status_code == 200


def test_accept_of_expired_quote_is_3003_and_changes_nothing(
        make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(time_scale=100)
    client = VenueClient(sim)
    rfq_id = client.create_rfq()
    quote_id = sim.faults.quote(rfq_id, "100000", lifetime_s=1)
    wait_until(lambda: client.json("GET", f"/api/v1/market-place/rfq-active/{rfq_id}") == [],
               what="quote expiry")
    response = client.accept(rfq_id, quote_id)
    assert response.status_code == 400 and response.json()["code"] == -3003
    assert sim.rfq_status(rfq_id) == "new"


def test_accept_on_rfq_that_is_not_new_is_rejected(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim()
    client = VenueClient(sim)
    rfq_id = client.create_rfq()
    first = sim.faults.quote(rfq_id, "100000", lp_name="A", confirm_s=1000)
    second = sim.faults.quote(rfq_id, "100001", lp_name="B")
    assert client.accept(rfq_id, first).status_code == 200
    response = client.accept(rfq_id, second)
    assert response.status_code == 400 and response.json()["code"] == -1130
    assert client.history(rfqId=rfq_id)[0]["quoteId"] == first
    assert client.accept("MP-nope", first).json()["code"] == -5027


def test_superseded_quote_cannot_be_accepted(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim()
    client = VenueClient(sim)
    rfq_id = client.create_rfq()
    old = sim.faults.quote(rfq_id, "100000", lp_name="A")
    sim.faults.quote(rfq_id, "100002", lp_name="A")
    assert client.accept(rfq_id, old).json()["code"] == -3003


def test_manual_quote_accept_path(make_sim: Callable[..., Simulator],
                                  readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=10)
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq()
    assert sim.faults.quote(rfq_id, "100000", manual=True, manual_delay_s=1) == "manual-order"
    private.topic("rfqUpdates", rfq_id, status="manual-order")
    private.topic("rfqUpdates", rfq_id, status="manual-order-confirmation")
    [row] = private.topic("bestQuote", rfq_id)["data"]
    assert client.accept(rfq_id, row["quoteOrderId"]).json()["status"] == "accepted"
    private.topic("rfqUpdates", rfq_id, status="successful")


def test_manual_quote_decline_fails_the_rfq(make_sim: Callable[..., Simulator],
                                            readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=10)
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq()
    sim.faults.quote(rfq_id, "100000", manual=True)
    private.topic("rfqUpdates", rfq_id, status="manual-order-confirmation")
    [active] = client.json("GET", f"/api/v1/market-place/rfq-active/{rfq_id}")
    answer = client.accept(rfq_id, active["quoteId"], action="decline").json()
    assert answer["status"] == "failed" and answer["expiryTime"] is None
    private.topic("rfqUpdates", rfq_id, status="failed")
    assert client.history(rfqId=rfq_id)[0]["status"] == "failed"


def test_decline_of_an_ordinary_quote_is_unsupported(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim()
    client = VenueClient(sim)
    rfq_id = client.create_rfq()
    quote_id = sim.faults.quote(rfq_id, "100000")
    assert client.accept(rfq_id, quote_id, action="decline").json()["code"] == -1020
    assert sim.rfq_status(rfq_id) == "new"


def test_operations_cancel_and_lp_reject(make_sim: Callable[..., Simulator],
                                         readers: list[WsReader]) -> None:
    sim = make_sim()
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    cancelled = client.create_rfq()
    assert sim.faults.cancel_rfq(cancelled) is True
    private.topic("rfqUpdates", cancelled, status="cancelled")
    rejected = client.create_rfq()
    quote_id = sim.faults.quote(rejected, "100000", confirm_s=1000)
    client.accept(rejected, quote_id)
    assert sim.faults.lp_reject(rejected) is True
    update = private.topic("rfqUpdates", rejected, status="declined")
    assert update["data"]["isLPReject"] is True
    statuses = {row["rfqId"]: row["status"] for row in client.history()}
    assert statuses == {cancelled: "cancelled", rejected: "declined"}


def test_selling_base_computes_buy_amount_in_quote_currency(client: VenueClient,
                                                            sim: Simulator) -> None:
    rfq_id = client.create_rfq(buy="USDT", sell="BTC", amount="0.5")
    sim.faults.quote(rfq_id, "100000.123456")
    [row] = client.json("GET", f"/api/v1/market-place/rfq-active/{rfq_id}")
    assert row["price"] == "100000.12346" and row["buyAmount"] == "50000.06173"
    assert row["quoteMode"] == "REAL_TIME" and row["rfqMode"] == "REAL_TIME"
    assert row["expireTime"] > 1e12        # milliseconds here, as documented


def test_configured_lps_quote_around_the_reference_and_manual_lp_goes_manual(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    from rfqbot.sim import LpConfig
    from tests.sim.helpers import quiet_config
    lps = [LpConfig("Tight", latency_ms=10, latency_jitter_ms=0, spread_bps="10", noise_bps="0"),
           LpConfig("Desk", latency_ms=10, latency_jitter_ms=0, manual=True, manual_delay_ms=50,
                    spread_bps="20", noise_bps="0")]
    sim = make_sim(quiet_config(lp_configs=lps, reference_tick_s=100000, time_scale=10))
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    reference = sim.reference_price("BTCUSDT")
    buying = client.create_rfq(buy="BTC", sell="USDT", amount="10000")
    selling = client.create_rfq(buy="USDT", sell="BTC", amount="1")
    for rfq_id in (buying, selling):
        private.topic("rfqUpdates", rfq_id, status="manual-order-confirmation")
    quotes = {(e["rfq_id"], e["lp"]): Decimal(e["price"]) for e in sim.truth("quote_created")}
    assert quotes[(buying, "Tight")] == reference * Decimal("1.001")
    assert quotes[(selling, "Tight")] == reference * Decimal("0.999")
    assert quotes[(buying, "Desk")] == reference * Decimal("1.002")
    [manual] = client.json("GET", f"/api/v1/market-place/rfq-active/{buying}")
    assert Decimal(manual["price"]) == quotes[(buying, "Desk")]


def test_final_rfqs_shed_quotes_and_background_ones_are_forgotten(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim = make_sim(lps=3, background_rfqs_per_min=120, background_accept_ratio=1.0,
                   time_scale=30)
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq()
    best = private.topic("bestQuote", rfq_id, timeout=3)["data"]
    client.accept(rfq_id, best[0]["quoteOrderId"])
    private.topic("rfqUpdates", rfq_id, status="successful", timeout=3)
    wait_until(lambda: any(e["to"] == "successful" and e["owner"] != "sim-account"
                           for e in sim.truth("status_change")), 5, "a background settlement")
    kept = sim.call(lambda: {r.rfq_id: len(r.quotes) for r in sim.state.market.rfqs.values()
                             if r.status == "successful"})
    assert kept == {rfq_id: 1}
    assert client.history(rfqId=rfq_id)[0]["quoteId"] == best[0]["quoteOrderId"]
