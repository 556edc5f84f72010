"""ServiceMonitor: the notify protocol in the right order against a real unix datagram socket.

Unit tests drive ``poll()`` with a fake health source and a fake clock (no sleeps); one
integration test runs a real Daemon against the TLS simulator and waits for READY=1.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import structlog

from rfqbot.ops.alerts import Alerter, AlertWatch
from rfqbot.clock import FakeClock
from rfqbot.config.schema import Settings, load_config
from rfqbot.config.credentials import Credentials
from rfqbot.ops.sdnotify import SdNotifier
from rfqbot.ops.service import Operations, ServiceMonitor, is_ready, status_line
from rfqbot.sim import SimConfig, Simulator


# --- helpers shared with test_status / test_doctor ---------------------------------------------

def sim_config_text(sim: Simulator, journal: Path, extra: str = "") -> str:
    """A daemon config against ``sim``: no strategies, quick reconcile, short status interval."""
    return (f'venue:\n  name: simulator\n  rest_url: "{sim.rest_url}"\n  ws_url: "{sim.ws_url}"\n'
            f'  ca_file: "{sim.ca_file}"\njournal:\n  path: "{journal}"\nlogging:\n  level: warning\n'
            f"status:\n  every_s: 1\n{extra}")


def write_config(tmp_path: Path, sim: Simulator, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(sim_config_text(sim, tmp_path / "state" / "journal.db", extra))
    return path


def tls_sim(files: Path, **overrides: Any) -> Simulator:
    """A TLS simulator whose CA and ground truth live in ``files`` (a test-owned folder): shared
    /tmp/rfqbot-sim-* folders were seen removed by other processes on a busy machine."""
    files.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = dict(tls=True, lps=2, background_rfqs_per_min=0, rate_limits=False,
                                spot_streams=False, seed=5, ca_dir=str(files),
                                ground_truth_path=str(files / "ground-truth.jsonl"))
    base.update(overrides)
    return Simulator(SimConfig(**base)).start()


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        done.wait(0.02)
    return bool(predicate())


class NotifyReceiver:
    """A bound abstract unix datagram socket, like systemd's notify socket."""

    def __init__(self) -> None:
        self.name = f"@rfqbot-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())
        self.sock.settimeout(0.05)
        self.messages: list[list[str]] = []

    def drain(self) -> list[list[str]]:
        """Datagrams received since the last drain (all of them stay in ``messages``)."""
        new: list[list[str]] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                self.messages += new
                return new
            new.append(data.decode().split("\n"))

    def firsts(self) -> list[str]:
        """The first line of each datagram, status text cut to the key: READY=1, STATUS, ..."""
        return [m[0] if not m[0].startswith("STATUS=") else "STATUS" for m in self.drain()]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def receiver() -> Iterator[NotifyReceiver]:
    r = NotifyReceiver()
    yield r
    r.close()


HEALTHY: dict[str, Any] = {
    "started_ms": 1, "uptime_s": 3.0, "engine_loop_age_s": 0.1, "open_rfqs": 2, "banned": False,
    "streams": {"public": {"state": "subscribed", "session": 1, "last_frame_age_ms": 40},
                "private": {"state": "subscribed", "session": 1, "last_frame_age_ms": 900}},
    "listen_key": {"hint": "k:abcd1234", "age_s": 130.0},
}


class FakeHealth:
    def __init__(self) -> None:
        self.value: dict[str, Any] = json.loads(json.dumps(HEALTHY))

    def __call__(self) -> dict[str, Any]:
        return self.value


def make_monitor(receiver: NotifyReceiver, health: FakeHealth, clock: FakeClock, **kw: Any) -> ServiceMonitor:
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": receiver.name})
    return ServiceMonitor(health, notifier=notifier, watchdog_s=kw.pop("watchdog_s", 20.0), clock=clock,
                          engine_stall_after_s=kw.pop("engine_stall_after_s", 5.0), status_every_s=5.0, **kw)


# --- unit: order of the protocol -----------------------------------------------------------------

def test_full_lifecycle_order_and_no_watchdog_while_stalled(receiver: NotifyReceiver) -> None:
    clock = FakeClock()
    health = FakeHealth()
    health.value["streams"]["private"]["state"] = "connecting"
    monitor = make_monitor(receiver, health, clock)

    monitor.poll()                                    # starting: a status line, nothing else
    assert receiver.firsts() == ["STATUS"]
    monitor.on_lifecycle("started", {})               # started, but private stream not subscribed
    clock.advance(1)
    monitor.poll()
    assert "READY=1" not in receiver.firsts()

    health.value["streams"]["private"]["state"] = "subscribed"
    clock.advance(1)
    monitor.poll()
    got = receiver.drain()[-2:]
    assert got[0][0] == "READY=1"
    assert got[0][1].startswith("STATUS=ready; streams public=subscribed private=subscribed")
    assert got[1] == ["WATCHDOG=1"]                    # first ping right after READY
    clock.advance(5)
    monitor.poll()
    assert "WATCHDOG=1" not in receiver.firsts()       # not before WatchdogSec/2

    clock.advance(10)                                 # WatchdogSec/2 later: ping again
    monitor.poll()
    assert "WATCHDOG=1" in receiver.firsts()

    health.value["engine_loop_age_s"] = 7.0           # engine stuck longer than the stall limit
    for _ in range(5):
        clock.advance(10)
        monitor.poll()
    assert "WATCHDOG=1" not in receiver.firsts()       # no pings: systemd would restart us

    health.value["engine_loop_age_s"] = 0.2           # recovered: pings resume
    clock.advance(10)
    monitor.poll()
    assert "WATCHDOG=1" in receiver.firsts()

    monitor.on_lifecycle("reloading", {"file": "/etc/rfqbot/config.yaml"})
    reloading = receiver.drain()[-1]
    assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
    assert int(reloading[1].split("=")[1]) > 0
    monitor.on_lifecycle("reloaded", {"ok": True})
    assert receiver.drain()[-1] == ["READY=1", "STATUS=reload applied"]
    monitor.on_lifecycle("reloading", {})
    monitor.on_lifecycle("reloaded", {"ok": True, "restart_needed": ["journal", "venue"]})
    assert receiver.drain()[-1] == ["READY=1", "STATUS=reload applied; restart needed for journal, venue"]

    monitor.on_lifecycle("stopping", {"reason": "signal"})
    assert receiver.drain()[-1] == ["STOPPING=1", "STATUS=stopping: signal"]
    clock.advance(30)
    monitor.poll()                                    # no watchdog, no status after STOPPING
    assert receiver.drain() == []

    sequence = [m[0] for m in receiver.messages if not m[0].startswith("STATUS=")]
    first = {key: sequence.index(key) for key in ("READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1")}
    assert first["READY=1"] < first["WATCHDOG=1"] < first["RELOADING=1"] < first["STOPPING=1"]
    assert sequence[-1] == "STOPPING=1"


def test_a_poll_in_flight_when_the_stop_begins_sends_its_ping_before_stopping(receiver: NotifyReceiver) -> None:
    """A poll past its phase check when STOPPING=1 goes out must not ping the watchdog after it."""
    clock = FakeClock()
    health = FakeHealth()
    monitor = make_monitor(receiver, health, clock)
    monitor.on_lifecycle("started", {})
    receiver.drain()
    clock.advance(30)                                 # a ping is due at the next poll
    inside, release = threading.Event(), threading.Event()

    def slow_health() -> dict[str, Any]:
        inside.set()
        release.wait(5)
        return health.value

    monitor.health = slow_health
    poller = threading.Thread(target=monitor.poll)
    poller.start()
    assert inside.wait(5)
    stopper = threading.Thread(target=monitor.on_lifecycle, args=("stopping", {"reason": "signal"}))
    stopper.start()
    stopper.join(0.2)                                 # the stop waits for the poll in flight...
    release.set()
    poller.join(5)
    stopper.join(5)
    sequence = [m[0] for m in receiver.drain() if not m[0].startswith("STATUS=")]
    assert sequence == ["WATCHDOG=1", "STOPPING=1"]   # ...so its ping cannot land after STOPPING=1


def test_stall_without_watchdog_configured_sends_no_ping_but_logs(receiver: NotifyReceiver) -> None:
    clock = FakeClock()
    health = FakeHealth()
    monitor = make_monitor(receiver, health, clock, watchdog_s=None)
    monitor.on_lifecycle("started", {})
    monitor.poll()
    assert "WATCHDOG=1" not in receiver.firsts()
    assert receiver.messages[0][0] == "READY=1"


def test_rejected_reload_still_reports_ready_with_reason(receiver: NotifyReceiver) -> None:
    clock = FakeClock()
    monitor = make_monitor(receiver, FakeHealth(), clock)
    monitor.on_lifecycle("started", {})
    monitor.on_lifecycle("reloading", {})
    monitor.on_lifecycle("reloaded", {"ok": False, "error": "config.yaml:3: risk.max_open_rfqs: must be >= 1"})
    last = receiver.drain()[-1]
    assert last[0] == "READY=1" and last[1].startswith("STATUS=reload rejected: config.yaml:3")


def test_reload_before_ready_sends_nothing(receiver: NotifyReceiver) -> None:
    monitor = make_monitor(receiver, FakeHealth(), FakeClock())
    monitor.on_lifecycle("reloading", {})
    monitor.on_lifecycle("reloaded", {"ok": True})
    assert receiver.drain() == []


def test_health_errors_do_not_kill_the_monitor(receiver: NotifyReceiver) -> None:
    def broken() -> dict[str, Any]:
        raise AttributeError("engine not built yet")

    monitor = ServiceMonitor(broken, notifier=SdNotifier.from_env({"NOTIFY_SOCKET": receiver.name}),
                             clock=FakeClock())
    monitor.poll()
    assert receiver.drain() == []


def test_status_file_written_while_running_and_removed_when_stopped(tmp_path: Path,
                                                                    receiver: NotifyReceiver) -> None:
    clock = FakeClock()
    path = tmp_path / "journal.status.json"
    monitor = make_monitor(receiver, FakeHealth(), clock, status_file=path)
    monitor.poll()
    data = json.loads(path.read_text())
    assert data["ready"] is False and data["health"]["open_rfqs"] == 2 and data["written_ms"] == clock.now_ms()
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    monitor.on_lifecycle("started", {})
    clock.advance(6)
    monitor.poll()
    assert json.loads(path.read_text())["ready"] is True
    monitor.on_lifecycle("stopping", {"reason": "x"})
    monitor.on_lifecycle("stopped", {"reason": "x"})
    assert not path.exists()


def test_a_refused_second_instance_leaves_the_running_daemons_status_file(tmp_path: Path,
                                                                           receiver: NotifyReceiver) -> None:
    """A second `rfqbot run` on the same config stops at the journal lock before its first write:
    its stop must not delete the file the running daemon keeps (`rfqbot status` would say stopped)."""
    path = tmp_path / "journal.status.json"
    path.write_text('{"written by": "the running daemon"}')
    monitor = make_monitor(receiver, FakeHealth(), FakeClock(), status_file=path)
    monitor.on_lifecycle("stopping", {"reason": "start failed"})
    monitor.on_lifecycle("stopped", {"reason": "start failed"})
    assert path.read_text() == '{"written by": "the running daemon"}'


def test_monitor_feeds_alert_checks(receiver: NotifyReceiver) -> None:
    clock = FakeClock()
    alerter = Alerter(clock=clock)
    watch = AlertWatch(alerter, stream_down_after_s=60)
    health = FakeHealth()
    monitor = make_monitor(receiver, health, clock, watch=watch)
    monitor.on_lifecycle("started", {})
    health.value["streams"]["public"]["state"] = "backoff"
    monitor.poll()
    clock.advance(61)
    monitor.poll()
    assert [a.kind for a in alerter.sent] == ["stream_down"]


def test_helpers() -> None:
    assert is_ready(HEALTHY)
    assert not is_ready({**HEALTHY, "listen_key": {"hint": "", "age_s": None}})
    assert status_line(HEALTHY, "ready") == ("ready; streams public=subscribed private=subscribed; "
                                             "listen key 2 min; open RFQs 2")
    assert status_line({}, "starting") == "starting; streams public=- private=-; listen key -; open RFQs -"
    assert status_line({**HEALTHY, "paused_for_s": 59.6}, "ready").endswith("; PAUSED by the venue (HTTP 429) 60 s")
    assert "PAUSED" not in status_line({**HEALTHY, "paused_for_s": 0.0}, "ready")


# --- integration: a real daemon against the TLS simulator ---------------------------------------

def test_daemon_against_simulator_ready_reload_stop(tmp_path: Path, receiver: NotifyReceiver) -> None:
    from rfqbot.daemon import Daemon

    sim = tls_sim(tmp_path / "sim")
    daemon = None
    ops = None
    try:
        config = write_config(tmp_path, sim)
        settings: Settings = load_config(str(config))
        ops = Operations(settings, env={"NOTIFY_SOCKET": receiver.name, "WATCHDOG_USEC": "4000000"},
                         metrics_port=0)
        daemon = Daemon(settings, Credentials(sim.api_key, sim.api_secret, "test"), observers=ops.observers,
                        engine_tick_s=0.05)
        ops.attach(daemon)
        starter = threading.Thread(target=daemon.start, daemon=True)
        starter.start()
        assert wait_for(lambda: "READY=1" in [m[0] for m in receiver.drain()], 20), receiver.messages
        ready_at = [m[0] for m in receiver.messages].index("READY=1")
        assert receiver.messages[ready_at][1].startswith("STATUS=ready; streams public=subscribed "
                                                         "private=subscribed")
        # READY=1 follows the streams and the key; the engine thread's first turn is not ordered with it.
        assert wait_for(lambda: daemon.health()["engine_loop_age_s"] is not None, 5), "the engine loop never turned"
        health = daemon.health()
        assert is_ready(health) and health["engine_loop_age_s"] is not None
        assert wait_for(lambda: "WATCHDOG=1" in [m[0] for m in receiver.drain()], 5)
        status_file = tmp_path / "state" / "journal.status.json"
        assert wait_for(lambda: status_file.exists() and json.loads(status_file.read_text())["ready"], 5)

        assert daemon.request_reload() is True
        # RELOADING=1 leaves on this thread; the READY=1 that ends the reload is sent from the
        # engine thread once it has applied the reload: gather datagrams until it came.
        firsts: list[str] = []

        def reload_answered() -> bool:
            firsts.extend(m[0] for m in receiver.drain())
            return "RELOADING=1" in firsts and "READY=1" in firsts[firsts.index("RELOADING=1"):]

        assert wait_for(reload_answered, 10), receiver.messages
        assert firsts.index("RELOADING=1") < len(firsts) - 1 - firsts[::-1].index("READY=1")
        starter.join(5)
    finally:
        if daemon is not None:
            daemon.stop("test over")
        if ops is not None:
            ops.close()
        sim.stop()
        structlog.reset_defaults()
    receiver.drain()
    firsts = [m[0] for m in receiver.messages]
    assert "STOPPING=1" in firsts and "WATCHDOG=1" not in firsts[firsts.index("STOPPING=1"):]
    assert not (tmp_path / "state" / "journal.status.json").exists()
