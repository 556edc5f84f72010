"""Accepting against the simulator: the best allowed quote, never above the limit, at most once,
never a quote that expires too soon. The venue's ground truth is the referee: what reached it,
not what the daemon thinks it sent.
"""

from __future__ import annotations

from typing import Any, Callable

from rfqbot.sim import Simulator
from tests.integration.helpers import (
    accepts_at_sim, create_rfq, idle, quote_three, sim_statuses, wait_for,
)

BTC_LIMIT = {"BTC/USDT": [{"use": "price_limit", "limit_price": "106000"}]}
# bestQuote only once three quotes are in (3 s window at time_scale 10): the first push
# carries every injected quote, so "the best" is well defined.
SLOW_WINDOW = dict(time_scale=10, bestquote_window_s=30, bestquote_min_quotes=3)


def test_accepts_the_best_quote_within_the_limit(make_sim: Callable[..., Simulator],
                                                 settings_for: Callable[..., Any],
                                                 start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    rfq_id = create_rfq(run)
    # Buying BTC: lower is better. 106500 is above the limit; 105800 is the best.
    above, good, best = quote_three(sim, rfq_id, ["106500", "105900", "105800"])

    wait_for(lambda: sim.rfq_status(rfq_id) == "successful", 10, "the venue to settle the RFQ")
    wait_for(lambda: run.journal.status(rfq_id) == "successful", 10, "the journal to show successful")
    received = accepts_at_sim(sim, rfq_id)
    assert [e["quote_id"] for e in received] == [best]
    # "successful" comes over the private stream ~20 ms after the accept; the accept's own answer
    # (accept.result, posted by a REST worker) may be journaled after it: wait for that row too.
    wait_for(lambda: run.journal.events("accept.result", rfq_id=rfq_id), 10, "the accept's result in the journal")
    decisions = [d for d in run.journal.decisions(rfq_id) if d["action"] == "accept"]
    assert len(decisions) == 1
    assert decisions[0]["quote_id"] == best and str(decisions[0]["price"]) == "105800"
    assert decisions[0]["result_outcome"] == "accepted"
    assert above not in {e["quote_id"] for e in received} and good not in {e["quote_id"] for e in received}
    assert run.journal.transitions(rfq_id) == sim_statuses(sim, rfq_id) == \
        ["new", "accepted", "processing", "successful"]
    # The idle rehearsals ran in the live daemon, hooks and all (a failing one would have turned
    # them off), and none reached the venue or the journal.
    health = run.daemon.health()
    assert health["rehearsals"] > 0 and health["rehearsals_off"] is None
    assert all(e["rfq_id"] != "rfqbot-rehearsal" for e in sim.truth("accept_received"))
    assert run.journal.status("rfqbot-rehearsal") is None


def test_never_accepts_above_the_limit(make_sim: Callable[..., Simulator],
                                       settings_for: Callable[..., Any],
                                       start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    rfq_id = create_rfq(run)
    quote_three(sim, rfq_id, ["106500", "106001", "106700"])
    wait_for(lambda: run.journal.decisions(rfq_id), 10, "a decision on the three quotes")
    # One better quote that is still one unit above the limit: a fresh push, a fresh decision.
    sim.faults.quote(rfq_id, "106000.00001", lp_name="LP-D")
    wait_for(lambda: len(run.journal.decisions(rfq_id)) >= 2, 10, "a decision on the fourth quote")
    wait_for(lambda: idle(run), 5, "no venue call in flight")

    assert accepts_at_sim(sim, rfq_id) == []
    decisions = run.journal.decisions(rfq_id)
    assert {d["action"] for d in decisions} == {"none"}
    assert all("above buy limit 106000" in d["verdicts_text"] for d in decisions)
    assert sim.rfq_status(rfq_id) == "new"


def test_duplicate_best_quote_frames_send_one_accept(make_sim: Callable[..., Simulator],
                                                     settings_for: Callable[..., Any],
                                                     start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    run = start_daemon(settings_for(sim, strategies=BTC_LIMIT), sim)
    rfq_id = create_rfq(run)
    # Every private frame from now on arrives twice; the accept answer is slowed down so the
    # duplicate bestQuote surely lands while the first accept is still outstanding.
    sim.faults.inject("duplicate", stream="private", count=20)
    sim.faults.delay(0.5, path="accept-quote", count=1)
    _, _, best = quote_three(sim, rfq_id, ["105950", "105900", "105850"])

    wait_for(lambda: run.journal.status(rfq_id) == "successful", 10, "the journal to show successful")
    wait_for(lambda: idle(run), 5, "no venue call in flight")
    pushes = [e for e in sim.truth("push") if e.get("topic") == "bestQuote" and e.get("rfq_id") == rfq_id]
    assert any(e.get("duplicate") for e in pushes), "the fault did not duplicate bestQuote"
    frames = run.journal.events("frame.best_quotes", rfq_id=rfq_id)
    assert len(frames) >= 2 and frames[0]["payload"]["raw"] == frames[1]["payload"]["raw"]
    assert [e["quote_id"] for e in accepts_at_sim(sim, rfq_id)] == [best]
    assert [d["action"] for d in run.journal.decisions(rfq_id)].count("accept") == 1
    skipped = run.journal.events("decision.skipped", rfq_id=rfq_id)
    assert skipped and "at most one accept per RFQ" in skipped[0]["payload"]["reason"]


def test_quote_about_to_expire_is_not_accepted(make_sim: Callable[..., Simulator],
                                               settings_for: Callable[..., Any],
                                               start_daemon: Callable[..., Any]) -> None:
    sim = make_sim(**SLOW_WINDOW)
    settings = settings_for(sim, strategies=BTC_LIMIT, engine={"min_time_left_ms": 3000})
    run = start_daemon(settings, sim)
    rfq_id = create_rfq(run)
    # lifetime 10 venue seconds at time_scale 10: each quote lives 1 s, less than 3 s.
    quote_three(sim, rfq_id, ["105800", "105700", "105600"], lifetime_s=10)

    decisions = wait_for(lambda: run.journal.decisions(rfq_id), 10, "a decision")
    wait_for(lambda: idle(run), 5, "no venue call in flight")
    assert accepts_at_sim(sim, rfq_id) == []
    first = decisions[0]
    assert first["action"] == "none"
    assert "expire too soon" in first["reason"] and "min_time_left_ms 3000" in first["reason"]
