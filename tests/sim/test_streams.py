"""Public and private streams, heartbeats, listen keys and spot reference data."""

from __future__ import annotations

import queue
import time
from decimal import Decimal
from typing import Callable

import pytest
import websocket

from rfqbot.sim import Simulator
from tests.sim.helpers import VenueClient, WsReader, open_private, open_public, wait_until

KEYS = "/api/v1/userDataStream"


def test_public_ping_is_answered_with_server_time(sim: Simulator, readers: list[WsReader]) -> None:
    public = open_public(sim, readers)
    public.send({"ping": 1748503859938})
    pong = public.wait_for(lambda f: "pong" in f)["pong"]
    assert isinstance(pong, int) and abs(pong - time.time() * 1000) < 5000


def test_unsubscribe_stops_the_topic(sim: Simulator, client: VenueClient,
                                     readers: list[WsReader]) -> None:
    public = open_public(sim, readers, "rfqs", "quotes")
    first = client.create_rfq()
    sim.faults.quote(first, "100000")
    public.topic("quotes", first)
    public.send({"event": "UNSUBSCRIBE", "topic": "quotes"})
    public.sync()
    second = client.create_rfq()
    sim.faults.quote(second, "100000")
    public.topic("rfqs", second)
    public.sync()
    assert not any(f.get("topic") == "quotes" and f["data"]["rfqId"] == second
                   for f in public.seen if isinstance(f, dict))


def test_private_server_ping_every_30_scaled_seconds(make_sim: Callable[..., Simulator],
                                                     readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=100)
    private = open_private(sim, readers, VenueClient(sim).listen_key())
    ping = private.wait_for(lambda f: "ping" in f, timeout=2)
    assert isinstance(ping["ping"], int) and ping["channelId"]
    private.send({"pong": ping["ping"]})
    assert "ping" in private.wait_for(lambda f: "ping" in f, timeout=2)


def test_silent_client_is_closed_after_the_idle_hour(make_sim: Callable[..., Simulator],
                                                     readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=3600, listen_key_life_s=36000)   # idle hour -> 1 s; key lives on
    client = VenueClient(sim)
    quiet = open_private(sim, readers, client.listen_key(), auto_pong=False)
    talking = open_private(sim, readers, client.listen_key())
    assert quiet.closed.wait(3)
    assert not talking.closed.is_set()
    assert sim.truth("private_idle_closed")


def test_unknown_listen_key_is_refused_on_upgrade(sim: Simulator) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{sim.ws_url}/api/v1/ws/not-a-key", timeout=3)
    assert 400 <= refused.value.status_code < 500


def test_listen_key_expires_and_the_stream_stops(make_sim: Callable[..., Simulator],
                                                 readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=3600)                 # 60 minutes -> 1 s
    client = VenueClient(sim)
    key = client.listen_key()
    private = open_private(sim, readers, key)
    assert private.closed.wait(3), "private stream should close when the key expires"
    response = client.call("PUT", KEYS, {"listenKey": key})
    assert response.status_code == 400 and response.json()["code"] == -1130
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(f"{sim.ws_url}/api/v1/ws/{key}", timeout=3)


def test_put_extends_the_key_to_a_full_life(make_sim: Callable[..., Simulator],
                                            readers: list[WsReader]) -> None:
    sim = make_sim(time_scale=3600)                 # 1 s life
    client = VenueClient(sim)
    key = client.listen_key()
    private = open_private(sim, readers, key)
    for _ in range(3):                              # 3 x 0.5 s: outlives one life
        time.sleep(0.5)
        assert client.call("PUT", KEYS, {"listenKey": key}).json() == {}
    assert not private.closed.is_set()
    assert private.closed.wait(3)
    actions = [e["action"] for e in sim.truth("listen_key")]
    assert actions == ["created", "extended", "extended", "extended", "expired"]


def test_delete_closes_the_stream_and_the_key_is_gone(sim: Simulator, client: VenueClient,
                                                      readers: list[WsReader]) -> None:
    key = client.listen_key()
    private = open_private(sim, readers, key)
    assert client.call("DELETE", KEYS, {"listenKey": key}).json() == {}
    assert private.closed.wait(3)
    assert client.call("DELETE", KEYS, {"listenKey": key}).json()["code"] == -1130


def test_spot_reference_data_follows_the_walk(make_sim: Callable[..., Simulator],
                                              readers: list[WsReader]) -> None:
    sim = make_sim(spot_streams=True, time_scale=20)
    public = open_public(sim, readers)
    for topic in ("realtimes", "trade", "depth"):
        public.send({"symbol": "BTCUSDT", "topic": topic, "event": "sub",
                     "params": {"binary": False}})
    first = public.wait_for(lambda f: f.get("topic") == "realtimes")
    assert first["f"] is True and first["symbol"] == "BTCUSDT" and first["sendTime"] > 1e12
    tick = first["data"][0]
    assert set(tick) == {"t", "s", "c", "h", "l", "o", "v", "qv", "m"}
    later = public.wait_for(lambda f: f.get("topic") == "realtimes" and f["f"] is False)
    close = Decimal(later["data"][0]["c"])
    assert abs(close - sim.reference_price("BTCUSDT")) / close < Decimal("0.01")
    trade = public.wait_for(lambda f: f.get("topic") == "trade")["data"][0]
    assert set(trade) == {"v", "t", "p", "q", "m"}
    depth = public.wait_for(lambda f: f.get("topic") == "depth")["data"][0]
    assert Decimal(depth["b"][0][0]) < Decimal(depth["a"][0][0])
    public.send({"symbol": "NOPE", "topic": "trade", "event": "sub", "params": {"binary": False}})
    assert public.wait_for(lambda f: "code" in f)["code"] == "-100010"


def test_background_accounts_fill_the_public_streams(make_sim: Callable[..., Simulator],
                                                     readers: list[WsReader]) -> None:
    sim = make_sim(lps=3, background_rfqs_per_min=60, time_scale=30)
    public = open_public(sim, readers, "rfqs", "quotes")
    rfq = public.topic("rfqs", timeout=5)["data"]
    quote = public.wait_for(lambda f: f.get("topic") == "quotes"
                            and f["data"]["rfqId"] == rfq["rfqId"], timeout=5)["data"]
    assert quote["expireTime"] < 1e10            # seconds, as documented
    wait_until(lambda: any(e["to"] == "successful" for e in sim.truth("status_change")), 5,
               "a background RFQ to settle")


def test_silenced_venue_does_not_answer_websocket_pings_either(
        sim: Simulator, readers: list[WsReader]) -> None:
    public = open_public(sim, readers)
    public.ws.ping(b"hello")
    opcode, data = public.next_raw()
    assert (opcode, data) == (websocket.ABNF.OPCODE_PONG, b"hello")
    sim.faults.silence("public")
    public.ws.ping(b"again")
    with pytest.raises(queue.Empty):
        public.next_raw(timeout=0.4)


def test_spot_subscriptions_hold_no_memory_without_the_tick_loop(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    """With the tick loop off nobody consumes "first frame owed" marks: they must stay bounded
    by the connection's own subscriptions (before, a hub-wide list grew with every sub)."""
    sim = make_sim(spot_streams=False, reference_tick_s=0)
    public = open_public(sim, readers)
    for _ in range(50):
        for event in ("sub", "cancel", "sub"):
            public.send({"symbol": "BTCUSDT", "topic": "trade", "event": event,
                         "params": {"binary": False}})
    public.sync()
    owed = sim.call(lambda: [sorted(c.spot_first) for c in sim.state.hub.public_conns])
    assert owed == [[("BTCUSDT", "trade")]]
    assert not hasattr(sim.state.hub, "spot_first")


def test_a_resubscribed_spot_topic_gets_a_first_frame_again(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim = make_sim(spot_streams=True, time_scale=20)
    public = open_public(sim, readers)
    sub = {"symbol": "BTCUSDT", "topic": "trade", "event": "sub", "params": {"binary": False}}
    public.send(sub)
    assert public.wait_for(lambda f: f.get("topic") == "trade")["f"] is True
    assert public.wait_for(lambda f: f.get("topic") == "trade")["f"] is False
    public.send({**sub, "event": "cancel"})
    public.send(sub)
    public.wait_for(lambda f: f.get("topic") == "trade" and f["f"] is True)
