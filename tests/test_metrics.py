"""Prometheus metrics: counts from engine observer entries, histograms, gauges, loopback endpoint."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from rfqbot.ops.metrics import Metrics, MetricsServer


def feed(metrics: Metrics) -> None:
    for kind, payload in [
        ("frame.public_rfq", {}), ("frame.public_quote", {}), ("frame.public_quote", {}),
        ("frame.rfq_update", {}), ("frame.best_quotes", {}), ("frame.rejected", {"reason": "bad json"}),
        ("decision", {"final": "accept", "action": "accept", "latency_ms": 2}),
        ("decision", {"final": "wait", "action": "wait", "latency_ms": 0}),
        ("decision", {"final": "accept", "action": "blocked", "latency_ms": 30}),
        ("accept.result", {"action": "accept", "outcome": "accepted", "latency_ms": 84.5}),
        ("accept.result", {"action": "accept", "outcome": "unknown", "latency_ms": None}),
        ("accept.result", {"action": "decline", "outcome": "declined", "latency_ms": 20.0}),
        ("stream.status", {"stream": "public", "state": "connected"}),
        ("stream.status", {"stream": "public", "state": "subscribed"}),
        ("stream.status", {"stream": "public", "state": "closed"}),
        ("stream.status", {"stream": "public", "state": "connected"}),
        ("stream.status", {"stream": "private", "state": "connected"}),
        ("listen_key", {"action": "created"}), ("listen_key", {"action": "extended"}),
        ("listen_key", {"action": "replaced"}), ("listen_key", {"action": "extend_failed"}),
        ("venue.call", {"endpoint": "/api/v1/time"}),
    ]:
        metrics.observe(kind, payload)


def test_counters_from_observer_entries() -> None:
    m = Metrics()
    feed(m)
    assert m.value("rfqbot_frames_total", stream="public", topic="quotes") == 2
    assert m.value("rfqbot_frames_total", stream="private", topic="bestQuote") == 1
    assert m.value("rfqbot_frames_total", stream="any", topic="rejected") == 1
    assert m.value("rfqbot_decisions_total", verdict="accept", action="accept") == 1
    assert m.value("rfqbot_decisions_total", verdict="accept", action="blocked") == 1
    assert m.value("rfqbot_accept_results_total", action="accept", outcome="accepted") == 1
    assert m.value("rfqbot_stream_reconnects_total", stream="public") == 1
    assert m.value("rfqbot_stream_reconnects_total", stream="private") == 0
    assert m.value("rfqbot_listen_key_renewals_total", action="extended") == 1
    assert m.value("rfqbot_listen_key_renewals_total", action="replaced") == 1
    assert m.value("rfqbot_listen_key_failures_total", action="extend_failed") == 1
    assert m.decision_latency.total == 3 and m.accept_latency.total == 1  # declines and unknowns not timed


def test_exposition_format() -> None:
    m = Metrics(health=lambda: {"streams": {"public": {"state": "subscribed"}, "private": {"state": "backoff"}},
                                "open_rfqs": 3, "uptime_s": 12.5, "engine_loop_age_s": 0.1,
                                "listen_key": {"age_s": 60.0}, "banned": False,
                                "orders_sent": {"engine": 5, "worker": 1}, "rehearsals": 42,
                                "rehearsals_off": None})
    feed(m)
    text = m.render()
    lines = text.splitlines()
    assert "# TYPE rfqbot_frames_total counter" in lines
    assert 'rfqbot_frames_total{stream="public",topic="quotes"} 2' in lines
    assert 'rfqbot_decisions_total{action="accept",verdict="accept"} 1' in lines
    assert "# TYPE rfqbot_decision_latency_seconds histogram" in lines
    # decision latencies 0, 2, 30 ms: cumulative buckets
    assert 'rfqbot_decision_latency_seconds_bucket{le="0.001"} 1' in lines
    assert 'rfqbot_decision_latency_seconds_bucket{le="0.0025"} 2' in lines
    assert 'rfqbot_decision_latency_seconds_bucket{le="0.05"} 3' in lines
    assert 'rfqbot_decision_latency_seconds_bucket{le="+Inf"} 3' in lines
    assert "rfqbot_decision_latency_seconds_count 3" in lines
    assert 'rfqbot_accept_latency_seconds_bucket{le="0.1"} 1' in lines
    assert 'rfqbot_accept_latency_seconds_bucket{le="0.05"} 0' in lines
    assert 'rfqbot_stream_subscribed{stream="public"} 1' in lines
    assert 'rfqbot_stream_subscribed{stream="private"} 0' in lines
    assert "rfqbot_open_rfqs 3" in lines and "rfqbot_banned 0" in lines and "rfqbot_uptime_seconds 12.5" in lines
    assert "# TYPE rfqbot_orders_sent_total counter" in lines
    assert 'rfqbot_orders_sent_total{thread="engine"} 5' in lines and 'rfqbot_orders_sent_total{thread="worker"} 1' in lines
    assert "rfqbot_rehearsals_total 42" in lines and "rfqbot_rehearsals_off 0" in lines
    assert text.endswith("\n")
    for line in lines:  # every sample line is "name{labels} number"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_broken_health_source_still_renders_counters() -> None:
    def broken() -> dict[str, Any]:
        raise AttributeError("not started")

    m = Metrics(health=broken)
    m.observe("frame.public_rfq", {})
    assert 'rfqbot_frames_total{stream="public",topic="rfqs"} 1' in m.render()


def test_label_values_are_escaped() -> None:
    m = Metrics()
    m.observe("decision", {"final": 'we"ird\\', "action": "none"})
    assert 'verdict="we\\"ird\\\\"' in m.render()


def test_server_on_loopback() -> None:
    m = Metrics()
    m.observe("frame.public_rfq", {})
    server = MetricsServer(m, 0).start()
    try:
        session = requests.Session()
        session.trust_env = False
        response = session.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'rfqbot_frames_total{stream="public",topic="rfqs"} 1' in response.text
        assert session.get(f"http://127.0.0.1:{server.port}/other", timeout=5).status_code == 404
        session.close()
    finally:
        server.stop()
    assert server._server.server_address[0] == "127.0.0.1"


def test_port_in_use_is_not_fatal_for_operations() -> None:
    from rfqbot.config.schema import load_config_text
    from rfqbot.ops.service import Operations

    m = Metrics()
    first = MetricsServer(m, 0)
    try:
        settings = load_config_text(f"metrics:\n  port: {first.port}\n")
        ops = Operations(settings, env={})
        assert ops.metrics_server is None  # logged as metrics.bind_failed; the daemon still runs
        ops.close()
    finally:
        first.stop()


@pytest.mark.parametrize("port", [0, 70000])
def test_config_rejects_bad_ports(port: int) -> None:
    from rfqbot.config.schema import load_config_text
    from rfqbot.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics.port"):
        load_config_text(f"metrics:\n  port: {port}\n")
