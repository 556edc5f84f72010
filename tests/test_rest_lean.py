"""The lean order path in RestClient: order calls skip requests' per-call work but keep its
pool, its TLS verification and every error rule of the requests path."""

from __future__ import annotations

import ssl
from decimal import Decimal

import pytest
import structlog

from rfqbot.clock import FakeClock
from rfqbot.errors import NotSent, OutcomeUnknown, RateLimited, VenueError
from rfqbot.venue.rest import RestClient, _body_text
from rfqbot.venue.profiles import VenueProfile
from tests.fakevenue import API_KEY, API_SECRET, SERVER_TIME_MS, FakeVenue, venue  # noqa: F401

ACCEPT = "/api/v1/market-place/accept-quote"


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    structlog.reset_defaults()


def make_client(url: str, **profile_kw) -> RestClient:
    profile = VenueProfile("test", url, "ws://127.0.0.1:1", "X-HK-APIKEY", **profile_kw)
    return RestClient(profile, API_KEY, API_SECRET, clock=FakeClock(SERVER_TIME_MS), query_retries=0)


def accept(client: RestClient):
    return client.request("POST", ACCEPT, [("rfqId", "r1"), ("quoteId", "q1"), ("action", "accept")], kind="order")


def test_order_call_is_signed_form_post_and_decodes_decimals(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    venue.script("POST", ACCEPT, 200, raw='{"rfqId":"r1","quoteId":"q1","status":"accepted","price":106050.5}')
    body = accept(client)
    assert body["price"] == Decimal("106050.5") and isinstance(body["price"], Decimal)
    seen = venue.calls(ACCEPT)[0]
    assert seen.signature_ok is True
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert headers["x-hk-apikey"] == API_KEY
    assert seen.params["rfqId"] == "r1" and seen.params["action"] == "accept"
    client.close()


def test_order_and_query_share_one_pooled_connection(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    client.request("GET", "/api/v1/ping", signed=False)   # requests path opens the connection
    accept(client)                                        # lean path reuses it
    accept(client)
    pool = client._order_pool()
    assert pool.num_connections == 1
    assert len(venue.calls(ACCEPT)) == 2
    client.close()


def test_lean_path_keeps_error_rules(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    venue.script("POST", ACCEPT, 400, {"code": "-1139", "msg": "Order has been filled."})
    with pytest.raises(VenueError) as err:
        accept(client)
    assert err.value.code == "-1139"
    venue.script("POST", ACCEPT, 429, {"code": -1003, "msg": "slow down"}, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as limited:
        accept(client)
    assert limited.value.retry_after_s == pytest.approx(7.0)
    client.close()


def test_broken_answer_on_order_is_outcome_unknown_and_sent_once(venue: FakeVenue) -> None:
    client = make_client(venue.url, read_timeout_s=0.2)
    venue.script("POST", ACCEPT, 200, {"status": "accepted"}, hang_s=0.6)
    with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
        accept(client)
    assert len(venue.calls(ACCEPT)) == 1
    client.close()


def test_connection_refused_on_order_is_outcome_unknown() -> None:
    client = make_client("http://127.0.0.1:9", connect_timeout_s=0.5)
    with pytest.raises(OutcomeUnknown, match="cannot connect to http://127.0.0.1:9: check venue.rest_url"):
        accept(client)
    client.close()


def test_tls_verification_applies_to_the_lean_path(tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    fake = FakeVenue()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    fake.server.socket = context.wrap_socket(fake.server.socket, server_side=True)
    fake.start()
    try:
        url = fake.url.replace("http://", "https://")
        strict = make_client(url)
        with pytest.raises(OutcomeUnknown, match="SSL|certificate"):
            accept(strict)
        assert fake.calls(ACCEPT) == []   # refused at the handshake: nothing reached the venue
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        trusting = make_client(url, ca_file=str(ca_file))
        assert accept(trusting)["status"] == "accepted"
        strict.close()
        trusting.close()
    finally:
        fake.stop()


@pytest.mark.parametrize(("data", "content_type", "text"), [
    (b'{"a":"\xc3\xa9"}', "application/json", '{"a":"\u00e9"}'),
    (b'{"a":"\xe9"}', "application/json; charset=ISO-8859-1", '{"a":"\u00e9"}'),
    (b'{"a":"\xff"}', None, '{"a":"\ufffd"}'),
    (b"{}", "application/json; charset=nonsense", "{}"),
])
def test_body_text_uses_declared_charset_else_utf8(data: bytes, content_type: str | None, text: str) -> None:
    assert _body_text(data, content_type) == text


def test_decimal_params_are_sent_as_text(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    client.request("POST", "/api/v1/market-place/create-rfq",
                   [("buyCcy", "BTC"), ("sellCcy", "USDT"), ("sellAmount", str(Decimal("5000.10")))], kind="order")
    assert venue.calls("/api/v1/market-place/create-rfq")[0].params["sellAmount"] == "5000.10"
    client.close()


# --- send-by time: an accept never leaves once its quote has too little life left ------------------

def send_accept_by(client: RestClient, send_by_ms: int):
    return client.request("POST", ACCEPT, [("rfqId", "r1"), ("quoteId", "q1"), ("action", "accept")],
                          kind="order", send_by_ms=send_by_ms)


def test_an_accept_past_its_send_by_time_is_not_sent(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    venue.script("POST", ACCEPT, 200, raw='{"rfqId":"r1","quoteId":"q1","status":"accepted"}')
    now = client.venue_clock.now_ms()
    with pytest.raises(NotSent, match="past its send-by time"):
        send_accept_by(client, now - 1)
    assert venue.calls(ACCEPT) == []
    assert send_accept_by(client, now + 60_000)["status"] == "accepted"
    client.close()


def test_a_pacing_wait_that_outlasts_the_send_by_time_stops_the_accept(venue: FakeVenue) -> None:
    client = make_client(venue.url)  # FakeClock: the pacing wait advances it instead of sleeping
    venue.script("POST", ACCEPT, 200, raw='{"rfqId":"r1","quoteId":"q1","status":"accepted"}')
    for _ in range(10):  # the whole order budget of this second
        accept(client)
    deadline = client.venue_clock.now_ms() + 300  # the next slot is ~1 s away
    with pytest.raises(NotSent):
        send_accept_by(client, deadline)
    assert len(venue.calls(ACCEPT)) == 10
    client.close()


def test_an_order_4xx_without_a_venue_error_body_is_outcome_unknown(venue: FakeVenue) -> None:
    """A proxy's 408/499 proves nothing about the venue: never 'rejected' (which frees the RFQ)."""
    client = make_client(venue.url)
    venue.script("POST", ACCEPT, 408, raw="<html>Request Timeout</html>")
    with pytest.raises(OutcomeUnknown, match="HTTP 408 without a venue error body"):
        accept(client)
    venue.script("POST", ACCEPT, 400, raw='{"code": "-3003", "msg": "quote expired"}')
    with pytest.raises(VenueError, match="-3003"):
        accept(client)
    client.close()


def test_a_rehearsed_order_builds_the_request_and_sends_nothing_books_nothing(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    for _ in range(50):   # far more than the 10 order slots per second
        client.rehearse_order("POST", ACCEPT, [("rfqId", "r1"), ("quoteId", "q1"), ("action", "accept")])
    assert venue.calls(ACCEPT) == [] and client._order_pool().num_connections == 0
    assert client.gate.try_send("order") is True   # every pacing slot still free
    assert sum(client.orders_written.values()) == 0
    client.close()
