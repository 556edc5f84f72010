"""Plain-`requests` and plain-`websocket-client` helpers for driving the simulator.

Written here from the venue documents, on purpose not using rfqbot's client: the simulator's
tests must not share the client's understanding of the venue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Iterator

import requests
import websocket

from rfqbot.sim import SimConfig, Simulator


def quiet_config(**overrides: Any) -> SimConfig:
    """No LPs, no background, no rate limits, plain http: tests inject exactly what they need."""
    base: dict[str, Any] = dict(tls=False, lps=0, background_rfqs_per_min=0, rate_limits=False,
                                spot_streams=False, seed=3)
    base.update(overrides)
    return SimConfig(**base)


OPEN_SESSIONS: list[requests.Session] = []   # closed after each test by conftest


class VenueClient:
    """Signs like the documents say: HMAC-SHA256 hex over the exact parameter string sent."""

    def __init__(self, sim: Simulator, header: str = "X-HK-APIKEY") -> None:
        self.sim = sim
        self.base = sim.rest_url
        self.key = sim.api_key
        self.secret = sim.api_secret
        self.header = header
        self.session = requests.Session()
        self.session.trust_env = False          # REQUESTS_CA_BUNDLE would override verify
        self.session.verify = sim.ca_file or True
        OPEN_SESSIONS.append(self.session)

    def sign(self, payload: str, secret: str | None = None) -> str:
        return hmac.new((secret or self.secret).encode(), payload.encode(),
                        hashlib.sha256).hexdigest()

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, *,
             in_body: bool | None = None, timestamp: int | None = None,
             secret: str | None = None, key: str | None = None,
             timeout: float = 5.0) -> requests.Response:
        fields = dict(params or {})
        fields["timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
        text = "&".join(f"{k}={v}" for k, v in fields.items())
        signed = f"{text}&signature={self.sign(text, secret)}"
        headers = {self.header: key if key is not None else self.key}
        if in_body is None:
            in_body = method != "GET"
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self.session.request(method, self.base + path, data=signed, headers=headers,
                                        timeout=timeout)
        return self.session.request(method, f"{self.base}{path}?{signed}", headers=headers,
                                    timeout=timeout)

    def json(self, method: str, path: str, params: dict[str, Any] | None = None,
             **kwargs: Any) -> Any:
        response = self.call(method, path, params, **kwargs)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json(parse_float=Decimal)

    def create_rfq(self, buy: str = "BTC", sell: str = "USDT", amount: str = "10000",
                   mode: str = "real-time", **extra: Any) -> str:
        body = self.json("POST", "/api/v1/market-place/create-rfq",
                         {"buyCcy": buy, "sellCcy": sell, "sellAmount": amount, "rfqMode": mode,
                          **extra})
        assert body["status"] == "new"
        return body["rfqId"]

    def accept(self, rfq_id: str, quote_id: str, action: str = "accept") -> requests.Response:
        return self.call("POST", "/api/v1/market-place/accept-quote",
                         {"rfqId": rfq_id, "quoteId": quote_id, "action": action})

    def listen_key(self) -> str:
        return self.json("POST", "/api/v1/userDataStream")["listenKey"]

    def history(self, **filters: Any) -> list[dict[str, Any]]:
        now = int(time.time() * 1000)
        return self.json("GET", "/api/v1/market-place/rfqs",
                         {"startTime": now - 3_600_000, "endTime": now + 3_600_000, **filters})


class WsReader:
    """A websocket-client connection read by a thread into a queue, for bounded waits."""

    def __init__(self, url: str, ca_file: str | None, auto_pong: bool = False) -> None:
        self.auto_pong = auto_pong
        sslopt = {"ca_certs": ca_file} if ca_file else {}
        self.ws = websocket.create_connection(url, timeout=5, sslopt=sslopt)
        self.frames: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []
        self.raw_seen: list[bytes] = []
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.ws.settimeout(None)
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if self.auto_pong and b'"channelId"' in data:
                    ping = json.loads(data)["ping"]
                    self.ws.send(json.dumps({"pong": ping}))
                self.frames.put((opcode, data))
        except (websocket.WebSocketException, OSError):
            pass
        finally:
            self.closed.set()

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def next_raw(self, timeout: float = 3.0) -> tuple[int, bytes]:
        return self.frames.get(timeout=timeout)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 3.0
                 ) -> dict[str, Any]:
        """Next JSON frame matching ``predicate``; other frames are kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout} s; seen {self.seen[-5:]}")
            try:
                opcode, data = self.frames.get(timeout=remaining)
            except queue.Empty:
                continue
            self.raw_seen.append(data)
            try:
                frame = json.loads(data, parse_float=Decimal)
            except ValueError:
                self.seen.append(data)
                continue
            self.seen.append(frame)
            if isinstance(frame, dict) and predicate(frame):
                return frame

    def topic(self, name: str, rfq_id: str | None = None, timeout: float = 3.0,
              status: str | None = None) -> dict[str, Any]:
        def match(frame: dict[str, Any]) -> bool:
            if frame.get("topic") != name:
                return False
            data = frame.get("data")
            if rfq_id is not None:
                rows = data if isinstance(data, list) else [data]
                if not any(r.get("rfqId", r.get("inquiryOrderId")) == rfq_id for r in rows):
                    return False
            return status is None or (isinstance(data, dict) and data.get("status") == status)
        return self.wait_for(match, timeout)

    def sync(self) -> None:
        """Round-trip a ping so every earlier message has been processed (public only)."""
        self.send({"ping": 1})
        self.wait_for(lambda f: "pong" in f)

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            pass
        self._thread.join(timeout=3)




def open_public(sim: Simulator, readers: list[WsReader], *topics: str) -> WsReader:
    reader = WsReader(f"{sim.ws_url}/quote/ws/v1", sim.ca_file)
    readers.append(reader)
    for topic in topics:
        reader.send({"event": "SUBSCRIBE", "topic": topic})
    reader.sync()
    return reader


def open_private(sim: Simulator, readers: list[WsReader], key: str,
                 auto_pong: bool = True) -> WsReader:
    """Connect the private stream; like a well-behaved client it answers server pings."""
    reader = WsReader(f"{sim.ws_url}/api/v1/ws/{key}", sim.ca_file, auto_pong=auto_pong)
    readers.append(reader)
    deadline = time.monotonic() + 3
    while not any(e["event"] == "private_connected" for e in sim.truth("private_connected")
                  if e.get("key_tail") == key[-6:]):
        assert time.monotonic() < deadline, "private stream never registered"
        time.sleep(0.01)
    return reader


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)
