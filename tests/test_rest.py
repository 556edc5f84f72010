"""RestClient against a real HTTP server on 127.0.0.1: signing, pacing, failures, redaction."""

from __future__ import annotations

import io
import json
import ssl
import threading
from decimal import Decimal
from http.server import ThreadingHTTPServer

import pytest
import structlog

from rfqbot.clock import FakeClock
from rfqbot.errors import Banned, OutcomeUnknown, RateLimited, TransportError, VenueError
from rfqbot.events import VenueCall
from rfqbot.logs import configure_logging, forget_secrets, register_secret
from rfqbot.venue.pacing import WINDOW_SLACK_S
from rfqbot.venue.rest import RestClient, venue_code
from rfqbot.venue.profiles import VenueProfile
from tests.fakevenue import API_KEY, API_SECRET, SERVER_TIME_MS, FakeVenue, venue  # noqa: F401

ACCEPT = "/api/v1/market-place/accept-quote"


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    structlog.reset_defaults()
PAIRS = "/api/v1/market-place/get-pairs"


def make_client(venue: FakeVenue, clock: FakeClock | None = None, **kwargs) -> RestClient:
    profile = VenueProfile("test", venue.url, "ws://127.0.0.1:1", "X-HK-APIKEY", read_timeout_s=kwargs.pop("read_timeout_s", 5.0))
    return RestClient(profile, API_KEY, API_SECRET, clock=clock or FakeClock(SERVER_TIME_MS), **kwargs)


def accept(client: RestClient):
    return client.request("POST", ACCEPT, [("rfqId", "r1"), ("quoteId", "q1"), ("action", "accept")], kind="order")


def test_signed_get_is_verified_by_the_server(venue: FakeVenue) -> None:
    client = make_client(venue)
    body = client.request("GET", PAIRS)
    assert body["quotePair"][0]["baseCcy"] == "USDC"
    (seen,) = venue.calls()
    assert seen.signature_ok is True
    assert seen.headers["X-HK-APIKEY"] == API_KEY
    assert seen.params["recvWindow"] == "5000" and seen.params["timestamp"] == str(SERVER_TIME_MS)


def test_decimals_are_parsed_as_decimal(venue: FakeVenue) -> None:
    venue.script("GET", "/api/v1/account", 200, raw='{"total": 0.1, "n": 3}')
    body = make_client(venue).request("GET", "/api/v1/account")
    assert body == {"total": Decimal("0.1"), "n": 3} and isinstance(body["total"], Decimal)


@pytest.mark.parametrize("client_id", ["desk order 7", "a+b=c", "x&y"])
def test_client_order_id_round_trips_with_valid_signature(venue: FakeVenue, client_id: str) -> None:
    client = make_client(venue)
    client.request("POST", "/api/v1/market-place/create-rfq", [("rfqClOrderId", client_id), ("buyCcy", "BTC")],
                   kind="order")
    (seen,) = venue.calls()
    assert seen.signature_ok is True
    assert seen.params["rfqClOrderId"] == client_id


def test_timestamp_uses_synced_clock_offset(venue: FakeVenue) -> None:
    clock = FakeClock(SERVER_TIME_MS - 5000)
    client = make_client(venue, clock)
    assert client.sync_clock() == 5000
    client.request("GET", PAIRS)
    assert venue.calls(PAIRS)[0].params["timestamp"] == str(SERVER_TIME_MS)


def test_clock_sync_round_trip_excludes_the_wait_for_a_pacing_slot(venue: FakeVenue) -> None:
    # Found by the fault suite (clock skew): after two queries, the /time call waits ~1 s for
    # its slot; counting that wait in the round trip put the offset ~500 ms off.
    clock = FakeClock(SERVER_TIME_MS - 5000)
    client = make_client(venue, clock)
    client.request("GET", PAIRS)
    client.request("GET", PAIRS)
    offset = client.sync_clock()
    assert clock.monotonic() > 1.0  # it did wait for the slot
    assert offset == SERVER_TIME_MS - clock.now_ms()  # the fake clock stands still during HTTP


def test_queries_are_paced_at_two_per_second(venue: FakeVenue) -> None:
    clock = FakeClock()
    client = make_client(venue, clock)
    start = clock.monotonic()
    client.request("GET", PAIRS)
    client.request("GET", PAIRS)
    assert clock.monotonic() == start  # a burst of two is allowed
    client.request("GET", PAIRS)
    assert clock.monotonic() - start == pytest.approx(1.0 + WINDOW_SLACK_S)  # the third waits for the window
    assert len(venue.calls()) == 3


def test_orders_are_paced_at_ten_per_second_independently_of_queries(venue: FakeVenue) -> None:
    clock = FakeClock()
    client = make_client(venue, clock)
    start = clock.monotonic()
    client.request("GET", PAIRS)
    client.request("GET", PAIRS)
    for _ in range(10):
        accept(client)
    assert clock.monotonic() == start
    accept(client)
    assert clock.monotonic() - start == pytest.approx(1.0 + WINDOW_SLACK_S)


def test_clients_of_one_key_share_pacing(venue: FakeVenue) -> None:
    clock = FakeClock()
    first, second = make_client(venue, clock), make_client(venue, clock)
    start = clock.monotonic()
    first.request("GET", PAIRS)
    second.request("GET", PAIRS)
    first.request("GET", PAIRS)
    assert clock.monotonic() - start >= 1.0


def test_429_pauses_every_request_for_retry_after(venue: FakeVenue) -> None:
    clock = FakeClock()
    client = make_client(venue, clock)
    venue.script("GET", PAIRS, 429, {"code": "-1015", "msg": "Too many"}, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as caught:
        client.request("GET", PAIRS)
    assert caught.value.retry_after_s == 7
    with pytest.raises(RateLimited):
        accept(client)  # order-type calls pause too, and nothing is sent
    assert len(venue.calls()) == 1
    clock.advance(7.1)
    accept(client)
    assert len(venue.calls()) == 2


def test_429_without_retry_after_pauses_sixty_seconds(venue: FakeVenue) -> None:
    clock = FakeClock()
    client = make_client(venue, clock)
    venue.script("GET", PAIRS, 429, {})
    with pytest.raises(RateLimited) as caught:
        client.request("GET", PAIRS)
    assert caught.value.retry_after_s == 60
    clock.advance(59)
    with pytest.raises(RateLimited):
        client.request("GET", PAIRS)
    clock.advance(1.5)
    client.request("GET", PAIRS)
    assert len(venue.calls()) == 2


def test_418_stops_all_sending_and_calls_on_ban(venue: FakeVenue) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    bans: list[Banned] = []
    client = make_client(venue, on_ban=bans.append)
    venue.script("GET", PAIRS, 418, {})
    with pytest.raises(Banned):
        client.request("GET", PAIRS)
    for _ in range(3):
        with pytest.raises(Banned):
            accept(client)
    assert len(venue.calls()) == 1
    assert len(bans) == 1
    levels = [json.loads(line)["level"] for line in stream.getvalue().splitlines()]
    assert "critical" in levels


def test_5xx_on_accept_is_outcome_unknown_and_never_retried(venue: FakeVenue) -> None:
    calls: list[VenueCall] = []
    client = make_client(venue, observer=calls.append)
    venue.script("POST", ACCEPT, 502, raw="<html>bad gateway</html>", times=3)
    with pytest.raises(OutcomeUnknown):
        accept(client)
    assert len(venue.calls(ACCEPT)) == 1
    assert calls[-1].outcome == "unknown" and calls[-1].http_status == 502


def test_timeout_on_accept_is_outcome_unknown(venue: FakeVenue) -> None:
    client = make_client(venue, read_timeout_s=0.2)
    venue.script("POST", ACCEPT, 200, {"status": "accepted"}, hang_s=0.6)
    with pytest.raises(OutcomeUnknown, match="outcome unknown"):
        accept(client)
    assert len(venue.calls(ACCEPT)) == 1


@pytest.mark.parametrize("raw", ["not json", '{"price": NaN}'])
def test_unreadable_200_on_accept_is_outcome_unknown(venue: FakeVenue, raw: str) -> None:
    venue.script("POST", ACCEPT, 200, raw=raw)
    with pytest.raises(OutcomeUnknown):
        accept(make_client(venue))


@pytest.mark.parametrize("code", ["-1006", "-1007"])
def test_execution_status_unknown_codes_on_accept(venue: FakeVenue, code: str) -> None:
    venue.script("POST", ACCEPT, 400, {"code": code, "msg": "Execution status unknown"})
    with pytest.raises(OutcomeUnknown):
        accept(make_client(venue))


def test_minus_1021_resyncs_and_retries_once(venue: FakeVenue) -> None:
    clock = FakeClock(SERVER_TIME_MS - 9000)
    client = make_client(venue, clock)
    venue.script("POST", ACCEPT, 400, {"code": -1021, "msg": "Timestamp outside recvWindow"})
    assert accept(client)["status"] == "accepted"
    assert [c.path for c in venue.calls()] == [ACCEPT, "/api/v1/time", ACCEPT]
    assert venue.calls(ACCEPT)[1].params["timestamp"] == str(SERVER_TIME_MS)


def test_minus_1021_twice_is_a_venue_error(venue: FakeVenue) -> None:
    venue.script("POST", ACCEPT, 400, {"code": "-1021", "msg": "Timestamp outside recvWindow"}, times=2)
    with pytest.raises(VenueError) as caught:
        accept(make_client(venue))
    assert caught.value.code == "-1021"
    assert len(venue.calls(ACCEPT)) == 2


def test_venue_error_keeps_code_as_text(venue: FakeVenue) -> None:
    venue.script("GET", PAIRS, 400, {"code": "0001", "msg": "Incorrect signature"})
    with pytest.raises(VenueError) as caught:
        make_client(venue).request("GET", PAIRS)
    assert (caught.value.code, caught.value.message, caught.value.http_status) == ("0001", "Incorrect signature", 400)
    assert len(venue.calls()) == 1  # a documented 4xx is not retried


def test_venue_code_normalisation() -> None:
    assert venue_code({"code": -1021}) == "-1021"
    assert venue_code({"code": Decimal("-1021")}) == "-1021"
    assert venue_code({"code": "0001"}) == "0001"
    assert venue_code([1]) is None


def test_query_retries_with_backoff_then_transport_error(venue: FakeVenue) -> None:
    clock = FakeClock()
    client = make_client(venue, clock)
    venue.script("GET", PAIRS, 503, raw="busy", times=3)
    start = clock.monotonic()
    with pytest.raises(TransportError, match="gave up after 3 attempts"):
        client.request("GET", PAIRS)
    assert len(venue.calls(PAIRS)) == 3
    assert clock.monotonic() - start >= 0.25 + 0.5  # two backoff sleeps (jitter >= half nominal)


def test_query_retry_then_success(venue: FakeVenue) -> None:
    venue.script("GET", PAIRS, 500, raw="oops")
    assert "quotePair" in make_client(venue).request("GET", PAIRS)
    assert len(venue.calls(PAIRS)) == 2


def test_connection_refused_on_query_is_transport_error() -> None:
    profile = VenueProfile("test", "http://127.0.0.1:9", "ws://127.0.0.1:9", "X-HK-APIKEY", connect_timeout_s=0.5)
    client = RestClient(profile, API_KEY, API_SECRET, clock=FakeClock(), query_retries=1)
    with pytest.raises(TransportError) as caught:
        client.request("GET", PAIRS)
    assert "signature" not in str(caught.value) and "timestamp=" not in str(caught.value)
    with pytest.raises(OutcomeUnknown):
        client.request("POST", ACCEPT, [("rfqId", "r")], kind="order")


def test_observer_gets_params_without_signature_or_listen_key(venue: FakeVenue) -> None:
    calls: list[VenueCall] = []
    client = make_client(venue, observer=calls.append)
    client.request("PUT", "/api/v1/userDataStream", [("listenKey", "SECRETLISTENKEY123")])
    (call,) = calls
    assert call.method == "PUT" and call.endpoint == "/api/v1/userDataStream" and call.outcome == "ok"
    assert call.http_status == 200 and call.params["listenKey"].startswith("#")
    assert "SECRETLISTENKEY123" not in repr(call) and "signature" not in call.params


def test_broken_observer_does_not_fail_the_call(venue: FakeVenue) -> None:
    def observer(call: VenueCall) -> None:
        raise RuntimeError("queue full")

    assert make_client(venue, observer=observer).request("GET", "/api/v1/ping", signed=False) == {}


def test_secrets_never_reach_the_logs(venue: FakeVenue) -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    register_secret(API_KEY)
    register_secret(API_SECRET)
    try:
        client = make_client(venue)
        client.request("PUT", "/api/v1/userDataStream", [("listenKey", "LISTENKEYVALUE99")])
        venue.script("GET", PAIRS, 400, {"code": "0001", "msg": f"bad key {API_KEY}"})
        with pytest.raises(VenueError):
            client.request("GET", PAIRS)
        import structlog

        structlog.get_logger("t").info("leak attempt", apiKey="abc-123-key", detail=f"secret={API_SECRET}")
    finally:
        forget_secrets()
    out = stream.getvalue()
    assert "venue call" in out and "leak attempt" in out
    for secret in (API_KEY, API_SECRET, "LISTENKEYVALUE99", "abc-123-key"):
        assert secret not in out
    assert "***" in out


def test_haqqex_profile_signs_with_its_own_headers(venue: FakeVenue) -> None:
    profile = VenueProfile("haqqex", venue.url, "ws://127.0.0.1:1", "x-api-key", signer="haqqex")
    client = RestClient(profile, "hq-key", "hq-secret", clock=FakeClock(SERVER_TIME_MS))
    client.request("POST", "/api/v1/market-place/create-rfq", [("buyCcy", "BTC")], kind="order")
    (seen,) = venue.calls()
    from rfqbot.venue.signing import sign_haqqex

    assert seen.headers["x-api-key"] == "hq-key"
    assert seen.headers["x-api-timestamp"] == str(SERVER_TIME_MS)
    assert seen.headers["x-api-sign"] == sign_haqqex("hq-secret", str(SERVER_TIME_MS), seen.body)
    assert json.loads(seen.body) == {"buyCcy": "BTC"}


def test_a_refused_connection_names_the_config_key() -> None:
    client = RestClient(VenueProfile("t", "http://127.0.0.1:9", "ws://x", "X-HK-APIKEY"), clock=FakeClock(),
                        query_retries=1)
    with pytest.raises(TransportError, match=r"cannot connect to http://127.0.0.1:9: check venue.rest_url"):
        client.request("GET", "/api/v1/ping", signed=False)
    client.close()


def test_tls_is_verified_and_ca_file_adds_a_ca(tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    fake = FakeVenue()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    fake.server.socket = context.wrap_socket(fake.server.socket, server_side=True)
    fake.start()
    try:
        url = fake.url.replace("http://", "https://")
        strict = RestClient(VenueProfile("t", url, "wss://x", "X-HK-APIKEY"), clock=FakeClock(), query_retries=3)
        hits = len(fake.calls())
        with pytest.raises(TransportError, match="not trusted: set venue.ca_file") as raised:
            strict.request("GET", "/api/v1/ping", signed=False)
        assert "gave up" not in str(raised.value)  # an untrusted certificate is not retried
        assert len(fake.calls()) == hits
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        trusting = RestClient(VenueProfile("t", url, "wss://x", "X-HK-APIKEY", ca_file=str(ca_file)),
                              clock=FakeClock())
        assert trusting.request("GET", "/api/v1/ping", signed=False) == {}
        strict.close()
        trusting.close()
    finally:
        fake.stop()
