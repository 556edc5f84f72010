"""Bad input gets a documented-shape error and never takes the venue down."""

from __future__ import annotations

import pytest

from rfqbot.sim import Simulator
from tests.sim.helpers import VenueClient, WsReader, open_private, open_public

CREATE = "/api/v1/market-place/create-rfq"


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-1", "0", "1e999999", "1e-999999",
                                    "0x10", "１００", "", "10 000"])
def test_weird_amounts_are_400_with_a_code(client: VenueClient, amount: str) -> None:
    response = client.call("POST", CREATE, {"buyCcy": "BTC", "sellCcy": "USDT",
                                            "sellAmount": amount, "rfqMode": "real-time"})
    assert response.status_code == 400
    assert set(response.json()) == {"code", "msg"}


@pytest.mark.parametrize("params", [
    {"startTime": "abc", "endTime": "1"},
    {"startTime": "5", "endTime": "1"},
    {"startTime": "1", "endTime": "99999999999999", "limit": "5000"},
    {"endTime": "1"},
])
def test_bad_history_queries(client: VenueClient, params: dict) -> None:
    response = client.call("GET", "/api/v1/market-place/rfqs", params)
    assert response.status_code == 400 and "code" in response.json()


def test_non_utf8_body_and_unknown_rfq(sim: Simulator, client: VenueClient) -> None:
    response = client.session.post(sim.rest_url + CREATE, data=b"\xff\xfe\x00junk",
                                   headers={"X-HK-APIKEY": client.key,
                                            "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and response.json()["code"] == -1004
    response = client.call("GET", "/api/v1/market-place/rfq-active/MP000")
    assert response.json()["code"] == -5027
    assert client.call("GET", "/api/v1/time").status_code == 200


def test_junk_from_clients_on_both_streams(sim: Simulator, client: VenueClient,
                                           readers: list[WsReader]) -> None:
    public = open_public(sim, readers)
    private = open_private(sim, readers, client.listen_key())
    for junk in ("not json", "[1, 2]", '{"event": "SUBSCRIBE", "topic": "secrets"}', "{}"):
        public.ws.send(junk)
        private.ws.send(junk)
    public.ws.send_binary(b"\x00\x01")
    public.send({"event": "SUBSCRIBE", "topic": "rfqs"})
    public.sync()
    rfq_id = client.create_rfq()
    public.topic("rfqs", rfq_id)
    private.topic("rfqUpdates", rfq_id)
    errors = [f for f in public.seen if isinstance(f, dict) and "code" in f]
    assert len(errors) == 3      # bad JSON, unsupported topic, empty message; a list is ignored


def test_bad_control_price_is_a_400(sim: Simulator, client: VenueClient) -> None:
    rfq_id = client.create_rfq()
    answer = client.session.post(sim.rest_url + "/sim/control",
                                 json={"action": "quote", "rfq_id": rfq_id, "price": "cheap"})
    assert answer.status_code == 400 and "positive decimal" in answer.json()["error"]


def test_control_rejects_bad_arguments_without_breaking(sim: Simulator,
                                                        client: VenueClient) -> None:
    url = sim.rest_url + "/sim/control"
    for command in ({"action": "delay", "seconds": "slow"}, {"action": "clock_skew", "ms": "x"},
                    {"action": "close_stream", "stream": "sideways"},
                    {"action": "quote", "rfq_id": "MP404", "price": "1"},
                    {"action": "time_scale", "factor": 0}, {"action": 7}, ["not", "a", "dict"]):
        answer = client.session.post(url, json=command)
        assert answer.status_code == 400, command
        assert answer.json()["ok"] is False
    assert client.session.post(url, json={"action": "clear"}).json() == {"ok": True,
                                                                         "result": None}
