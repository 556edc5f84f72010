"""Every fault, from Python and through POST /sim/control."""

from __future__ import annotations

import json
import queue
from typing import Callable

import pytest
import requests

from rfqbot.sim import Simulator
from tests.sim.helpers import VenueClient, WsReader, open_private, open_public, wait_until

PAIRS = "/api/v1/market-place/get-pairs"


def test_close_public_and_private_streams(sim: Simulator, client: VenueClient,
                                          readers: list[WsReader]) -> None:
    public = open_public(sim, readers, "rfqs")
    private = open_private(sim, readers, client.listen_key())
    assert sim.faults.close_stream("public") == 1
    assert public.closed.wait(3) and not private.closed.is_set()
    assert sim.faults.close_stream("private", abrupt=True) == 1
    assert private.closed.wait(3)


def test_silence_keeps_tcp_open_but_sends_nothing(sim: Simulator, client: VenueClient,
                                                  readers: list[WsReader]) -> None:
    public = open_public(sim, readers, "rfqs")
    sim.faults.silence("public")
    public.send({"ping": 1})
    rfq_id = client.create_rfq()
    with pytest.raises(queue.Empty):
        public.next_raw(timeout=0.4)
    assert not public.closed.is_set()
    assert any(e["rfq_id"] == rfq_id for e in sim.truth("push_dropped"))
    sim.faults.silence("public", on=False)
    public.sync()


def test_invalidated_key_cannot_be_extended(sim: Simulator, client: VenueClient) -> None:
    key = client.listen_key()
    assert sim.faults.invalidate_listen_key(key) == 1
    response = client.call("PUT", "/api/v1/userDataStream", {"listenKey": key})
    assert response.status_code == 400 and response.json()["code"] == -1130


def test_muted_key_connects_but_nothing_arrives(make_sim: Callable[..., Simulator],
                                                readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=100)                    # server pings every 0.3 s
    client = VenueClient(sim)
    key = client.listen_key()
    sim.faults.invalidate_listen_key(key, mode="mute")
    private = open_private(sim, readers, key)
    client.create_rfq()
    with pytest.raises(queue.Empty):
        private.next_raw(timeout=0.8)
    assert not private.closed.is_set()


@pytest.mark.parametrize("applied", [True, False])
def test_accept_5xx_with_and_without_the_accept_applied(sim: Simulator, client: VenueClient,
                                                        applied: bool) -> None:
    rfq_id = client.create_rfq()
    quote_id = sim.faults.quote(rfq_id, "100000", confirm_s=1000)
    sim.faults.accept_5xx(applied=applied, status=503)
    response = client.accept(rfq_id, quote_id)
    assert response.status_code == 503
    assert sim.rfq_status(rfq_id) == ("accepted" if applied else "new")
    [fault] = sim.truth("accept_fault")
    assert fault["applied"] is applied
    assert client.accept(rfq_id, quote_id).status_code == (400 if applied else 200)


def test_create_rfq_5xx_applied_leaves_an_rfq_the_client_never_heard_of(
        sim: Simulator, client: VenueClient) -> None:
    sim.faults.server_error("create-rfq", applied=True, status=502)
    response = client.call("POST", "/api/v1/market-place/create-rfq",
                           {"buyCcy": "BTC", "sellCcy": "USDT", "sellAmount": "100",
                            "rfqMode": "real-time", "rfqClOrderId": "lost-1"})
    assert response.status_code == 502 and response.json()["code"] == -1000
    [row] = client.history(rfqClOrderId="lost-1")
    assert row["status"] == "new"
    [fault] = sim.truth("http_fault")
    assert fault["applied"] is True and fault["outcome"] == "new"
    with pytest.raises(ValueError):
        sim.faults.server_error("create-rfq", applied=False, status=404)


def test_slow_time_answer(sim: Simulator, client: VenueClient) -> None:
    sim.faults.delay(0.3, path="/api/v1/time", count=1)
    with pytest.raises(requests.Timeout):
        client.session.get(sim.rest_url + "/api/v1/time", timeout=0.1)
    assert client.session.get(sim.rest_url + "/api/v1/time", timeout=1).status_code == 200


def test_slow_accept_times_out_at_the_client_but_happens(sim: Simulator,
                                                         client: VenueClient) -> None:
    rfq_id = client.create_rfq()
    quote_id = sim.faults.quote(rfq_id, "100000", confirm_s=1000)
    sim.faults.delay(1.0, path="accept-quote", count=1)
    with pytest.raises(requests.Timeout):
        client.call("POST", "/api/v1/market-place/accept-quote",
                    {"rfqId": rfq_id, "quoteId": quote_id, "action": "accept"}, timeout=0.3)
    assert sim.rfq_status(rfq_id) == "accepted"
    assert client.call("GET", PAIRS).status_code == 200       # other paths are not slowed


def test_forced_429_then_418_within_the_penalty(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(time_scale=60)                             # penalty minute -> 1 s
    client = VenueClient(sim)
    sim.faults.rate_limit(429)
    first = client.call("GET", PAIRS)
    assert first.status_code == 429 and first.json()["code"] == "0003"
    assert client.call("GET", PAIRS).status_code == 418
    wait_until(lambda: client.call("GET", PAIRS).status_code == 200, 3, "penalty to end")
    sim.faults.rate_limit(418)
    assert client.call("GET", PAIRS).status_code == 418
    assert client.call("GET", PAIRS).status_code == 200


@pytest.mark.parametrize("kind", ["malformed", "truncated", "binary", "unknown_topic"])
def test_junk_frames_reach_the_client_and_the_venue_goes_on(
        sim: Simulator, client: VenueClient, readers: list[WsReader], kind: str) -> None:
    public = open_public(sim, readers, "rfqs")
    private = open_private(sim, readers, client.listen_key())
    assert sim.faults.inject(kind, stream="both") == 2          # one public + one private
    for reader in (public, private):
        opcode, data = reader.next_raw()
        if kind == "binary":
            assert opcode == 2
        elif kind == "unknown_topic":
            assert json.loads(data)["topic"] == "weatherReport"
        else:
            with pytest.raises(ValueError):
                json.loads(data)
    rfq_id = client.create_rfq()
    public.topic("rfqs", rfq_id)
    private.topic("rfqUpdates", rfq_id)


def test_duplicate_frames(sim: Simulator, client: VenueClient, readers: list[WsReader]) -> None:
    public = open_public(sim, readers, "rfqs")
    sim.faults.inject("duplicate", stream="public", count=1)
    rfq_id = client.create_rfq()
    one = public.topic("rfqs", rfq_id)
    two = public.topic("rfqs", rfq_id)
    assert one == two


def test_out_of_order_rfq_updates(sim: Simulator, client: VenueClient,
                                  readers: list[WsReader]) -> None:
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq()
    private.topic("rfqUpdates", rfq_id, status="new")
    quote_id = sim.faults.quote(rfq_id, "100000", confirm_s=0.1)
    sim.faults.reorder_updates(1)
    client.accept(rfq_id, quote_id)
    statuses = [private.topic("rfqUpdates", rfq_id)["data"]["status"] for _ in range(3)]
    assert statuses == ["processing", "accepted", "successful"]


def test_time_scale_can_change_at_run_time(make_sim: Callable[..., Simulator],
                                           readers: list[WsReader]) -> None:
    sim = make_sim()
    client = VenueClient(sim)
    sim.faults.time_scale(3600)
    private = open_private(sim, readers, client.listen_key())   # key made at 3600x: 1 s life
    assert private.closed.wait(3)


def test_control_endpoint_runs_the_same_faults(sim: Simulator, client: VenueClient) -> None:
    url = sim.rest_url + "/sim/control"
    rfq_id = client.create_rfq()
    answer = client.session.post(url, json={"action": "quote", "rfq_id": rfq_id,
                                            "price": "100000"}).json()
    assert answer["ok"] is True and answer["result"].startswith("MPQ")
    assert client.session.post(url, json={"action": "cancel_rfq", "rfq_id": rfq_id}).json() == \
        {"ok": True, "result": True}
    assert sim.rfq_status(rfq_id) == "cancelled"
    client.session.post(url, json={"action": "rate_limit", "status": 418})
    assert client.call("GET", PAIRS).status_code == 418
    unknown = client.session.post(url, json={"action": "explode"})
    assert unknown.status_code == 400 and "known actions" in unknown.json()["error"]
    bad_args = client.session.post(url, json={"action": "silence", "volume": 11})
    assert bad_args.status_code == 400
    assert client.session.post(url, data="not json").status_code == 400
    assert sim.control("clock_skew", ms=0) is None


def test_clock_skew_mid_run_does_not_expire_quotes(sim: Simulator, client: VenueClient) -> None:
    rfq_id = client.create_rfq()
    quote_id = sim.faults.quote(rfq_id, "100000", lifetime_s=60)
    sim.faults.clock_skew(120_000)             # the server clock jumps two minutes ahead
    server = client.session.get(sim.rest_url + "/api/v1/time").json()["serverTime"]
    response = client.call("POST", "/api/v1/market-place/accept-quote",
                           {"rfqId": rfq_id, "quoteId": quote_id, "action": "accept"},
                           timestamp=server)
    assert response.status_code == 200 and response.json()["status"] == "accepted"
