"""Alerts: webhook delivery to a local receiver (retries, non-blocking), and each alert condition."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from rfqbot.ops.alerts import Alert, Alerter, AlertWatch, WebhookSender, build_alerter
from rfqbot.backoff import Backoff
from rfqbot.clock import FakeClock
from rfqbot.config.schema import load_config_text


class Receiver:
    """A webhook receiver on 127.0.0.1 answering a scripted list of status codes."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.got = threading.Event()
        self.release = threading.Event()
        self.release.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                outer.release.wait(10)
                status = outer.statuses.pop(0) if outer.statuses else 200
                outer.paths.append(self.path)
                outer.bodies.append({"status": status, "body": body,
                                     "content_type": self.headers.get("Content-Type")})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if status < 300:
                    outer.got.set()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token-123"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.01, cap_s=0.02)


def test_webhook_delivers_json_after_retrying_5xx(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    sender = WebhookSender(receiver.url, attempts=5, backoff=fast_backoff()).start()
    alerter = Alerter(sender, clock=FakeClock())
    try:
        alerter.alert("banned", "the venue banned this IP (HTTP 418)", error="HTTP 418")
        assert receiver.got.wait(5)
    finally:
        alerter.close()
    assert [b["status"] for b in receiver.bodies] == [500, 503, 200]
    body = receiver.bodies[-1]["body"]
    assert receiver.bodies[-1]["content_type"] == "application/json"
    assert body["kind"] == "banned" and body["severity"] == "critical" and body["service"] == "rfqbot"
    assert body["details"] == {"error": "HTTP 418"} and body["at_ms"] == FakeClock().now_ms()
    assert receiver.paths[-1] == "/hooks/secret-token-123"
    assert sender.delivered == 1 and sender.failed == 0


def test_webhook_gives_up_on_4xx_without_retrying(receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    receiver.statuses = [400, 200]
    sender = WebhookSender(receiver.url, attempts=5, backoff=fast_backoff()).start()
    sender.submit(Alert("kill_switch", "critical", "x", 1))
    sender.stop(5)
    assert [b["status"] for b in receiver.bodies] == [400]
    assert sender.failed == 1
    out = capsys.readouterr().out
    assert "alerts.webhook_failed" in out and "secret-token-123" not in out  # the URL path is never logged


def test_webhook_gives_up_after_attempts_on_dead_receiver() -> None:
    sender = WebhookSender("http://127.0.0.1:9/nobody", attempts=3, backoff=fast_backoff(), timeout_s=1).start()
    sender.submit(Alert("stream_down", "critical", "x", 1))
    sender.stop(5)
    assert sender.failed == 1 and sender.delivered == 0


def test_alert_never_blocks_the_caller(receiver: Receiver) -> None:
    receiver.release.clear()  # the receiver hangs until released
    sender = WebhookSender(receiver.url, attempts=1, backoff=fast_backoff(), max_queue=2).start()
    alerter = Alerter(sender, clock=FakeClock())
    try:
        for i in range(5):  # one in flight, two queued, the rest dropped: every call returns
            alerter.alert("stream_down", f"down {i}")
        assert len(alerter.sent) == 5 and not receiver.got.is_set()
        receiver.release.set()
        assert receiver.got.wait(5)
    finally:
        alerter.close(5)
    assert 1 <= len(receiver.bodies) <= 3


def test_critical_log_line_for_every_alert(capsys: pytest.CaptureFixture[str]) -> None:
    Alerter(clock=FakeClock()).alert("kill_switch", "kill switch engaged")
    out = capsys.readouterr().out
    assert "critical" in out and "kill switch engaged" in out


# --- conditions ---------------------------------------------------------------------------------

def make_watch(**kw: Any) -> tuple[AlertWatch, Alerter, FakeClock]:
    clock = FakeClock()
    alerter = Alerter(clock=clock)
    return AlertWatch(alerter, **kw), alerter, clock


def kinds(alerter: Alerter) -> list[tuple[str, str]]:
    return [(a.kind, a.severity) for a in alerter.sent]


def test_ban_alerts_once_from_note_or_health() -> None:
    watch, alerter, _ = make_watch()
    watch.observe("note.alert.banned", {"error": "HTTP 418"})
    watch.check({"banned": True})
    watch.observe("note.alert.banned", {"error": "HTTP 418"})
    assert kinds(alerter) == [("banned", "critical")]


def test_kill_switch_engaged_and_released() -> None:
    watch, alerter, _ = make_watch()
    watch.observe("risk.kill_switch", {"engaged": True, "file": "/run/rfqbot/stop"})
    watch.observe("risk.kill_switch", {"engaged": True, "file": "/run/rfqbot/stop"})
    watch.observe("risk.kill_switch", {"engaged": False, "file": "/run/rfqbot/stop"})
    assert kinds(alerter) == [("kill_switch", "critical"), ("kill_switch", "resolved")]


def test_unknown_outcome_alerts_after_threshold_then_resolves() -> None:
    watch, alerter, clock = make_watch(unknown_outcome_after_s=120)
    watch.observe("accept.result", {"rfq_id": "R1", "outcome": "unknown", "rfq_state": {"accept_state": "unknown"}})
    clock.advance(119)
    watch.check({})
    assert alerter.sent == []
    clock.advance(1)
    watch.check({})
    watch.check({})
    assert kinds(alerter) == [("unknown_outcome", "critical")] and "R1" in alerter.sent[0].message
    watch.observe("rfq.transition", {"rfq_id": "R1", "rfq_state": {"accept_state": "accepted"}})
    assert kinds(alerter)[-1] == ("unknown_outcome", "resolved")


def test_unknown_outcome_settled_early_never_alerts() -> None:
    watch, alerter, clock = make_watch(unknown_outcome_after_s=60)
    watch.observe("accept.result", {"rfq_id": "R1", "rfq_state": {"accept_state": "unknown"}})
    watch.observe("rfq.state", {"rfq_id": "R1", "rfq_state": {"accept_state": "none"}})
    clock.advance(3600)
    watch.check({})
    assert alerter.sent == []


def test_accepts_in_doubt_after_restart_count_from_restore() -> None:
    watch, alerter, clock = make_watch(unknown_outcome_after_s=60)
    watch.observe("engine.restored", {"rfqs": 3, "accepts_in_doubt": ["R7"], "recent_accepts": 1})
    clock.advance(60)
    watch.check({})
    assert kinds(alerter) == [("unknown_outcome", "critical")] and alerter.sent[0].details["rfq_id"] == "R7"


def test_stream_down_longer_than_threshold() -> None:
    watch, alerter, clock = make_watch(stream_down_after_s=300)
    up = {"streams": {"public": {"state": "subscribed"}, "private": {"state": "subscribed"}}}
    down = {"streams": {"public": {"state": "backoff"}, "private": {"state": "subscribed"}}}
    watch.check(up)
    watch.check(down)
    clock.advance(200)
    watch.check(up)        # a blip that recovered: the clock starts again
    watch.check(down)
    clock.advance(299)
    watch.check(down)
    assert alerter.sent == []
    clock.advance(1)
    watch.check(down)
    watch.check(down)
    assert kinds(alerter) == [("stream_down", "critical")] and alerter.sent[0].details["stream"] == "public"
    watch.check(up)
    assert kinds(alerter)[-1] == ("stream_down", "resolved")


def test_listen_key_failing_repeatedly() -> None:
    watch, alerter, _ = make_watch(listen_key_failures=3)
    watch.observe("listen_key", {"action": "extend_failed", "detail": "x"})
    watch.observe("listen_key", {"action": "replaced", "detail": ""})      # recovered: counter resets
    watch.observe("listen_key", {"action": "failed", "detail": "create attempt 1: TransportError"})
    watch.observe("listen_key", {"action": "failed", "detail": "delete: VenueError"})  # a failed delete is harmless
    watch.observe("listen_key", {"action": "failed", "detail": "create attempt 2: TransportError"})
    assert alerter.sent == []
    watch.observe("listen_key", {"action": "failed", "detail": "create attempt 3: TransportError"})
    watch.observe("listen_key", {"action": "failed", "detail": "create attempt 4: TransportError"})
    assert kinds(alerter) == [("listen_key_failing", "critical")]
    watch.observe("listen_key", {"action": "created", "detail": ""})
    assert kinds(alerter)[-1] == ("listen_key_failing", "resolved")


def test_build_alerter_from_settings_posts_to_the_configured_receiver(receiver: Receiver) -> None:
    settings = load_config_text(f"alerts:\n  webhook_url: {receiver.url}\n  webhook_attempts: 2\n")
    alerter = build_alerter(settings, clock=FakeClock())
    try:
        assert alerter.sender is not None
        watch = AlertWatch.from_settings(alerter, settings.alerts)
        watch.observe("risk.kill_switch", {"engaged": True, "file": "/tmp/stop"})
        assert receiver.got.wait(5)
    finally:
        alerter.close()
    assert receiver.bodies[0]["body"]["kind"] == "kill_switch"
    assert build_alerter(load_config_text("")).sender is None
