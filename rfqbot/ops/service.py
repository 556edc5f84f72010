"""Running under systemd: readiness, watchdog, status lines, status file, alerts and metrics.

Nothing here is in the trading path. ``ServiceMonitor`` watches the daemon from outside, through
two narrow doors the daemon offers: lifecycle stages (``Daemon.add_listener``) and a cheap
``Daemon.health()`` snapshot, polled on the monitor's own thread. So a stuck engine cannot
stop the monitor from noticing, and a monitor bug cannot stop the engine.

systemd protocol, in order:

- ``READY=1`` only when the daemon has started (journal open, venue clock and pairs known,
  listen key created) AND both streams report ``subscribed``: ``systemctl start`` returns
  when rfqbot can really see and act on its RFQs.
- ``STATUS=...`` every ``status.every_s`` (and on change): streams, listen key age, open RFQs.
- ``WATCHDOG=1`` every ``WatchdogSec/2``, but only while the engine loop turned within
  ``status.engine_stall_after_s``: a hung engine stops the pings and systemd restarts it.
- ``RELOADING=1`` (with ``MONOTONIC_USEC``) on SIGHUP, ``READY=1`` when the reload was handled.
- ``STOPPING=1`` when shutdown begins; no watchdog pings after it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import structlog

from rfqbot.ops.alerts import Alerter, AlertWatch, build_alerter
from rfqbot.clock import Clock, SystemClock
from rfqbot.ops.metrics import Metrics, MetricsServer
from rfqbot.ops.sdnotify import SdNotifier, watchdog_interval_s
from rfqbot.ops.status import remove_status_file, status_file_path, write_status_file

log = structlog.get_logger(__name__)

Health = Callable[[], Mapping[str, Any]]


def is_ready(health: Mapping[str, Any]) -> bool:
    """Listen key live and both streams subscribed (the daemon itself said "started")."""
    streams = health.get("streams") or {}
    key = health.get("listen_key") or {}
    return bool(key.get("hint")) and all((streams.get(name) or {}).get("state") == "subscribed"
                                         for name in ("public", "private"))


def status_line(health: Mapping[str, Any], phase: str) -> str:
    """One short line for ``systemctl status`` (systemd shows it under "Status:")."""
    streams = health.get("streams") or {}
    parts = [phase]
    parts.append("streams " + " ".join(f"{name}={(streams.get(name) or {}).get('state', '-')}"
                                       for name in ("public", "private")))
    age = (health.get("listen_key") or {}).get("age_s")
    parts.append("listen key " + ("-" if age is None else f"{int(age) // 60} min"))
    parts.append(f"open RFQs {health.get('open_rfqs') if health.get('open_rfqs') is not None else '-'}")
    if health.get("journal_failure"):   # worst first, as `rfqbot status` orders them
        parts.append("NOT DECIDING: journal write failed")
    if health.get("banned"):
        parts.append("BANNED (HTTP 418)")
    paused = health.get("paused_for_s")
    if isinstance(paused, (int, float)) and paused > 0:
        parts.append(f"PAUSED by the venue (HTTP 429) {paused:.0f} s")
    return "; ".join(parts)


class ServiceMonitor:
    """Speaks the notify protocol and writes the status file from ``health()`` snapshots.

    ``poll()`` is one step and is what tests drive with a fake health source and a fake clock;
    ``start()`` runs it on a thread every ``tick_s``.
    """

    def __init__(self, health: Health, *, notifier: SdNotifier | None = None, watchdog_s: float | None = None,
                 clock: Clock | None = None, engine_stall_after_s: float = 10.0, status_every_s: float = 5.0,
                 status_file: Path | None = None, watch: AlertWatch | None = None,
                 tick_s: float | None = None) -> None:
        self.health = health
        self.notifier = notifier
        self.watchdog_s = watchdog_s
        self.clock: Clock = clock or SystemClock()
        # The stall limit must leave the watchdog time to fire: at most half of WatchdogSec.
        self.stall_after_s = engine_stall_after_s if not watchdog_s else min(engine_stall_after_s, watchdog_s / 2)
        self.status_every_s = status_every_s
        self.status_file = status_file
        self.watch = watch
        self.tick_s = tick_s if tick_s is not None else min(1.0, (watchdog_s or 4.0) / 4)
        self.phase = "starting"   # starting -> ready <-> reloading -> stopping -> stopped
        self._started = False
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # the thread and the "started" listener both poll
        self._last_watchdog: float | None = None
        self._last_status: tuple[float, str] | None = None
        self._last_file: float | None = None
        self._wrote_file = False
        self._file_failed = False
        self._stalled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- daemon lifecycle listener (called on the daemon's threads) -----------------------------

    def on_lifecycle(self, stage: str, details: Mapping[str, Any]) -> None:
        if stage == "started":
            with self._lock:
                self._started = True
            self.poll()  # READY at once if the streams are already up
        elif stage == "reloading":
            with self._lock:
                if self.phase not in ("ready", "starting"):
                    return
                was_ready = self.phase == "ready"
                self.phase = "reloading" if was_ready else self.phase
            if was_ready:
                self._send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                           f"STATUS=reloading {details.get('file') or ''}".rstrip())
        elif stage == "reloaded":
            with self._lock:
                if self.phase != "reloading":
                    return
                self.phase = "ready"
            outcome = "reload applied" if details.get("ok") else f"reload rejected: {details.get('error', '')}"
            if details.get("ok") and details.get("restart_needed"):
                outcome += "; restart needed for " + ", ".join(details["restart_needed"])
            self._send("READY=1", "STATUS=" + outcome[:200])
        elif stage == "stopping":
            # Under the poll lock: a poll already past its phase check finishes (and sends its
            # WATCHDOG=1) first, so nothing but STOPPING=1 follows the stop (systemd's order).
            with self._poll_lock:
                with self._lock:
                    if self.phase in ("stopping", "stopped"):
                        return
                    self.phase = "stopping"
                self._send("STOPPING=1", f"STATUS=stopping: {details.get('reason', '')}")
        elif stage == "stopped":
            with self._lock:
                self.phase = "stopped"
            self.stop()  # joins the thread: no status write can land after the removal below
            # Only a file this process wrote: a second instance refused at start (journal locked)
            # must not delete the running daemon's status file.
            if self.status_file is not None and self._wrote_file:
                try:
                    remove_status_file(self.status_file)
                except OSError as exc:
                    log.warning("service.status_file_remove_failed", path=str(self.status_file), error=str(exc))

    # --- one step ------------------------------------------------------------------------------

    def poll(self) -> None:
        """Check readiness, ping the watchdog if the engine is healthy, refresh status and alerts."""
        with self._poll_lock:
            self._poll()

    def _poll(self) -> None:
        try:
            health = self.health()
        except Exception as exc:  # noqa: BLE001 - a half-built daemon must not kill the monitor
            log.warning("service.health_failed", error=f"{type(exc).__name__}: {exc}")
            return
        now = self.clock.monotonic()
        with self._lock:
            phase = self.phase
            became_ready = phase == "starting" and self._started and is_ready(health)
            if became_ready:
                self.phase = phase = "ready"
        if became_ready:
            line = status_line(health, "ready")
            self._send("READY=1", "STATUS=" + line)
            self._last_status = (now, line)
            log.info("service.ready", status=line)
        if phase in ("ready", "reloading"):
            self._watchdog(health, now)
        if phase in ("starting", "ready", "reloading"):
            self._status(health, phase, now)
            self._write_file(health, phase, now)
            if self.watch is not None and phase != "starting":
                self.watch.check(health)

    def _watchdog(self, health: Mapping[str, Any], now: float) -> None:
        age = health.get("engine_loop_age_s")
        healthy = age is not None and age < self.stall_after_s
        if not healthy:
            if not self._stalled:
                self._stalled = True
                log.error("service.engine_stalled", engine_loop_age_s=age, stall_after_s=self.stall_after_s,
                          action="watchdog pings withheld; systemd restarts rfqbot if this lasts WatchdogSec")
            return
        if self._stalled:
            self._stalled = False
            log.warning("service.engine_recovered", engine_loop_age_s=age)
        if not self.watchdog_s:
            return
        if self._last_watchdog is None or now - self._last_watchdog >= self.watchdog_s / 2:
            self._send("WATCHDOG=1")
            self._last_watchdog = now

    def _status(self, health: Mapping[str, Any], phase: str, now: float) -> None:
        line = status_line(health, phase)
        last = self._last_status
        if last is None or (line != last[1] and now - last[0] >= 1.0) or now - last[0] >= self.status_every_s:
            self._send("STATUS=" + line)
            self._last_status = (now, line)

    def _write_file(self, health: Mapping[str, Any], phase: str, now: float) -> None:
        if self.status_file is None or (self._last_file is not None and now - self._last_file < self.status_every_s):
            return
        self._last_file = now
        try:
            write_status_file(self.status_file, health, now_ms=self.clock.now_ms(), ready=phase != "starting")
        except OSError as exc:
            if not self._file_failed:
                log.warning("service.status_file_failed", path=str(self.status_file), error=str(exc),
                            fix="point status.file at a writable place (systemd: StateDirectory=rfqbot)")
            self._file_failed = True
        else:
            self._file_failed = False
            self._wrote_file = True

    def _send(self, *lines: str) -> None:
        if self.notifier is not None:
            self.notifier.send(*lines)

    # --- thread --------------------------------------------------------------------------------

    def start(self) -> "ServiceMonitor":
        self._thread = threading.Thread(target=self._run, name="rfqbot-service", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)


class Operations:
    """Everything operational around one daemon: monitor, alerts, metrics. Build, attach, close.

    ``observers`` go to ``Daemon(observers=...)`` (the engine calls them with each journaled
    entry once its turn has committed); ``attach`` hooks the lifecycle and health and starts the threads.
    """

    def __init__(self, settings: Any, *, env: Mapping[str, str] | None = None, clock: Clock | None = None,
                 notifier: SdNotifier | None = None, alerter: Alerter | None = None,
                 metrics_port: int | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.alerter = alerter or build_alerter(settings, clock=self.clock)
        self.watch = AlertWatch.from_settings(self.alerter, settings.alerts)
        self.metrics = Metrics()
        port = metrics_port if metrics_port is not None else settings.metrics.port
        self.metrics_server: MetricsServer | None = None
        if port is not None:
            try:
                self.metrics_server = MetricsServer(self.metrics, port)
            except OSError as exc:  # trading matters more than metrics: say so loudly and go on
                log.error("metrics.bind_failed", port=port, error=str(exc),
                          fix="choose a free metrics.port (or stop what listens there) and restart")
        self.notifier = notifier if notifier is not None else SdNotifier.from_env(env)
        self.monitor = ServiceMonitor(
            lambda: {}, notifier=self.notifier, watchdog_s=watchdog_interval_s(env), clock=self.clock,
            engine_stall_after_s=settings.status.engine_stall_after_s, status_every_s=settings.status.every_s,
            status_file=status_file_path(settings), watch=self.watch)

    @property
    def observers(self) -> tuple[Callable[[str, dict[str, Any]], None], ...]:
        return (self.metrics.observe, self.watch.observe)

    def attach(self, daemon: Any) -> "Operations":
        """Listen to ``daemon``'s lifecycle, read its health, start the monitor and metrics."""
        self.monitor.health = daemon.health
        self.metrics.health = daemon.health
        daemon.add_listener(self.monitor.on_lifecycle)
        self.monitor.start()
        if self.metrics_server is not None:
            self.metrics_server.start()
        return self

    def close(self) -> None:
        self.monitor.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.alerter.close()
        if self.notifier is not None:
            self.notifier.close()


__all__ = ["Operations", "ServiceMonitor", "is_ready", "status_line"]
