"""Streams and the listen key under venue faults: drops, silence, dead keys.

Each test breaks one thing at the simulator and checks the daemon notices, recovers on its own
and keeps trading: the journal tells what the daemon saw, the ground truth what the venue did.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from rfqbot.sim import Simulator
from tests.integration.helpers import (
    accepts_at_sim, create_rfq, quote_three, sim_statuses, wait_for,
)

BTC_LIMIT = {"BTC/USDT": [{"use": "price_limit", "limit_price": "106000"}]}
SLOW_WINDOW = dict(time_scale=10, bestquote_window_s=30, bestquote_min_quotes=3)


def sessions_in(run: Any, stream: str, state: str) -> list[int]:
    return [session for session, seen in run.journal.stream_states(stream) if seen == state]


def trade_one(run: Any, sim: Simulator) -> str:
    """Create an RFQ, quote it, and wait until it settled: proof the daemon is fully working."""
    rfq_id = create_rfq(run)
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])
    wait_for(lambda: run.journal.status(rfq_id) == "successful", 10, f"{rfq_id} to settle in the journal")
    assert len(accepts_at_sim(sim, rfq_id)) == 1
    return rfq_id


def test_private_stream_dropped_mid_rfq_reconnects_reconciles_and_continues(
        make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
        start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    # No periodic round within the test: only the reconnect itself may trigger reconciliation.
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT, reconcile={"every_s": 120}), sim)
    rfq_id = create_rfq(run)
    wait_for(lambda: sessions_in(run, "private", "subscribed"), 5, "the private stream")
    assert sim.faults.close_stream("private", abrupt=True) == 1
    # The quotes (and so the bestQuote push) come while the private stream is down.
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])

    wait_for(lambda: any(s >= 2 for s in sessions_in(run, "private", "subscribed")), 10,
             "the private stream to reconnect")
    wait_for(lambda: run.journal.status(rfq_id) == "successful", 15, "the RFQ to settle in the journal")
    assert sim.rfq_status(rfq_id) == "successful"
    assert len(accepts_at_sim(sim, rfq_id)) == 1
    assert run.journal.transitions(rfq_id) == sim_statuses(sim, rfq_id)
    # Reconciliation ran for this RFQ after the reconnect (pushes may have been lost meanwhile).
    reconnect_seq = next(r["seq"] for r in run.journal.events("stream.status")
                         if r["payload"]["stream"] == "private" and r["payload"]["session"] >= 2
                         and r["payload"]["state"] == "subscribed")
    # The reconnect's reconciliation runs on the scheduler thread: when the bestQuote reached the
    # new session, the accept (and so "successful") may be journaled before its answers are.
    wait_for(lambda: [r for r in run.journal.events(rfq_id=rfq_id)
                      if r["kind"] in ("rfq.reconciled", "reconcile.active_quotes") and r["seq"] > reconnect_seq
                      and r["source"] != "create"], 10,
             "a reconciliation of the RFQ after the private stream came back")
    delivered = [e for e in sim.truth("push") if e.get("topic") == "bestQuote" and e.get("rfq_id") == rfq_id]
    if not delivered:  # the bestQuote was lost: the accept must have come from rfq-active
        assert [d["trigger"] for d in run.journal.decisions(rfq_id) if d["action"] == "accept"] == ["rfq-active"]


def test_listen_key_whose_extend_fails_is_replaced_and_the_stream_moves(
        make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
        start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    wait_for(lambda: sim.truth("private_connected"), 5, "the private stream to connect")
    assert sim.faults.invalidate_listen_key(mode="extend_fails") == 1
    # Run the real keepalive job now instead of waiting extend_every_s.
    run.daemon.scheduler.aps.modify_job("listen_key_keepalive", next_run_time=datetime.now(timezone.utc))

    wait_for(lambda: "deleted" in run.journal.listen_key_actions(), 10, "the old key to be deleted")
    assert run.journal.listen_key_actions() == ["created", "extend_failed", "created", "replaced", "deleted"]
    keys = [e for e in sim.truth("listen_key")]
    assert [k["action"] for k in keys] == ["created", "created", "deleted"]
    old_tail, new_tail = keys[0]["key_tail"], keys[1]["key_tail"]
    assert keys[2]["key_tail"] == old_tail
    wait_for(lambda: [c for c in sim.truth("private_connected") if c["key_tail"] == new_tail], 10,
             "the private stream on the new key")
    trade_one(run, sim)  # bestQuote and rfqUpdates now come over the new key


def test_listen_key_that_delivers_nothing_is_replaced(make_sim: Callable[..., Simulator],
                                                       settings_for: Callable[..., Any],
                                                       start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    wait_for(lambda: sim.truth("private_connected"), 5, "the private stream to connect")
    # The key still extends fine, but its stream stays empty: only the stream can tell.
    assert sim.faults.invalidate_listen_key(mode="mute") == 1

    wait_for(lambda: "replaced" in run.journal.listen_key_actions(), 15, "the muted key to be replaced")
    assert "stale" in [state for _, state in run.journal.stream_states("private")]
    wait_for(lambda: [k for k in sim.truth("listen_key") if k["action"] == "deleted"], 5,
             "the muted key to be deleted")
    trade_one(run, sim)


def test_silent_public_stream_is_detected_stale_and_reconnected(make_sim: Callable[..., Simulator],
                                                                settings_for: Callable[..., Any],
                                                                start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    wait_for(lambda: sessions_in(run, "public", "subscribed"), 5, "the public stream")
    sim.faults.silence("public", on=True)  # TCP stays open; no pongs, no pushes
    stale = wait_for(lambda: sessions_in(run, "public", "stale"), 10, "the public stream to go stale")
    sim.faults.silence("public", on=False)
    wait_for(lambda: any(s > stale[0] for s in sessions_in(run, "public", "subscribed")), 10,
             "the public stream to reconnect")
    details = [r["payload"]["detail"] for r in run.journal.events("stream.status")
               if r["payload"]["stream"] == "public" and r["payload"]["state"] == "stale"]
    assert "no pong" in details[0] or "no frame" in details[0]
    # The new session carries public traffic again: an RFQ of ours shows up on `rfqs`.
    rfq_id = create_rfq(run)
    wait_for(lambda: run.journal.events("frame.public_rfq", rfq_id=rfq_id), 5, "the rfqs push")


def test_silent_private_stream_is_detected_stale_and_reconnected(make_sim: Callable[..., Simulator],
                                                                 settings_for: Callable[..., Any],
                                                                 start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    wait_for(lambda: sessions_in(run, "private", "subscribed"), 5, "the private stream")
    wait_for(lambda: run.daemon.private_stream.last_frame_ms, 5, "a first server ping")
    connects = len(sim.truth("private_connected"))
    sim.faults.silence("private", on=True)
    wait_for(lambda: sessions_in(run, "private", "stale"), 10, "the private stream to go stale")
    sim.faults.silence("private", on=False)
    wait_for(lambda: len(sim.truth("private_connected")) > connects, 10, "a new private connection")
    trade_one(run, sim)
