"""EventQueue: private events first, bounded public lane (wait, then drop and count), and the
engine's run loop ending a burst after private events and journaling drops."""

from __future__ import annotations

import queue
import threading

import pytest

from rfqbot.engine.inbox import EventQueue
from rfqbot.events import BestQuotes, Heartbeat, PublicQuote, PublicRfq, SpotTick
from tests.test_engine import Harness, committed_accepts


def _pub(i: int) -> PublicRfq:
    return PublicRfq(i, None, f"p{i}")  # type: ignore[arg-type]


def test_private_overtakes_public_and_order_is_kept_within_a_lane():
    q = EventQueue(public_max=10)
    q.put(_pub(1))
    q.put(_pub(2))
    best = BestQuotes(3, "R1", (), "{}")
    q.put(best)
    assert q.qsize() == 3 and q.private_waiting()
    assert q.get_nowait() is best
    assert [q.get_nowait().received_ms for _ in range(2)] == [1, 2]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)


def test_full_public_lane_drops_after_the_wait_and_counts_but_never_drops_private():
    q = EventQueue(public_max=2, public_block_s=0.0)
    for i in range(5):
        q.put(_pub(i))
    for i in range(50):
        q.put(BestQuotes(i, "R1", (), "{}"))
    assert q.qsize() == 52
    assert q.take_dropped() == {"PublicRfq": 3}
    assert q.take_dropped() == {}


def test_full_public_lane_waits_for_room_instead_of_dropping():
    q = EventQueue(public_max=1, public_block_s=5.0)
    q.put(_pub(1))
    done = threading.Event()

    def producer():
        q.put(_pub(2))  # blocks until the consumer takes one
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.05)
    assert q.get(timeout=1).received_ms == 1
    t.join(5)
    assert done.is_set() and q.get_nowait().received_ms == 2 and q.take_dropped() == {}


def test_public_types_are_the_market_data_ones():
    q = EventQueue(public_max=1, public_block_s=0.0)
    q.put(Heartbeat(1, "public", "ping"))
    q.put(Heartbeat(2, "public", "ping"))
    assert q.qsize() == 2 and q.take_dropped() == {}


def test_bad_size_is_refused():
    with pytest.raises(ValueError, match="public_max"):
        EventQueue(public_max=0)


def test_run_loop_commits_best_quote_before_queued_public_frames_and_journals_drops(tmp_path):
    h = Harness(tmp_path)
    q = EventQueue(public_max=3, public_block_s=0.0)
    stop = threading.Event()
    sent = []

    def accept(rfq_id, quote_id, send_by_ms=None):
        sent.append((committed_accepts(h.path), h.rows("SELECT count(*) AS n FROM quotes WHERE rfq_id='X'")[0]["n"]))
        stop.set()

    h.actions.accept = accept
    for i in range(5):  # 2 of them dropped
        q.put(PublicQuote(h.now, h.quote(f"P{i}", "95", rfq="X"), "{}"))
    q.put(BestQuotes(h.now, "R1", (h.quote("Q1", "90", 1),), "{}"))
    t = threading.Thread(target=h.engine.run, args=(q, stop, 0.01))
    t.start()
    t.join(10)
    assert not t.is_alive()
    # The accept was committed and sent before any public quote was journaled.
    assert sent == [(1, 0)]
    dropped = h.rows("SELECT payload FROM events WHERE kind = 'frames.dropped'")
    assert len(dropped) == 1 and '"count":2' in dropped[0]["payload"]
    stop.clear()
    t = threading.Thread(target=h.engine.run, args=(q, stop, 0.01))
    t.start()
    for _ in range(500):
        if q.qsize() == 0:
            break
        t.join(0.01)
    stop.set()
    t.join(10)
    assert h.rows("SELECT count(*) AS n FROM quotes WHERE rfq_id='X'")[0]["n"] == 3
    assert h.journal.verify_chain() is None
    h.journal.close()


def test_the_engine_checkpoints_the_journal_only_when_its_queue_is_empty(tmp_path):
    import threading as _threading
    import time as _time

    from rfqbot.engine.inbox import EventQueue
    from rfqbot.events import Note
    from tests.test_engine import Harness
    h = Harness(tmp_path)
    calls = []
    h.journal.checkpoint_when_idle = lambda: calls.append(events.qsize()) or False
    events = EventQueue()
    for n in range(300):
        events.put(Note(h.now, "n", {"n": n}))
    stop = _threading.Event()
    runner = _threading.Thread(target=h.engine.run, args=(events, stop, 0.01))
    runner.start()
    deadline = _time.monotonic() + 5
    while not calls and _time.monotonic() < deadline:
        _time.sleep(0.01)
    stop.set()
    runner.join(5)
    h.journal.close()
    assert calls and all(size == 0 for size in calls)
