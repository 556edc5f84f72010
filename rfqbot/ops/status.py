"""``rfqbot status``: what the running daemon is doing, without asking the venue.

Two sources, each for what it is good at:

- the **status file**, a small JSON snapshot of ``Daemon.health()`` the service monitor rewrites
  every ``status.every_s`` (atomically: write a temp file, then rename). Live facts that the
  journal does not hold cheaply: uptime, stream states, last frame age, listen key age. Its age
  tells a running daemon from a dead one.
- the **journal**, read-only: open RFQs, accepts whose outcome is unknown, today's accepts. It
  is the audit truth, so counts that matter for money come from there even while the daemon runs.

The status file lives next to the journal by default (``journal.db`` ->
``journal.status.json``), i.e. in systemd's ``StateDirectory``, readable by the same people.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rfqbot.clock import DAY_MS
from rfqbot.journal.store import open_readonly
from rfqbot.records import FINAL_STATUS_WORDS
STATUS_FILE_VERSION = 1


def status_file_path(settings: Any) -> Path:
    """``status.file``, else ``<journal stem>.status.json`` beside the journal."""
    configured = getattr(getattr(settings, "status", None), "file", None)
    if configured:
        return Path(configured)
    journal = Path(settings.journal.path)
    return journal.with_name(journal.stem + ".status.json")


def write_status_file(path: Path, health: Mapping[str, Any], *, now_ms: int, ready: bool,
                      pid: int | None = None) -> None:
    """Write the snapshot atomically (readers never see half a file); mode 0640."""
    body = {"version": STATUS_FILE_VERSION, "written_ms": now_ms, "pid": os.getpid() if pid is None else pid,
            "ready": ready, "health": dict(health)}
    text = json.dumps(body, sort_keys=True, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".status-", dir=str(path.parent))
    try:
        os.fchmod(fd, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_status_file(path: Path) -> None:
    """On a clean stop: no file means "not running" rather than "hung since ...".

    Nothing to do when there is no file (a start that failed before the first write): asking
    to unlink it anyway fails on a read-only folder and logged a misleading warning."""
    if path.exists():
        path.unlink(missing_ok=True)


@dataclass
class JournalCounts:
    """Money-relevant counts from the journal (the audit truth)."""

    open_rfqs: int = 0
    accepts_outstanding: int = 0
    unknown_outcomes: list[str] = field(default_factory=list)
    accepts_today: int = 0
    accepts_confirmed_today: int = 0
    last_event_ms: int | None = None
    error: str | None = None


@dataclass
class StatusReport:
    """Everything ``rfqbot status`` shows; ``running`` decides the exit code."""

    status_file: str
    journal: str
    running: bool
    state: str                 # running, starting, stale, stopped
    detail: str
    heartbeat: dict[str, Any] | None
    counts: JournalCounts
    now_ms: int

    def as_dict(self) -> dict[str, Any]:
        health = (self.heartbeat or {}).get("health") or {}
        return {
            "state": self.state, "running": self.running, "detail": self.detail,
            "status_file": self.status_file, "journal": self.journal,
            "heartbeat_age_s": self.heartbeat_age_s, "ready": (self.heartbeat or {}).get("ready"),
            "pid": (self.heartbeat or {}).get("pid"), "uptime_s": health.get("uptime_s"),
            "streams": health.get("streams") or {}, "listen_key_age_s": (health.get("listen_key") or {}).get("age_s"),
            "engine_loop_age_s": health.get("engine_loop_age_s"), "banned": health.get("banned"),
            "paused_for_s": health.get("paused_for_s"), "journal_failure": health.get("journal_failure"),
            "open_rfqs": self.counts.open_rfqs, "accepts_outstanding": self.counts.accepts_outstanding,
            "unknown_outcomes": self.counts.unknown_outcomes, "accepts_today": self.counts.accepts_today,
            "accepts_confirmed_today": self.counts.accepts_confirmed_today,
            "last_journal_event_ms": self.counts.last_event_ms, "journal_error": self.counts.error,
        }

    @property
    def heartbeat_age_s(self) -> float | None:
        if not self.heartbeat or not isinstance(self.heartbeat.get("written_ms"), int):
            return None
        return round((self.now_ms - self.heartbeat["written_ms"]) / 1000, 1)


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The status file's content, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def journal_counts(path: str | Path, now_ms: int) -> JournalCounts:
    """Counts from a read-only connection; an unreadable journal is reported, not raised."""
    counts = JournalCounts()
    if not Path(path).exists():
        counts.error = f"journal {path} does not exist yet (the daemon creates it at start)"
        return counts
    day_start = now_ms - now_ms % DAY_MS
    try:
        conn = open_readonly(path)
    except sqlite3.Error as exc:
        counts.error = f"cannot open journal {path} read-only: {exc}; run as the service user or root"
        return counts
    try:
        final = ", ".join("?" * len(FINAL_STATUS_WORDS))
        counts.open_rfqs = conn.execute(
            f"SELECT COUNT(*) FROM rfqs WHERE own = 1 AND (status IS NULL OR status NOT IN ({final}))",
            FINAL_STATUS_WORDS).fetchone()[0]
        counts.accepts_outstanding = conn.execute(
            "SELECT COUNT(*) FROM rfqs WHERE own = 1 AND accept_state = 'outstanding'").fetchone()[0]
        counts.unknown_outcomes = [row[0] for row in conn.execute(
            "SELECT rfq_id FROM rfqs WHERE own = 1 AND accept_state = 'unknown' ORDER BY rfq_id")]
        counts.accepts_today = conn.execute(
            "SELECT COUNT(*) FROM decisions WHERE action = 'accept' AND at_ms >= ?", (day_start,)).fetchone()[0]
        counts.accepts_confirmed_today = conn.execute(
            "SELECT COUNT(*) FROM decisions WHERE action = 'accept' AND at_ms >= ? AND result_outcome = 'accepted'",
            (day_start,)).fetchone()[0]
        counts.last_event_ms = conn.execute("SELECT MAX(local_ms) FROM events").fetchone()[0]
    except sqlite3.Error as exc:
        counts.error = f"cannot read journal {path}: {exc}"
    finally:
        conn.close()
    return counts


def _pid_alive(pid: Any) -> bool | None:
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (the service user)
    return True


def build_report(settings: Any, now_ms: int) -> StatusReport:
    """Read the status file and the journal; decide running / starting / stale / stopped."""
    path = status_file_path(settings)
    heartbeat = read_heartbeat(path)
    counts = journal_counts(settings.journal.path, now_ms)
    every_s = getattr(getattr(settings, "status", None), "every_s", 5)
    report = StatusReport(str(path), str(settings.journal.path), False, "stopped", "", heartbeat, counts, now_ms)
    if heartbeat is None:
        report.detail = (f"no status file at {path}: the daemon is not running (or status.file differs "
                         "from the daemon's config)")
        return report
    age = report.heartbeat_age_s or 0.0
    alive = _pid_alive(heartbeat.get("pid"))
    if alive is False:
        report.state, report.detail = "stopped", f"pid {heartbeat.get('pid')} is gone; last status {age:.0f} s ago"
    elif age > 3 * every_s + 2:
        report.state = "stale"
        report.detail = (f"last status {age:.0f} s ago (written every {every_s} s): the daemon is hung or "
                         "stopped uncleanly; see journalctl -u rfqbot")
    else:
        report.running = True
        report.state = "running" if heartbeat.get("ready") else "starting"
        report.detail = _trading_detail(heartbeat.get("health") or {}, age) or (
            "ready" if heartbeat.get("ready") else "not ready yet (waiting for streams or listen key)")
    return report


def _trading_detail(health: Mapping[str, Any], age_s: float = 0.0) -> str | None:
    """What keeps a running daemon from trading, worst first; None when nothing does.

    On the first line of ``rfqbot status`` because a process that is up but cannot trade is
    the thing an operator glancing at it must not miss."""
    if health.get("journal_failure"):
        return (f"NOT DECIDING: journal write failed ({health['journal_failure']}); fix the journal's disk "
                "(space, permissions), then restart")
    if health.get("banned"):
        return "BANNED (HTTP 418): the venue banned this IP; nothing is sent until a human acts and restarts"
    paused = health.get("paused_for_s")
    if isinstance(paused, (int, float)):
        left = paused - age_s   # the snapshot is as old as the status file
        if left > 0:
            return f"PAUSED by the venue (HTTP 429): requests resume in {max(1, round(left))} s"
    return None


def _age(value: Any, unit: str = "s") -> str:
    if value is None:
        return "-"
    seconds = float(value) / (1000 if unit == "ms" else 1)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_report(report: StatusReport) -> list[str]:
    """Human-readable lines, one fact per line."""
    data = report.as_dict()
    lines = [f"daemon:            {report.state} ({report.detail})"]
    if report.heartbeat is not None:
        lines.append(f"pid:               {data['pid']}  (status written {_age(report.heartbeat_age_s)} ago)")
        lines.append(f"uptime:            {_age(data['uptime_s'])}")
        for name in ("public", "private"):
            stream = data["streams"].get(name)
            if stream:
                lines.append(f"{name + ' stream:':<19}{stream.get('state')} (session {stream.get('session')}, "
                             f"last frame {_age(stream.get('last_frame_age_ms'), 'ms')} ago)")
            else:
                lines.append(f"{name + ' stream:':<19}-")
        lines.append(f"listen key age:    {_age(data['listen_key_age_s'])}")
        lines.append(f"engine loop:       last turn {_age(data['engine_loop_age_s'])} ago")
        if data["banned"]:
            lines.append("BANNED:            the venue banned this IP (HTTP 418); a human must act")
    counts = report.counts
    if counts.error:
        lines.append(f"journal:           {counts.error}")
    else:
        lines.append(f"open RFQs:         {counts.open_rfqs}")
        lines.append(f"accepts in flight: {counts.accepts_outstanding}")
        unknown = ", ".join(counts.unknown_outcomes) if counts.unknown_outcomes else "none"
        lines.append(f"unknown outcomes:  {len(counts.unknown_outcomes)} ({unknown})")
        lines.append(f"accepts today:     {counts.accepts_today} sent, {counts.accepts_confirmed_today} confirmed (UTC day)")
    lines.append(f"journal file:      {report.journal}")
    return lines


__all__ = ["JournalCounts", "StatusReport", "build_report", "format_report", "journal_counts", "read_heartbeat",
           "remove_status_file", "status_file_path", "write_status_file"]
