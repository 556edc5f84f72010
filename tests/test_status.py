"""rfqbot status: status file + read-only journal; states running/starting/stale/stopped; CLI against the simulator."""

from __future__ import annotations

import json
import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
import structlog

from rfqbot.cli import main
from rfqbot.clock import FakeClock, SystemClock
from rfqbot.config.schema import load_config, load_config_text
from rfqbot.config.credentials import Credentials
from rfqbot.events import CreateRfqCommand
from rfqbot.journal.store import Journal, open_readonly
from rfqbot.records import QuoteMode
from rfqbot.ops.status import build_report, format_report, journal_counts, status_file_path, write_status_file
from tests.test_service import HEALTHY, tls_sim, wait_for, write_config


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def settings_for(tmp_path: Path, extra: str = "") -> Any:
    return load_config_text(f'journal:\n  path: "{tmp_path / "journal.db"}"\nstatus:\n  every_s: 5\n{extra}')


def rfq_state(rfq_id: str, status: str, accept_state: str) -> dict[str, Any]:
    return {"rfq_id": rfq_id, "own": True, "status": status, "accept_state": accept_state, "mode": "real-time"}


def seed_journal(path: Path, clock: FakeClock) -> None:
    """Two accepts today (one confirmed, one unknown), one yesterday, one open RFQ without accept."""
    journal = Journal(path, clock)
    clock.advance(-86400)
    journal.append("decision", source="engine", rfq_id="R0", payload={
        "at_ms": clock.now_ms(), "action": "accept", "final": "accept", "rfq_state": rfq_state("R0", "successful",
                                                                                                "accepted")})
    clock.advance(86400)
    seq = journal.append("decision", source="engine", rfq_id="R1", payload={
        "at_ms": clock.now_ms(), "action": "accept", "final": "accept", "rfq_state": rfq_state("R1", "new",
                                                                                                "outstanding")})
    journal.append("accept.result", source="rest", rfq_id="R1", payload={
        "decision_seq": seq, "outcome": "accepted", "action": "accept", "rfq_state": rfq_state("R1", "accepted",
                                                                                              "accepted")})
    seq = journal.append("decision", source="engine", rfq_id="R2", payload={
        "at_ms": clock.now_ms(), "action": "accept", "final": "accept", "rfq_state": rfq_state("R2", "new",
                                                                                                "outstanding")})
    journal.append("accept.result", source="rest", rfq_id="R2", payload={
        "decision_seq": seq, "outcome": "unknown", "action": "accept", "rfq_state": rfq_state("R2", "new", "unknown")})
    journal.append("decision", source="engine", rfq_id="R3", payload={
        "at_ms": clock.now_ms(), "action": "wait", "final": "wait", "rfq_state": rfq_state("R3", "new", "none")})
    journal.close()


def test_journal_counts(tmp_path: Path) -> None:
    clock = FakeClock(start_ms=1_760_000_000_000 + 50_000_000)  # mid-day UTC, so "yesterday" is another day
    seed_journal(tmp_path / "journal.db", clock)
    counts = journal_counts(tmp_path / "journal.db", clock.now_ms())
    assert counts.error is None
    assert counts.open_rfqs == 3                      # R1 accepted, R2 new (unknown accept), R3 new
    assert counts.unknown_outcomes == ["R2"]
    assert counts.accepts_today == 2 and counts.accepts_confirmed_today == 1
    assert counts.last_event_ms == clock.now_ms()


def test_no_status_file_means_stopped_but_journal_counts_still_shown(tmp_path: Path) -> None:
    clock = FakeClock(start_ms=1_760_000_000_000 + 50_000_000)
    seed_journal(tmp_path / "journal.db", clock)
    report = build_report(settings_for(tmp_path), clock.now_ms())
    assert not report.running and report.state == "stopped" and "no status file" in report.detail
    text = "\n".join(format_report(report))
    assert "unknown outcomes:  1 (R2)" in text and "accepts today:     2 sent, 1 confirmed" in text


def test_fresh_status_file_means_running(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    now = SystemClock().now_ms()
    write_status_file(status_file_path(settings), HEALTHY, now_ms=now - 1000, ready=True)
    report = build_report(settings, now)
    assert report.running and report.state == "running" and report.heartbeat_age_s == 1.0
    lines = format_report(report)
    assert "public stream:     subscribed (session 1, last frame 0.0 s ago)" in lines
    assert "listen key age:    2.2 min" in lines
    assert report.counts.error is not None and "does not exist yet" in report.counts.error
    assert status_file_path(settings) == tmp_path / "journal.status.json"


@pytest.mark.parametrize("trouble, first_line", [
    ({"paused_for_s": 42.4}, "PAUSED by the venue (HTTP 429): requests resume in 41 s"),   # file is 1 s old
    ({"banned": True, "paused_for_s": 42.4}, "BANNED (HTTP 418): the venue banned this IP"),
    ({"journal_failure": "OperationalError: disk I/O error", "banned": True},
     "NOT DECIDING: journal write failed (OperationalError: disk I/O error)"),
])
def test_a_running_daemon_that_cannot_trade_says_so_on_the_first_line(tmp_path: Path, trouble, first_line) -> None:
    settings = settings_for(tmp_path)
    now = SystemClock().now_ms()
    write_status_file(status_file_path(settings), {**HEALTHY, **trouble}, now_ms=now - 1000, ready=True)
    report = build_report(settings, now)
    assert report.running and report.state == "running"
    assert format_report(report)[0].startswith(f"daemon:            running ({first_line}")
    assert report.as_dict()["paused_for_s"] == trouble.get("paused_for_s")


def test_a_pause_over_by_the_time_status_reads_the_file_is_not_shown(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    now = SystemClock().now_ms()
    write_status_file(status_file_path(settings), {**HEALTHY, "paused_for_s": 3.0}, now_ms=now - 4000, ready=True)
    assert build_report(settings, now).detail == "ready"


def test_daemon_health_reports_the_venue_pause(tmp_path: Path) -> None:
    from rfqbot.daemon import Daemon

    from types import SimpleNamespace

    daemon = Daemon(settings_for(tmp_path), Credentials("k" * 16, "s" * 16, source="test"))
    assert daemon.health()["paused_for_s"] == 0.0   # not started: no venue client yet
    gate = SimpleNamespace(paused_for=lambda: 12.34)
    daemon.marketplace = SimpleNamespace(rest=SimpleNamespace(gate=gate, orders_written={}))  # type: ignore[assignment]
    assert daemon.health()["paused_for_s"] == 12.3


def test_old_status_file_means_stale(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    now = SystemClock().now_ms()
    write_status_file(status_file_path(settings), HEALTHY, now_ms=now - 60_000, ready=True)
    report = build_report(settings, now)
    assert not report.running and report.state == "stale" and "hung" in report.detail


def test_status_file_of_a_dead_pid_means_stopped(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, f'  file: "{tmp_path / "custom.json"}"\n')
    assert status_file_path(settings) == tmp_path / "custom.json"
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    now = SystemClock().now_ms()
    write_status_file(status_file_path(settings), HEALTHY, now_ms=now, ready=True, pid=dead)
    report = build_report(settings, now)
    assert report.state == "stopped" and "is gone" in report.detail


def test_cli_status_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f'journal:\n  path: "{tmp_path / "journal.db"}"\n')
    assert main(["status", "--config", str(config)]) == 1
    assert "daemon:            stopped" in capsys.readouterr().out
    write_status_file(tmp_path / "journal.status.json", HEALTHY, now_ms=SystemClock().now_ms(), ready=False)
    assert main(["--json", "status", "--config", str(config)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "starting" and data["pid"] == os.getpid() and data["open_rfqs"] == 0


# --- against the simulator: a real daemon accepts, status reads it back --------------------------

def test_status_of_a_running_daemon_against_the_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from rfqbot.daemon import Daemon
    from rfqbot.ops.service import Operations

    monkeypatch.delenv("RFQBOT_CONFIG", raising=False)
    sim = tls_sim(tmp_path / "sim", time_scale=10)
    daemon = ops = None
    try:
        config = write_config(tmp_path, sim, extra='strategies:\n  BTC/USDT:\n    - use: price_limit\n'
                                                   '      limit_price: "10000000"\n')
        settings = load_config(str(config))
        ops = Operations(settings, env={})
        daemon = Daemon(settings, Credentials(sim.api_key, sim.api_secret, "test"), observers=ops.observers,
                        engine_tick_s=0.05)
        ops.attach(daemon)
        threading.Thread(target=daemon.start, daemon=True).start()
        status_file = tmp_path / "state" / "journal.status.json"
        assert wait_for(lambda: status_file.exists() and json.loads(status_file.read_text())["ready"], 20)

        daemon.post(CreateRfqCommand(SystemClock().now_ms(), "BTC", "USDT", Decimal("5000"), QuoteMode.REAL_TIME,
                                     600, "status-test-1", source="test"))
        journal = tmp_path / "state" / "journal.db"

        def confirmed() -> bool:
            conn = open_readonly(journal)
            try:
                return conn.execute("SELECT COUNT(*) FROM decisions WHERE action = 'accept' "
                                    "AND result_outcome = 'accepted'").fetchone()[0] == 1
            finally:
                conn.close()

        assert wait_for(confirmed, 20)
        assert wait_for(lambda: json.loads(status_file.read_text())["written_ms"] > SystemClock().now_ms() - 900, 5)
        capsys.readouterr()
        assert main(["status", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "daemon:            running (ready)" in out
        assert "public stream:     subscribed" in out and "private stream:    subscribed" in out
        assert "listen key age:    " in out and "listen key age:    -" not in out
        assert "accepts today:     1 sent, 1 confirmed (UTC day)" in out
        assert "unknown outcomes:  0 (none)" in out
    finally:
        if daemon is not None:
            daemon.stop("test over")
        if ops is not None:
            ops.close()
        sim.stop()
    assert main(["status", "--config", str(config)]) == 1  # clean stop removed the status file
