"""The engine: one thread owns all state, journals everything, and decides accepts.

Stream threads, the scheduler and REST workers only put events on the queue; ``handle`` is the
single place state changes, so there is one total order of what happened and tests drive the
engine with a list of events and a fake clock.

Accept-at-most-once: an accept is journaled (committed) before it is handed to a REST worker,
and a second accept for the same RFQ is allowed only after the venue definitively said the
first did not take (a 4xx rejection, or the RFQ back to ``new`` after it). An unknown outcome
blocks the RFQ until reconciliation (``RfqReconciled``) settles it - also across restarts,
because ``load_state`` reports accept decisions without a definitive result.
"""

from __future__ import annotations

import dataclasses

import queue as queue_mod
import sqlite3
import threading
from typing import Any, Callable, Iterable

import structlog

from rfqbot.journal import projections as kinds
from rfqbot.clock import VenueClock
from rfqbot.engine.decide import DecisionHandlers
from rfqbot.engine.passive import PassiveHandlers
from rfqbot.engine.rehearsal import REHEARSAL_RFQ_ID, RehearsalHandlers
from rfqbot.engine.state import (
    ACCEPT_ACCEPTED, ACCEPT_NONE, ACCEPT_OUTSTANDING, ACCEPT_UNKNOWN, SETTLED_KEPT_MS, OwnRfq, accept_state_after,
    decided_quotes_sql, is_settled_before, live_own_rfqs_where, next_status, own_rfq_from_row,
    restore_decided_quotes, restore_rfqs,
)
from rfqbot.engine.market import MarketBook
from rfqbot.events import (
    AcceptResult, ActiveQuotes, BestQuotes, CreateRfqCommand, Event, Heartbeat, ListenKeyStatus, Note,
    PairsRefreshed, PublicQuote, PublicRfq, RejectedFrame, ReloadRequested, RfqCreateFailed, RfqReconciled, RfqUpdate,
    ShutdownRequested, SpotTick, StreamStatus, Tick, VenueCall,
)
from rfqbot.engine.inbox import PUBLIC_EVENT_TYPES, EventQueue
from rfqbot.journal.store import JOURNAL_WRITE_ERRORS, Journal
from rfqbot.records import ACCEPT_TOOK_STATUSES, Pair, Rfq, RfqStatus
from rfqbot.engine.risk import DAY_MS, KillSwitch, RiskLedger, RiskSettings, check_create
from strategies import ChainSet, compile_chains

log = structlog.get_logger(__name__)

# An accept "rejected" with these codes was never judged by the venue (429 pause, 418 ban).
RATE_LIMIT_CODES = ("429", "418")
RATE_LIMIT_RETRY_MS = 1000
# The venue's RFQ history reaches back 90 days (create time); a day less leaves room for skew.
HISTORY_WINDOW_MS = 89 * DAY_MS
HISTORY_MARGIN_MS = 3_600_000
# How often a tick drops settled RFQs (and old risk-ledger entries) from memory.
FORGET_EVERY_MS = 60_000

Observer = Callable[[str, dict[str, Any]], None]


def _journal_fix(exc: BaseException, path: str) -> str:
    """What the operator should do about a failed journal write, by what failed."""
    restart = "then restart rfqbot (it rebuilds its state from the journal and reconciles)"
    if isinstance(exc, sqlite3.Error):
        return f"free space on / fix permissions of {path}'s filesystem, {restart}"
    return (f"a journal write failed on input it could not store (a bug: please report it with the "
            f"log line above); {restart}")


class Engine(DecisionHandlers, PassiveHandlers, RehearsalHandlers):
    """The event loop's state machine. Construct, then ``handle(event)`` or ``run(queue, stop)``."""

    def __init__(self, journal: Journal, chains: ChainSet | None, risk: Any, actions: Any, venue_clock: VenueClock,
                 pairs: Iterable[Pair], min_time_left_ms: int = 1000, *, observer: Observer | None = None,
                 burst: int = 256, rehearse_every_s: float = 0.0, rehearse_sync: bool = False,
                 rehearse_hooks: Iterable[Callable[[BestQuotes], None]] = ()) -> None:
        self.journal = journal
        self.chains = chains if chains is not None else ChainSet({})
        self.risk = RiskSettings.from_any(risk)
        self.kill_switch = KillSwitch(self.risk.kill_switch_file)
        self.actions = actions
        self.venue_clock = venue_clock
        self.local_clock = venue_clock.local
        self.pairs = {p.name: p for p in pairs}
        self.min_time_left_ms = int(min_time_left_ms)
        self.market = MarketBook(self.pairs.values())
        self.ledger = RiskLedger()
        self.rfqs: dict[str, OwnRfq] = {}
        self.pending_creates: dict[str, CreateRfqCommand] = {}
        self.deciding = True
        # Venue time until which the venue paused every request (an accept answered 429):
        # new quotes wait for it instead of being decided on and refused at once.
        self.requests_paused_until_ms = 0
        # Set by an HTTP 418 (an accept's answer, or the daemon's ban alert): nothing will be sent
        # again by this process, so quotes are journaled with that reason instead of decided on.
        self.venue_banned = False
        # Set (with the error) when a journal write failed: the engine then stops deciding for
        # good, since what it holds in memory is no longer what the journal says. Read by
        # Daemon.health() -> the journal_failed alert and the status line.
        self.journal_failure: str | None = None
        self._observers: list[Observer] = [observer] if observer else []
        self._sends: list[tuple[str, tuple[Any, ...]]] = []
        self._decision_logs: list[dict[str, Any]] = []  # written after the commit and the sends
        # Journaled entries for the observers, told after the commit and the sends: an observer
        # (alerts, metrics, the demo's printer) never sees an entry that a failed commit undid,
        # and never delays an accept.
        self._observed: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.RLock()
        self._kill_engaged = False
        self._burst = burst
        # Idle rehearsals of the decision path (rfqbot.engine.rehearsal): every this many seconds
        # while the queue is empty; 0 = never.
        self.rehearse_every_s = float(rehearse_every_s)
        self.rehearse_sync = rehearse_sync   # each rehearsal also runs Journal.warm_sync
        self.rehearsing = False
        self.rehearsal_rfq: OwnRfq | None = None
        self._useful_cache: bool | None = None
        self.rehearsals = 0
        self.rehearsal_off_reason: str | None = None
        self.rehearse_hooks = tuple(rehearse_hooks)
        # Monotonic time of the loop's last completed iteration: the systemd watchdog and
        # `rfqbot status` read it to tell a healthy engine from a stuck one.
        self.last_loop_monotonic: float | None = None
        self._next_forget_ms = 0
        # Whether the journal holds own RFQs that memory does not (dropped as settled, here or
        # before a restart): only then is an unknown RFQ id looked up there (``_rfq``).
        self._rfqs_only_in_journal = False
        self._restore()

    def _restore(self) -> None:
        now = self.venue_clock.now_ms()
        local_now = self.local_clock.now_ms()
        live = live_own_rfqs_where(local_now - SETTLED_KEPT_MS)
        state = self.journal.load_state(since_ms=now - DAY_MS, rfqs_where=live)
        self.rfqs = restore_rfqs(state.rfqs, state.unknown_accepts, self.pairs.values(), local_now)
        self._rfqs_only_in_journal = bool(self.journal.own_rfq_rows(f"NOT {live[0]} LIMIT 1", live[1]))
        restore_decided_quotes(self.rfqs, self.journal.query(*decided_quotes_sql()))
        for accept in state.recent_accepts:
            self.ledger.record(accept["rfq_id"], accept["at_ms"], accept["amounts"])
        for rfq in self.rfqs.values():
            born = rfq.created_ms or rfq.updated_ms
            if not rfq.is_final and born is not None and born < now - HISTORY_WINDOW_MS:
                rfq.stale = True
                self._record("rfq.stale", "engine", {
                    "reason": "open in the journal but older than the venue's 90-day history: outcome unknown; "
                              "no longer reconciled nor counted against max_open_rfqs",
                    "born_ms": born, "rfq_state": rfq.snapshot()}, rfq_id=rfq.rfq_id)
                log.warning("engine.rfq_stale", rfq_id=rfq.rfq_id, born_ms=born)
        if state.last_seq:
            doubts = sorted(r.rfq_id for r in self.rfqs.values() if r.accept_state == ACCEPT_UNKNOWN)
            self._record("engine.restored", "engine", {"rfqs": len(self.rfqs), "accepts_in_doubt": doubts,
                                                       "recent_accepts": len(state.recent_accepts)})

    def add_observer(self, observer: Observer) -> None:
        """Called with (kind, payload) for each journaled entry, on the engine thread, once its
        turn has committed and its sends have left (the demo prints RFQ lives)."""
        self._observers.append(observer)

    # --- loop -------------------------------------------------------------------------------

    def run(self, events: "queue_mod.Queue[Event] | EventQueue", stop: threading.Event, tick_s: float = 0.25) -> None:
        """Consume the queue until ``stop`` is set; a Tick every ``tick_s`` re-evaluates waits.

        Bursts already queued are handled in one journal transaction (one fsync); accepts
        decided inside it are sent only after it commits. With an ``EventQueue`` a burst ends
        right after its private events (a ``bestQuote`` is never committed behind a run of
        public frames taken after it), and public frames it dropped are journaled as
        ``frames.dropped``.
        """
        next_tick = self.local_clock.monotonic() + tick_s
        private_waiting = getattr(events, "private_waiting", None)
        take_dropped = getattr(events, "take_dropped", None)
        every_s = self.rehearse_every_s
        next_rehearsal = self.local_clock.monotonic() + every_s
        waited_for_rehearsals = 0.0   # since the last tick: a fake clock that stands still still ticks
        while not stop.is_set():
            now = self.local_clock.monotonic()
            # Wake early for a rehearsal only when one is useful and due before the tick; a wait
            # that ends at the tick gives a Tick on timeout, whatever the clock says (fake clocks).
            for_rehearsal = every_s > 0 and next_rehearsal < next_tick and self.rehearsal_useful()
            wait_s = max(0.0, next_rehearsal - now) if for_rehearsal else tick_s if every_s <= 0 \
                else max(0.0, next_tick - now)
            try:
                first = events.get(timeout=wait_s)
            except queue_mod.Empty:
                first = None
            if first is None and for_rehearsal:
                waited_for_rehearsals += wait_s
                if waited_for_rehearsals < tick_s:
                    if not stop.is_set():
                        self._rehearse_while_idle()
                    next_rehearsal = self.local_clock.monotonic() + every_s
                    continue
            now = self.local_clock.monotonic()
            if first is not None:
                next_rehearsal = now + every_s   # an event's turn runs the path for real (a bare tick does not)
            tick = None
            if self.local_clock.monotonic() >= next_tick or first is None:
                tick = Tick(self.local_clock.now_ms())
                next_tick = self.local_clock.monotonic() + tick_s
                waited_for_rehearsals = 0.0
            dropped = take_dropped() if take_dropped is not None else None
            if first is None or not isinstance(first, PUBLIC_EVENT_TYPES):
                self.rehearsal_state_changed()   # own RFQs, pairs or settings may have changed
            handled, taken = 0, 0 if first is None else 1
            try:
                with self._lock, self.journal.batch():
                    if dropped:
                        self._record("frames.dropped", "engine", {"count": sum(dropped.values()),
                                                                 "by_type": dropped, "lane": "public"})
                        log.warning("engine.frames_dropped", count=sum(dropped.values()), by_type=dropped)
                    event = first
                    while event is not None:
                        self._dispatch(event)
                        handled += 1
                        if handled >= self._burst:
                            break
                        if private_waiting is not None and not isinstance(event, PUBLIC_EVENT_TYPES) \
                                and not private_waiting():
                            break  # commit the private events now; public ones wait for the next turn
                        try:
                            event = events.get_nowait()
                        except queue_mod.Empty:
                            break
                        taken += 1
                    if tick is not None:
                        self._dispatch(tick)
            except Exception as exc:  # noqa: BLE001 - the loop must survive; sends stay unsent
                # Nothing of the burst is committed, so nothing decided in it may leave.
                self._drop_uncommitted()
                self._journal_failed(exc, lost_events=taken)
            else:
                self._after_commit()
            if self.journal_failure is None and events.empty():
                self.journal.checkpoint_when_idle()   # nothing waits: the WAL copy costs no decision
            # The loop still turns (the watchdog must not restart a daemon into the same full disk).
            self.last_loop_monotonic = self.local_clock.monotonic()

    def _rehearse_while_idle(self) -> None:
        """One rehearsal (``RehearsalHandlers.rehearse``). A journal error in it stops deciding
        only when its transaction is still open (the journal is then unusable); rolled back
        cleanly, nothing was lost: rehearsals go off, and a real write meets the error itself."""
        try:
            self.rehearse(self.venue_clock.now_ms())
        except JOURNAL_WRITE_ERRORS as exc:
            if self.journal.in_transaction():
                self._journal_failed(exc, lost_events=0)
            else:
                self.turn_rehearsals_off(f"journal: {type(exc).__name__}: {exc}")

    def handle(self, event: Event) -> None:
        """Handle one event synchronously (journal commit, then any venue action)."""
        try:
            with self._lock:
                self._dispatch(event)
        except JOURNAL_WRITE_ERRORS as exc:
            self._drop_uncommitted()
            self._journal_failed(exc, lost_events=1)
            return
        self._after_commit()

    def _drop_uncommitted(self) -> None:
        """A turn's transaction failed: what it decided must not leave, nor be told to observers."""
        self._sends.clear()
        self._decision_logs.clear()
        self._observed.clear()

    def _journal_failed(self, exc: BaseException, *, lost_events: int) -> None:
        """A journal write failed (disk full, read-only, I/O error): stop deciding, for good.

        Journal-before-acting cannot hold without a journal, and the in-memory state may now hold
        things the journal does not (the failed transaction was rolled back). So no accept, decline
        or create leaves from here on; what was committed stays committed. The operator frees the
        disk and restarts rfqbot, which rebuilds its state from the journal and reconciles.
        """
        error = f"{type(exc).__name__}: {exc}"
        first = self.journal_failure is None
        self.deciding = False
        self.journal_failure = self.journal_failure or error
        for rfq in self.rfqs.values():
            rfq.wait_until_ms = None
        if first:
            log.critical("engine.journal_failed", error=error, lost_events=lost_events, deciding=False,
                         fix=_journal_fix(exc, str(self.journal.path)))
            try:  # a transient failure may let this one through: then the journal says why too
                self.journal.append("engine.journal_failed", source="engine",
                                    payload={"error": error, "lost_events": lost_events})
            except JOURNAL_WRITE_ERRORS:
                pass
        else:
            log.error("engine.journal_still_failing", error=error, lost_events=lost_events)

    def _dispatch(self, event: Event) -> None:
        name = self._HANDLERS.get(type(event))
        handler = getattr(self, name) if name else None
        if handler is None:
            log.warning("engine.unhandled_event", event_type=type(event).__name__)
            return
        try:
            handler(event)
        except JOURNAL_WRITE_ERRORS:
            raise  # not bad input: the whole burst fails and the engine stops deciding
        except Exception as exc:  # noqa: BLE001 - bad input never crashes the daemon
            log.error("engine.handler_failed", event_type=type(event).__name__, error=f"{type(exc).__name__}: {exc}")
            self._record("engine.error", "engine", {"event_type": type(event).__name__,
                                                   "error": f"{type(exc).__name__}: {exc}"})

    def _after_commit(self) -> None:
        """What a committed turn may now do, most urgent first: hand its accepts, declines and
        creates over, write its decision log lines, then tell the observers its entries."""
        sends, self._sends = self._sends, []
        decision_logs, self._decision_logs = self._decision_logs, []
        for action, args in sends:
            if args and args[0] == REHEARSAL_RFQ_ID:
                continue   # a rehearsal's: never sent (it keeps its own list; this is the backstop)
            try:
                getattr(self.actions, action)(*args)
            except Exception as exc:  # noqa: BLE001 - pool closed or broken: the venue never got it
                log.error("engine.send_failed", action=action, error=str(exc))
                if action in ("accept", "decline"):
                    rfq_id, quote_id = args[0], args[1]
                    self.handle(AcceptResult(self.local_clock.now_ms(), rfq_id, quote_id, action, "rejected",
                                             message=f"not sent: {exc}"))
        for fields in decision_logs:
            log.info("decision", **fields)
        # Taken only now: a send that failed above was handled (and its entries observed) by a
        # nested turn, which told this turn's entries first, in journal order.
        observed, self._observed = self._observed, []
        for kind, entry in observed:
            for observer in self._observers:
                try:
                    observer(kind, entry)
                except Exception as exc:  # noqa: BLE001 - a display bug must not stop trading
                    log.warning("engine.observer_failed", error=str(exc))

    def open_rfq_count(self) -> int:
        """Own RFQs not yet final (thread-safe read for status lines)."""
        with self._lock:
            return sum(1 for r in self.rfqs.values() if r.is_open)

    def reconcile_targets(self) -> list[str]:
        """Own RFQs still open, and RFQs with an accept in doubt: what reconciliation should query."""
        with self._lock:
            return sorted(r.rfq_id for r in self.rfqs.values()
                          if r.is_open or (not r.stale and r.accept_state in (ACCEPT_UNKNOWN, ACCEPT_OUTSTANDING)))

    def reconcile_window_start(self, rfq_id: str) -> int | None:
        """Venue-time start for the history query of an RFQ older than the default 24 h window.

        None for recent RFQs (the venue's default window finds them). The venue keeps 90 days.
        """
        with self._lock:
            rfq = self.rfqs.get(rfq_id)
            born = None if rfq is None else (rfq.created_ms or rfq.updated_ms)
        if born is None:
            return None
        now = self.venue_clock.now_ms()
        if born >= now - DAY_MS + HISTORY_MARGIN_MS:
            return None
        return max(born - HISTORY_MARGIN_MS, now - HISTORY_WINDOW_MS)

    # --- journal helpers ----------------------------------------------------------------------

    def _record(self, kind: str, source: str, payload: dict[str, Any], *, rfq_id: str | None = None,
                quote_id: str | None = None, venue_ms: int | None = None) -> int:
        seq = self.journal.append(kind, source=source, payload=payload, rfq_id=rfq_id, quote_id=quote_id,
                                  venue_ms=venue_ms)
        if self._observers and not self.rehearsing:   # a rehearsal's rows are rolled back: nobody sees them
            self._observed.append((kind, {"seq": seq, "rfq_id": rfq_id, "quote_id": quote_id, **payload}))
        return seq

    def _rfq(self, rfq_id: str) -> OwnRfq:
        if self.rehearsal_rfq is not None and rfq_id == REHEARSAL_RFQ_ID:
            return self.rehearsal_rfq   # never in self.rfqs (see rfqbot.engine.rehearsal)
        rfq = self.rfqs.get(rfq_id)
        if rfq is None:
            known = self._rfq_from_journal(rfq_id) if self._rfqs_only_in_journal else None
            rfq = self.rfqs[rfq_id] = known or OwnRfq(rfq_id)
        return rfq

    def _rfq_from_journal(self, rfq_id: str) -> OwnRfq | None:
        """An own RFQ not in memory as the journal left it (dropped by ``forget_settled``, or
        settled long before this process started), so a late message about it meets its final
        state instead of a blank one that could be accepted on. None for an RFQ never seen."""
        rows = self.journal.own_rfq_rows("rfq_id = ?", (rfq_id,))
        if not rows:
            return None
        rfq = own_rfq_from_row(rows[rfq_id], self.pairs.values())
        if not rfq.is_final:   # not dropped by this process; its refused/declined quotes too
            restore_decided_quotes({rfq_id: rfq}, self.journal.query(*decided_quotes_sql(rfq_id)))
        return rfq

    def forget_settled(self, now_ms: int) -> int:
        """Drop RFQs settled more than ``SETTLED_KEPT_MS`` ago (local ``now_ms``), and risk-ledger
        entries no limit can count any more; how many RFQs were dropped. The journal keeps
        them (``_rfq_from_journal`` reads one back if it is mentioned again): memory and the
        per-tick scan stay proportional to the live RFQs over months of running."""
        before = now_ms - SETTLED_KEPT_MS
        settled = [rfq_id for rfq_id, rfq in self.rfqs.items() if is_settled_before(rfq, before)]
        for rfq_id in settled:
            del self.rfqs[rfq_id]
        self._rfqs_only_in_journal = self._rfqs_only_in_journal or bool(settled)
        self.ledger.forget_before(now_ms - 2 * DAY_MS)
        if settled:
            log.debug("engine.settled_rfqs_forgotten", count=len(settled), kept=len(self.rfqs))
        return len(settled)

    def _observe_status(self, rfq: OwnRfq, status: RfqStatus | None, raw: str | None, cause: str,
                        at_ms: int, *, allow_reopen: bool = True) -> None:
        """Apply an observed status through the partial order; journal transitions and unknown words."""
        if status is None:
            return
        step = next_status(rfq.status, status, allow_reopen=allow_reopen)
        if status is RfqStatus.UNKNOWN:
            rfq.status_raw = raw
            self._record("rfq.unknown_status", cause, {"status_raw": raw, "kept": rfq.status.value if rfq.status
                                                      else None, "rfq_state": rfq.snapshot()}, rfq_id=rfq.rfq_id)
            log.warning("engine.unknown_status", rfq_id=rfq.rfq_id, status_raw=raw, cause=cause)
            return
        if not step.moves:
            if step.why != "duplicate":
                log.info("engine.status_ignored", rfq_id=rfq.rfq_id, observed=status.value, why=step.why)
            return
        before = rfq.status
        rfq.status, rfq.status_raw, rfq.updated_ms = status, raw or status.value, at_ms
        rfq.accept_state = accept_state_after(rfq.accept_state, status, before)
        if status is RfqStatus.NEW and before is RfqStatus.ACCEPTED:
            if rfq.accepted_quote_id:  # that acceptance lapsed: never taken again, a late ack is old news
                rfq.lapsed_quotes.add(rfq.accepted_quote_id)
                rfq.refused_quotes.add(rfq.accepted_quote_id)
            rfq.accepted_quote_id = None if rfq.accept_state == ACCEPT_NONE else rfq.accepted_quote_id
        if rfq.is_final:
            rfq.wait_until_ms = None
        self._record(kinds.KIND_TRANSITION, cause, {
            "from": before.value if before else None, "to": status.value, "status_raw": rfq.status_raw,
            "at_ms": at_ms, "cause": f"{cause}: {step.why}", "rfq_state": rfq.snapshot()}, rfq_id=rfq.rfq_id)

    def _learn_rfq(self, rfq: OwnRfq, record: Rfq) -> None:
        rfq.learn(buy_ccy=record.buy_ccy, sell_ccy=record.sell_ccy, buy_amount=record.buy_amount,
                  sell_amount=record.sell_amount, mode=record.rfq_mode, expires_ms=record.expires_ms,
                  created_ms=record.created_ms, client_order_id=record.client_order_id)
        cmd = self.pending_creates.get(record.client_order_id or "")
        if cmd is not None:
            rfq.learn(buy_ccy=cmd.buy_ccy, sell_ccy=cmd.sell_ccy, sell_amount=cmd.sell_amount, mode=cmd.mode)
        rfq.resolve_pair(self.pairs.values())

    # --- private frames ----------------------------------------------------------------------

    def _on_rfq_update(self, ev: RfqUpdate) -> None:
        rfq = self._rfq(ev.rfq.rfq_id)
        self._learn_rfq(rfq, ev.rfq)
        self._record("frame.rfq_update", "private", {"rfq": ev.rfq, "raw": ev.raw, "received_ms": ev.received_ms},
                     rfq_id=rfq.rfq_id, quote_id=ev.rfq.quote_id)
        if ev.rfq.status in ACCEPT_TOOK_STATUSES and ev.rfq.quote_id:
            rfq.accepted_quote_id = ev.rfq.quote_id
            rfq.price = ev.rfq.price if ev.rfq.price is not None else rfq.price
        self._observe_status(rfq, ev.rfq.status, ev.rfq.status_raw, "rfqUpdates", ev.received_ms)

    def _on_best_quotes(self, ev: BestQuotes) -> None:
        self._record(kinds.KIND_BEST_QUOTES, "private", {"quotes": list(ev.quotes), "raw": ev.raw,
                                                         "received_ms": ev.received_ms}, rfq_id=ev.rfq_id)
        self._on_quotes(ev.rfq_id, ev.quotes, ev.received_ms, "bestQuote")

    def _on_active_quotes(self, ev: ActiveQuotes) -> None:
        self._record(kinds.KIND_ACTIVE_QUOTES, "reconcile", {"quotes": list(ev.quotes), "asked_ms": ev.asked_ms},
                     rfq_id=ev.rfq_id)
        if ev.quotes:
            self._on_quotes(ev.rfq_id, ev.quotes, ev.received_ms, "rfq-active")

    # --- results and reconciliation --------------------------------------------------------

    def _on_accept_result(self, ev: AcceptResult) -> None:
        if ev.venue_code == "418":
            self.venue_banned = True
        if ev.venue_code == "429":  # every request is paused, for every RFQ (at least a second)
            wait_ms = max(RATE_LIMIT_RETRY_MS, ev.retry_after_ms or 0)
            self.requests_paused_until_ms = max(self.requests_paused_until_ms, self.venue_clock.now_ms() + wait_ms)
        rfq = self._rfq(ev.rfq_id)
        mine = ev.action == "accept" and rfq.accept_state == ACCEPT_OUTSTANDING and rfq.inflight_quote_id == ev.quote_id
        decision_seq = rfq.decision_seq if mine else None
        lapsed = ev.outcome == "accepted" and ev.quote_id in rfq.lapsed_quotes
        if mine:
            rfq.inflight_quote_id = None
            if lapsed:
                # rfqUpdates already showed this acceptance lapse (accepted -> new); the answer
                # is older than that news. The venue's RFQ is new: nothing is accepted now.
                rfq.accept_state, rfq.accepted_quote_id, rfq.price = ACCEPT_NONE, None, None
                self.ledger.release(rfq.rfq_id)
            elif ev.outcome == "accepted":
                rfq.accept_state = ACCEPT_ACCEPTED
            elif ev.outcome == "rejected":
                # Definitively not taken; unless the venue already shows an accept made elsewhere.
                rfq.accept_state = ACCEPT_NONE
                if rfq.status is not None:
                    rfq.accept_state = accept_state_after(ACCEPT_NONE, rfq.status)
                if rfq.accept_state == ACCEPT_NONE:
                    rfq.accepted_quote_id, rfq.price = None, None
                if ev.venue_code not in RATE_LIMIT_CODES:  # a pause or ban says nothing of the quote
                    rfq.refused_quotes.add(ev.quote_id)
                self.ledger.release(rfq.rfq_id)
            else:
                rfq.accept_state, rfq.doubt_since_ms = ACCEPT_UNKNOWN, ev.received_ms
                # Whatever reconciliation finds, this quote is never accepted a second time.
                rfq.refused_quotes.add(ev.quote_id)
        self._record(kinds.KIND_ACCEPT_RESULT, "rest", {
            "action": ev.action, "outcome": ev.outcome, "status_raw": ev.status_raw, "venue_code": ev.venue_code,
            "message": ev.message, "expires_ms": ev.expires_ms, "latency_ms": ev.latency_ms,
            "decision_seq": decision_seq, "matched": mine, "rfq_state": rfq.snapshot(),
            **({"retry_after_ms": ev.retry_after_ms} if ev.retry_after_ms is not None else {}),
            **({"note": "late: rfqUpdates already showed this acceptance lapse; status not moved"} if lapsed else {})},
            rfq_id=ev.rfq_id, quote_id=ev.quote_id)
        log.info("engine.accept_result", rfq_id=ev.rfq_id, quote_id=ev.quote_id, action=ev.action,
                 outcome=ev.outcome, venue_code=ev.venue_code)
        if ev.outcome in ("accepted", "declined") and ev.status_raw and not lapsed:
            status = RfqStatus.parse(ev.status_raw)
            self._observe_status(rfq, status, ev.status_raw, f"{ev.action}-ack", ev.received_ms, allow_reopen=False)
        elif mine and ev.outcome == "rejected" and rfq.last_quotes and self._skip_reason(rfq) is None:
            if ev.venue_code == "429":
                # Requests are paused: deciding now would only burn through the quotes. Decide
                # again (same quotes) once a tick finds the pause over - not before: each try
                # inside it is refused at once and journals one more decision and result.
                rfq.wait_until_ms = self.requests_paused_until_ms
            elif ev.venue_code != "418":  # banned: nothing will be sent again
                self._decide(rfq, ev.received_ms, "accept-rejected")  # next best quote, if any is acceptable

    def _on_reconciled(self, ev: RfqReconciled) -> None:
        rfq = self._rfq(ev.rfq.rfq_id)
        self._learn_rfq(rfq, ev.rfq)
        if ev.source == "create":
            self.pending_creates.pop(ev.rfq.client_order_id or "", None)
        self._record("rfq.reconciled", ev.source, {"rfq": ev.rfq, "source": ev.source, "asked_ms": ev.asked_ms},
                     rfq_id=rfq.rfq_id, quote_id=ev.rfq.quote_id)
        status = ev.rfq.status if ev.rfq.status is not None else (RfqStatus.NEW if ev.source == "create" else None)
        if (status is RfqStatus.NEW and rfq.accept_state == ACCEPT_UNKNOWN and rfq.status in (RfqStatus.NEW, None)
                and self._asked_after_doubt(rfq, ev.asked_ms)):
            # Asked after the accept's answer was lost, the venue still says new: it did not take.
            # The doubted quote stays refused: the venue may yet act on that request late.
            if rfq.accepted_quote_id:
                rfq.refused_quotes.add(rfq.accepted_quote_id)
            rfq.accept_state, rfq.accepted_quote_id, rfq.price, rfq.doubt_since_ms = ACCEPT_NONE, None, None, None
            self.ledger.release(rfq.rfq_id)
            self._record(kinds.KIND_RFQ_STATE, "reconcile", {"cause": "accept in doubt settled: RFQ still new",
                                                             "rfq_state": rfq.snapshot()}, rfq_id=rfq.rfq_id)
        if status in ACCEPT_TOOK_STATUSES and ev.rfq.quote_id:
            rfq.accepted_quote_id = ev.rfq.quote_id
            rfq.price = ev.rfq.price if ev.rfq.price is not None else rfq.price
        self._observe_status(rfq, status, ev.rfq.status_raw or (status.value if status else None),
                             f"reconcile.{ev.source}", ev.received_ms, allow_reopen=False)

    @staticmethod
    def _asked_after_doubt(rfq: OwnRfq, asked_ms: int | None) -> bool:
        """True when a reconciliation query was SENT after the accept's answer was lost.

        Only such an answer is evidence about the accept: a query sent earlier but answered
        later may describe the venue before it applied the accept. No send time, no evidence.
        """
        return asked_ms is not None and rfq.doubt_since_ms is not None and asked_ms > rfq.doubt_since_ms

    def _on_pairs(self, ev: PairsRefreshed) -> None:
        """Apply a fresh get-pairs answer; journal what changed (``pairs.changed``).

        A pair now ``CLOSED`` is never accepted from here on. A pair missing from the answer is
        treated as closed (the venue no longer lists it; open RFQs in it may still get quotes).
        An empty answer is taken for a venue glitch and ignored: closing every pair on it would
        stop all trading on a hiccup.
        """
        if not ev.pairs:
            self._record("pairs.ignored", "venue", {"reason": "get-pairs answered no pairs; keeping the known ones"})
            log.warning("engine.pairs_empty_answer_ignored", known=sorted(self.pairs))
            return
        fresh = {p.name: p for p in ev.pairs}
        changes = []
        for name, old in self.pairs.items():
            new = fresh.get(name)
            if new is None:
                new = fresh[name] = dataclasses.replace(old, trading_status="CLOSED")
                changes.append({"pair": name, "from": old.trading_status, "to": "CLOSED",
                                "why": "no longer in get-pairs"})
            elif new.trading_status != old.trading_status:
                changes.append({"pair": name, "from": old.trading_status, "to": new.trading_status})
        added = sorted(set(fresh) - set(self.pairs))
        self.pairs = fresh
        # A pair listed after start gets market context (spot prices, public quotes) from now on.
        self.market.add_pairs(fresh[name] for name in added)
        if changes or added:
            self._record("pairs.changed", "venue", {"changes": changes, "added": added})
            log.warning("engine.pairs_changed", changes=changes, added=added)

    def _on_create(self, ev: CreateRfqCommand) -> None:
        if not self.deciding:
            reason = "journal write failed" if self.journal_failure else "shutting down"
            self._record("create.refused", ev.source, {"command": ev, "reason": reason})
            return
        open_count = sum(1 for r in self.rfqs.values() if r.is_open) + len(self.pending_creates)
        block = check_create(self.risk, open_rfqs=open_count, sell_ccy=ev.sell_ccy, sell_amount=ev.sell_amount,
                             kill_switch_engaged=self._check_kill_switch())
        if block is not None:
            self._record("create.blocked", ev.source, {"command": ev, "blocked_by": block.limit, "reason": str(block)})
            log.warning("engine.create_blocked", client_order_id=ev.client_order_id, limit=block.limit)
            return
        self.pending_creates[ev.client_order_id] = ev
        self._record("create.requested", ev.source, {"command": ev})
        self._sends.append(("create_rfq", (ev,)))

    def _on_create_failed(self, ev: RfqCreateFailed) -> None:
        self.pending_creates.pop(ev.client_order_id, None)
        self._record("create.failed", "rest", {"client_order_id": ev.client_order_id, "outcome": ev.outcome,
                                               "venue_code": ev.venue_code, "message": ev.message})

    # --- housekeeping events ---------------------------------------------------------------

    def _on_tick(self, ev: Tick) -> None:
        now = self.venue_clock.now_ms()
        self._check_kill_switch()
        local_now = self.local_clock.now_ms()
        if local_now >= self._next_forget_ms:
            self._next_forget_ms = local_now + FORGET_EVERY_MS
            self.forget_settled(local_now)
        for rfq in list(self.rfqs.values()):
            if rfq.wait_until_ms is not None and rfq.wait_until_ms <= now:
                rfq.wait_until_ms = None
                if self._skip_reason(rfq) is None:
                    self._decide(rfq, ev.received_ms, "wait-deadline")

    def _on_reload(self, ev: ReloadRequested) -> None:
        if ev.error or ev.settings is None:
            self._record("reload.rejected", "reload", {"error": ev.error or "no settings"})
            log.error("engine.reload_rejected", error=ev.error)
            return
        try:
            chains = getattr(ev.settings, "chains", None)
            if not isinstance(chains, ChainSet):
                raw = getattr(ev.settings, "strategies", None)
                chains = raw if isinstance(raw, ChainSet) else compile_chains(
                    raw or {}, file=getattr(ev.settings, "file", None))
            risk = RiskSettings.from_any(getattr(ev.settings, "risk", None))
        except Exception as exc:  # noqa: BLE001 - an invalid reload keeps the old settings
            self._record("reload.rejected", "reload", {"error": f"{type(exc).__name__}: {exc}"})
            log.error("engine.reload_rejected", error=str(exc))
            return
        self.chains, self.risk, self.kill_switch = chains, risk, KillSwitch(risk.kill_switch_file)
        payload: dict[str, Any] = {"strategies": chains.describe(), "risk": risk}
        if ev.restart_needed:
            payload["restart_needed"] = list(ev.restart_needed)
        self._record("reload.applied", "reload", payload)
        log.info("engine.reloaded", pairs=chains.pairs)

    def _on_shutdown(self, ev: ShutdownRequested) -> None:
        self.deciding = False
        for rfq in self.rfqs.values():
            rfq.wait_until_ms = None
        self._record("shutdown", "engine", {"reason": ev.reason})

    _HANDLERS: dict[type, str] = {
        PublicRfq: "_on_public_rfq", PublicQuote: "_on_public_quote", SpotTick: "_on_spot",
        RfqUpdate: "_on_rfq_update", BestQuotes: "_on_best_quotes", ActiveQuotes: "_on_active_quotes",
        RejectedFrame: "_on_rejected", AcceptResult: "_on_accept_result", RfqReconciled: "_on_reconciled",
        CreateRfqCommand: "_on_create", RfqCreateFailed: "_on_create_failed", Tick: "_on_tick",
        ReloadRequested: "_on_reload", ShutdownRequested: "_on_shutdown", StreamStatus: "_on_stream",
        ListenKeyStatus: "_on_listen_key", VenueCall: "_on_venue_call", Note: "_on_note",
        Heartbeat: "_on_heartbeat", PairsRefreshed: "_on_pairs",
    }
