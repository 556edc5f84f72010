"""RestClient.begin_order / OrderInFlight.finish: an order sent on the calling thread, its answer
read later - only when sending cannot block, and with every rule of ``request`` kept."""

from __future__ import annotations

import threading
import time

import pytest
import structlog

from rfqbot.errors import OutcomeUnknown, RateLimited, VenueError
from rfqbot.venue.marketplace import MarketPlace
from rfqbot.records import RfqStatus
from rfqbot.venue.rest import RestClient
from tests.fakevenue import FakeVenue, venue  # noqa: F401
from tests.test_rest_lean import ACCEPT, accept, make_client

PARAMS = [("rfqId", "r1"), ("quoteId", "q1"), ("action", "accept")]
ACK = '{"rfqId":"r1","quoteId":"q1","status":"accepted"}'


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    structlog.reset_defaults()


def warm(client: RestClient, venue: FakeVenue) -> None:
    """One ordinary call: the pool now holds an open keep-alive connection."""
    client.request("GET", "/api/v1/ping", signed=False)
    assert len(venue.calls("/api/v1/ping")) == 1


def wait_for_calls(venue: FakeVenue, path: str, count: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(venue.calls(path)) < count:
        assert time.monotonic() < deadline, f"the venue did not receive {count} call(s) to {path}"
        threading.Event().wait(0.005)


def test_the_request_is_at_the_venue_before_finish_is_called(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    warm(client, venue)
    venue.script("POST", ACCEPT, 200, raw=ACK, hang_s=0.2)
    inflight = client.begin_order("POST", ACCEPT, PARAMS)
    assert inflight is not None
    wait_for_calls(venue, ACCEPT, 1)          # sent by begin_order itself, nobody reading yet
    assert venue.calls(ACCEPT)[0].signature_ok is True
    assert inflight.finish()["status"] == "accepted"
    assert len(venue.calls(ACCEPT)) == 1
    pool = client._order_pool()
    assert pool.num_connections == 1          # the same connection went back to the pool ...
    assert client.begin_order("POST", ACCEPT, PARAMS) is not None   # ... and is warm again
    client.close()


def test_a_cold_pool_sends_nothing_and_books_no_slot(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    assert client.begin_order("POST", ACCEPT, PARAMS) is None   # a handshake would block
    assert venue.calls(ACCEPT) == []
    assert client.gate._windows["order"]._sent == __import__("collections").deque()
    accept(client)                                              # the worker way still works
    assert len(venue.calls(ACCEPT)) == 1
    client.close()


def test_a_paused_or_banned_gate_or_a_late_quote_sends_nothing(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    warm(client, venue)
    assert client.begin_order("POST", ACCEPT, PARAMS, send_by_ms=client.venue_clock.now_ms() - 1) is None
    client.gate.pause(30)
    assert client.begin_order("POST", ACCEPT, PARAMS) is None
    assert venue.calls(ACCEPT) == []
    with pytest.raises(RateLimited):             # the worker way raises the real reason
        accept(client)
    client.close()


def test_no_free_pacing_slot_means_no_send_and_no_wait(venue: FakeVenue) -> None:
    client = make_client(venue.url)   # FakeClock: a wait would advance it
    for _ in range(10):               # the whole order budget of this second
        accept(client)
    before = client.clock.monotonic()
    assert client.begin_order("POST", ACCEPT, PARAMS) is None
    assert client.clock.monotonic() == before
    assert len(venue.calls(ACCEPT)) == 10
    client.close()


def test_no_answer_in_time_is_outcome_unknown_and_never_resent(venue: FakeVenue) -> None:
    client = make_client(venue.url, read_timeout_s=0.2)
    warm(client, venue)
    venue.script("POST", ACCEPT, 200, raw=ACK, hang_s=0.6)
    inflight = client.begin_order("POST", ACCEPT, PARAMS)
    assert inflight is not None
    with pytest.raises(OutcomeUnknown, match="ReadTimeout: .*no answer within venue.read_timeout_s"):
        inflight.finish()
    assert len(venue.calls(ACCEPT)) == 1
    client.close()


def test_a_5xx_is_outcome_unknown(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    warm(client, venue)
    venue.script("POST", ACCEPT, 502, raw="bad gateway")
    inflight = client.begin_order("POST", ACCEPT, PARAMS)
    with pytest.raises(OutcomeUnknown, match="HTTP 502"):
        inflight.finish()
    assert len(venue.calls(ACCEPT)) == 1
    client.close()


def test_clock_skew_answer_resyncs_and_sends_once_more(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    warm(client, venue)
    venue.script("POST", ACCEPT, 400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."})
    venue.script("POST", ACCEPT, 200, raw=ACK)
    inflight = client.begin_order("POST", ACCEPT, PARAMS)
    assert inflight.finish()["status"] == "accepted"
    assert len(venue.calls(ACCEPT)) == 2 and len(venue.calls("/api/v1/time")) == 1
    venue.script("POST", ACCEPT, 400, {"code": -1021, "msg": "outside of the recvWindow"}, times=2)
    inflight = client.begin_order("POST", ACCEPT, PARAMS)
    with pytest.raises(VenueError, match="-1021"):   # resynced once; a second refusal stands
        inflight.finish()
    assert len(venue.calls(ACCEPT)) == 4
    client.close()


def test_a_429_answer_pauses_the_gate(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    warm(client, venue)
    venue.script("POST", ACCEPT, 429, {"code": -1003, "msg": "Too many requests"}, headers={"Retry-After": "9"})
    inflight = client.begin_order("POST", ACCEPT, PARAMS)
    with pytest.raises(RateLimited):
        inflight.finish()
    assert client.gate.paused_for() == pytest.approx(9.0)
    assert client.begin_order("POST", ACCEPT, PARAMS) is None
    client.close()


def test_a_connection_the_venue_closed_is_not_used(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    venue.script("GET", "/api/v1/ping", 200, {}, headers={"Connection": "close"})
    client.request("GET", "/api/v1/ping", signed=False)   # the venue closes it after answering
    assert client.begin_order("POST", ACCEPT, PARAMS) is None
    assert venue.calls(ACCEPT) == []
    client.close()


def test_marketplace_begin_accept_gives_the_ack(venue: FakeVenue) -> None:
    client = make_client(venue.url)
    warm(client, venue)
    venue.script("POST", ACCEPT, 200, raw=ACK)
    answer = MarketPlace(client.profile, None, rest=client).begin_accept("r1", "q1", None)
    assert answer is not None
    ack = answer()
    assert (ack.rfq_id, ack.quote_id, ack.status) == ("r1", "q1", RfqStatus.ACCEPTED)
    assert venue.calls(ACCEPT)[0].params["action"] == "accept"
    client.close()


def test_a_header_value_with_cr_or_lf_is_refused_before_anything_is_written(venue: FakeVenue) -> None:
    """Not sent (a definite outcome), the warm connection back in the pool, no pacing slot used."""
    from rfqbot.errors import NotSent
    from rfqbot.venue.profiles import VenueProfile
    from tests.fakevenue import API_SECRET, SERVER_TIME_MS
    from rfqbot.clock import FakeClock
    profile = VenueProfile("test", venue.url, "ws://127.0.0.1:1", "X-HK-APIKEY")
    client = RestClient(profile, "key\r\nX-Evil: 1", API_SECRET, clock=FakeClock(SERVER_TIME_MS), query_retries=0)
    warm(client, venue)
    with pytest.raises(NotSent, match="could not be built"):
        client.begin_order("POST", ACCEPT, PARAMS)
    assert venue.calls(ACCEPT) == []
    assert len(client.gate._windows["order"]._sent) == 0
    assert client._orders.take_warm() is not None        # the connection went back, still warm
    client.close()


def test_a_base_url_with_a_path_prefixes_order_calls_like_queries(venue: FakeVenue) -> None:
    """Found by review: queries went to base + path, orders to the bare path."""
    client = make_client(venue.url + "/gw")
    venue.script("GET", "/gw/api/v1/ping", 200, {})
    client.request("GET", "/api/v1/ping", signed=False)
    venue.script("POST", "/gw" + ACCEPT, 200, raw=ACK)
    inflight = client.begin_order("POST", ACCEPT, PARAMS)
    assert inflight is not None and inflight.finish()["status"] == "accepted"
    venue.script("POST", "/gw" + ACCEPT, 200, raw=ACK)
    client.close()
    client = make_client(venue.url + "/gw")
    assert accept(client)["status"] == "accepted"          # the worker way (a new connection)
    assert len(venue.calls("/gw" + ACCEPT)) == 2 and venue.calls(ACCEPT) == []
    host = {k.lower(): v for k, v in venue.calls("/gw" + ACCEPT)[0].headers.items()}["host"]
    assert host == venue.url.split("//", 1)[1]
    client.close()


@pytest.mark.parametrize("url, why", [("https://user:pw@api.example.com", "user or password"),
                                      ("https://api.example.com/?x=1", "query string")])
def test_rest_url_with_credentials_or_a_query_is_a_config_error(url: str, why: str) -> None:
    from rfqbot.config.schema import load_config_text
    from rfqbot.errors import ConfigError
    with pytest.raises(ConfigError, match=why):
        load_config_text(f"venue:\n  profile: hashkey-sg\n  rest_url: \"{url}\"\n", file="c.yaml")


def test_the_engine_thread_write_is_bounded_by_a_short_timeout(venue: FakeVenue) -> None:
    """begin_order runs on the engine thread: a venue that stopped reading must not stall it for
    the whole connect timeout. Its write timeout is ENGINE_WRITE_TIMEOUT_S; reads keep theirs."""
    from rfqbot.venue.rest import ENGINE_WRITE_TIMEOUT_S
    client = make_client(venue.url, connect_timeout_s=7.0, read_timeout_s=3.0)
    warm(client, venue)
    inflight = client.begin_order("POST", ACCEPT, PARAMS)
    sock = inflight._sent._conn.sock
    assert sock.gettimeout() == ENGINE_WRITE_TIMEOUT_S == 0.5   # what the write ran with
    inflight.finish()
    assert sock.gettimeout() == 3.0                               # the worker's read
    client.close()


@pytest.mark.parametrize("url, why", [("https://api.example.com:99999", "port"),
                                      ("https://api.example.com:abc", "port"),
                                      ("https://api.example.com/g w", "path"),
                                      ("https://api.example.com/gw/\u20ac", "path")])
def test_rest_url_with_a_bad_port_or_path_is_a_config_error(url: str, why: str) -> None:
    """Found by review: these passed validation, then failed at start without naming the key
    (bad port), or made every accept 'unknown' / 'not sent' (a path written raw on the wire)."""
    from rfqbot.config.schema import load_config_text
    from rfqbot.errors import ConfigError
    with pytest.raises(ConfigError, match=f"venue.rest_url.*{why}"):
        load_config_text(f"venue:\n  profile: hashkey-sg\n  rest_url: \"{url}\"\n", file="c.yaml")
