"""Authentication, timestamps, error bodies and the unsigned endpoints."""

from __future__ import annotations

import time

from rfqbot.sim import Simulator
from tests.sim.helpers import VenueClient

PAIRS = "/api/v1/market-place/get-pairs"


def test_signing_vectors_from_the_reference_are_what_the_sim_checks() -> None:
    from rfqbot.sim.auth import sign
    secret = "lH3ELTNiFxCQTmi9pPcWWikhsjO04Yoqw3euoHUuOLC3GYBW64ZqzQsiOEHXQS76"
    query = "symbol=ETHBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1538323200000"
    assert sign(secret, f"{query}&{body}") == \
        "5f2750ad7589d1d40757a55342e621a44037dad23b5128cc70e18ec1d1c3f4c6"
    assert sign(secret, query + body) == \
        "885c9e3dd89ccd13408b25e6d54c2330703759d7494bea6dd5a3d1fd16ba3afa"


def test_time_and_ping_need_no_key(sim: Simulator, client: VenueClient) -> None:
    before = int(time.time() * 1000)
    server = client.session.get(sim.rest_url + "/api/v1/time").json()["serverTime"]
    assert isinstance(server, int) and before - 50 <= server <= int(time.time() * 1000) + 50
    assert client.session.get(sim.rest_url + "/api/v1/ping").json() == {}


def test_good_signature_in_query_in_body_and_both(client: VenueClient) -> None:
    assert "quotePair" in client.json("GET", PAIRS)
    assert len(client.json("POST", "/api/v1/userDataStream", in_body=False)["listenKey"]) == 64
    stamp = int(time.time() * 1000)
    query = "buyCcy=BTC&sellCcy=USDT"
    body = f"sellAmount=100&rfqMode=real-time&timestamp={stamp}"
    signature = client.sign(query + body)
    response = client.session.post(
        f"{client.base}/api/v1/market-place/create-rfq?{query}", data=f"{body}&signature={signature}",
        headers={"X-HK-APIKEY": client.key,
                 "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "new"


def test_get_pairs_matches_the_documented_example(client: VenueClient) -> None:
    pairs = client.json("GET", PAIRS)["quotePair"]
    btc = next(p for p in pairs if p["baseCcy"] == "BTC")
    assert btc["quoteCcy"] == "USDT" and btc["basePrecision"] == "0.00001"
    assert btc["minTradeBaseQuantity"] == "0.001" and btc["tradingStatus"] == "OPENED"
    assert {p["baseCcy"] for p in pairs} == {"USDC", "BTC", "ETH"}


def test_both_documented_key_headers_are_accepted(sim: Simulator) -> None:
    for header in ("X-HK-APIKEY", "X-APIKEY"):
        assert VenueClient(sim, header=header).call("GET", PAIRS).status_code == 200
    assert VenueClient(sim, header="X-OTHER-KEY").call("GET", PAIRS).json()["code"] == "0102"


def test_wrong_signature_is_0001(client: VenueClient) -> None:
    response = client.call("GET", PAIRS, secret="not-the-secret")
    assert response.status_code == 400
    assert response.json() == {"code": "0001", "msg": "Incorrect signature"}


def test_signature_over_other_bytes_than_sent_is_rejected(client: VenueClient) -> None:
    stamp = int(time.time() * 1000)
    signed_text = f"timestamp={stamp}&recvWindow=5000"
    sent_text = f"recvWindow=5000&timestamp={stamp}"   # same parameters, other order
    response = client.session.get(
        f"{client.base}{PAIRS}?{sent_text}&signature={client.sign(signed_text)}",
        headers={"X-HK-APIKEY": client.key})
    assert response.json()["code"] == "0001"


def test_unknown_key_is_0102(client: VenueClient) -> None:
    response = client.call("GET", PAIRS, key="someone-elses-key")
    assert response.status_code == 400
    assert response.json()["code"] == "0102"


def test_stale_and_future_timestamps_are_minus_1021(client: VenueClient) -> None:
    now = int(time.time() * 1000)
    for stamp in (now - 6000, now + 1500):
        response = client.call("GET", PAIRS, timestamp=stamp)
        assert response.status_code == 400
        assert response.json()["code"] == -1021
    assert client.call("GET", PAIRS, {"recvWindow": 10000}, timestamp=now - 6000).status_code == 200


def test_missing_timestamp_is_a_required_field_error(client: VenueClient) -> None:
    text = "recvWindow=5000"
    response = client.session.get(f"{client.base}{PAIRS}?{text}&signature={client.sign(text)}",
                                  headers={"X-HK-APIKEY": client.key})
    assert response.json() == {"code": "0001",
                               "msg": "Required field timestamp missing or invalid"}


def test_clock_skew_moves_server_time_and_the_timestamp_rule(sim: Simulator,
                                                             client: VenueClient) -> None:
    sim.faults.clock_skew(20_000)
    server = client.session.get(sim.rest_url + "/api/v1/time").json()["serverTime"]
    assert server - int(time.time() * 1000) > 19_000
    assert client.call("GET", PAIRS).json()["code"] == -1021
    assert client.call("GET", PAIRS, timestamp=server).status_code == 200


def test_account_answers_balances_as_strings(client: VenueClient) -> None:
    account = client.json("GET", "/api/v1/account")
    assert isinstance(account["userId"], str)
    assert all(isinstance(b["total"], str) for b in account["balances"])
