"""A busy run: scheduled RFQs, four LPs, background traffic of other accounts, rate limits on.

The audit promise: for every RFQ of the account, the journal's status transitions are the
venue's status changes, in the same order, none missing, none invented.
"""

from __future__ import annotations

from typing import Any, Callable

from rfqbot.sim import Simulator
from tests.integration.helpers import SIM_ACCOUNT, accepts_at_sim, sim_statuses, wait_for

FINAL = {"successful", "expired", "cancelled", "declined", "failed"}


def own_rfqs(sim: Simulator) -> list[str]:
    return [e["rfq_id"] for e in sim.truth("rfq_created") if e["owner"] == SIM_ACCOUNT]


def test_journal_transitions_match_the_venue_for_every_own_rfq(make_sim: Callable[..., Simulator],
                                                                settings_for: Callable[..., Any],
                                                                start_daemon: Callable[..., Any]) -> None:
    # time_scale 100: quotes live 0.6 s, RFQs expire 6 s after creation, LPs answer in ms.
    sim = make_sim(time_scale=100, lps=4, background_rfqs_per_min=6)  # 10/s real
    settings = settings_for(
        sim,
        strategies={
            "BTC/USDT": [{"use": "price_limit", "limit_price": "200000"}],   # buying BTC: always
            "ETH/USDT": [{"use": "price_limit", "limit_price": "5000"}],     # selling ETH: never
        },
        engine={"min_time_left_ms": 100},
        rfqs=[
            {"every": "1s", "buy": "BTC", "sell": "USDT", "sell_amount": "2000", "mode": "real-time",
             "expire_sec": 600, "client_id_prefix": "busy-btc"},
            {"every": "1s", "buy": "USDT", "sell": "ETH", "sell_amount": "0.5", "mode": "delayed",
             "expire_sec": 600, "client_id_prefix": "busy-eth"},
        ])
    run = start_daemon(settings, sim)
    wait_for(lambda: len(own_rfqs(sim)) >= 6, 15, "six RFQs of our own")
    for job in ("rfq_0", "rfq_1"):
        run.daemon.scheduler.aps.pause_job(job)
    created = own_rfqs(sim)  # a create already in flight may add one more; counted below
    wait_for(lambda: all(sim.rfq_status(r) in FINAL for r in own_rfqs(sim)), 20,
             "every own RFQ to end at the venue")
    mine = own_rfqs(sim)
    assert len(mine) >= len(created) >= 6
    wait_for(lambda: all(run.journal.status(r) == sim.rfq_status(r) for r in mine), 15,
             "the journal to reach the venue's final status for every RFQ")

    for rfq_id in mine:
        assert run.journal.transitions(rfq_id) == sim_statuses(sim, rfq_id), rfq_id
    outcomes = {sim.rfq_status(r) for r in mine}
    assert {"successful", "expired"} <= outcomes  # both paths were exercised
    for rfq_id in mine:
        accepted = accepts_at_sim(sim, rfq_id)
        # at most one accept taken per RFQ; a second request only after a definite refusal
        taken = [e for e in sim.truth("accept_result") if e.get("rfq_id") == rfq_id
                 and e.get("outcome") == "accepted"]
        assert len(taken) <= 1
        if sim.rfq_status(rfq_id) == "expired":
            assert taken == [], f"{rfq_id} expired although an accept was taken"
        else:
            assert accepted
    background = [e for e in sim.truth("rfq_created") if e["owner"] != SIM_ACCOUNT]
    assert background, "no background traffic: the test would not show own/other separation"
    journaled = {r["rfq_id"] for r in run.journal.query("SELECT DISTINCT rfq_id FROM events "
                                                        "WHERE kind = 'rfq.transition'")}
    assert journaled == set(mine)  # other accounts' RFQs are market data, not ours
    written = run.daemon.marketplace.rest.orders_written
    assert written["engine"] >= 1   # accepts left from the engine thread right after their commit
    at_venue = sum(len(accepts_at_sim(sim, r)) for r in mine)
    creates = len([e for e in sim.truth("rfq_created") if e["owner"] == SIM_ACCOUNT])
    assert written["engine"] + written["worker"] >= at_venue + creates   # every order that reached the venue counted
    assert not run.journal.events("frame.rejected")
    assert not run.journal.events("engine.error")
