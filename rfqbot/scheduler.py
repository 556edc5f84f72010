"""Periodic work on an APScheduler 3.x BackgroundScheduler: the daemon's clockwork.

Jobs: listen-key keepalive, server clock sync, reconciliation of unsettled RFQs, and scheduled
RFQ creation from the ``rfqs:`` section. Every job only calls the venue (through the
MarketPlace, which paces and classifies errors) and posts events; none touches engine state, so
the engine keeps its single total order. Every job catches its own failures: a scheduler whose
job raised would log and carry on anyway, but a journaled note says *what* went wrong.

The job functions live on ``SchedulerJobs`` so tests can call them directly; ``Scheduler``
only decides when they run (coalesce, one instance at a time, bounded misfire grace).
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import structlog
from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rfqbot.clock import Clock, SystemClock
from rfqbot.errors import Banned, RateLimited
from rfqbot.events import ActiveQuotes, CreateRfqCommand, Event, Note, PairsRefreshed, RfqReconciled
from rfqbot.records import Pair, Quote, QuoteMode, Rfq

log = structlog.get_logger(__name__)

MAX_CLIENT_ID_LEN = 36  # the venue documents no limit for rfqClOrderId; spot ids allow 64


class VenueQueries(Protocol):
    def sync_clock(self) -> int: ...
    def rfq_history(self, *, rfq_id: str | None = None, start_ms: int | None = None) -> list[Rfq]: ...
    def active_quotes(self, rfq_id: str) -> list[Quote]: ...
    def get_pairs(self) -> list[Pair]: ...
    def ping(self) -> None: ...


class Keepalive(Protocol):
    def extend(self) -> None: ...


class ScheduledRfqSpec(Protocol):
    """What one ``rfqs:`` entry gives (``config.ScheduledRfq`` satisfies it)."""

    every_s: int | None
    cron: str | None
    buy: str
    sell: str
    sell_amount: Decimal
    mode: str
    expire_sec: int | None
    client_id_prefix: str


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class SchedulerJobs:
    """The job bodies. Each runs on a scheduler worker thread and never raises."""

    def __init__(self, *, marketplace: VenueQueries, post: Callable[[Event], None],
                 reconcile_targets: Callable[[], Iterable[str]], keeper: Keepalive | None = None,
                 clock: Clock | None = None, window_start: Callable[[str], int | None] | None = None) -> None:
        self._api = marketplace
        # RFQ -> venue-time start of a history window wider than the venue's default 24 h
        # (a restored RFQ created days ago is not in the default window), or None.
        self._window_start = window_start
        self._post = post
        self._targets = reconcile_targets
        self._keeper = keeper
        self._clock: Clock = clock or SystemClock()
        self._counter = itertools.count(1)
        self._counter_lock = threading.Lock()
        self._stopping = threading.Event()
        self._keep_warm_failing = False
        self._busy = 0
        self._idle = threading.Condition()

    # --- stopping: jobs end at their next check, shutdown waits a bounded time -------------

    def stop(self) -> None:
        """No new job starts; a running reconciliation ends before its next RFQ."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no job body runs (at most ``timeout`` s); True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    @contextmanager
    def _running(self) -> Iterator[None]:
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    # --- job bodies ---------------------------------------------------------------------------

    def keepalive(self) -> None:
        """Extend the listen key (the keeper replaces it itself when that fails)."""
        if self._keeper is None or self.stopping:
            return
        with self._running():
            try:
                self._keeper.extend()
            except Exception:  # the keeper handles venue errors; this is a bug guard
                log.exception("keepalive_job_failed")

    def sync_clock(self) -> None:
        """Measure the venue clock offset; expiry checks and signatures depend on it."""
        if self.stopping:
            return
        with self._running():
            self._sync_clock()

    def _sync_clock(self) -> None:
        try:
            offset = self._api.sync_clock()
        except Exception as exc:  # noted and retried next run; the old offset stays
            log.warning("clock_sync_failed", error=str(exc))
            self._emit(Note(self._clock.now_ms(), "clock_sync_failed", {"error": str(exc)[:300]}))
            return
        log.info("clock_sync", offset_ms=offset)
        self._emit(Note(self._clock.now_ms(), "clock_sync", {"offset_ms": offset}))

    def keep_warm(self) -> None:
        """``GET /api/v1/ping``: keeps a pooled connection to the venue open (and its keep-alive
        timer fresh), so an accept finds a warm connection and leaves from the engine thread
        instead of paying a TCP + TLS handshake. A failure is logged; the next run tries again."""
        if self.stopping:
            return
        with self._running():
            try:
                self._api.ping()
            except Exception as exc:  # the call itself is journaled (venue.call); no extra note
                if not self._keep_warm_failing:   # once per outage, not every run
                    log.warning("keep_warm_failed", error=str(exc))
                self._keep_warm_failing = True
                return
            if self._keep_warm_failing:
                log.info("keep_warm_recovered")
            self._keep_warm_failing = False

    def refresh_pairs(self) -> None:
        """Ask ``get-pairs`` again; the engine applies trading-status changes (a CLOSED pair is
        never accepted). A failure is journaled and the pairs known so far stay in force."""
        if self.stopping:
            return
        with self._running():
            try:
                pairs = self._api.get_pairs()
            except Exception as exc:  # noted and retried next run
                log.warning("pairs_refresh_failed", error=str(exc))
                self._emit(Note(self._clock.now_ms(), "pairs_refresh_failed", {"error": str(exc)[:300]}))
                return
            self._emit(PairsRefreshed(self._clock.now_ms(), tuple(pairs)))

    def reconcile(self) -> int:
        """Ask the venue about every unsettled RFQ; returns how many were queried.

        History and active quotes are posted as they are; the engine decides what they mean.
        A 429 or a ban ends the round at once: more requests would only prolong the penalty.
        ``stop()`` ends it before the next RFQ, so shutdown never waits for a whole round.
        """
        if self.stopping:
            return 0
        with self._running():
            return self._reconcile()

    def _reconcile(self) -> int:
        try:
            targets = list(dict.fromkeys(self._targets()))
        except Exception:  # the engine's snapshot failed: nothing to do this round
            log.exception("reconcile_targets_failed")
            return 0
        done = 0
        for rfq_id in targets:
            if self.stopping:
                log.info("reconcile_round_stopped", done=done, skipped=len(targets) - done)
                break
            try:
                # Stamp each query with its SEND time: an answer that comes back after an
                # accept's 5xx may still describe the venue before that accept.
                asked = self._clock.now_ms()
                rows = self._api.rfq_history(**self._history_args(rfq_id))
                now = self._clock.now_ms()
                for rfq in rows:
                    self._emit(RfqReconciled(now, rfq, "history", asked_ms=asked))
                asked = self._clock.now_ms()
                quotes = self._api.active_quotes(rfq_id)
                self._emit(ActiveQuotes(self._clock.now_ms(), rfq_id, tuple(quotes), asked_ms=asked))
                done += 1
            except (RateLimited, Banned) as exc:
                log.warning("reconcile_round_cut_short", rfq_id=rfq_id, error=str(exc),
                            skipped=len(targets) - done)
                self._emit(Note(self._clock.now_ms(), "reconcile_skipped",
                                {"reason": type(exc).__name__, "skipped": len(targets) - done}))
                break
            except Exception as exc:  # one RFQ's failure must not starve the others
                log.warning("reconcile_failed", rfq_id=rfq_id, error=str(exc))
                self._emit(Note(self._clock.now_ms(), "reconcile_failed",
                                {"rfq_id": rfq_id, "error": str(exc)[:300]}))
        return done

    def _history_args(self, rfq_id: str) -> dict[str, Any]:
        start = self._window_start(rfq_id) if self._window_start is not None else None
        return {"rfq_id": rfq_id} if start is None else {"rfq_id": rfq_id, "start_ms": start}

    def create_scheduled_rfq(self, spec: ScheduledRfqSpec) -> None:
        """Ask the engine to create the RFQ; the engine journals it and calls the venue."""
        if self.stopping:
            return
        try:
            now = self._clock.now_ms()
            command = CreateRfqCommand(
                received_ms=now, buy_ccy=spec.buy, sell_ccy=spec.sell,
                sell_amount=Decimal(spec.sell_amount), mode=QuoteMode.parse(str(spec.mode)),
                expire_sec=spec.expire_sec, client_order_id=self.client_order_id(spec.client_id_prefix, now),
                source="schedule")
        except Exception:  # a bad entry slipped past config validation: say which
            log.exception("scheduled_rfq_invalid", buy=getattr(spec, "buy", None), sell=getattr(spec, "sell", None))
            return
        log.info("scheduled_rfq", buy=spec.buy, sell=spec.sell, client_order_id=command.client_order_id)
        self._emit(command)

    def client_order_id(self, prefix: str, now_ms: int) -> str:
        """``prefix-<ms base36>-<counter base36>``: unique per process and over restarts."""
        with self._counter_lock:
            n = next(self._counter)
        suffix = f"-{_base36(now_ms)}-{_base36(n)}"
        return prefix[:max(1, MAX_CLIENT_ID_LEN - len(suffix))] + suffix

    def _emit(self, event: Event) -> None:
        try:
            self._post(event)
        except Exception:
            log.exception("scheduler_post_failed", event=type(event).__name__)


class DaemonThreadExecutor(BaseExecutor):
    """APScheduler executor that runs each job run on its own daemon thread.

    WHY: the default pool's threads are joined when the interpreter exits, so a job stuck in a
    slow venue call (retries, 3 + 10 s timeouts) would hold the process long after ``stop()``
    returned. Jobs are few and infrequent, and ``max_instances=1`` bounds each one.
    """

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        def target() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except Exception as exc:  # run_job reports job errors itself; this is its own failure
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=target, name=f"rfqbot-job-{job.id}", daemon=True).start()


class Scheduler:
    """The running schedule: ``start()``, ``reconcile_now()``, ``shutdown()``."""

    def __init__(self, aps: BackgroundScheduler, jobs: SchedulerJobs) -> None:
        self.aps = aps
        self.jobs = jobs

    def start(self) -> None:
        self.aps.start()

    def stop(self) -> None:
        """Stop firing and tell running jobs to end at their next check; returns at once."""
        self.jobs.stop()
        if self.aps.running:
            self.aps.shutdown(wait=False)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:
        """``stop()``, then with ``wait`` wait up to ``timeout`` s for running jobs; True when idle.

        Never APScheduler's own ``wait=True``: a reconciliation round is many venue queries,
        each with retries and timeouts, and a shutdown must not last that long (systemd would
        SIGKILL the process before the listen key is deleted). A job still running after the
        timeout is on a daemon thread and dies with the process.
        """
        self.stop()
        return self.jobs.wait_idle(timeout) if wait else self.jobs.wait_idle(0)

    def reconcile_now(self) -> None:
        """Run reconciliation as soon as possible (a stream just resubscribed: pushes may be lost).

        It moves the regular job's next run to now rather than adding a second job, so two
        reconciliations never run at once.
        """
        if not self.aps.running or self.aps.get_job("reconcile") is None:
            return
        self.aps.modify_job("reconcile", next_run_time=datetime.now(timezone.utc))

    def job_ids(self) -> list[str]:
        return [job.id for job in self.aps.get_jobs()]


def build_scheduler(*, marketplace: VenueQueries, post: Callable[[Event], None],
                    reconcile_targets: Callable[[], Iterable[str]], keeper: Keepalive | None = None,
                    clock: Clock | None = None, window_start: Callable[[str], int | None] | None = None,
                    extend_every_s: float = 1800,
                    clock_sync_every_s: float = 300, reconcile_every_s: float = 30,
                    pairs_refresh_every_s: float = 300, keep_warm_every_s: float = 0, scheduled_rfqs: Sequence[ScheduledRfqSpec] = (), tz: Any = timezone.utc) -> Scheduler:
    """All jobs on one BackgroundScheduler (not started). Cron entries use ``tz`` (UTC).

    Clock sync runs at once on start (accept decisions use the venue clock); the keepalive
    first fires one interval after start (the key was just created). Missed runs coalesce into
    one; a job never overlaps itself.
    """
    jobs = SchedulerJobs(marketplace=marketplace, post=post, reconcile_targets=reconcile_targets,
                         keeper=keeper, clock=clock, window_start=window_start)
    aps = BackgroundScheduler(timezone=tz, executors={"default": DaemonThreadExecutor()})
    once = {"coalesce": True, "max_instances": 1}  # explicit per job: pending jobs show it too
    now = datetime.now(timezone.utc)
    if keeper is not None:
        aps.add_job(jobs.keepalive, IntervalTrigger(seconds=extend_every_s), id="listen_key_keepalive",
                    name="listen-key keepalive", misfire_grace_time=max(1, int(extend_every_s)), **once)
    aps.add_job(jobs.sync_clock, IntervalTrigger(seconds=clock_sync_every_s), id="clock_sync",
                name="server clock sync", next_run_time=now, misfire_grace_time=60, **once)
    aps.add_job(jobs.reconcile, IntervalTrigger(seconds=reconcile_every_s), id="reconcile",
                name="reconciliation", misfire_grace_time=max(1, int(reconcile_every_s)), **once)
    # First run one interval after start: the daemon fetched the pairs just before.
    aps.add_job(jobs.refresh_pairs, IntervalTrigger(seconds=pairs_refresh_every_s), id="pairs_refresh",
                name="pairs refresh", misfire_grace_time=max(1, int(pairs_refresh_every_s)), **once)
    if keep_warm_every_s > 0:
        aps.add_job(jobs.keep_warm, IntervalTrigger(seconds=keep_warm_every_s), id="keep_warm",
                    name="venue connection keep-warm", misfire_grace_time=max(1, int(keep_warm_every_s)), **once)
    for i, spec in enumerate(scheduled_rfqs):
        trigger, grace = _rfq_trigger(spec, tz)
        aps.add_job(jobs.create_scheduled_rfq, trigger, args=[spec], id=f"rfq_{i}",
                    name=f"scheduled RFQ {i}: buy {spec.buy} sell {spec.sell}", misfire_grace_time=grace,
                    **once)
    return Scheduler(aps, jobs)


def build_scheduler_from_settings(settings: Any, **deps: Any) -> Scheduler:
    """``build_scheduler`` with the intervals and ``rfqs:`` of a ``config.Settings``."""
    return build_scheduler(extend_every_s=settings.listen_key.extend_every_s,
                           clock_sync_every_s=settings.clock_sync.every_s,
                           reconcile_every_s=settings.reconcile.every_s,
                           pairs_refresh_every_s=settings.pairs_refresh.every_s,
                           keep_warm_every_s=settings.keep_warm.every_s,
                           scheduled_rfqs=settings.rfqs, **deps)


def _rfq_trigger(spec: ScheduledRfqSpec, tz: Any) -> tuple[Any, int]:
    """Interval or crontab trigger, and how late a run may still start.

    A scheduled RFQ that is much later than planned is skipped rather than sent: a desk that
    asked for one RFQ at the top of the hour does not want it at twenty past.
    """
    if getattr(spec, "cron", None):
        return CronTrigger.from_crontab(spec.cron, timezone=tz), 60
    every = spec.every_s
    if not every or every <= 0:
        raise ValueError(f"scheduled RFQ buy {spec.buy} sell {spec.sell}: give 'every' or 'cron'")
    return IntervalTrigger(seconds=every), max(1, min(60, int(every) // 2))


__all__ = ["DaemonThreadExecutor", "MAX_CLIENT_ID_LEN", "Scheduler", "SchedulerJobs", "build_scheduler",
           "build_scheduler_from_settings"]
