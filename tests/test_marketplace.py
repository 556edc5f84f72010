"""MarketPlace: typed results from the documented frames, parameters as the venue expects them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rfqbot.clock import FakeClock
from rfqbot.config.schema import Credentials
from rfqbot.errors import OutcomeUnknown, TransportError
from rfqbot.venue.marketplace import DAY_MS, AcceptAck, MarketPlace, accept_ack_from_json, new_client_order_id
from rfqbot.records import QuoteMode, RfqStatus
from rfqbot.venue.profiles import VenueProfile
from tests.fakevenue import API_KEY, API_SECRET, SERVER_TIME_MS, FakeVenue, venue  # noqa: F401


@pytest.fixture
def mp(venue: FakeVenue):
    profile = VenueProfile("test", venue.url, "ws://127.0.0.1:1", "X-HK-APIKEY")
    market = MarketPlace(profile, Credentials(API_KEY, API_SECRET), clock=FakeClock(SERVER_TIME_MS))
    yield market
    market.close()


def test_get_pairs(mp: MarketPlace) -> None:
    pairs = mp.get_pairs()
    assert [p.name for p in pairs] == ["USDC/USD", "BTC/USDT", "ETH/USDT"]
    assert pairs[1].min_base == Decimal("0.001") and pairs[1].trading_status == "OPENED"


def test_create_rfq_generates_client_id_and_sends_documented_params(mp: MarketPlace, venue: FakeVenue) -> None:
    rfq = mp.create_rfq("BTC", "USDT", Decimal("1000.50"), QuoteMode.REAL_TIME, expire_sec=600)
    (seen,) = venue.calls()
    assert seen.signature_ok
    params = seen.params
    assert params["buyCcy"] == "BTC" and params["sellCcy"] == "USDT" and params["sellAmount"] == "1000.50"
    assert params["rfqMode"] == "real-time" and params["expireSec"] == "600"
    assert params["rfqClOrderId"].startswith("rfqbot-")
    assert rfq.rfq_id == "RFQ638459562162049024" and rfq.status is RfqStatus.NEW
    # The documented answer echoes its own client id; ours is kept when the venue gives none.
    assert rfq.client_order_id == "RFQ12345666"
    assert rfq.sell_amount == Decimal("1000.50") and rfq.rfq_mode is QuoteMode.REAL_TIME


def test_create_rfq_keeps_given_client_id(mp: MarketPlace, venue: FakeVenue) -> None:
    venue.script("POST", "/api/v1/market-place/create-rfq", 200, {"rfqId": "R1", "status": "new"})
    rfq = mp.create_rfq("BTC", "USDT", Decimal("5"), QuoteMode.DELAYED, client_order_id="desk 1+1")
    assert venue.calls()[0].params["rfqClOrderId"] == "desk 1+1"
    assert rfq.client_order_id == "desk 1+1" and rfq.buy_ccy == "BTC"


def test_create_rfq_rejects_bad_amount_before_sending(mp: MarketPlace, venue: FakeVenue) -> None:
    with pytest.raises(ValueError, match="positive Decimal"):
        mp.create_rfq("BTC", "USDT", Decimal("0"), QuoteMode.REAL_TIME)
    assert venue.calls() == []


def test_create_rfq_5xx_is_outcome_unknown(mp: MarketPlace, venue: FakeVenue) -> None:
    venue.script("POST", "/api/v1/market-place/create-rfq", 500, {})
    with pytest.raises(OutcomeUnknown):
        mp.create_rfq("BTC", "USDT", Decimal("5"), QuoteMode.REAL_TIME)
    assert len(venue.calls()) == 1


def test_accept_and_decline(mp: MarketPlace, venue: FakeVenue) -> None:
    ack = mp.accept_quote("rfq638459562162049024", "quote789456123")
    assert ack == AcceptAck("rfq638459562162049024", "quote789456123", RfqStatus.ACCEPTED, "accepted",
                            1717392500000)
    venue.script("POST", "/api/v1/market-place/accept-quote", 200,
                 {"rfqId": "R", "quoteId": "Q", "status": "failed", "expiryTime": None})
    ack = mp.decline_quote("R", "Q")
    assert ack.status is RfqStatus.FAILED and ack.expires_ms is None
    assert [c.params["action"] for c in venue.calls()] == ["accept", "decline"]


def test_accept_ack_tolerates_odd_answers() -> None:
    assert accept_ack_from_json({"status": "weird", "expiryTime": 1800}, "r", "q") == \
        AcceptAck("r", "q", RfqStatus.UNKNOWN, "weird", None)
    assert accept_ack_from_json(None, "r", "q").status is RfqStatus.UNKNOWN


def test_rfq_history_defaults_to_last_24h(mp: MarketPlace, venue: FakeVenue) -> None:
    rows = mp.rfq_history(status=RfqStatus.SUCCESSFUL, limit=50)
    params = venue.calls()[0].params
    assert int(params["endTime"]) == SERVER_TIME_MS and int(params["startTime"]) == SERVER_TIME_MS - DAY_MS
    assert params["status"] == "successful" and params["limit"] == "50" and "rfqId" not in params
    (rfq,) = rows
    assert rfq.created_ms == 1716002500000 and rfq.price == Decimal("65000") and rfq.sell_amount is None


def test_rfq_history_skips_undecodable_rows(mp: MarketPlace, venue: FakeVenue) -> None:
    venue.script("GET", "/api/v1/market-place/rfqs", 200, [{"status": "new"}, {"rfqId": "R2", "status": "new"}])
    assert [r.rfq_id for r in mp.rfq_history(start_ms=1, end_ms=2)] == ["R2"]


def test_rfq_history_wrong_shape_is_transport_error(mp: MarketPlace, venue: FakeVenue) -> None:
    venue.script("GET", "/api/v1/market-place/rfqs", 200, "nope")
    with pytest.raises(TransportError):
        mp.rfq_history()


def test_active_quotes(mp: MarketPlace, venue: FakeVenue) -> None:
    quotes = mp.active_quotes("MP 1/2")
    assert venue.calls()[0].path == "/api/v1/market-place/rfq-active/MP%201%2F2"
    assert [q.price for q in quotes] == [Decimal("101000"), Decimal("102000")]
    assert quotes[0].expires_ms == 1754359101795 and quotes[0].mode is QuoteMode.REAL_TIME


def test_listen_key_lifecycle(mp: MarketPlace, venue: FakeVenue) -> None:
    key = mp.create_listen_key()
    mp.extend_listen_key(key)
    mp.delete_listen_key(key)
    assert [(c.method, c.params.get("listenKey")) for c in venue.calls()] == [
        ("POST", None), ("PUT", key), ("DELETE", key)]
    assert all(c.signature_ok for c in venue.calls())


def test_time_ping_account(mp: MarketPlace, venue: FakeVenue) -> None:
    assert mp.server_time() == SERVER_TIME_MS
    mp.ping()
    assert mp.account()["balances"][0]["total"] == "1000.5"
    assert venue.calls()[0].signature_ok is None  # time is unsigned


def test_new_client_order_id_is_unique() -> None:
    ids = {new_client_order_id("x") for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("x-") for i in ids)


@pytest.mark.parametrize("server_time", [SERVER_TIME_MS, 1764645641, "1764645641393"])
def test_server_time_reads_serverTime_exactly_as_the_clock_sync_does(mp: MarketPlace, venue: FakeVenue,
                                                                     server_time: object) -> None:
    """One reading of serverTime: the value server_time() returns is the one the offset is built on."""
    venue.script("GET", "/api/v1/time", 200, {"serverTime": server_time}, times=2)
    offset = mp.sync_clock()
    assert mp.server_time() == mp.rest.clock.now_ms() + offset == int(server_time)


def test_server_time_without_serverTime_is_a_transport_error(mp: MarketPlace, venue: FakeVenue) -> None:
    venue.script("GET", "/api/v1/time", 200, {"time": 1})
    with pytest.raises(TransportError, match="bad serverTime: response has no serverTime"):
        mp.server_time()


def test_an_absurd_server_time_keeps_the_previous_clock_offset(mp: MarketPlace, venue: FakeVenue) -> None:
    venue.script("GET", "/api/v1/time", 200, {"serverTime": SERVER_TIME_MS})
    offset = mp.sync_clock()
    venue.script("GET", "/api/v1/time", 200, {"serverTime": 2 ** 63 - 1})
    with pytest.raises(TransportError, match="bad serverTime: serverTime .* between 1970 and the year 9999"):
        mp.sync_clock()
    assert mp.venue_clock.offset_ms == offset


def test_marketplace_does_not_load_the_config_schema() -> None:
    """Credentials come from rfqbot.config.credentials: a MarketPlace needs no pydantic config tree."""
    import subprocess
    import sys

    code = "import sys, rfqbot.venue.marketplace; print('rfqbot.config.schema' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_ping_is_one_request_without_retries(mp: MarketPlace, venue: FakeVenue) -> None:
    venue.script("GET", "/api/v1/ping", 502, raw="bad gateway", times=3)
    with pytest.raises(TransportError):
        mp.ping()
    assert len(venue.calls("/api/v1/ping")) == 1
