"""Alerts: things a human must look at, as CRITICAL logs and an optional webhook POST.

What alerts (each once per episode, with a "resolved" follow-up where it can end):

- ``banned``: the venue answered HTTP 418; rfqbot sends nothing more until restarted.
- ``kill_switch``: the risk kill-switch file appeared (accepts are blocked).
- ``unknown_outcome``: an accept's outcome is still unknown after ``alerts.unknown_outcome_after_s``
  (reconciliation has not settled it: money may have moved).
- ``stream_down``: a stream has not been subscribed for ``alerts.stream_down_after_s``.
- ``listen_key_failing``: ``alerts.listen_key_failures`` listen-key failures in a row.
- ``journal_failed``: a journal write failed (disk full, read-only, I/O error); the engine has
  stopped deciding and stays so until restarted.

The webhook runs on its own thread with a bounded queue: ``Alerter.alert`` never blocks (the
engine thread calls it through an observer), and a full queue drops the alert after logging it.
Delivery is retried with the shared jittered ``Backoff``; client errors (4xx other than 429)
are not retried because the same request would fail the same way. The webhook URL is never
logged: such URLs embed tokens.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests
import structlog

from rfqbot.backoff import Backoff
from rfqbot.clock import Clock, SystemClock
from rfqbot.logs import redact_text, redact_value

log = structlog.get_logger(__name__)

ALERT_KINDS = ("banned", "kill_switch", "unknown_outcome", "stream_down", "listen_key_failing", "journal_failed")


@dataclass(frozen=True)
class Alert:
    """One alert as sent: ``severity`` is ``critical`` or ``resolved``."""

    kind: str
    severity: str
    message: str
    at_ms: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self, service: str) -> dict[str, Any]:
        return {"service": service, "host": socket.gethostname(), "kind": self.kind, "severity": self.severity,
                "message": self.message, "at_ms": self.at_ms, "details": redact_value(self.details)}


class WebhookSender:
    """POSTs alerts as JSON from its own thread, retrying with backoff; ``submit`` never blocks."""

    def __init__(self, url: str, *, service: str = "rfqbot", timeout_s: float = 5.0, attempts: int = 5,
                 backoff: Backoff | None = None, max_queue: int = 100, ca_file: str | None = None) -> None:
        self._url = url
        self._where = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"  # the path may hold a token
        self._service = service
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self._queue: "queue.Queue[Alert | None]" = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._session = requests.Session()
        self._verify: Any = ca_file or True
        self._thread = threading.Thread(target=self._run, name="rfqbot-alerts", daemon=True)
        self.delivered = 0
        self.failed = 0

    def start(self) -> "WebhookSender":
        self._thread.start()
        return self

    def submit(self, alert: Alert) -> bool:
        """Queue ``alert`` for delivery; False (and an error log) when the queue is full."""
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            log.error("alerts.webhook_queue_full", kind=alert.kind, dropped=True, webhook=self._where)
            return False
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued within ``timeout_s``, then stop; undelivered alerts are logged."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        self._session.close()

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            self._deliver(alert)

    def _deliver(self, alert: Alert) -> None:
        body = json.dumps(alert.to_json(self._service), sort_keys=True, default=str)
        self._backoff.reset()
        last = ""
        for attempt in range(1, self._attempts + 1):
            try:
                response = self._session.post(self._url, data=body.encode("utf-8"), timeout=self._timeout_s,
                                              headers={"Content-Type": "application/json"}, verify=self._verify)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if response.status_code < 300:
                    self.delivered += 1
                    log.info("alerts.webhook_delivered", kind=alert.kind, attempt=attempt)
                    return
                last = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # the same request would be refused again
            if attempt < self._attempts and self._stop.wait(self._backoff.next_delay()):
                break
        self.failed += 1
        log.error("alerts.webhook_failed", kind=alert.kind, webhook=self._where, error=last,
                  fix="check alerts.webhook_url and that the receiver accepts JSON POSTs")


class Alerter:
    """Raises alerts: a CRITICAL log line always, the webhook when configured."""

    def __init__(self, sender: WebhookSender | None = None, *, clock: Clock | None = None,
                 service: str = "rfqbot") -> None:
        self.sender = sender
        self.clock: Clock = clock or SystemClock()
        self.service = service
        self.sent: list[Alert] = []  # recent alerts (bounded), for tests and the status line
        self._lock = threading.Lock()

    def alert(self, kind: str, message: str, *, severity: str = "critical", **details: Any) -> Alert:
        item = Alert(kind, severity, redact_text(message), self.clock.now_ms(), dict(details))
        if severity == "critical":
            log.critical("alert", kind=kind, message=item.message, **details)
        else:
            log.warning("alert_resolved", kind=kind, message=item.message, **details)
        with self._lock:
            self.sent.append(item)
            del self.sent[:-100]
        if self.sender is not None:
            self.sender.submit(item)
        return item

    def close(self, timeout_s: float = 5.0) -> None:
        if self.sender is not None:
            self.sender.stop(timeout_s)


class AlertWatch:
    """Turns journal entries (engine observer) and health snapshots into alerts, once per episode.

    ``observe`` runs on the engine thread and only updates small dicts; ``check`` runs on the
    service monitor's thread and does the time-based comparisons.
    """

    def __init__(self, alerter: Alerter, *, unknown_outcome_after_s: float = 300, stream_down_after_s: float = 300,
                 listen_key_failures: int = 3) -> None:
        self.alerter = alerter
        self.unknown_after_ms = int(unknown_outcome_after_s * 1000)
        self.stream_down_after_ms = int(stream_down_after_s * 1000)
        self.listen_key_failures = listen_key_failures
        self._lock = threading.Lock()
        self._doubts: dict[str, int] = {}        # rfq_id -> since (local ms)
        self._doubts_alerted: set[str] = set()
        self._down_since: dict[str, int] = {}
        self._down_alerted: set[str] = set()
        self._key_failures = 0
        self._key_alerted = False
        self._banned = False
        self._kill_engaged = False
        self._journal_alerted = False

    @classmethod
    def from_settings(cls, alerter: Alerter, alerts: Any) -> "AlertWatch":
        return cls(alerter, unknown_outcome_after_s=alerts.unknown_outcome_after_s,
                   stream_down_after_s=alerts.stream_down_after_s, listen_key_failures=alerts.listen_key_failures)

    # --- engine observer ---------------------------------------------------------------------

    def observe(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Engine observer: called after each journaled entry. Cheap; never blocks."""
        now = self.alerter.clock.now_ms()
        if kind == "note.alert.banned":
            self.on_banned(str(payload.get("error", "")))
        elif kind == "risk.kill_switch":
            self._on_kill_switch(bool(payload.get("engaged")), payload.get("file"))
        elif kind == "listen_key":
            self._on_listen_key(str(payload.get("action", "")), str(payload.get("detail", "")))
        elif kind == "engine.restored":
            with self._lock:
                for rfq_id in payload.get("accepts_in_doubt") or ():
                    self._doubts.setdefault(str(rfq_id), now)
        state = payload.get("rfq_state")
        rfq_id = payload.get("rfq_id")
        if isinstance(state, Mapping) and rfq_id:
            self._on_accept_state(str(rfq_id), state.get("accept_state"), now)

    def on_banned(self, error: str) -> None:
        with self._lock:
            if self._banned:
                return
            self._banned = True
        self.alerter.alert("banned", "the venue banned this IP (HTTP 418); rfqbot sends nothing more. Check request "
                           "rates, wait for the ban to lapse, then restart the service", error=error)

    def on_journal_failed(self, error: str) -> None:
        with self._lock:
            if self._journal_alerted:
                return
            self._journal_alerted = True
        self.alerter.alert("journal_failed", "the journal cannot be written (disk full, read-only or I/O error): "
                           "rfqbot has stopped deciding - no accept, decline or create leaves. Free space on or fix "
                           "the journal's filesystem, then restart rfqbot", error=error)

    def _on_kill_switch(self, engaged: bool, file: Any) -> None:
        with self._lock:
            if engaged == self._kill_engaged:
                return
            self._kill_engaged = engaged
        if engaged:
            self.alerter.alert("kill_switch", f"kill switch engaged ({file}): no accepts until the file is removed",
                               file=file)
        else:
            self.alerter.alert("kill_switch", f"kill switch released ({file})", severity="resolved", file=file)

    def _on_listen_key(self, action: str, detail: str) -> None:
        resolved = False
        fire = False
        with self._lock:
            if action in ("failed", "extend_failed") and not detail.startswith("delete"):
                self._key_failures += 1
                if self._key_failures >= self.listen_key_failures and not self._key_alerted:
                    self._key_alerted = fire = True
            elif action in ("created", "extended", "replaced"):
                self._key_failures = 0
                resolved, self._key_alerted = self._key_alerted, False
            count = self._key_failures
        if fire:
            self.alerter.alert("listen_key_failing", f"the listen key failed {count} times in a row; the private "
                               "stream (own RFQ updates, best quotes) may be down. Check the API key's "
                               "permissions and the venue's status", failures=count, last_error=detail)
        elif resolved:
            self.alerter.alert("listen_key_failing", f"listen key working again ({action})", severity="resolved")

    def _on_accept_state(self, rfq_id: str, accept_state: Any, now: int) -> None:
        resolved = False
        with self._lock:
            if accept_state == "unknown":
                self._doubts.setdefault(rfq_id, now)
                return
            if rfq_id in self._doubts:
                del self._doubts[rfq_id]
                resolved = rfq_id in self._doubts_alerted
                self._doubts_alerted.discard(rfq_id)
        if resolved:
            self.alerter.alert("unknown_outcome", f"accept outcome of {rfq_id} settled: {accept_state}",
                               severity="resolved", rfq_id=rfq_id, accept_state=accept_state)

    # --- periodic ------------------------------------------------------------------------------

    def check(self, health: Mapping[str, Any]) -> None:
        """Time-based conditions from a ``Daemon.health()`` snapshot; call every few seconds."""
        now = self.alerter.clock.now_ms()
        if health.get("banned"):
            self.on_banned("")
        if health.get("journal_failure"):
            self.on_journal_failed(str(health["journal_failure"]))
        fire: list[tuple[str, str, dict[str, Any]]] = []
        with self._lock:
            for rfq_id, since in sorted(self._doubts.items()):
                if now - since >= self.unknown_after_ms and rfq_id not in self._doubts_alerted:
                    self._doubts_alerted.add(rfq_id)
                    fire.append(("unknown_outcome", f"the outcome of the accept on {rfq_id} is still unknown after "
                                 f"{(now - since) // 1000} s; reconciliation has not settled it. Check the RFQ on "
                                 f"the venue (rfqbot rfq list --since 1h) before doing anything else",
                                 {"rfq_id": rfq_id, "since_ms": since}))
            for name, stream in (health.get("streams") or {}).items():
                state = (stream or {}).get("state")
                if state == "subscribed":
                    self._down_since.pop(name, None)
                    if name in self._down_alerted:
                        self._down_alerted.discard(name)
                        fire.append(("stream_down", f"{name} stream subscribed again", {"stream": name,
                                                                                         "resolved": True}))
                    continue
                since = self._down_since.setdefault(name, now)
                if now - since >= self.stream_down_after_ms and name not in self._down_alerted:
                    self._down_alerted.add(name)
                    fire.append(("stream_down", f"the {name} stream has not been subscribed for {(now - since) // 1000}"
                                 f" s (state {state}); rfqbot keeps reconnecting. Check network and venue status",
                                 {"stream": name, "state": state, "since_ms": since}))
        for kind, message, details in fire:
            severity = "resolved" if details.pop("resolved", False) else "critical"
            self.alerter.alert(kind, message, severity=severity, **details)


def build_alerter(settings: Any, *, clock: Clock | None = None,
                  sender_factory: Callable[..., WebhookSender] = WebhookSender) -> Alerter:
    """An ``Alerter`` with the webhook sender started when ``alerts.webhook_url`` is set."""
    alerts = settings.alerts
    sender = None
    if alerts.webhook_url:
        sender = sender_factory(alerts.webhook_url, timeout_s=alerts.webhook_timeout_s,
                                attempts=alerts.webhook_attempts).start()
    return Alerter(sender, clock=clock)


__all__ = ["ALERT_KINDS", "Alert", "AlertWatch", "Alerter", "WebhookSender", "build_alerter"]
