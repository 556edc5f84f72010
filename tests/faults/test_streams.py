"""Scenarios 1-3: streams closed or silent, and listen keys that die in three ways.

Each test breaks one thing at the simulator, times how long the daemon takes to be whole again
(stream resubscribed, key replaced, RFQ settled), then proves it trades normally and that the
journal lost nothing and shows every venue transition of the RFQs involved.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from rfqbot.sim import Simulator
from tests.faults.support import ReportRow, chain_rows, duplicate_accepts, missing_transitions, rows_lost
from tests.integration.helpers import accepts_at_sim, create_rfq, quote_three, wait_for
from tests.sim.helpers import VenueClient

BTC_LIMIT = {"BTC/USDT": [{"use": "price_limit", "limit_price": "106000"}]}
SLOW_WINDOW = dict(time_scale=10, bestquote_window_s=30, bestquote_min_quotes=3)


def subscribed_sessions(run: Any, stream: str) -> list[int]:
    return [session for session, state in run.journal.stream_states(stream) if state == "subscribed"]


def resubscribed(run: Any, stream: str, after: int) -> bool:
    return any(s > after for s in subscribed_sessions(run, stream))


def trade_one(run: Any, sim: Simulator) -> str:
    """Create, quote and settle one RFQ: proof the daemon trades normally again."""
    rfq_id = create_rfq(run)
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])
    wait_for(lambda: run.journal.status(rfq_id) == "successful", 15, f"{rfq_id} to settle in the journal")
    return rfq_id


def finish(row: ReportRow, run: Any, sim: Simulator, before: dict[int, str], rfq_ids: list[str]) -> None:
    row.facts_lost = rows_lost(before, run.journal) + missing_transitions(sim, run.journal, rfq_ids)
    row.duplicate_accepts = duplicate_accepts(sim)
    assert row.facts_lost == 0
    assert row.duplicate_accepts == 0
    for rfq_id in rfq_ids:
        assert len(accepts_at_sim(sim, rfq_id)) == 1


@pytest.fixture
def daemon(make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
           start_daemon: Callable[..., Any], request: pytest.FixtureRequest) -> Any:
    # A test marked ``no_venue_rate_limits`` shares the API key with another client whose calls
    # the daemon's pacing cannot see; the venue's per-key budget is then not the daemon's to keep.
    limits = request.node.get_closest_marker("no_venue_rate_limits") is None
    sim = make_sim(**SLOW_WINDOW, rate_limits=limits)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    wait_for(lambda: subscribed_sessions(run, "public") and subscribed_sessions(run, "private"), 10,
             "both streams subscribed")
    return run


@pytest.mark.faults_long
@pytest.mark.scenario("1a public stream closed mid-run")
def test_public_stream_closed(daemon: Any, row: ReportRow) -> None:
    run, sim = daemon, daemon.sim
    before, session = chain_rows(run.journal), max(subscribed_sessions(run, "public"))
    started = time.monotonic()
    assert sim.faults.close_stream("public", abrupt=True) == 1
    wait_for(lambda: resubscribed(run, "public", session), 10, "the public stream to resubscribe")
    row.recover_s = time.monotonic() - started
    rfq_id = create_rfq(run)
    wait_for(lambda: run.journal.events("frame.public_rfq", rfq_id=rfq_id), 5, "public traffic again")
    finish(row, run, sim, before, [trade_one(run, sim)])


@pytest.mark.faults_long
@pytest.mark.scenario("1b private stream closed mid-RFQ")
def test_private_stream_closed_mid_rfq(daemon: Any, row: ReportRow) -> None:
    run, sim = daemon, daemon.sim
    rfq_id = create_rfq(run)
    before, session = chain_rows(run.journal), max(subscribed_sessions(run, "private"))
    started = time.monotonic()
    assert sim.faults.close_stream("private", abrupt=True) == 1
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])  # the bestQuote comes while it is down
    wait_for(lambda: resubscribed(run, "private", session) and run.journal.status(rfq_id) == "successful", 15,
             "the private stream back and the RFQ settled")
    row.recover_s = time.monotonic() - started
    finish(row, run, sim, before, [rfq_id, trade_one(run, sim)])


@pytest.mark.scenario("1c both streams closed at once mid-RFQ")
def test_both_streams_closed_at_once(daemon: Any, row: ReportRow) -> None:
    run, sim = daemon, daemon.sim
    rfq_id = create_rfq(run)
    before = chain_rows(run.journal)
    sessions = {s: max(subscribed_sessions(run, s)) for s in ("public", "private")}
    started = time.monotonic()
    assert sim.faults.close_stream("both", abrupt=True) == 2
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])
    wait_for(lambda: all(resubscribed(run, s, n) for s, n in sessions.items())
             and run.journal.status(rfq_id) == "successful", 15, "both streams back and the RFQ settled")
    row.recover_s = time.monotonic() - started
    finish(row, run, sim, before, [rfq_id, trade_one(run, sim)])


@pytest.mark.faults_long
@pytest.mark.parametrize("stream", ["public", "private"])
def test_silent_stream_with_tcp_open(daemon: Any, row: ReportRow, stream: str) -> None:
    row.scenario = f"2 {stream} stream silent, TCP open"
    run, sim = daemon, daemon.sim
    before, session = chain_rows(run.journal), max(subscribed_sessions(run, stream))
    started = time.monotonic()
    sim.faults.silence(stream, on=True)
    wait_for(lambda: any(st == "stale" and n >= session for n, st in run.journal.stream_states(stream)), 10,
             f"the {stream} stream (session {session} or later) to be found stale")
    sim.faults.silence(stream, on=False)
    wait_for(lambda: resubscribed(run, stream, session), 10, f"the {stream} stream to resubscribe")
    row.recover_s = time.monotonic() - started
    finish(row, run, sim, before, [trade_one(run, sim)])


def key_replaced(run: Any, sim: Simulator) -> bool:
    """A second key created at the venue, the first deleted or dead, a connection on the new one."""
    keys = sim.truth("listen_key")
    created = [k["key_tail"] for k in keys if k["action"] == "created"]
    if len(created) < 2:
        return False
    old_ended = any(k["key_tail"] == created[-2] and k["action"] not in ("created", "extended") for k in keys)
    return old_ended and any(c["key_tail"] == created[-1] for c in sim.truth("private_connected"))


@pytest.mark.faults_long
@pytest.mark.parametrize("mode", ["extend_fails", "mute"])
def test_listen_key_extend_fails_or_stream_stays_empty(daemon: Any, row: ReportRow, mode: str) -> None:
    row.scenario = {"extend_fails": "3a listen key: extend fails",
                    "mute": "3b listen key: connects, nothing arrives"}[mode]
    run, sim = daemon, daemon.sim
    before = chain_rows(run.journal)
    started = time.monotonic()
    assert sim.faults.invalidate_listen_key(mode=mode) == 1
    if mode == "extend_fails":
        run.daemon.scheduler.aps.modify_job("listen_key_keepalive", next_run_time=_now())
    wait_for(lambda: key_replaced(run, sim), 20, "a new key with the private stream on it")
    row.recover_s = time.monotonic() - started
    finish(row, run, sim, before, [trade_one(run, sim)])


@pytest.mark.no_venue_rate_limits
@pytest.mark.scenario("3c listen key deleted by another client")
def test_listen_key_deleted_by_another_client(daemon: Any, row: ReportRow) -> None:
    run, sim = daemon, daemon.sim
    before = chain_rows(run.journal)
    key = run.daemon.keeper._key  # the test plays the other client that got hold of the key
    other = VenueClient(sim)
    try:
        started = time.monotonic()
        answer = other.call("DELETE", "/api/v1/userDataStream", {"listenKey": key})
        assert answer.status_code == 200, answer.text
    finally:
        other.session.close()
    wait_for(lambda: key_replaced(run, sim), 20, "a new key with the private stream on it")
    row.recover_s = time.monotonic() - started
    finish(row, run, sim, before, [trade_one(run, sim)])


def _now() -> Any:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)
