"""The daemon: wires journal, REST, streams, listen-key keeper, scheduler and engine together.

Start order matters. The journal opens first (nothing may happen that cannot be recorded), then
the venue is asked for its clock and pairs (decisions need both), then the engine thread starts
consuming, and only then do the producers start: the public stream, the listen key with the
private stream on it, and the scheduler. Stop runs the other way round, so that the last
results (in-flight accepts, the listen-key delete) still reach the journal.
"""

from __future__ import annotations

import errno
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable

import structlog

from rfqbot.engine.actions import RestActions
from rfqbot.backoff import Backoff
from rfqbot.clock import Clock, SystemClock
from rfqbot.config.schema import Settings, load_config
from rfqbot.config.credentials import Credentials
from rfqbot.engine.loop import Engine
from rfqbot.engine.inbox import EventQueue
from rfqbot.errors import Banned, ConfigError, RateLimited, TransportError, VenueError
from rfqbot.events import Event, Note, ReloadRequested, ShutdownRequested, StreamStatus
from rfqbot.journal.store import Journal, JournalError, JournalLocked
from rfqbot.streams.listenkey import ListenKeyKeeper
from rfqbot.venue.marketplace import MarketPlace
from rfqbot.records import Pair
from rfqbot.scheduler import Scheduler, build_scheduler_from_settings
from rfqbot.streams.setup import build_private_stream, build_public_stream
from rfqbot.streams.wire import rehearse_decode
from rfqbot.streams.connection import StreamConnection

log = structlog.get_logger(__name__)

Observer = Callable[[str, dict[str, Any]], None]
# Lifecycle listener: called with a stage ("started", "reloading", "reloaded", "stopping",
# "stopped") and details. systemd notify, alerts and metrics attach here, not in the core.
Listener = Callable[[str, dict[str, Any]], None]


class StartupAborted(Exception):
    """Stop was requested while the daemon was still starting (e.g. venue unreachable)."""


class Daemon:
    """One running rfqbot: ``start()``, then ``stop()``; ``request_reload()`` on SIGHUP.

    Every component posts events to one queue; the engine thread alone consumes it and owns
    the journal connection.
    """

    # Seconds a stop may take beyond engine.shutdown_drain_s (stream closes, key delete, joins).
    STOP_SLACK_S = 5.0

    def __init__(self, settings: Settings, credentials: Credentials, *, clock: Clock | None = None,
                 observers: tuple[Observer, ...] = (), engine_tick_s: float = 0.25) -> None:
        self.settings = settings
        self.credentials = credentials
        self.clock: Clock = clock or SystemClock()
        self.events: "EventQueue | queue.Queue[Event]" = EventQueue()
        self.stopping = threading.Event()
        self._observers = observers
        self._engine_tick_s = engine_tick_s
        self._loop_stop = threading.Event()
        self._engine_thread: threading.Thread | None = None
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._start_done = threading.Event()
        self._start_done.set()  # cleared while start() runs
        self.journal: Journal | None = None
        self.marketplace: MarketPlace | None = None
        self.actions: RestActions | None = None
        self.engine: Engine | None = None
        self.public_stream: StreamConnection | None = None
        self.private_stream: StreamConnection | None = None
        self.keeper: ListenKeyKeeper | None = None
        self.scheduler: Scheduler | None = None
        self.banned: Banned | None = None
        self.started_ms: int | None = None
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """Be told of lifecycle stages (see ``Listener``); listeners must not block."""
        self._listeners.append(listener)

    def _emit(self, stage: str, **details: Any) -> None:
        for listener in self._listeners:
            try:
                listener(stage, details)
            except Exception as exc:  # noqa: BLE001 - an ops hook must not break trading
                log.warning("daemon.listener_failed", stage=stage, error=str(exc))

    def health(self) -> dict[str, Any]:
        """A snapshot for status lines and the watchdog; cheap, thread-safe, no venue call."""
        now_ms = self.clock.now_ms()
        mono = self.clock.monotonic()
        streams = {}
        for stream in (self.public_stream, self.private_stream):
            if stream is not None:
                last = stream.last_frame_ms
                streams[stream.name] = {"state": stream.state, "session": stream.session,
                                        "last_frame_age_ms": None if last is None else now_ms - last}
        engine = self.engine
        loop_age_s = None
        if engine is not None and engine.last_loop_monotonic is not None:
            loop_age_s = mono - engine.last_loop_monotonic
        keeper = self.keeper
        return {
            "started_ms": self.started_ms,
            "uptime_s": None if self.started_ms is None else (now_ms - self.started_ms) / 1000,
            "streams": streams,
            "listen_key": None if keeper is None else {
                "hint": keeper.key_hint,
                "age_s": None if keeper.key_since_ms is None else (now_ms - keeper.key_since_ms) / 1000},
            "engine_loop_age_s": loop_age_s,
            "deciding": None if engine is None else engine.deciding,
            "journal_failure": None if engine is None else engine.journal_failure,
            "open_rfqs": None if engine is None else _open_rfqs_without_lock(engine),
            "banned": self.banned is not None,
            # Seconds left of a venue 429 pause (every request waits for it), 0 when not paused.
            "paused_for_s": 0.0 if self.marketplace is None else round(self.marketplace.rest.gate.paused_for(), 1),
            # Order requests written on the engine thread right after the commit, or by a REST
            # worker (no warm connection or pacing room then; see keep_warm).
            "orders_sent": None if self.marketplace is None else dict(self.marketplace.rest.orders_written),
            # Idle rehearsals of the decision path run so far; why they are off, if a bug turned them off.
            "rehearsals": None if engine is None else engine.rehearsals,
            "rehearsals_off": None if engine is None else engine.rehearsal_off_reason,
        }

    # --- events in -------------------------------------------------------------------------

    def post(self, event: Event) -> None:
        """Hand an event to the engine thread. Safe from any thread. Never blocks, except a public
        market-data event while the engine is that far behind (``EventQueue``: bounded wait, then
        dropped and journaled as ``frames.dropped``)."""
        self.events.put(event)
        if isinstance(event, StreamStatus) and event.state == "subscribed" and self.scheduler is not None:
            # Pushes may have been lost while the stream was down: ask the venue now.
            try:
                self.scheduler.reconcile_now()
            except Exception as exc:  # noqa: BLE001 - a scheduler hiccup must not break a stream thread
                log.warning("daemon.reconcile_now_failed", error=str(exc))

    def _on_ban(self, exc: Banned) -> None:
        self.banned = exc
        log.critical("daemon.banned", error=str(exc))
        self.post(Note(self.clock.now_ms(), "alert.banned", {"error": str(exc)}))

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bring everything up; returns once streams are starting and the listen key is live.

        Raises ``VenueError``/``Banned`` for problems a restart cannot fix (bad API key, ban),
        ``StartupAborted`` when ``stop()`` was requested meanwhile. Transient venue trouble is
        retried with backoff: a daemon that exits because the network blinked at boot would
        only be restarted into the same blink.
        """
        self._start_done.clear()
        try:
            self._start()
        finally:
            self._start_done.set()

    def _check_not_stopping(self, stage: str) -> None:
        if self.stopping.is_set():
            raise StartupAborted(f"stopped during start-up ({stage})")

    def _start(self) -> None:
        s = self.settings
        self.journal = _open_journal(s.journal.path, self.clock, s.journal.synchronous)
        profile = s.profile()
        self.marketplace = MarketPlace(profile, self.credentials, clock=self.clock, observer=self.post,
                                       on_ban=self._on_ban)
        offset = self._until_ready("sync venue clock", self.marketplace.sync_clock)
        pairs: list[Pair] = self._until_ready("get pairs", self.marketplace.get_pairs)
        log.info("daemon.venue_ready", venue=profile.name, clock_offset_ms=offset, pairs=[p.name for p in pairs])
        self.actions = RestActions(self.marketplace, self.post, workers=s.engine.accept_workers, clock=self.clock)
        marketplace = self.marketplace
        self.engine = Engine(self.journal, s.chains, s.risk, self.actions, marketplace.venue_clock, pairs,
                             s.engine.min_time_left_ms, rehearse_every_s=s.engine.rehearse_every_ms / 1000,
                             rehearse_sync=s.engine.rehearse_sync,
                             rehearse_hooks=(
                                 rehearse_decode,
                                 lambda ev: marketplace.rehearse_accept(ev.rfq_id, ev.quotes[0].quote_id)))
        self.engine.add_observer(self._on_engine_entry)
        for observer in self._observers:
            self.engine.add_observer(observer)
        self.engine.handle(Note(self.clock.now_ms(), "daemon.start", {
            "venue": profile.name, "rest_url": profile.rest_url, "ws_url": profile.ws_url,
            "clock_offset_ms": offset, "pairs": [p.name for p in pairs],
            "config_file": s.file, "strategies": sorted(s.strategies)}))
        self._engine_thread = threading.Thread(target=self.engine.run, name="rfqbot-engine",
                                               args=(self.events, self._loop_stop, self._engine_tick_s), daemon=True)
        self._engine_thread.start()

        self.public_stream = build_public_stream(s, post=self.post, clock=self.clock)
        self.private_stream = build_private_stream(s, post=self.post, clock=self.clock)
        self.keeper = ListenKeyKeeper(self.marketplace, self.private_stream, profile.private_stream_url,
                                      post=self.post, clock=self.clock,
                                      extend_every_s=s.listen_key.extend_every_s,
                                      fresh_key_grace_s=s.listen_key.fresh_key_grace_s)
        self.private_stream.on_stale = self.keeper.on_stream_end
        self._check_not_stopping("streams")
        self.public_stream.start()
        if not self.keeper.start():
            raise StartupAborted("stopped while creating the listen key")
        self._check_not_stopping("scheduler")
        self.scheduler = build_scheduler_from_settings(
            s, marketplace=self.marketplace, post=self.post, reconcile_targets=self.engine.reconcile_targets,
            keeper=self.keeper, clock=self.clock, window_start=self.engine.reconcile_window_start)
        self.scheduler.start()
        self.started_ms = self.clock.now_ms()
        log.info("daemon.started", journal=str(s.journal.path), listen_key=self.keeper.key_hint)
        self._emit("started", journal=str(s.journal.path))

    def _until_ready(self, what: str, call: Callable[[], Any]) -> Any:
        backoff = Backoff(base_s=1.0, cap_s=30.0)
        while True:
            if self.stopping.is_set():
                raise StartupAborted(f"stopped while trying to {what}")
            try:
                return call()
            except (TransportError, RateLimited) as exc:
                delay = getattr(exc, "retry_after_s", None) or backoff.next_delay()
                log.warning("daemon.venue_not_ready", step=what, error=str(exc), retry_in_s=round(delay, 1))
                self.stopping.wait(delay)

    def request_reload(self, path: str | None = None) -> bool:
        """SIGHUP: validate the YAML again and hand strategies + risk to the engine atomically.

        An invalid file is rejected with its reason logged and journaled; the old settings stay.
        """
        file = path or self.settings.file
        self._emit("reloading", file=file)
        try:
            new = load_config(file)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old settings, and says why
            error = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            log.error("daemon.reload_rejected", error=error)
            self.post(ReloadRequested(self.clock.now_ms(), settings=None, error=error))
            return False
        later = restart_only_changes(self.settings, new)
        if later:
            log.warning("daemon.reload_restart_needed", sections=later,
                        fix="a reload applies strategies and risk only; restart rfqbot to apply these")
        self.post(ReloadRequested(self.clock.now_ms(), settings=new, restart_needed=tuple(later)))
        log.info("daemon.reload_requested", file=file)
        return True

    def _on_engine_entry(self, kind: str, payload: dict[str, Any]) -> None:
        """Tell listeners a reload's outcome once the engine has applied (or refused) it."""
        if kind == "reload.applied":
            self._emit("reloaded", ok=True, restart_needed=payload.get("restart_needed") or [])
        elif kind == "reload.rejected":
            self._emit("reloaded", ok=False, error=str(payload.get("error", "")))

    def stop(self, reason: str = "stop requested", drain_s: float | None = None) -> None:
        """Stop deciding, let in-flight accepts finish (bounded), delete the key, close, commit.

        The whole stop is bounded by ``drain_s`` (``engine.shutdown_drain_s``) plus
        ``STOP_SLACK_S``: systemd's stop timeout SIGKILLs a process that takes longer, and then
        the listen key is never deleted. So nothing here waits for a reconciliation round (the
        scheduler is told to stop and left to finish on its own), and the key is deleted right
        after the private stream closes, before the slower clean-up.
        """
        self.stopping.set()
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        drain = self.settings.engine.shutdown_drain_s if drain_s is None else drain_s
        deadline = self.clock.monotonic() + float(drain) + self.STOP_SLACK_S

        def left(cap: float) -> float:
            """Time for one step: its own cap, within what remains (never 0: each step gets a try)."""
            return max(0.2, min(cap, deadline - self.clock.monotonic()))

        log.info("daemon.stopping", reason=reason)
        self._emit("stopping", reason=reason)
        if not self._start_done.is_set():
            # Start-up is still retrying the venue: interrupt it, then tear down what it built.
            if self.keeper is not None:
                self.keeper.stop(timeout=left(2.0))
            self._start_done.wait(left(15.0))
        if self.scheduler is not None:
            self.scheduler.stop()  # no new job; a running reconciliation ends before its next RFQ
        if self.engine is not None:
            self.post(ShutdownRequested(self.clock.now_ms(), reason))
            _wait_until(lambda: not self.engine.deciding, left(2.0))  # type: ignore[union-attr]
        if self.actions is not None and not self.actions.drain(left(float(drain))):
            log.error("daemon.drain_timeout", in_flight=self.actions.in_flight(), drain_s=drain)
        if self.private_stream is not None:
            self.private_stream.stop(timeout=left(5.0))
        if self.keeper is not None:
            self.keeper.stop(timeout=left(5.0))  # the listen key is deleted here
        if self.public_stream is not None:
            self.public_stream.stop(timeout=left(5.0))
        if self.scheduler is not None and not self.scheduler.shutdown(timeout=left(5.0)):
            log.warning("daemon.scheduler_job_still_running", detail="left to end with the process")
        self._loop_stop.set()
        engine_done = True
        if self._engine_thread is not None:
            self._engine_thread.join(timeout=left(10.0))
            engine_done = not self._engine_thread.is_alive()
        if not engine_done:
            # The engine thread still owns the journal: writing from here would race it (and
            # SQLite refuses another thread's connection). Leftover events stay unjournaled;
            # reconciliation after the restart recovers what they said.
            log.error("daemon.engine_join_timeout", left_unjournaled=self.events.qsize())
        elif self.engine is not None:
            # Whatever the producers posted last (stream closes, key delete) is journaled too.
            while True:
                try:
                    self.engine.handle(self.events.get_nowait())
                except queue.Empty:
                    break
        if self.journal is not None and engine_done:
            self.journal.close()
        if self.marketplace is not None:
            self.marketplace.close()
        log.info("daemon.stopped", reason=reason)
        self._emit("stopped", reason=reason)


def _open_rfqs_without_lock(engine: Engine) -> int | None:
    """Count open RFQs without the engine's lock, so a stuck engine cannot freeze health().

    ``list(dict.values())`` copies under the GIL in one step; the records it counts are only
    read. An approximate count is fine for status lines; a frozen status line is not.
    """
    try:
        return sum(1 for rfq in list(engine.rfqs.values()) if rfq.is_open)
    except RuntimeError:  # the dict was resized mid-copy: report nothing rather than wait
        return None


RELOADABLE_SECTIONS = frozenset({"strategies", "risk"})


def restart_only_changes(running: Any, new: Any) -> list[str]:
    """Top-level config sections that differ in ``new`` but a reload does not apply.

    A SIGHUP swaps strategies and risk; everything else (venue, journal, streams, schedules...)
    is read at start. Saying "reload applied" while a changed journal.path is silently ignored
    would mislead the operator, so the reload names what still needs a restart."""
    fields = getattr(type(running), "model_fields", {})
    return [name for name in fields
            if name not in RELOADABLE_SECTIONS and getattr(running, name, None) != getattr(new, name, None)]


def _open_journal(path: str | Path, clock: Clock, synchronous: str = "full") -> Journal:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the journal's folder {target.parent}: {exc}; point journal.path "
                          "at a writable place (systemd: StateDirectory=rfqbot)", key="journal.path") from None
    try:
        return Journal(target, clock, synchronous=synchronous, check_first=True)
    except JournalLocked:
        raise   # another writer: it may stop, so a restart may succeed (exit 1)
    except (JournalError, sqlite3.DatabaseError) as exc:
        if _disk_trouble(exc):
            # A full disk or an I/O error: freeing space (or the disk recovering) and a restart
            # fixes it, so exit 1 and let systemd try again.
            raise JournalError(f"cannot open journal {target}: {_root_cause(exc)}; free space on its filesystem "
                               "(or fix the disk), then rfqbot starts again") from None
        if isinstance(exc, JournalError) or _damaged(exc):
            # Damaged, permissions, a read-only filesystem, a disk refusing WAL, a newer schema:
            # a restart cannot fix any of them, so exit 78 and let systemd stop trying.
            raise ConfigError(_journal_unusable(target, exc), key="journal.path") from None
        raise


_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EDQUOT})


def _causes(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return chain


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _disk_trouble(exc: BaseException) -> bool:
    """Disk full or an I/O error anywhere in the chain (SQLite's or the OS's)."""
    return any(_sqlite_code(e) in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)
               or (isinstance(e, OSError) and e.errno in _DISK_ERRNOS) for e in _causes(exc))


def _damaged(exc: BaseException) -> bool:
    return any(_sqlite_code(e) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) for e in _causes(exc))


def _root_cause(exc: BaseException) -> str:
    last = _causes(exc)[-1]
    return f"{type(last).__name__}: {last}"


def _journal_unusable(target: Path, exc: BaseException) -> str:
    if isinstance(exc, JournalError):
        return str(exc)
    return (f"journal {target} cannot be read ({type(exc).__name__}: {exc}): the file is damaged or not an "
            f"rfqbot journal; check it with `rfqbot journal verify --journal {target}`")


def _wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    done = threading.Event()
    waited = 0.0
    while not predicate():
        if waited >= timeout_s:
            return False
        done.wait(0.01)
        waited += 0.01
    return True


__all__ = ["Daemon", "StartupAborted", "VenueError"]


def serve(daemon: Daemon, *, duration_s: float | None = None,
          install_signals: bool = True) -> int:
    """Run ``daemon`` until SIGTERM/SIGINT (or ``duration_s``); SIGHUP reloads. Returns an exit code.

    Start-up runs on a worker thread so that a signal during a long venue outage still stops
    the process promptly; signal handlers only set flags, the main thread does the work.
    """
    import signal

    term = threading.Event()
    hup = threading.Event()
    failure: list[BaseException] = []

    def start() -> None:
        try:
            daemon.start()
        except StartupAborted:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread below
            failure.append(exc)
            term.set()

    previous: dict[int, Any] = {}
    if install_signals:
        def on_term(signum: int, _frame: Any) -> None:
            term.set()

        def on_hup(signum: int, _frame: Any) -> None:
            hup.set()

        for sig, handler in ((signal.SIGTERM, on_term), (signal.SIGINT, on_term), (signal.SIGHUP, on_hup)):
            previous[sig] = signal.signal(sig, handler)
    starter = threading.Thread(target=start, name="rfqbot-start", daemon=True)
    starter.start()
    deadline = None if duration_s is None else daemon.clock.monotonic() + duration_s
    try:
        while not term.is_set():
            term.wait(0.2)
            if hup.is_set():
                hup.clear()
                if daemon.started_ms is not None:
                    daemon.request_reload()
                else:
                    log.warning("daemon.reload_ignored", reason="still starting")
            if deadline is not None and daemon.clock.monotonic() >= deadline:
                break
    finally:
        daemon.stop("start failed" if failure else "signal" if term.is_set() else "finished")
        starter.join(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        raise failure[0]
    return 0
