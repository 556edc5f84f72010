"""Daemon.stop is bounded and deletes the listen key early, even during a slow reconciliation.

Built from fakes wired into a Daemon (no venue): the scheduler is real (APScheduler with the
daemon-thread executor), its marketplace blocks on every history query like a venue at its
read timeout.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from rfqbot.clock import SystemClock
from rfqbot.daemon import Daemon
from rfqbot.scheduler import build_scheduler

BOUND_S = 8.0  # drain_s (1) + STOP_SLACK_S (2) + per-step minimums, with room for a slow CI box


class SlowVenue:
    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()
        self.history_calls = 0

    def sync_clock(self):
        return 0

    def rfq_history(self, *, rfq_id=None):
        self.history_calls += 1
        self.started.set()
        self.release.wait(60)  # a venue that answers only after its read timeout and retries
        return []

    def active_quotes(self, rfq_id):
        return []


class Recorder:
    def __init__(self, order, name):
        self.order, self.name = order, name

    def stop(self, timeout=5.0):
        self.order.append((self.name, timeout))
        return True


def _daemon(drain_s=1):
    settings = SimpleNamespace(engine=SimpleNamespace(shutdown_drain_s=drain_s))
    daemon = Daemon(settings, credentials=None, clock=SystemClock())
    daemon.STOP_SLACK_S = 2.0
    return daemon


def test_stop_during_a_long_reconcile_round_is_bounded_and_deletes_the_key_first():
    venue = SlowVenue()
    daemon = _daemon()
    order = []
    daemon.private_stream = Recorder(order, "private_stream")
    daemon.keeper = Recorder(order, "listen_key_delete")
    daemon.public_stream = Recorder(order, "public_stream")
    daemon.scheduler = build_scheduler(marketplace=venue, post=lambda e: None,
                                       reconcile_targets=lambda: [f"R{i}" for i in range(50)],
                                       reconcile_every_s=0.05, clock_sync_every_s=3600)
    daemon.scheduler.start()
    try:
        assert venue.started.wait(10), "reconciliation never started"
        t0 = time.monotonic()
        daemon.stop("test")
        elapsed = time.monotonic() - t0
        assert elapsed < BOUND_S, f"stop took {elapsed:.1f} s while a reconcile query hung"
        assert [name for name, _ in order] == ["private_stream", "listen_key_delete", "public_stream"]
    finally:
        venue.release.set()
    assert daemon.scheduler.jobs.wait_idle(10)
    assert venue.history_calls == 1  # the round stopped before its next RFQ


def test_engine_join_timeout_leaves_the_journal_to_the_engine_thread():
    daemon = _daemon(drain_s=0)
    daemon.STOP_SLACK_S = 0.3
    stuck = threading.Event()
    daemon._engine_thread = threading.Thread(target=stuck.wait, args=(30,), daemon=True)
    daemon._engine_thread.start()
    touched = []
    daemon.engine = SimpleNamespace(deciding=False, handle=lambda ev: touched.append(ev))
    daemon.journal = SimpleNamespace(close=lambda: touched.append("close"))
    try:
        daemon.stop("test")
    finally:
        stuck.set()
    # the ShutdownRequested posted by stop is still queued: not handled from the main thread
    assert touched == [] and daemon.events.qsize() == 1
