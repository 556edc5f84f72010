"""Idle rehearsals of the decision path: the real statements run, nothing is kept or seen, a
failure turns them off (or, from the journal, stops deciding), and the run loop does them only
while idle."""

from __future__ import annotations

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
from rfqbot.events import BestQuotes, ShutdownRequested
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


def test_a_journal_failure_in_a_rehearsal_stops_deciding(tmp_path, monkeypatch):
    h = Harness(tmp_path)

    def failing():
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(h.journal, "rehearsal", failing)
    h.engine._rehearse_while_idle()
    assert not h.engine.deciding and "disk I/O error" in h.engine.journal_failure
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
