"""The clients rfqbot is measured against: what a user would otherwise run, and the floor.

* ``sample``: the venue's published Python sample style (its ``RestAPIClient``): a websocket
  callback decodes with ``json``, signs with ``hmac`` and sends a fresh ``requests.post`` per
  call, so every accept opens a new TCP + TLS connection.
* ``floor``: the least a Python client can do on this machine: one warm ``http.client``
  connection, ``json.loads`` of the frame, sign, post, read the answer. No journal, no strategy,
  no threads.
* ``minimal_ingest``: the ingest floor: a websocket-client receiver that parses each public
  frame and inserts it with raw ``sqlite3`` ``executemany`` in batches.

These are benchmark baselines, written for speed and brevity, not production code: they trust
the venue, keep no state beyond "accepted once per RFQ", and are not part of rfqbot.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import sqlite3
import ssl
import threading
import time
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import requests
import websocket

ACCEPT_PATH = "/api/v1/market-place/accept-quote"
LISTEN_KEY_PATH = "/api/v1/userDataStream"


def _sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def _signed_body(secret: str, params: dict[str, Any]) -> str:
    params = {**params, "timestamp": int(time.time() * 1000)}
    text = urlencode(params)
    return f"{text}&signature={_sign(secret, text)}"


def listen_key(venue: dict[str, Any], key: str, secret: str) -> str:
    """One signed POST for a listen key (set-up, not measured)."""
    response = requests.post(venue["rest_url"] + LISTEN_KEY_PATH, data=_signed_body(secret, {}),
                             headers={"X-HK-APIKEY": key,
                                      "Content-Type": "application/x-www-form-urlencoded"},
                             verify=venue["ca_file"], timeout=10)
    response.raise_for_status()
    return str(response.json()["listenKey"])


def _ssl_context(venue: dict[str, Any]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=venue["ca_file"])


def _recv_loop(ws: websocket.WebSocket, stop: threading.Event, on_text: Any) -> None:
    ws.settimeout(0.5)
    while not stop.is_set():
        try:
            text = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, OSError):
            return
        if text:
            on_text(ws, text)


def _best_rfq(message: dict[str, Any]) -> tuple[str, str] | None:
    if message.get("topic") != "bestQuote" or not message.get("data"):
        return None
    best = message["data"][0]
    return str(best["inquiryOrderId"]), str(best["quoteOrderId"])


def _answer_ping(ws: websocket.WebSocket, message: dict[str, Any]) -> bool:
    if "ping" in message:
        ws.send(json.dumps({"pong": message["ping"]}))
        return True
    return False


def _accept_each_best(ws: websocket.WebSocket, stop: threading.Event,
                      send_accept: Callable[[str, str], int]) -> dict[str, Any]:
    """What every baseline client does per private frame: answer pings, accept each RFQ's best
    quote once with ``send_accept`` (returns the HTTP status), count accepts and errors."""
    accepted: set[str] = set()
    counts = {"accepts": 0, "errors": 0}

    def on_text(ws: websocket.WebSocket, text: str) -> None:
        message = json.loads(text)
        if _answer_ping(ws, message):
            return
        best = _best_rfq(message)
        if best is None or best[0] in accepted:
            return
        accepted.add(best[0])
        counts["accepts" if send_accept(*best) == 200 else "errors"] += 1

    _recv_loop(ws, stop, on_text)
    return counts


def run_floor(venue: dict[str, Any], key: str, secret: str, stop: threading.Event) -> dict[str, Any]:
    """Warm ``http.client`` connection; per frame: parse, sign, post, read. Returns counts."""
    context = _ssl_context(venue)
    url = urlsplit(venue["rest_url"])
    conn = http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port, context=context, timeout=10)
    headers = {"X-HK-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"}
    conn.request("GET", "/api/v1/time")  # warm: TCP + TLS done before the first accept
    conn.getresponse().read()
    ws = websocket.create_connection(venue["ws_url"] + "/api/v1/ws/" + listen_key(venue, key, secret),
                                     sslopt={"context": context})

    def send_accept(rfq_id: str, quote_id: str) -> int:
        conn.request("POST", ACCEPT_PATH, body=_signed_body(
            secret, {"rfqId": rfq_id, "quoteId": quote_id, "action": "accept"}), headers=headers)
        response = conn.getresponse()
        json.loads(response.read())
        return response.status

    try:
        return _accept_each_best(ws, stop, send_accept)
    finally:
        ws.close()
        conn.close()


def run_sample(venue: dict[str, Any], key: str, secret: str, stop: threading.Event) -> dict[str, Any]:
    """The venue sample's style: ``requests.post`` per call (fresh session, new TLS connection)."""
    ws = websocket.create_connection(venue["ws_url"] + "/api/v1/ws/" + listen_key(venue, key, secret),
                                     sslopt={"context": _ssl_context(venue)})
    headers = {"X-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}

    def send_accept(rfq_id: str, quote_id: str) -> int:
        data: dict[str, Any] = {"rfqId": rfq_id, "quoteId": quote_id, "action": "accept",
                                "timestamp": int(time.time() * 1000)}
        data["signature"] = _sign(secret, urlencode(data))
        response = requests.post(venue["rest_url"] + ACCEPT_PATH, headers=headers, data=data,
                                 verify=venue["ca_file"])
        response.json()
        return response.status_code

    try:
        return _accept_each_best(ws, stop, send_accept)
    finally:
        ws.close()


def run_minimal_ingest(venue: dict[str, Any], db_path: str, frames: int, stop: threading.Event,
                       on_subscribed: Any, batch: int = 500, library_utf8_check: bool = False) -> dict[str, Any]:
    """Parse each public frame and insert it (executemany per ``batch``); returns when ``frames``
    market-place frames are committed, with the perf_counter_ns of that moment.

    By default websocket-client's own UTF-8 check is skipped, as rfqbot's streams skip it: that
    check is a pure-Python loop (~26 us for a 200-byte frame) and the frame is decoded (and so
    checked) by ``bytes.decode`` anyway. ``library_utf8_check=True`` keeps the library default:
    the ``minimal-ingest-default`` client, what a receiver written with default settings gets.
    """
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")  # the same durability rfqbot's journal uses
    db.execute("CREATE TABLE frames (topic TEXT, rfq_id TEXT, received_ms INTEGER, raw TEXT)")
    ws = websocket.create_connection(venue["ws_url"] + "/quote/ws/v1", sslopt={"context": _ssl_context(venue)},
                                     skip_utf8_validation=not library_utf8_check)
    for topic in ("rfqs", "quotes"):
        ws.send(json.dumps({"event": "SUBSCRIBE", "topic": topic}))
    on_subscribed()
    ws.settimeout(0.5)
    rows: list[tuple[str, str, int, str]] = []
    stored = 0
    insert = "INSERT INTO frames VALUES (?, ?, ?, ?)"
    try:
        while stored < frames and not stop.is_set():
            try:
                text = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            message = json.loads(text)
            topic = message.get("topic")
            if topic not in ("rfqs", "quotes"):
                continue
            rows.append((topic, message["data"]["rfqId"], int(time.time() * 1000), text))
            if len(rows) >= batch or stored + len(rows) >= frames:
                with db:
                    db.executemany(insert, rows)
                stored += len(rows)
                rows.clear()
        done_ns = time.perf_counter_ns()
    finally:
        ws.close()
        db.close()
    return {"stored": stored, "done_perf_ns": done_ns}
