"""REST actions on a small worker pool: accept, decline, create; results come back as events.

The engine thread must never block on the network, so it hands each action to a worker and
goes on; the worker turns whatever the venue said (or the lack of an answer) into an event and
posts it to the engine's queue. The mapping is deliberately conservative: only an answer that
proves the venue did not act counts as ``rejected``; anything in doubt is ``unknown`` and the
engine leaves the RFQ to reconciliation instead of trying again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Callable, Literal

import structlog

from rfqbot.clock import Clock, SystemClock
from rfqbot.errors import Banned, NotSent, OutcomeUnknown, RateLimited, TransportError, VenueError
from rfqbot.events import AcceptResult, CreateRfqCommand, Event, RfqCreateFailed, RfqReconciled
from rfqbot.records import ACCEPT_TOOK_STATUSES, RfqStatus

if TYPE_CHECKING:
    from rfqbot.venue.marketplace import AcceptAck

log = structlog.get_logger(__name__)

_ACCEPTED = ACCEPT_TOOK_STATUSES
_DECLINED = frozenset({RfqStatus.FAILED, RfqStatus.DECLINED})


class RestActions:
    """Runs Market Place calls on ``workers`` threads and posts result events."""

    def __init__(self, marketplace: Any, post: Callable[[Event], None], workers: int = 2,
                 clock: Clock | None = None) -> None:
        self._market = marketplace
        self._post = post
        self._clock = clock or SystemClock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rfqbot-rest")
        self._start_every_worker(workers)
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._closed = False

    def _start_every_worker(self, workers: int) -> None:
        """Start all worker threads now, not on demand.

        ``ThreadPoolExecutor`` starts a thread inside ``submit`` AFTER queueing the work item, so
        a failed thread start there raises for work that will still run on another worker: an
        accept the engine would record as "not sent" (and maybe follow with a second accept) while
        it is in fact sent. With every thread started here, ``submit`` can only fail before
        queueing (the pool shut down), and a failure to start threads stops the daemon at start.
        """
        ready = threading.Barrier(workers + 1, timeout=30)
        try:
            for _ in range(workers):
                self._pool.submit(ready.wait)
            ready.wait()
        except (RuntimeError, threading.BrokenBarrierError) as exc:
            ready.abort()   # threads already started stop waiting at once
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError(f"cannot start {workers} REST worker threads (engine.accept_workers): "
                               f"{exc or type(exc).__name__}; lower engine.accept_workers or check the "
                               "service's thread limit (TasksMax=)") from None

    # --- submitting ---------------------------------------------------------------------

    def accept(self, rfq_id: str, quote_id: str, send_by_ms: int | None = None) -> Future[None]:
        """Accept; not sent at all once ``send_by_ms`` (venue time) has passed.

        The engine calls this right after the decision committed. When the request can leave
        without blocking (a warm connection, a free pacing slot: ``MarketPlace.begin_accept``)
        it is written here, on the calling thread - no hand-over to a worker before the accept
        reaches the venue - and a worker only waits for the answer. Otherwise the worker sends.
        """
        return self._submit_order(rfq_id, quote_id, "accept", send_by_ms)

    def decline(self, rfq_id: str, quote_id: str) -> Future[None]:
        return self._submit_order(rfq_id, quote_id, "decline", None)

    def create_rfq(self, cmd: CreateRfqCommand) -> Future[None]:
        return self._submit(self._run_create, cmd)

    def _submit(self, fn: Callable[..., None], *args: Any) -> Future[None]:
        with self._lock:
            if self._closed:
                raise RuntimeError("actions are shut down; no new venue calls")
            future = self._pool.submit(fn, *args)
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _submit_order(self, rfq_id: str, quote_id: str, action: Literal["accept", "decline"],
                      send_by_ms: int | None) -> Future[None]:
        # Under the lock: drain() cannot close the pool between a request leaving here and the
        # worker that must report its answer being queued.
        with self._lock:
            if self._closed:
                raise RuntimeError("actions are shut down; no new venue calls")
            started = self._clock.monotonic()
            answer = self._send_now(rfq_id, quote_id, action, send_by_ms)
            args = (rfq_id, quote_id, action, send_by_ms, answer, started)
            try:
                future = self._pool.submit(self._run_accept, *args)
            except RuntimeError:
                if answer is None:
                    raise   # nothing left: the engine records "not sent"
                # The request is out (interpreter shutting down): its answer must still be reported.
                future = Future()
                self._run_accept(*args)
                future.set_result(None)
                return future
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _send_now(self, rfq_id: str, quote_id: str, action: str,
                  send_by_ms: int | None) -> Callable[[], "AcceptAck"] | None:
        """The request written on this thread (returns what waits for its answer), or None."""
        try:
            answer: Callable[[], "AcceptAck"] | None = self._market.begin_accept(rfq_id, quote_id, send_by_ms, action)
        except Exception as exc:  # noqa: BLE001 - a bug around the write: maybe sent, so never resent
            log.error("actions.send_now_failed", rfq_id=rfq_id, quote_id=quote_id, error=repr(exc))
            failure = exc

            def reraise() -> "AcceptAck":
                raise failure
            return reraise
        return answer

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float) -> bool:
        """Stop taking work and wait up to ``timeout`` s for in-flight calls; True if all finished."""
        with self._lock:
            self._closed = True
            pending = set(self._pending)
        done, not_done = wait(pending, timeout=timeout)
        if not_done:
            log.warning("actions.drain_timeout", in_flight=len(not_done), timeout_s=timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return not not_done

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    # --- workers --------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self._post(event)
        except Exception as exc:  # noqa: BLE001 - a broken queue must not kill the worker silently
            log.error("actions.post_failed", error=str(exc), event_type=type(event).__name__)

    def _run_accept(self, rfq_id: str, quote_id: str, action: Literal["accept", "decline"],
                    send_by_ms: int | None = None, answer: Callable[[], "AcceptAck"] | None = None,
                    started: float | None = None) -> None:
        started = self._clock.monotonic() if started is None else started

        def result(outcome: Literal["accepted", "declined", "rejected", "unknown"], **kw: Any) -> None:
            latency = round((self._clock.monotonic() - started) * 1000, 3)
            self._emit(AcceptResult(self._clock.now_ms(), rfq_id, quote_id, action, outcome,
                                    latency_ms=latency, **kw))

        try:
            if answer is not None:
                ack = answer()   # sent already by _send_now
            elif action == "accept":
                ack = self._market.accept_quote(rfq_id, quote_id, send_by_ms=send_by_ms)
            else:
                ack = self._market.decline_quote(rfq_id, quote_id)
            wanted = _ACCEPTED if action == "accept" else _DECLINED
            took = ack.status in wanted
        except Exception as exc:  # noqa: BLE001 - classified below; anything unproven is 'unknown'
            failure = classify_failure(exc, f"{action} rfq {rfq_id} quote {quote_id}")
            result(failure.outcome, venue_code=failure.venue_code, message=failure.message,
                   retry_after_ms=failure.retry_after_ms)
            return
        if took:
            result("accepted" if action == "accept" else "declined", status_raw=ack.status_raw,
                   expires_ms=ack.expires_ms)
        else:
            result("unknown", status_raw=ack.status_raw, expires_ms=ack.expires_ms,
                   message=f"venue answered {action} with status {ack.status_raw!r}; reconciling")

    def _run_create(self, cmd: CreateRfqCommand) -> None:
        asked = self._clock.now_ms()
        try:
            rfq = self._market.create_rfq(cmd.buy_ccy, cmd.sell_ccy, cmd.sell_amount, cmd.mode,
                                          expire_sec=cmd.expire_sec, client_order_id=cmd.client_order_id)
        except Exception as exc:  # noqa: BLE001 - classified below; anything unproven is 'unknown'
            failure = classify_failure(exc, f"create client order id {cmd.client_order_id}")
            self._emit(RfqCreateFailed(self._clock.now_ms(), cmd.client_order_id, failure.outcome,
                                       failure.venue_code, failure.message))
            return
        self._emit(RfqReconciled(self._clock.now_ms(), rfq, "create", asked_ms=asked))


@dataclass(frozen=True, slots=True)
class Failure:
    """How a failed state-changing call is reported: ``rejected`` only when provably not applied."""

    outcome: Literal["rejected", "unknown"]
    venue_code: str | None
    message: str
    retry_after_ms: int | None = None   # a 429's pause


def classify_failure(exc: BaseException, what: str) -> Failure:
    """The one mapping from a failed accept/decline/create to its outcome.

    ``rejected`` needs proof that the venue did not act: its own refusal (a documented error,
    429, 418) or ``NotSent`` (refused before the request left). Everything else - 5xx, timeouts,
    an unreadable answer, a bug after the request left - is ``unknown``: reconciliation asks the
    venue rather than rfqbot guessing and maybe acting twice.
    """
    if isinstance(exc, VenueError):
        return Failure("rejected", exc.code, exc.message)
    if isinstance(exc, RateLimited):
        return Failure("rejected", "429", str(exc), retry_after_ms=int(exc.retry_after_s * 1000))
    if isinstance(exc, Banned):
        return Failure("rejected", "418", str(exc))
    if isinstance(exc, NotSent):
        return Failure("rejected", None, f"not sent: {exc}")
    if isinstance(exc, (OutcomeUnknown, TransportError)):
        return Failure("unknown", None, str(exc))
    log.error("actions.unexpected_failure", call=what, error=repr(exc))
    return Failure("unknown", None, f"unexpected {type(exc).__name__}: {exc}")
