"""Idle rehearsals of the decision path: the real statements run, nothing is kept or seen, a
failure turns them off (or, from the journal, stops deciding), and the run loop does them only
while idle."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from rfqbot.clock import SystemClock
from rfqbot.config.schema import load_config_text
from rfqbot.engine.inbox import EventQueue
from rfqbot.engine.rehearsal import REHEARSAL_RFQ_ID
from rfqbot.engine.risk import RiskSettings
from rfqbot.errors import ConfigError
from strategies import compile_chains
from rfqbot.events import BestQuotes, ShutdownRequested
from rfqbot.records import RfqStatus as S
from tests.test_engine import Harness


def _state(h: Harness) -> tuple:
    last = h.rows("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")[0]
    return (dict(last), sorted(h.engine.rfqs), sorted(h.engine.ledger._by_rfq), len(h.seen),
            list(h.actions.calls), (h.journal._last_seq, h.journal._last_hash))


def test_a_rehearsal_runs_a_decisions_statements_and_leaves_nothing_behind(tmp_path):
    h = Harness(tmp_path)
    h.best(h.quote("Q1", "90", 1))   # a real accept first: state to keep intact
    before = _state(h)
    statements: list[str] = []
    h.journal._conn.set_trace_callback(statements.append)
    assert h.engine.rehearse(h.now) is True
    h.journal._conn.set_trace_callback(None)
    inserts = [s for s in statements if s.startswith("INSERT INTO events")]
    # The frame row and the decision row, with their projections, then a rollback, no commit.
    assert len(inserts) == 2 and any(s.startswith("INSERT INTO decisions") for s in statements)
    assert statements[-1] == "ROLLBACK" and "COMMIT" not in statements
    assert _state(h) == before and REHEARSAL_RFQ_ID not in h.engine.rfqs and h.engine.rehearsals == 1
    assert not h.journal._conn.in_transaction
    h.best(h.quote("Q2", "90", 1), rfq="R2")   # the chain goes on from where it was
    assert h.rows("SELECT max(seq) AS s FROM events")[0]["s"] == before[0]["seq"] + 2
    assert h.journal.verify_chain() is None and h.actions.accepts[-1] == ("accept", "R2", "Q2")
    h.journal.close()


def test_a_rehearsal_leaves_the_kill_switch_to_the_next_real_decision(tmp_path):
    switch = tmp_path / "STOP"
    h = Harness(tmp_path, risk=RiskSettings(kill_switch_file=str(switch)))
    switch.write_text("")
    assert h.engine.rehearse(h.now) is True
    # Had the rehearsal read the file, the change would have been journaled in a rolled-back
    # transaction and never again: the real decision must still see it, journal it and block.
    h.best(h.quote("Q1", "90", 1))
    assert h.rows("SELECT count(*) AS n FROM events WHERE kind = 'risk.kill_switch'")[0]["n"] == 1
    assert h.actions.accepts == [] and h.decisions()[-1]["blocked_by"] == "kill_switch_file"
    h.journal.close()


def test_a_failing_rehearsal_turns_rehearsals_off_and_deciding_goes_on(tmp_path):
    h = Harness(tmp_path)

    def broken(ev):
        raise ValueError("a bug in the path")

    h.engine._on_best_quotes = broken   # type: ignore[method-assign]
    assert h.engine.rehearse(h.now) is False
    assert h.engine.rehearsal_off_reason == "ValueError: a bug in the path"
    assert not h.journal._conn.in_transaction and h.engine.deciding
    del h.engine._on_best_quotes
    assert h.engine.rehearse(h.now) is False   # off for good
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    h.journal.close()


def test_nothing_is_rehearsed_while_nothing_could_be_decided(tmp_path):
    h = Harness(tmp_path)
    h.engine.handle(ShutdownRequested(h.now, "stop"))
    assert h.engine.rehearse(h.now) is False
    h2 = Harness(tmp_path, path="j2.db")
    h2.engine.venue_banned = True
    assert h2.engine.rehearse(h2.now) is False and h2.engine.rehearsals == 0
    h.journal.close()
    h2.journal.close()


def test_the_loop_rehearses_while_idle_and_still_decides_and_ticks(tmp_path):
    h = Harness(tmp_path, clock=SystemClock())
    h.update(S.NEW, rfq="R0")   # an own RFQ open: a quote may come, so rehearsals are useful
    h.engine.rehearse_every_s = 0.002
    ticks = []
    h.engine._on_tick = lambda ev: ticks.append(ev)   # type: ignore[method-assign]
    q = EventQueue()
    stop = threading.Event()
    runner = threading.Thread(target=h.engine.run, args=(q, stop, 0.05))
    runner.start()
    deadline = time.monotonic() + 10
    while (h.engine.rehearsals < 20 or len(ticks) < 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    q.put(BestQuotes(h.now, "R1", (h.quote("Q1", "90", 1),), "{}"))
    while not h.actions.accepts and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    runner.join(10)
    assert h.engine.rehearsals >= 20 and len(ticks) >= 2 and h.actions.accepts == [("accept", "R1", "Q1")]
    kinds = [r["kind"] for r in h.rows("SELECT kind FROM events ORDER BY seq")]
    assert kinds.count("frame.best_quotes") == 1 and kinds.count("decision") == 1
    assert h.journal.verify_chain() is None
    h.journal.close()


def test_engine_rehearse_every_ms_setting():
    assert load_config_text("", file="c.yaml").engine.rehearse_every_ms == 5
    assert load_config_text("engine:\n  rehearse_every_ms: 0\n", file="c.yaml").engine.rehearse_every_ms == 0
    with pytest.raises(ConfigError) as caught:
        load_config_text("engine:\n  rehearse_every_ms: 5000\n", file="c.yaml")
    assert "engine.rehearse_every_ms" in str(caught.value)


def test_engine_rehearse_sync_setting():
    assert load_config_text("", file="c.yaml").engine.rehearse_sync is True
    assert load_config_text("engine:\n  rehearse_sync: false\n", file="c.yaml").engine.rehearse_sync is False
    with pytest.raises(ConfigError) as caught:
        load_config_text("engine:\n  rehearse_sync: sometimes\n", file="c.yaml")
    assert "engine.rehearse_sync" in str(caught.value)


def _record_fdatasync(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``os.fdatasync`` is called on from now on (it still runs)."""
    flushed: list[str] = []
    real = os.fdatasync

    def recording(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", recording)
    return flushed


def test_warm_sync_flushes_the_wal_only_with_full_durability(tmp_path, monkeypatch):
    from rfqbot.clock import FakeClock
    from rfqbot.journal.store import Journal
    flushed = _record_fdatasync(monkeypatch)
    full = Journal(tmp_path / "full.db", FakeClock())
    normal = Journal(tmp_path / "normal.db", FakeClock(), synchronous="normal")
    try:
        full.append("x", source="test", payload={})
        normal.append("x", source="test", payload={})
        assert full.warm_sync() is True and full.warm_sync() is True
        assert normal.warm_sync() is False
        assert flushed == [str((tmp_path / "full.db-wal").resolve())] * 2
    finally:
        full.close()
        normal.close()


def test_each_rehearsal_keeps_the_flush_path_warm_when_asked(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    flushed = _record_fdatasync(monkeypatch)
    assert h.engine.rehearse(h.now) is True and flushed == []      # off unless asked (the daemon asks)
    h.engine.rehearse_sync = True
    assert h.engine.rehearse(h.now) is True and h.engine.rehearse(h.now) is True
    assert flushed == [str(h.path.resolve()) + "-wal"] * 2
    h.journal.close()


def test_a_failing_flush_turns_only_the_warm_up_off(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    h.engine.rehearse_sync = True

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    assert h.engine.rehearse(h.now) is True
    assert h.engine.rehearse_sync is False and h.engine.rehearsal_off_reason is None
    monkeypatch.undo()
    assert h.engine.rehearse(h.now) is True and h.engine.rehearsals == 2
    h.best(h.quote("Q1", "90", 1))                                   # deciding goes on
    assert h.actions.accepts == [("accept", "R1", "Q1")]
    h.journal.close()


def test_the_made_up_frame_is_one_the_decoder_takes_as_the_made_up_quote(tmp_path):
    from rfqbot.engine.rehearsal import rehearsal_quotes
    from rfqbot.streams.wire import decode_frame
    h = Harness(tmp_path)
    event = rehearsal_quotes(h.engine.pairs["BTC/USDT"], h.engine.market, h.now)
    decoded = decode_frame("private", event.raw, h.now)
    assert len(decoded) == 1 and isinstance(decoded[0], BestQuotes)
    assert decoded[0].rfq_id == event.rfq_id == REHEARSAL_RFQ_ID
    assert [(q.quote_id, q.price, q.expires_ms) for q in decoded[0].quotes] == \
        [(q.quote_id, q.price, q.expires_ms) for q in event.quotes]
    h.journal.close()


def test_hooks_get_the_made_up_frame_and_a_failing_one_turns_rehearsals_off(tmp_path):
    h = Harness(tmp_path)
    seen = []
    h.engine.rehearse_hooks = (seen.append,)
    assert h.engine.rehearse(h.now) is True
    assert len(seen) == 1 and seen[0].rfq_id == REHEARSAL_RFQ_ID

    def broken(ev):
        raise OSError("no")

    h.engine.rehearse_hooks = (broken,)
    assert h.engine.rehearse(h.now) is False and h.engine.rehearsal_off_reason == "OSError in rehearsal hook broken"
    assert h.engine.deciding and not h.journal._conn.in_transaction
    h.journal.close()


class _FailingConnection:
    """The journal's connection, failing the statements that start with ``fail``."""

    def __init__(self, conn, fail: str) -> None:
        self._conn, self._fail = conn, fail

    def execute(self, sql, *args):
        if sql.startswith(self._fail):
            raise sqlite3.OperationalError("disk I/O error")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_rehearsal_leaves_real_rfqs_pauses_and_logs_as_they_were(tmp_path):
    from structlog.testing import capture_logs
    h = Harness(tmp_path, chains=_wait_then_accept_chains())
    h.best(h.quote("Q1", "90", 1), rfq="WAITING")          # a wait: deadline set
    h.engine.chains = compile_chains({"BTC/USDT": [{"use": "price_limit", "limit_price": "100"}]})
    h.best(h.quote("Q2", "90", 1), rfq="OUT")              # an accept outstanding
    h.engine.requests_paused_until_ms = 0
    snapshots = {rid: (r.snapshot(), r.wait_until_ms, set(r.refused_quotes)) for rid, r in h.engine.rfqs.items()}
    accepts = list(h.actions.accepts)
    seen_in_rfqs = []
    append = h.journal.append

    def spy(*args, **kwargs):
        seen_in_rfqs.append(REHEARSAL_RFQ_ID in h.engine.rfqs)
        return append(*args, **kwargs)

    h.journal.append = spy   # type: ignore[method-assign]
    with capture_logs() as logs:
        assert h.engine.rehearse(h.now) is True
    h.journal.append = append   # type: ignore[method-assign]
    # The made-up RFQ was never in rfqs (health reads it without the lock), not even mid-way.
    assert seen_in_rfqs and not any(seen_in_rfqs)
    assert {rid: (r.snapshot(), r.wait_until_ms, set(r.refused_quotes)) for rid, r in h.engine.rfqs.items()} \
        == snapshots
    assert h.actions.accepts == accepts and logs == [] and h.engine.requests_paused_until_ms == 0
    assert h.engine._sends == [] and h.engine._decision_logs == []
    h.journal.close()


def _wait_then_accept_chains():
    return compile_chains({"BTC/USDT": [{"use": "wait_for_quotes", "min_quotes": 5, "max_wait_ms": 60_000},
                                        {"use": "price_limit", "limit_price": "100"}]})


def test_the_made_up_set_gets_past_a_minimum_quote_count(tmp_path):
    h = Harness(tmp_path, chains=compile_chains({"BTC/USDT": [
        {"use": "wait_for_quotes", "min_quotes": 3, "max_wait_ms": 60_000},
        {"use": "price_limit", "limit_price": "100"}]}))
    statements: list[str] = []
    h.journal._conn.set_trace_callback(statements.append)
    assert h.engine.rehearse(h.now) is True
    h.journal._conn.set_trace_callback(None)
    decision = [s for s in statements if s.startswith("INSERT INTO decisions")]
    assert len(decision) == 1 and "'accept'" in decision[0]
    h.journal.close()


def test_a_clean_journal_error_in_a_rehearsal_turns_rehearsals_off_and_loses_nothing(tmp_path):
    h = Harness(tmp_path)
    h.best(h.quote("Q1", "90", 1))
    head = (h.journal._last_seq, h.journal._last_hash)
    real = h.journal._conn
    h.journal._conn = _FailingConnection(real, "INSERT INTO events")
    h.engine._rehearse_while_idle()
    h.journal._conn = real
    assert "disk I/O error" in h.engine.rehearsal_off_reason and h.engine.deciding
    assert (h.journal._last_seq, h.journal._last_hash) == head and not h.journal.in_transaction()
    h.best(h.quote("Q2", "90", 1), rfq="R2")
    assert h.actions.accepts[-1] == ("accept", "R2", "Q2") and h.journal.verify_chain() is None
    h.journal.close()


def test_a_rehearsal_that_cannot_be_rolled_back_stops_deciding(tmp_path):
    h = Harness(tmp_path)
    real = h.journal._conn
    h.journal._conn = _FailingConnection(real, "ROLLBACK")
    h.engine._rehearse_while_idle()
    h.journal._conn = real
    assert not h.engine.deciding and "could not be rolled back" in h.engine.journal_failure
    real.execute("ROLLBACK")
    h.journal.close()


def test_a_failed_projection_in_a_rehearsal_turns_rehearsals_off_once(tmp_path, monkeypatch):
    import rfqbot.journal.store as store
    h = Harness(tmp_path)
    monkeypatch.setattr(store, "apply_projection", lambda conn, row: False)
    assert h.engine.rehearse(h.now) is False
    assert "projection" in h.engine.rehearsal_off_reason and h.engine.deciding
    assert not h.journal.in_transaction()
    h.journal.close()


def test_a_rehearsals_send_is_never_flushed(tmp_path):
    h = Harness(tmp_path)
    h.engine._sends = [("accept", (REHEARSAL_RFQ_ID, "rfqbot-rehearsal-quote-1", None))]
    h.engine._after_commit()
    assert h.actions.calls == []
    h.journal.close()


def test_no_rehearsals_while_no_quote_can_come_and_a_long_interval_still_rehearses(tmp_path):
    h = Harness(tmp_path, clock=SystemClock())
    h.engine.rehearse_every_s = 0.08   # longer than the 0.05 s tick
    q = EventQueue()
    stop = threading.Event()
    runner = threading.Thread(target=h.engine.run, args=(q, stop, 0.05))
    runner.start()
    time.sleep(0.4)
    idle_with_nothing_open = h.engine.rehearsals
    q.put(BestQuotes(h.now, "R1", (h.quote("Q1", "90", 1),), "{}"))   # accepted: outstanding, blocks
    deadline = time.monotonic() + 10
    while not h.actions.accepts and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    with_accept_outstanding = h.engine.rehearsals
    q.put(BestQuotes(h.now, "R2", (h.quote("Q2", "200", 1, rfq="R2"),), "{}"))   # above the limit: open
    time.sleep(0.6)
    stop.set()
    runner.join(10)
    assert idle_with_nothing_open == 0 and with_accept_outstanding == 0
    assert h.engine.rehearsals >= 3   # every 80 ms while R2 is open, although the tick is 50 ms
    h.journal.close()


@pytest.mark.parametrize("every_s", [0.0, 0.005])
def test_a_fake_clock_that_stands_still_still_gets_ticks(tmp_path, every_s):
    h = Harness(tmp_path)   # FakeClock: its monotonic time never moves by itself
    h.update(S.NEW, rfq="R0")
    h.engine.rehearse_every_s = every_s
    ticks = []
    h.engine._on_tick = lambda ev: ticks.append(ev)   # type: ignore[method-assign]
    stop = threading.Event()
    runner = threading.Thread(target=h.engine.run, args=(EventQueue(), stop, 0.02))
    runner.start()
    time.sleep(0.3)
    stop.set()
    runner.join(10)
    assert len(ticks) >= 3 and h.engine.last_loop_monotonic is not None
    assert (h.engine.rehearsals > 0) == (every_s > 0)
    h.journal.close()


def test_rehearsals_are_useful_only_for_an_open_unexpired_unblocked_rfq_in_a_rehearsable_pair(tmp_path):
    h = Harness(tmp_path)
    assert not h.engine.rehearsal_useful()
    h.update(S.NEW, rfq="R0")
    h.engine.rehearsal_state_changed()
    assert h.engine.rehearsal_useful()
    h.engine.rfqs["R0"].expires_ms = h.now - 1   # expired, open until reconciliation says so
    h.engine.rehearsal_state_changed()
    assert not h.engine.rehearsal_useful()
    h.engine.rfqs["R0"].expires_ms = h.now + 60_000
    h.engine.chains = compile_chains({"ETH/USDT": [{"use": "price_limit", "limit_price": "1"}]})
    h.engine.rehearsal_state_changed()
    assert not h.engine.rehearsal_useful()   # no configured pair has a chain: nothing to rehearse
    h.journal.close()


def test_a_hooks_failure_is_recorded_by_type_only(tmp_path):
    h = Harness(tmp_path)

    def signs(ev):
        raise UnicodeEncodeError("latin-1", "k\u20acy", 1, 2, "ordinal not in range")

    h.engine.rehearse_hooks = (signs,)
    assert h.engine.rehearse(h.now) is False
    assert h.engine.rehearsal_off_reason == "UnicodeEncodeError in rehearsal hook signs"
    h.journal.close()


def test_the_decode_hook_refuses_a_frame_that_does_not_decode_to_the_quote_set(tmp_path):
    from rfqbot.engine.rehearsal import rehearsal_quotes
    from rfqbot.streams.wire import rehearse_decode
    h = Harness(tmp_path)
    event = rehearsal_quotes(h.engine.pairs["BTC/USDT"], h.engine.market, h.now)
    rehearse_decode(event)   # the real one decodes
    with pytest.raises(ValueError, match="RejectedFrame"):
        rehearse_decode(BestQuotes(event.received_ms, event.rfq_id, event.quotes, event.raw.replace('"price"', '"x"')))
    h.journal.close()
