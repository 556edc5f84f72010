"""Optional Prometheus metrics on ``127.0.0.1:metrics.port`` (``GET /metrics``).

Written by hand rather than with prometheus_client: we need a handful of counters and two
histograms, the text exposition format is a few lines, and this keeps a dependency (and its
global default registry, which makes tests share state) out of a trading daemon. Counts come
from the engine observer (one call per journaled entry, so metrics agree with the journal);
gauges are read from ``Daemon.health()`` at scrape time. The server listens on loopback only:
metrics reveal trading activity, so exposing them further is a deliberate reverse-proxy step.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping

import structlog

log = structlog.get_logger(__name__)

# Seconds. Decisions are local (sub-millisecond to a few ms); accepts are a venue round trip.
DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
ACCEPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_FRAME_KINDS = {
    "frame.public_rfq": ("public", "rfqs"), "frame.public_quote": ("public", "quotes"),
    "frame.spot": ("public", "spot"), "frame.rfq_update": ("private", "rfqUpdates"),
    "frame.best_quotes": ("private", "bestQuote"), "frame.rejected": ("any", "rejected"),
}

Labels = tuple[tuple[str, str], ...]


def _label_text(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'
               for k, v in labels)
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Histogram:
    """Cumulative buckets, sum and count (Prometheus histogram semantics)."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value


class Metrics:
    """Counters and histograms fed by the engine observer; ``render`` gives the exposition text."""

    def __init__(self, health: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, int]] = {}
        self.decision_latency = Histogram(DECISION_BUCKETS)
        self.accept_latency = Histogram(ACCEPT_BUCKETS)
        self._connected_once: set[str] = set()
        self.health = health

    def inc(self, name: str, labels: Labels = (), by: int = 1) -> None:
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[labels] = series.get(labels, 0) + by

    def value(self, name: str, **labels: str) -> int:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def observe(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Engine observer (engine thread): count what was just journaled."""
        frame = _FRAME_KINDS.get(kind)
        if frame is not None:
            self.inc("rfqbot_frames_total", (("stream", frame[0]), ("topic", frame[1])))
        elif kind == "decision":
            labels = (("action", str(payload.get("action"))), ("verdict", str(payload.get("final"))))
            self.inc("rfqbot_decisions_total", labels)
            latency = payload.get("latency_ms")
            if isinstance(latency, (int, float)):
                with self._lock:
                    self.decision_latency.observe(latency / 1000)
        elif kind == "accept.result":
            labels = (("action", str(payload.get("action"))), ("outcome", str(payload.get("outcome"))))
            self.inc("rfqbot_accept_results_total", labels)
            latency = payload.get("latency_ms")
            if payload.get("action") == "accept" and isinstance(latency, (int, float)):
                with self._lock:
                    self.accept_latency.observe(latency / 1000)
        elif kind == "stream.status":
            stream, state = str(payload.get("stream")), str(payload.get("state"))
            if state == "connected":
                with self._lock:
                    again = stream in self._connected_once
                    self._connected_once.add(stream)
                if again:
                    self.inc("rfqbot_stream_reconnects_total", (("stream", stream),))
        elif kind == "listen_key":
            action = str(payload.get("action"))
            if action in ("extended", "replaced"):
                self.inc("rfqbot_listen_key_renewals_total", (("action", action),))
            elif action in ("failed", "extend_failed"):
                self.inc("rfqbot_listen_key_failures_total", (("action", action),))

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        out: list[str] = []
        helps = {
            "rfqbot_frames_total": "Stream frames journaled, by stream and topic",
            "rfqbot_decisions_total": "Strategy decisions, by final verdict and action taken",
            "rfqbot_accept_results_total": "Venue answers to accepts and declines, by outcome",
            "rfqbot_stream_reconnects_total": "Stream connections after the first, by stream",
            "rfqbot_listen_key_renewals_total": "Listen key extensions and replacements",
            "rfqbot_listen_key_failures_total": "Listen key create/extend failures",
        }
        with self._lock:
            for name, text in helps.items():
                out.append(f"# HELP {name} {text}")
                out.append(f"# TYPE {name} counter")
                for labels, count in sorted(self._counters.get(name, {}).items()):
                    out.append(f"{name}{_label_text(labels)} {count}")
            for name, text, hist in (
                    ("rfqbot_decision_latency_seconds", "Frame received to decision journaled", self.decision_latency),
                    ("rfqbot_accept_latency_seconds", "Accept request round trip to the venue", self.accept_latency)):
                out.append(f"# HELP {name} {text}")
                out.append(f"# TYPE {name} histogram")
                for bound, count in zip(hist.buckets, hist.counts):
                    out.append(f'{name}_bucket{{le="{_number(bound)}"}} {count}')
                out.append(f'{name}_bucket{{le="+Inf"}} {hist.total}')
                out.append(f"{name}_sum {_number(hist.sum)}")
                out.append(f"{name}_count {hist.total}")
        out.extend(self._gauges())
        return "\n".join(out) + "\n"

    def _gauges(self) -> list[str]:
        if self.health is None:
            return []
        try:
            health = self.health()
        except Exception as exc:  # noqa: BLE001 - a scrape must not break on a half-started daemon
            log.warning("metrics.health_failed", error=str(exc))
            return []
        out = ["# HELP rfqbot_stream_subscribed 1 when the stream is subscribed",
               "# TYPE rfqbot_stream_subscribed gauge"]
        for name, stream in sorted((health.get("streams") or {}).items()):
            up = 1 if (stream or {}).get("state") == "subscribed" else 0
            out.append(f'rfqbot_stream_subscribed{{stream="{name}"}} {up}')
        for name, text, value in (
                ("rfqbot_open_rfqs", "Own RFQs not yet final", health.get("open_rfqs")),
                ("rfqbot_uptime_seconds", "Seconds since the daemon started", health.get("uptime_s")),
                ("rfqbot_engine_loop_age_seconds", "Seconds since the engine loop last turned",
                 health.get("engine_loop_age_s")),
                ("rfqbot_listen_key_age_seconds", "Age of the current listen key",
                 (health.get("listen_key") or {}).get("age_s")),
                ("rfqbot_banned", "1 after an HTTP 418 ban", int(bool(health.get("banned")))),
                ("rfqbot_rehearsals_off", "1 after a failed rehearsal turned the idle rehearsals off",
                 int(bool(health.get("rehearsals_off"))))):
            if value is None:
                continue
            out += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]
        if health.get("rehearsals") is not None:
            out += ["# HELP rfqbot_rehearsals_total Idle rehearsals of the decision path (rolled back, never journaled)",
                    "# TYPE rfqbot_rehearsals_total counter", f"rfqbot_rehearsals_total {int(health['rehearsals'])}"]
        sent = health.get("orders_sent")
        if sent:
            out += ["# HELP rfqbot_orders_sent_total Order requests written, by the thread that wrote them "
                    "(engine: right after the commit; worker: creates, or no warm connection/pacing slot then)",
                    "# TYPE rfqbot_orders_sent_total counter"]
            out += [f'rfqbot_orders_sent_total{{thread="{name}"}} {int(count)}' for name, count in sorted(sent.items())]
        return out


class MetricsServer:
    """``GET /metrics`` on 127.0.0.1 only, on its own thread. ``port=0`` picks a free port (tests)."""

    def __init__(self, metrics: Metrics, port: int) -> None:
        metrics_ref = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                body = metrics_ref.render().encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - scrapes are not news
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="rfqbot-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        log.info("metrics.listening", address=f"127.0.0.1:{self.port}")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


__all__ = ["Histogram", "Metrics", "MetricsServer"]
