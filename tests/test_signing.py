"""Signers: the venue's own vectors, exact encoding, and the second (Haqqex) scheme."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl

import pytest

from rfqbot.venue.signing import (HaqqexSigner, HashKeySigner, encode_params, get_signer, sign_haqqex, sign_hashkey)

SECRET = "lH3ELTNiFxCQTmi9pPcWWikhsjO04Yoqw3euoHUuOLC3GYBW64ZqzQsiOEHXQS76"


def test_hashkey_vector_query_or_body() -> None:
    text = "symbol=ETHBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1538323200000"
    assert sign_hashkey(SECRET, query=text) == "5f2750ad7589d1d40757a55342e621a44037dad23b5128cc70e18ec1d1c3f4c6"
    assert sign_hashkey(SECRET, body=text) == "5f2750ad7589d1d40757a55342e621a44037dad23b5128cc70e18ec1d1c3f4c6"


def test_hashkey_vector_query_followed_by_body() -> None:
    assert sign_hashkey(SECRET, "symbol=ETHBTC&side=BUY&type=LIMIT&timeInForce=GTC",
                        "quantity=1&price=0.1&recvWindow=5000&timestamp=1538323200000") == \
        "885c9e3dd89ccd13408b25e6d54c2330703759d7494bea6dd5a3d1fd16ba3afa"


def _prepare(method: str, params: list[tuple[str, str]]):
    return HashKeySigner().prepare(method, "/x", params, api_key="KEY", api_secret=SECRET, api_key_header="X-HK-APIKEY",
                                   timestamp_ms=1538323200000, recv_window_ms=5000, signed=True)


def test_hashkey_prepare_reproduces_vector_in_query_for_get() -> None:
    req = _prepare("GET", [("symbol", "ETHBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
                           ("quantity", "1"), ("price", "0.1")])
    assert req.body is None
    assert req.query.endswith("&signature=5f2750ad7589d1d40757a55342e621a44037dad23b5128cc70e18ec1d1c3f4c6")
    assert req.headers == {"X-HK-APIKEY": "KEY"}


def test_hashkey_prepare_puts_post_params_in_form_body() -> None:
    req = _prepare("POST", [("symbol", "ETHBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
                            ("quantity", "1"), ("price", "0.1")])
    assert req.query == ""
    assert req.body is not None and req.body.endswith(
        b"&signature=5f2750ad7589d1d40757a55342e621a44037dad23b5128cc70e18ec1d1c3f4c6")
    assert req.headers["Content-Type"].startswith("application/x-www-form-urlencoded")


@pytest.mark.parametrize("client_id", ["my order 1", "a+b", "x&y=z", "naïve/100%"])
def test_reserved_characters_are_signed_as_sent_and_decode_back(client_id: str) -> None:
    req = _prepare("POST", [("rfqClOrderId", client_id)])
    sent = req.body.decode()
    head, _, signature = sent.rpartition("&signature=")
    assert hmac.new(SECRET.encode(), head.encode(), hashlib.sha256).hexdigest() == signature
    assert dict(parse_qsl(sent))["rfqClOrderId"] == client_id
    assert " " not in sent and "+" not in sent


def test_encode_params_spaces_and_plus() -> None:
    assert encode_params([("a", "x y"), ("b", "1+1")]) == "a=x%20y&b=1%2B1"


def test_unsigned_request_has_no_key_or_signature() -> None:
    req = HashKeySigner().prepare("GET", "/api/v1/time", [], api_key=None, api_secret=None,
                                  api_key_header="X-HK-APIKEY", timestamp_ms=1, recv_window_ms=5000, signed=False)
    assert req.query == "" and req.headers == {}


def test_signed_request_without_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="API key and secret"):
        HashKeySigner().prepare("GET", "/x", [], api_key="k", api_secret=None, api_key_header="X-HK-APIKEY",
                                timestamp_ms=1, recv_window_ms=5000, signed=True)


def test_haqqex_signature_is_hmac_of_timestamp_dot_json_body() -> None:
    secret = "ioh8xDhjoNK60BE0msPGFbfGA-ECZy26"
    req = HaqqexSigner().prepare("POST", "/trading/api/v1/order",
                                 [("pair", "BTC-USDC"), ("side", "buy"), ("price", "24321.00")],
                                 api_key="88634a56-608a-434d-90f1-3a83d5d68379", api_secret=secret,
                                 api_key_header="ignored", timestamp_ms=1692000000000, recv_window_ms=5000,
                                 signed=True)
    body = '{"pair":"BTC-USDC","side":"buy","price":"24321.00"}'
    assert req.body == body.encode()
    assert json.loads(req.body) == {"pair": "BTC-USDC", "side": "buy", "price": "24321.00"}
    expected = hmac.new(secret.encode(), f"1692000000000.{body}".encode(), hashlib.sha256).hexdigest()
    assert req.headers["x-api-sign"] == expected == sign_haqqex(secret, "1692000000000", body)
    assert req.headers["x-api-key"] == "88634a56-608a-434d-90f1-3a83d5d68379"
    assert req.headers["x-api-timestamp"] == "1692000000000"


def test_haqqex_get_signs_empty_object_and_sends_query() -> None:
    req = HaqqexSigner().prepare("GET", "/trading/api/v1/trades/my", [("limit", "5")], api_key="k", api_secret="s",
                                 api_key_header="", timestamp_ms=5, recv_window_ms=5000, signed=True)
    assert req.query == "limit=5" and req.body is None
    assert req.headers["x-api-sign"] == sign_haqqex("s", "5", "{}")


def test_signer_registry() -> None:
    assert get_signer("hashkey").name == "hashkey"
    assert get_signer("haqqex").name == "haqqex"
    with pytest.raises(ValueError, match="unknown signer 'nope'"):
        get_signer("nope")
