"""Accepts whose answer is lost (HTTP 5xx): never retried, settled by reconciliation.

The venue may or may not have applied an accept that answered 5xx. Sending it again could
double a trade; so the daemon blocks the RFQ and asks the venue (``rfqs`` history) what
happened. These tests make the simulator apply, or not apply, the accept behind the 5xx.
"""

from __future__ import annotations

from typing import Any, Callable

from rfqbot.sim import Simulator
from tests.integration.helpers import accepts_at_sim, create_rfq, quote_three, wait_for

BTC_LIMIT = {"BTC/USDT": [{"use": "price_limit", "limit_price": "106000"}]}
SLOW_WINDOW = dict(time_scale=10, bestquote_window_s=30, bestquote_min_quotes=3)


def reconciling(run: Any, predicate: Callable[[], Any]) -> Callable[[], Any]:
    """``predicate``, asking the scheduler for a reconciliation round before each look.

    Moving the real job's next run to now (as a stream resubscription does) instead of waiting
    ``reconcile.every_s``; a round already running makes APScheduler skip the extra one, so
    the request is repeated until the condition holds.
    """
    def check() -> Any:
        value = predicate()
        if not value:
            run.daemon.scheduler.reconcile_now()
        return value
    return check


def accept_results(run: Any, rfq_id: str) -> list[str]:
    return [r["payload"]["outcome"] for r in run.journal.events("accept.result", rfq_id=rfq_id)]


def test_5xx_on_an_applied_accept_is_not_resent_and_reconciles_to_successful(
        make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
        start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    rfq_id = create_rfq(run)
    sim.faults.accept_5xx(applied=True, status=502)
    # No pushes at all from here: quotes and outcome can only be learnt by asking the venue.
    sim.faults.silence("private", on=True)
    _, best, _ = quote_three(sim, rfq_id, ["105900", "105800", "105950"])

    wait_for(reconciling(run, lambda: accept_results(run, rfq_id)), 15, "the accept to be answered")
    assert accept_results(run, rfq_id) == ["unknown"]
    wait_for(reconciling(run, lambda: run.journal.status(rfq_id) == "successful"), 15,
             "reconciliation to settle the RFQ")

    assert sim.rfq_status(rfq_id) == "successful"
    assert [e["quote_id"] for e in accepts_at_sim(sim, rfq_id)] == [best]
    faults = sim.truth("accept_fault")
    assert len(faults) == 1 and faults[0]["applied"] is True and faults[0]["http_status"] == 502
    last = run.journal.events("rfq.transition", rfq_id=rfq_id)[-1]["payload"]
    assert last["to"] == "successful" and last["cause"].startswith("reconcile.history")
    assert [d["action"] for d in run.journal.decisions(rfq_id)].count("accept") == 1
    sim.faults.silence("private", on=False)


def test_5xx_on_an_accept_not_applied_is_not_retried_until_reconciled(
        make_sim: Callable[..., Simulator], settings_for: Callable[..., Any],
        start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    rfq_id = create_rfq(run)
    sim.faults.accept_5xx(applied=False, status=500)
    quote_three(sim, rfq_id, ["105900", "105800", "105950"])

    wait_for(lambda: accept_results(run, rfq_id), 10, "the accept to be answered")
    assert accept_results(run, rfq_id) == ["unknown"]
    assert len(accepts_at_sim(sim, rfq_id)) == 1  # not retried by the REST layer either
    # A better quote while in doubt: journaled, but no accept may leave before reconciliation.
    sim.faults.quote(rfq_id, "105700", lp_name="LP-D")
    wait_for(lambda: len(run.journal.events("frame.best_quotes", rfq_id=rfq_id)) >= 2, 10, "the new bestQuote")

    wait_for(reconciling(run, lambda: run.journal.status(rfq_id) == "successful"), 15,
             "reconciliation, then a second accept, to settle the RFQ")
    settled = [r["seq"] for r in run.journal.events("rfq.state", rfq_id=rfq_id)
               if "accept in doubt settled" in r["payload"]["cause"]]
    accepts = [d for d in run.journal.decisions(rfq_id) if d["action"] == "accept"]
    assert len(settled) == 1 and len(accepts) == 2
    assert accepts[0]["seq"] < settled[0] < accepts[1]["seq"]
    assert accepts[1]["quote_id"] == accepts_at_sim(sim, rfq_id)[1]["quote_id"]
    assert str(accepts[1]["price"]) == "105700"
    assert len(accepts_at_sim(sim, rfq_id)) == 2
    assert sim.rfq_status(rfq_id) == "successful"
