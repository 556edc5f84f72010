"""A scripted HashKey-like HTTP server on 127.0.0.1 for the foundation's tests.

Not the simulator: a tiny, dumb server that answers documented frames by default, lets a test
queue exact responses (status, body, headers), and records exactly what it received, checking
every signature server-side from the raw bytes on the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

FRAMES = Path(__file__).resolve().parent / "fixtures" / "frames"
API_KEY = "tAQfOrPIZAhym0qHISRt8EFvxPemdBm5j5WMlkm3Ke9aFp0EGWC2CGM8GHV4kCYW"
API_SECRET = "lH3ELTNiFxCQTmi9pPcWWikhsjO04Yoqw3euoHUuOLC3GYBW64ZqzQsiOEHXQS76"
SERVER_TIME_MS = 1_760_000_000_000


def frame(name: str) -> Any:
    return json.loads((FRAMES / name).read_text())


@dataclass
class Received:
    method: str
    path: str
    query: str
    body: str
    headers: dict[str, str]
    signature_ok: bool | None

    @property
    def params(self) -> dict[str, str]:
        """Decoded parameters (query first, then body), as the venue would read them."""
        return dict(parse_qsl(self.query, keep_blank_values=True) + parse_qsl(self.body, keep_blank_values=True))


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: str | None = None
    hang_s: float = 0.0


DEFAULTS: dict[tuple[str, str], Any] = {
    ("GET", "/api/v1/time"): {"serverTime": SERVER_TIME_MS},
    ("GET", "/api/v1/ping"): {},
    ("GET", "/api/v1/account"): {"balances": [{"asset": "USDT", "total": "1000.5"}]},
    ("GET", "/api/v1/market-place/get-pairs"): frame("rest-get-pairs.json"),
    ("POST", "/api/v1/market-place/create-rfq"): frame("rest-create-rfq.json"),
    ("POST", "/api/v1/market-place/accept-quote"): frame("rest-accept-quote.json"),
    ("GET", "/api/v1/market-place/rfqs"): frame("rest-rfqs-history.json"),
    ("POST", "/api/v1/userDataStream"): frame("rest-listen-key.json"),
    ("PUT", "/api/v1/userDataStream"): {},
    ("DELETE", "/api/v1/userDataStream"): {},
}


def verify_signature(secret: str, query: str, body: str) -> bool | None:
    """HashKey rule: HMAC over query + body as sent, minus the trailing ``&signature=...``."""
    signed_text = query + body
    if "signature=" not in signed_text:
        return None
    for part in (query, body):
        if "&signature=" in part:
            head, _, sig = part.rpartition("&signature=")
            unsigned = (head + body) if part is query else (query + head)
            expected = hmac.new(secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, sig)
    return False


class FakeVenue:
    def __init__(self, secret: str = API_SECRET) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self._queue: dict[tuple[str, str], list[Scripted]] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeVenue":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def script(self, method: str, path: str, status: int, body: Any = None, *, headers: dict[str, str] | None = None,
               raw: str | None = None, hang_s: float = 0.0, times: int = 1) -> None:
        with self._lock:
            self._queue.setdefault((method, path), []).extend(
                [Scripted(status, body, headers or {}, raw, hang_s)] * times)

    def calls(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def _answer(self, method: str, path: str) -> Scripted:
        with self._lock:
            queued = self._queue.get((method, path))
            if queued:
                return queued.pop(0)
        if path.startswith("/api/v1/market-place/rfq-active/"):
            rows = frame("rest-rfq-active.json")
            rfq_id = path.rsplit("/", 1)[1]
            return Scripted(200, [dict(row, rfqId=rfq_id) for row in rows])
        if (method, path) in DEFAULTS:
            return Scripted(200, DEFAULTS[(method, path)])
        return Scripted(404, {"code": "-1020", "msg": "Unsupported operation"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        venue = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with venue._lock:
                    venue.received.append(Received(self.command, parts.path, parts.query, body,
                                                   {k: v for k, v in self.headers.items()},
                                                   verify_signature(venue.secret, parts.query, body)))
                answer = venue._answer(self.command, parts.path)
                if answer.hang_s:
                    threading.Event().wait(answer.hang_s)
                payload = (answer.raw if answer.raw is not None else json.dumps(answer.body)).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return Handler


@pytest.fixture
def venue() -> Any:
    fake = FakeVenue().start()
    try:
        yield fake
    finally:
        fake.stop()
