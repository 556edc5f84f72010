"""Scheduler jobs called directly with fakes, plus a real BackgroundScheduler firing tiny intervals."""

from __future__ import annotations

import re
import threading
from decimal import Decimal
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rfqbot.clock import FakeClock
from rfqbot.config.schema import ScheduledRfq, Settings
from rfqbot.errors import Banned, RateLimited, TransportError
from rfqbot.events import ActiveQuotes, CreateRfqCommand, Note, RfqReconciled
from rfqbot.records import Quote, QuoteMode, Rfq, RfqStatus
from rfqbot.scheduler import MAX_CLIENT_ID_LEN, SchedulerJobs, build_scheduler, build_scheduler_from_settings
from tests.test_streams import Sink, wait_until


def make_rfq(rfq_id: str, status: RfqStatus = RfqStatus.SUCCESSFUL) -> Rfq:
    fields = {f: None for f in Rfq.__slots__}  # every optional field empty
    fields.update(rfq_id=rfq_id, status=status, status_raw=status.value)
    return Rfq(**fields)


def make_quote(rfq_id: str, quote_id: str) -> Quote:
    fields = {f: None for f in Quote.__slots__}
    fields.update(rfq_id=rfq_id, quote_id=quote_id)
    return Quote(**fields)


class FakeVenue:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.errors: dict[tuple[str, str], Exception] = {}
        self.sync_error: Exception | None = None
        self.lock = threading.Lock()

    def sync_clock(self) -> int:
        with self.lock:
            self.calls.append(("sync_clock", None))
        if self.sync_error:
            raise self.sync_error
        return -42

    def rfq_history(self, *, rfq_id: str | None = None) -> list[Rfq]:
        with self.lock:
            self.calls.append(("rfq_history", rfq_id))
        if ("history", rfq_id) in self.errors:
            raise self.errors[("history", rfq_id)]
        return [make_rfq(rfq_id)]

    def active_quotes(self, rfq_id: str) -> list[Quote]:
        with self.lock:
            self.calls.append(("active_quotes", rfq_id))
        return [make_quote(rfq_id, "q1"), make_quote(rfq_id, "q2")]

    def count(self, name: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c[0] == name)


class FakeKeeper:
    def __init__(self, error: Exception | None = None) -> None:
        self.extends = 0
        self.error = error

    def extend(self) -> None:
        self.extends += 1
        if self.error:
            raise self.error


def jobs(venue: FakeVenue, sink: Sink, targets: Any = ("r1", "r2"), keeper: Any = None) -> SchedulerJobs:
    targets_fn = targets if callable(targets) else (lambda: list(targets))
    return SchedulerJobs(marketplace=venue, post=sink, reconcile_targets=targets_fn, keeper=keeper,
                         clock=FakeClock())


def spec(**kw: Any) -> ScheduledRfq:
    data: dict[str, Any] = dict(every="1h", buy="BTC", sell="USDT", sell_amount="1000.10",
                                mode="real-time", expire_sec=600)
    data.update(kw)
    return ScheduledRfq.model_validate(data)


# --- job bodies ---------------------------------------------------------------------------------

def test_keepalive_extends_and_survives_a_keeper_bug():
    keeper = FakeKeeper()
    jobs(FakeVenue(), Sink(), keeper=keeper).keepalive()
    assert keeper.extends == 1
    broken = FakeKeeper(RuntimeError("bug"))
    jobs(FakeVenue(), Sink(), keeper=broken).keepalive()  # must not raise
    assert broken.extends == 1


def test_clock_sync_posts_offset_and_notes_failures():
    venue, sink = FakeVenue(), Sink()
    j = jobs(venue, sink)
    j.sync_clock()
    venue.sync_error = TransportError("/api/v1/time", "timeout")
    j.sync_clock()
    notes = sink.of(Note)
    assert [n.kind for n in notes] == ["clock_sync", "clock_sync_failed"]
    assert notes[0].detail == {"offset_ms": -42}
    assert "timeout" in notes[1].detail["error"]


def test_reconcile_posts_history_and_active_quotes_per_target():
    venue, sink = FakeVenue(), Sink()
    assert jobs(venue, sink, targets=("r1", "r2", "r1")).reconcile() == 2
    assert venue.calls == [("rfq_history", "r1"), ("active_quotes", "r1"),
                           ("rfq_history", "r2"), ("active_quotes", "r2")]
    reconciled = sink.of(RfqReconciled)
    assert [(r.rfq.rfq_id, r.source) for r in reconciled] == [("r1", "history"), ("r2", "history")]
    active = sink.of(ActiveQuotes)
    assert [(a.rfq_id, [q.quote_id for q in a.quotes]) for a in active] == [("r1", ["q1", "q2"]),
                                                                           ("r2", ["q1", "q2"])]


def test_reconcile_failure_of_one_rfq_does_not_starve_the_rest():
    venue, sink = FakeVenue(), Sink()
    venue.errors[("history", "r1")] = TransportError("/api/v1/market-place/rfqs", "HTTP 503")
    assert jobs(venue, sink).reconcile() == 1
    assert [r.rfq.rfq_id for r in sink.of(RfqReconciled)] == ["r2"]
    failed = [n for n in sink.of(Note) if n.kind == "reconcile_failed"]
    assert failed and failed[0].detail["rfq_id"] == "r1"


@pytest.mark.parametrize("error", [RateLimited(60, "/api/v1/market-place/rfqs"), Banned("/rfqs")])
def test_reconcile_stops_the_round_on_rate_limit_or_ban(error):
    venue, sink = FakeVenue(), Sink()
    venue.errors[("history", "r1")] = error
    assert jobs(venue, sink, targets=("r1", "r2", "r3")).reconcile() == 0
    assert venue.calls == [("rfq_history", "r1")]
    skipped = [n for n in sink.of(Note) if n.kind == "reconcile_skipped"]
    assert skipped[0].detail == {"reason": type(error).__name__, "skipped": 3}


def test_reconcile_survives_broken_targets_callable():
    def boom() -> list[str]:
        raise RuntimeError("engine snapshot failed")

    venue, sink = FakeVenue(), Sink()
    assert jobs(venue, sink, targets=boom).reconcile() == 0
    assert venue.calls == []


def test_scheduled_rfq_posts_create_command_with_unique_ids():
    sink = Sink()
    j = jobs(FakeVenue(), sink)
    entry = spec(client_id_prefix="desk-7")
    for _ in range(50):
        j.create_scheduled_rfq(entry)
    commands = sink.of(CreateRfqCommand)
    assert len(commands) == 50
    first = commands[0]
    assert (first.buy_ccy, first.sell_ccy, first.sell_amount, first.mode, first.expire_sec, first.source) == \
        ("BTC", "USDT", Decimal("1000.10"), QuoteMode.REAL_TIME, 600, "schedule")
    assert isinstance(first.sell_amount, Decimal)
    ids = [c.client_order_id for c in commands]
    assert len(set(ids)) == 50
    for cid in ids:
        assert cid.startswith("desk-7-") and len(cid) <= MAX_CLIENT_ID_LEN
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cid)


def test_client_order_id_stays_within_limit_for_longest_prefix():
    j = jobs(FakeVenue(), Sink())
    cid = j.client_order_id("p" * 20, 99_999_999_999_999)
    assert len(cid) <= MAX_CLIENT_ID_LEN and cid.startswith("p")


# --- the schedule -------------------------------------------------------------------------------

def test_build_scheduler_registers_jobs_with_safe_defaults():
    s = build_scheduler(marketplace=FakeVenue(), post=Sink(), reconcile_targets=list, keeper=FakeKeeper(),
                        scheduled_rfqs=[spec(), spec(every=None, cron="0 * * * *")])
    assert sorted(s.job_ids()) == ["clock_sync", "listen_key_keepalive", "pairs_refresh", "reconcile", "rfq_0", "rfq_1"]
    assert s.aps.get_job("pairs_refresh").trigger.interval.total_seconds() == 300
    keepalive = s.aps.get_job("listen_key_keepalive")
    assert isinstance(keepalive.trigger, IntervalTrigger)
    assert keepalive.trigger.interval.total_seconds() == 1800
    assert isinstance(s.aps.get_job("rfq_1").trigger, CronTrigger)
    assert s.aps.get_job("rfq_0").trigger.interval.total_seconds() == 3600
    for job in s.aps.get_jobs():
        assert job.coalesce is True and job.max_instances == 1
        assert 1 <= job.misfire_grace_time <= 1800
    s.shutdown()  # never started: a no-op


def test_build_from_settings_uses_config_keys():
    settings = Settings.model_validate({
        "listen_key": {"extend_every_s": 900}, "reconcile": {"every_s": 20}, "clock_sync": {"every_s": 120},
        "pairs_refresh": {"every_s": 45}, "keep_warm": {"every_s": 15},
        "rfqs": [{"cron": "*/5 * * * *", "buy": "ETH", "sell": "USDT", "sell_amount": "5", "mode": "delayed"}],
    })
    s = build_scheduler_from_settings(settings, marketplace=FakeVenue(), post=Sink(),
                                      reconcile_targets=list, keeper=FakeKeeper())
    assert s.aps.get_job("listen_key_keepalive").trigger.interval.total_seconds() == 900
    assert s.aps.get_job("pairs_refresh").trigger.interval.total_seconds() == 45
    assert s.aps.get_job("keep_warm").trigger.interval.total_seconds() == 15
    assert s.aps.get_job("reconcile").trigger.interval.total_seconds() == 20
    assert s.aps.get_job("clock_sync").trigger.interval.total_seconds() == 120
    assert isinstance(s.aps.get_job("rfq_0").trigger, CronTrigger)


def test_scheduler_really_fires_and_shuts_down():
    venue, sink, keeper = FakeVenue(), Sink(), FakeKeeper()
    before = set(threading.enumerate())
    s = build_scheduler(marketplace=venue, post=sink, reconcile_targets=lambda: ["r1"], keeper=keeper,
                        extend_every_s=0.1, clock_sync_every_s=3600, reconcile_every_s=0.1,
                        scheduled_rfqs=[spec(every="1s")])
    s.start()
    try:
        assert wait_until(lambda: venue.count("sync_clock") == 1, 3.0)  # at once on start
        assert wait_until(lambda: venue.count("rfq_history") >= 2 and keeper.extends >= 2, 3.0)
        assert wait_until(lambda: len(sink.of(CreateRfqCommand)) >= 1, 3.0)
    finally:
        s.shutdown()
    assert not s.aps.running
    assert wait_until(lambda: not (set(threading.enumerate()) - before), 2.0)


def test_reconcile_now_runs_reconciliation_immediately():
    venue, sink = FakeVenue(), Sink()
    s = build_scheduler(marketplace=venue, post=sink, reconcile_targets=lambda: ["r9"],
                        clock_sync_every_s=3600, reconcile_every_s=3600)
    s.reconcile_now()  # before start: ignored, not an error
    s.start()
    try:
        assert not wait_until(lambda: venue.count("rfq_history") > 0, 0.2)
        s.reconcile_now()
        assert wait_until(lambda: venue.count("rfq_history") == 1, 3.0)
    finally:
        s.shutdown()
