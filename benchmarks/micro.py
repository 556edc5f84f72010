"""Decision-path micro-benchmark: one ``bestQuote`` frame through decode, strategy chain and
journal, in-process, no network.

Times each iteration with ``perf_counter_ns`` (the equivalent of pytest-benchmark's pedantic
mode, without the dependency) and reports percentiles for the whole path and for its parts, so
a regression can be pinned on decode, decision or journal. The engine is the real one, with
the real journal (WAL, ``synchronous=FULL``: each accept decision is fsynced before the accept
would leave); only the REST side is a recorder.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import pstats
import queue
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from rfqbot.clock import SystemClock, VenueClock
from rfqbot.engine.loop import Engine
from rfqbot.journal.store import Journal
from rfqbot.events import RfqUpdate
from rfqbot.records import Pair, Rfq, RfqStatus
from rfqbot.engine.risk import RiskSettings
from rfqbot.streams.wire import decode_frame, rehearse_decode
from strategies import compile_chains

from benchmarks.stats import latency_summary_ms


class RecordingActions:
    """Stands in for ``RestActions``: the micro-benchmark stops where the network starts.

    ``accept`` is called by the engine thread after the decision's transaction committed; it
    stamps the moment so the caller can time the whole hop.
    """

    def __init__(self) -> None:
        self.accepts = 0
        self.last_ns = 0
        self.accepted = threading.Event()

    def accept(self, rfq_id: str, quote_id: str, send_by_ms: int | None = None) -> None:
        self.accepts += 1
        self.last_ns = time.perf_counter_ns()
        self.accepted.set()

    def decline(self, rfq_id: str, quote_id: str) -> None:
        pass

    def create_rfq(self, cmd: Any) -> None:
        pass


def best_quote_frame(index: int, now_ms: int) -> str:
    """A documented-shape bestQuote for RFQ ``index`` with two quotes, both acceptable."""
    rows = []
    for rank, (lp, price) in enumerate((("WX", "106050"), ("GSR", "106059")), start=1):
        rows.append({"id": rank, "inquiryOrderId": f"MPM{index:09d}", "lpName": lp,
                     "quoteOrderId": f"MPQM{index:09d}{rank}", "direction": 1, "status": 0,
                     "buyAssetId": "BTC", "buyAmount": "0.0471", "sellAssetId": "USDT", "sellAmount": "5000",
                     "price": price, "submitTime": now_ms, "dateExpiry": now_ms + 60_000, "expirySeconds": 60,
                     "remainingTime": 59_000, "inquirySettleType": 2, "quoteSettleType": 1, "rank": rank,
                     "isBestPrice": rank == 1, "isRecommendPrice": rank == 1})
    return json.dumps({"topic": "bestQuote", "data": rows}, separators=(",", ":"))


def _engine(directory: Path) -> tuple[Engine, Journal, RecordingActions]:
    clock = SystemClock()
    pair = Pair("BTC", "USDT", Decimal("0.00001"), Decimal("0.01"), None, None, None, None, "OPENED")
    journal = Journal(directory / "micro-journal.db", clock)
    actions = RecordingActions()
    chains = compile_chains({"BTC/USDT": [{"use": "price_limit", "limit_price": "200000"}]})
    engine = Engine(journal, chains, RiskSettings(), actions, VenueClock(clock), [pair], min_time_left_ms=2000)
    return engine, journal, actions


IDLE_BEFORE_S = 0.15
"""The pause before each "at RFQ pace" iteration: the tick benchmark's interval between RFQs."""
REHEARSE_EVERY_S = 0.005
"""``engine.rehearse_every_ms``'s default, for the paced run with idle rehearsals."""


@contextlib.contextmanager
def _engine_thread(engine: Engine, events: "queue.Queue[Any]",
                   profiler: cProfile.Profile | None = None) -> Iterator[None]:
    """The engine's own ``run`` loop on a thread for the block (profiled on that thread if asked)."""
    stop = threading.Event()

    def loop() -> None:
        if profiler:
            profiler.enable()
        try:
            engine.run(events, stop, tick_s=0.25)
        finally:
            if profiler:
                profiler.disable()

    runner = threading.Thread(target=loop, name="micro-engine", daemon=True)
    runner.start()
    try:
        yield
    finally:
        stop.set()
        runner.join(5)


def run_micro(iterations: int = 2000, profile_path: Path | None = None,
              paced_iterations: int | None = None) -> dict[str, Any]:
    """Whole path and parts, ``iterations`` distinct RFQs each; optional cProfile text output.

    The whole path is timed the way the daemon runs it: the frame is decoded on the calling
    thread (the stream thread's job), put on the queue, and the engine's own ``run`` loop
    journals, decides, commits and hands the accept over; the clock stops at that hand-over.

    ``decision_path_at_rfq_pace`` is the same path with ``IDLE_BEFORE_S`` of idleness before
    each frame (``paced_iterations`` of them, default a tenth of ``iterations``), as in the
    tick benchmark and in production: back to back the code and data stay in the CPU caches,
    after a pause they do not, and on a shared VM the same work then takes several times longer.
    ``decision_path_at_rfq_pace_rehearsed`` is that paced run with the engine's idle rehearsals
    on (``REHEARSE_EVERY_S``, as the daemon runs by default; ``rfqbot.engine.rehearsal``) and an
    own RFQ open, as they run only while a quote may come.
    """
    paced = max(1, iterations // 10) if paced_iterations is None else paced_iterations
    with tempfile.TemporaryDirectory(prefix="rfqbot-micro-") as tmp:
        engine, journal, actions = _engine(Path(tmp))
        now_ms = int(time.time() * 1000)
        profiled = iterations if profile_path else 0
        texts = [best_quote_frame(i, now_ms) for i in range(iterations * 2 + paced * 2 + profiled)]
        clock = SystemClock()
        decode_ns, whole_ns = [], []
        for text in texts[:iterations]:        # decode alone
            t0 = time.perf_counter_ns()
            decode_frame("private", text, clock.now_ms())
            decode_ns.append(time.perf_counter_ns() - t0)
        events: queue.Queue[Any] = queue.Queue()

        def through_engine(text: str) -> int:
            """decode + queue + strategy chain + journal commit + hand-over, in ns."""
            actions.accepted.clear()
            t0 = time.perf_counter_ns()
            for event in decode_frame("private", text, clock.now_ms()):
                events.put(event)
            if not actions.accepted.wait(5):
                raise RuntimeError("micro-benchmark: the engine did not accept within 5 s")
            return actions.last_ns - t0

        def fresh(index: int) -> str:
            """Frame ``index`` stamped now: the paced runs take a minute, longer than a quote lives."""
            return best_quote_frame(index, int(time.time() * 1000))

        paced_ns: list[int] = []
        with _engine_thread(engine, events):      # timed: never under the profiler
            for text in texts[iterations:iterations * 2]:
                whole_ns.append(through_engine(text))
            for index in range(iterations * 2, iterations * 2 + paced):
                time.sleep(IDLE_BEFORE_S)
                paced_ns.append(through_engine(fresh(index)))
        rehearsed_ns: list[int] = []
        engine.rehearse_every_s = REHEARSE_EVERY_S
        engine.rehearse_sync = True                  # as the daemon does by default (engine.rehearse_sync)
        engine.rehearse_hooks = (rehearse_decode,)   # as the daemon does (its other hook signs: no REST here)
        # Rehearsals run only while a quote may come: an own RFQ open, as in the tick benchmark.
        engine.handle(RfqUpdate(clock.now_ms(), Rfq("MICRO-OPEN", buy_ccy="BTC", sell_ccy="USDT",
                                                    sell_amount=Decimal("5000"), status=RfqStatus.NEW,
                                                    status_raw="new"), "{}"))
        with _engine_thread(engine, events):
            for index in range(iterations * 2 + paced, iterations * 2 + paced * 2):
                time.sleep(IDLE_BEFORE_S)
                rehearsed_ns.append(through_engine(fresh(index)))
        engine.rehearse_every_s, engine.rehearse_sync = 0.0, False
        rehearsals = engine.rehearsals
        if profile_path:                           # a separate pass, profiled, not timed
            profiler = cProfile.Profile()
            with _engine_thread(engine, events, profiler):
                for text in (fresh(i) for i in range(iterations * 2 + paced * 2, len(texts))):
                    through_engine(text)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
            profile_path.write_text(out.getvalue(), encoding="utf-8")
        append_ns = []
        for i in range(iterations):            # one committed journal append alone (fsync)
            t0 = time.perf_counter_ns()
            journal.append("bench.append", source="bench", payload={"i": i, "text": texts[i][:200]})
            append_ns.append(time.perf_counter_ns() - t0)
        accepted = actions.accepts
        journal.close()
    if accepted != iterations + paced * 2 + profiled:
        raise RuntimeError(f"micro-benchmark: expected {iterations + paced * 2 + profiled} accepts, "
                           f"the engine queued {accepted}")
    return {"iterations": iterations, "decision_path": latency_summary_ms(whole_ns),
            "decision_path_at_rfq_pace": latency_summary_ms(paced_ns),
            "decision_path_at_rfq_pace_rehearsed": latency_summary_ms(rehearsed_ns),
            "rehearsals_in_the_rehearsed_run": rehearsals,
            "decode_only": latency_summary_ms(decode_ns), "journal_append_commit": latency_summary_ms(append_ns)}


def _drain_through_engine(decoded: list[Any], profiler: cProfile.Profile | None = None) -> float:
    """Seconds for a fresh engine's ``run`` loop to journal ``decoded`` from a pre-filled queue."""
    with tempfile.TemporaryDirectory(prefix="rfqbot-ingest-") as tmp:
        engine, journal, _ = _engine(Path(tmp))
        events: queue.Queue[Any] = queue.Queue()
        for event in decoded:
            events.put(event)
        stop = threading.Event()

        def stop_when_drained() -> None:
            while not events.empty():
                time.sleep(0.005)
            stop.set()

        watcher = threading.Thread(target=stop_when_drained, name="ingest-watch", daemon=True)
        t0 = time.perf_counter_ns()
        watcher.start()
        if profiler:
            profiler.enable()
        engine.run(events, stop, tick_s=0.25)
        if profiler:
            profiler.disable()
        seconds = (time.perf_counter_ns() - t0) / 1e9
        watcher.join(5)
        journal.close()
    return seconds


def run_ingest_profile(frames: int = 20_000, profile_path: Path | None = None) -> dict[str, Any]:
    """The engine's share of ingest: decoded public frames through ``Engine.run`` (no network).

    Decoding is timed apart (the stream thread's job); the engine drains a pre-filled queue in
    its usual bursts, one transaction each. The rate is the ceiling rfqbot's end-to-end ingest
    can reach before the network and the stream thread are counted.
    """
    from benchmarks.simhost import flood_frames

    texts = flood_frames(frames, int(time.time() * 1000))
    clock = SystemClock()
    t0 = time.perf_counter_ns()
    decoded = [event for text in texts for event in decode_frame("public", text, clock.now_ms())]
    decode_s = (time.perf_counter_ns() - t0) / 1e9
    engine_s = _drain_through_engine(decoded)               # timed: never under the profiler
    if profile_path:
        profiler = cProfile.Profile()
        _drain_through_engine(decoded, profiler)           # a separate pass, profiled, not timed
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        profile_path.write_text(out.getvalue(), encoding="utf-8")
    return {"frames": frames, "decode_per_s": round(frames / decode_s), "engine_journal_per_s": round(frames / engine_s)}
