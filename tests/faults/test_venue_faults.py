"""Scenarios 4, 5, 6 and 8: the venue answering badly.

4. an accept answered 5xx after the venue applied it, 5xx without applying it, and an accept
   whose answer never comes in time (read timeout);
5. 429 bursts (requests pause, nothing is lost) and 418 (all requests stop, alert raised);
6. the venue's clock 3 s ahead or behind (``-1021``, resync, the call goes through);
8. ``rfqUpdates`` out of order (an older status after a newer one).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Callable

import pytest

from rfqbot.venue import rest
from rfqbot.ops.alerts import Alerter, AlertWatch
from rfqbot.config.credentials import Credentials
from rfqbot.errors import RateLimited
from rfqbot.daemon import Daemon
from rfqbot.events import CreateRfqCommand
from rfqbot.records import QuoteMode
from rfqbot.sim import Simulator
from tests.faults.support import (
    ReportRow, chain_rows, duplicate_accepts, missing_transitions, own_rfqs, rows_lost,
)
from tests.integration.helpers import JournalView, accepts_at_sim, create_rfq, quote_three, wait_for
from tests.integration.test_outcome_unknown import accept_results, reconciling

BTC_LIMIT = {"BTC/USDT": [{"use": "price_limit", "limit_price": "106000"}]}
PAUSE_MS = 2000  # the 429 pause in scenario 5a (the venue sends no Retry-After; default 60 s)
SLOW_WINDOW = dict(time_scale=10, bestquote_window_s=30, bestquote_min_quotes=3)


def settle(run: Any, rfq_id: str, timeout: float = 20) -> None:
    wait_for(reconciling(run, lambda: run.journal.status(rfq_id) == "successful"), timeout,
             f"{rfq_id} to settle in the journal")


def finish(row: ReportRow, run: Any, sim: Simulator, before: dict[int, str], rfq_ids: list[str]) -> None:
    row.facts_lost = rows_lost(before, run.journal) + missing_transitions(sim, run.journal, rfq_ids)
    row.duplicate_accepts = duplicate_accepts(sim)
    assert row.facts_lost == 0
    assert row.duplicate_accepts == 0
    for rfq_id in rfq_ids:
        assert sim.rfq_status(rfq_id) == "successful"
        assert run.journal.transitions(rfq_id) == [e["to"] for e in sim.truth("status_change")
                                                   if e["rfq_id"] == rfq_id]


def sent_ms(call: dict[str, Any]) -> int:
    """When a journaled venue call left the client: answer time minus its duration."""
    duration = call.get("duration_ms")
    return call["local_ms"] - (int(Decimal(str(duration))) if duration not in (None, "") else 0)


def venue_calls(journal: JournalView) -> list[dict[str, Any]]:
    return [{**r["payload"], "seq": r["seq"], "local_ms": r["local_ms"]} for r in journal.events("venue.call")]


# --- 4: accepts whose answer is lost ------------------------------------------------------------

@pytest.mark.faults_long
@pytest.mark.parametrize("applied", [True, False])
def test_accept_answered_5xx(make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
                             start_daemon: Callable[..., Any], row: ReportRow, applied: bool) -> None:
    row.scenario = f"4{'a' if applied else 'b'} accept 5xx, {'applied' if applied else 'not applied'} by the venue"
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    rfq_id = create_rfq(run)
    before = chain_rows(run.journal)
    sim.faults.accept_5xx(applied=applied, status=502)
    started = time.monotonic()
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])
    wait_for(lambda: accept_results(run, rfq_id), 10, "the accept to be answered")
    assert accept_results(run, rfq_id)[0] == "unknown"
    if not applied:
        # Blocked until reconciliation says "still new"; then a later quote may be accepted.
        sim.faults.quote(rfq_id, "105700", lp_name="LP-D")
    settle(run, rfq_id)
    row.recover_s = time.monotonic() - started
    assert len(accepts_at_sim(sim, rfq_id)) == (1 if applied else 2)
    finish(row, run, sim, before, [rfq_id])


@pytest.mark.faults_long
@pytest.mark.scenario("4c accept answer times out (applied)")
def test_accept_timeout(make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
                        start_daemon: Callable[..., Any], row: ReportRow) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT, venue={"read_timeout_s": 1}), sim)
    rfq_id = create_rfq(run)
    before = chain_rows(run.journal)
    sim.faults.delay(3, path="accept-quote", count=1)  # answered after the client gave up
    started = time.monotonic()
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])
    wait_for(lambda: accept_results(run, rfq_id), 10, "the accept to time out")
    assert accept_results(run, rfq_id) == ["unknown"]
    settle(run, rfq_id)
    row.recover_s = time.monotonic() - started
    assert len(accepts_at_sim(sim, rfq_id)) == 1  # never re-sent
    finish(row, run, sim, before, [rfq_id])


# --- 5: rate limits -----------------------------------------------------------------------------

@pytest.mark.faults_long
@pytest.mark.scenario("5a 429 burst: requests pause, nothing lost")
def test_429_burst_pauses_requests_and_loses_nothing(make_sim: Callable[..., Simulator],
                                                     settings_for: Callable[..., Any],
                                                     start_daemon: Callable[..., Any], row: ReportRow,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The venue sends no Retry-After, so rfqbot pauses its default minute; shortened here to 2 s.
    monkeypatch.setattr(rest, "DEFAULT_PAUSE_S", PAUSE_MS / 1000)
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    rfq_id = create_rfq(run)
    before = chain_rows(run.journal)
    sim.faults.rate_limit(429, count=3, penalty=False)
    started = time.monotonic()
    quote_three(sim, rfq_id, ["105900", "105800", "105950"], lifetime_s=600)  # outlive three pauses
    # The pause is real and client-wide: a request asked for right after the first 429 (here a
    # clock query, as the scheduler would send) is refused locally and never reaches the venue.
    # Probed on the client's own pause (not on the journal, whose polling could outlast a 2 s
    # pause on a loaded machine): with more than half a second of it left, ask at once.
    rest_client = run.daemon.marketplace.rest
    wait_for(lambda: rest_client.gate.paused_for() > 0.5, 10, "the first 429's pause")
    with pytest.raises(RateLimited):
        rest_client.request("GET", "/api/v1/time", signed=False)
    # On its own (no reconciliation pushed by the test): the same quotes, accepted after the pause.
    wait_for(lambda: run.journal.status(rfq_id) == "successful", 20, "the RFQ to settle after the pause")
    row.recover_s = time.monotonic() - started
    calls = venue_calls(run.journal)
    limited = [c for c in calls if c["http_status"] == 429]
    assert limited, "no 429 reached the daemon"
    results = run.journal.events("accept.result", rfq_id=rfq_id)
    for hit in limited:
        # Paused: after EVERY 429, no call reached the venue (any HTTP status, 429 included)
        # until the pause ran out. A call reached the venue if it has an HTTP status; it left
        # at local_ms - duration_ms (local_ms is when its answer was journaled). Calls that left
        # before this 429 was journaled were already in flight and do not count.
        start, end = hit["local_ms"], hit["local_ms"] + PAUSE_MS - 50
        reached = [c for c in calls if c["seq"] > hit["seq"] and c["http_status"] is not None
                   and start <= sent_ms(c) < end]
        assert reached == [], f"calls reached the venue during the pause after 429 seq {hit['seq']}: {reached}"
        # ...and the engine waited for the pause instead of re-deciding inside it: no accept
        # decided after this 429 was refused locally within the window (that was journal churn).
        churn = [r for r in results if r["payload"].get("decision_seq") is not None
                 and r["payload"]["decision_seq"] > hit["seq"] and r["payload"]["outcome"] == "rejected"
                 and r["payload"].get("venue_code") == "429" and start <= r["local_ms"] < end
                 and not any(c["seq"] < r["seq"] and c["seq"] > hit["seq"] and c["http_status"] == 429
                             for c in calls)]
        assert churn == [], f"accepts re-decided and refused locally inside the pause: {churn}"
    row.note = (f"{len(limited)} x 429, a request asked for inside the pause refused locally, "
                "pause 2 s (test setting; default 60 s)")
    finish(row, run, sim, before, [rfq_id])


@pytest.mark.scenario("5b 418: all requests stop, alert raised")
def test_418_stops_all_requests_and_alerts(make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
                                           row: ReportRow) -> None:
    sim = make_sim(**SLOW_WINDOW)
    alerter = Alerter()
    watch = AlertWatch(alerter)
    daemon = Daemon(settings_for(sim, strategies=BTC_LIMIT), Credentials(sim.api_key, sim.api_secret, source="sim"),
                    observers=(watch.observe,), engine_tick_s=0.05)
    journal = JournalView(daemon.settings.journal.path)
    try:
        daemon.start()
        wait_for(lambda: daemon.private_stream.state == "subscribed", 10, "the private stream")
        before = chain_rows(journal)
        sim.faults.rate_limit(418, count=1)
        started = time.monotonic()
        # Any signed request meets the 418: the listen-key keepalive, run now.
        daemon.scheduler.aps.modify_job("listen_key_keepalive", next_run_time=_now())
        wait_for(lambda: [a for a in alerter.sent if a.kind == "banned"], 10, "the banned alert")
        row.recover_s = time.monotonic() - started  # time to a safe stop (nothing more is sent)
        assert daemon.health()["banned"] is True
        # The alert is raised on the calling thread; the call's journal row follows via the writer.
        banned_calls = wait_for(lambda: [c for c in venue_calls(journal) if c["http_status"] == 418], 10,
                                "the 418 call in the journal")
        ban_seq = banned_calls[0]["seq"]
        # Trading goes on trying (an RFQ to create, the keepalive again): all refused locally.
        own_before = len(own_rfqs(sim))
        daemon.post(CreateRfqCommand(int(time.time() * 1000), "BTC", "USDT", Decimal("10000"),
                                     QuoteMode.REAL_TIME, 600, "after-ban", source="test"))
        daemon.scheduler.aps.modify_job("listen_key_keepalive", next_run_time=_now())
        failed = wait_for(lambda: journal.events("create.failed"), 10, "the create to be refused")
        assert failed[0]["payload"]["venue_code"] == "418"
        assert len(own_rfqs(sim)) == own_before  # nothing reached the venue
        reached = [c for c in venue_calls(journal) if c["seq"] > ban_seq and c["http_status"] is not None]
        assert reached == [], reached
        assert [a.severity for a in alerter.sent if a.kind == "banned"] == ["critical"]
        row.facts_lost = rows_lost(before, journal)
        row.duplicate_accepts = duplicate_accepts(sim)
        row.note = "recovery = time to a safe stop; resuming needs an operator restart"
        assert row.facts_lost == 0
    finally:
        daemon.stop("test finished", drain_s=3)


# --- 6: clock skew -------------------------------------------------------------------------------

@pytest.mark.parametrize("skew_ms", [pytest.param(3000, marks=pytest.mark.faults_long), -3000])
def test_clock_skew_is_resynced_on_1021(make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
                                        start_daemon: Callable[..., Any], row: ReportRow, skew_ms: int) -> None:
    row.scenario = f"6 venue clock {skew_ms / 1000:+.0f} s (-1021, resync)"
    sim = make_sim(**SLOW_WINDOW)
    # recvWindow 2 s: a venue 3 s ahead refuses as surely as one 3 s behind (timestamp rule).
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT, venue={"recv_window_ms": 2000}), sim)
    rfq_id = create_rfq(run)
    before = chain_rows(run.journal)
    sim.faults.clock_skew(skew_ms)
    started = time.monotonic()
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])
    settle(run, rfq_id)
    row.recover_s = time.monotonic() - started
    codes = [c["venue_code"] for c in venue_calls(run.journal) if c["seq"] > max(before)]
    assert "-1021" in codes
    assert abs(run.daemon.marketplace.venue_clock.offset_ms - skew_ms) < 500
    assert len(accepts_at_sim(sim, rfq_id)) == 1
    finish(row, run, sim, before, [rfq_id])


# --- 8: out-of-order rfqUpdates ------------------------------------------------------------------

@pytest.mark.scenario("8 rfqUpdates out of order")
def test_out_of_order_updates_never_move_an_rfq_back(make_sim: Callable[..., Simulator],
                                                     settings_for: Callable[..., Any],
                                                     start_daemon: Callable[..., Any], row: ReportRow) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    rfq_id = create_rfq(run)
    before = chain_rows(run.journal)
    sim.faults.reorder_updates(count=2)
    started = time.monotonic()
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])
    settle(run, rfq_id)
    row.recover_s = time.monotonic() - started
    pushes = [e for e in sim.truth("push") if e.get("topic") == "rfqUpdates" and e.get("rfq_id") == rfq_id]
    pushed = [e["status"] for e in pushes]
    venue = [e["to"] for e in sim.truth("status_change") if e["rfq_id"] == rfq_id]
    # The fault really happened: a push the simulator flagged as held back, written after a push
    # of a status the venue reached later (an older status after a newer one).
    assert any(e.get("reordered") is True for e in pushes), f"no push flagged reordered: {pushes}"
    rank = {status: i for i, status in enumerate(venue)}
    inverted = [e["status"] for i, e in enumerate(pushes) if e.get("reordered") is True
                and any(rank.get(p["status"], -1) > rank.get(e["status"], -1) for p in pushes[:i])]
    assert inverted, f"no older status was pushed after a newer one: pushed {pushed}, venue {venue}"
    row.note = f"pushed {pushed}, venue {venue}"
    finish(row, run, sim, before, [rfq_id])


def _now() -> Any:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)
