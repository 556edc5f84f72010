"""The documented bestQuote rule: >= 3 valid quotes within 3 s, else all valid after 3 s; the
latest quote per LP; ranking rfqMode > price > quote time; pushed again when the set changes."""

from __future__ import annotations

import queue
from decimal import Decimal
from typing import Callable

import pytest

from rfqbot.sim import Simulator
from tests.sim.helpers import VenueClient, WsReader, open_private, wait_until


def setup(make_sim: Callable[..., Simulator], readers: list[WsReader], **config: object
          ) -> tuple[Simulator, VenueClient, WsReader]:
    sim = make_sim(**config)
    client = VenueClient(sim)
    return sim, client, open_private(sim, readers, client.listen_key())


def best_pushes(sim: Simulator, rfq_id: str) -> list[dict]:
    return [e for e in sim.truth("push") if e["topic"] == "bestQuote" and e["rfq_id"] == rfq_id]


def test_three_quotes_inside_the_window_push_at_once(make_sim: Callable[..., Simulator],
                                                     readers: list[WsReader]) -> None:
    sim, client, private = setup(make_sim, readers, bestquote_window_s=30.0)
    rfq_id = client.create_rfq()
    sim.faults.quote(rfq_id, "100010", lp_name="A")
    sim.faults.quote(rfq_id, "100005", lp_name="B")
    private.topic("rfqUpdates", rfq_id, status="new")
    with pytest.raises(AssertionError):
        private.topic("bestQuote", rfq_id, timeout=0.3)      # two quotes: keep waiting
    sim.faults.quote(rfq_id, "100020", lp_name="C")
    rows = private.topic("bestQuote", rfq_id, timeout=2)["data"]   # long before 30 s
    assert [r["lpName"] for r in rows] == ["B", "A", "C"]            # buying base: lower first
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["isBestPrice"] is True and rows[1]["isBestPrice"] is False
    assert all(r["inquiryOrderId"] == rfq_id and r["dateExpiry"] > 1e12 for r in rows)


def test_fewer_quotes_are_pushed_when_the_window_ends(make_sim: Callable[..., Simulator],
                                                      readers: list[WsReader]) -> None:
    sim, client, private = setup(make_sim, readers, time_scale=10)
    rfq_id = client.create_rfq()
    quote_id = sim.faults.quote(rfq_id, "100000", lp_name="A")
    rows = private.topic("bestQuote", rfq_id, timeout=3)["data"]
    assert [r["quoteOrderId"] for r in rows] == [quote_id]
    created = next(e for e in sim.truth("rfq_created") if e["rfq_id"] == rfq_id)
    wait_until(lambda: bool(best_pushes(sim, rfq_id)), what="the push to be recorded")
    assert best_pushes(sim, rfq_id)[0]["mono_ns"] - created["mono_ns"] >= 0.29e9  # 3 s / 10


def test_no_quotes_no_push_then_the_first_late_quote_is_pushed(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim, client, private = setup(make_sim, readers, time_scale=20)
    rfq_id = client.create_rfq()
    with pytest.raises(AssertionError):
        private.topic("bestQuote", rfq_id, timeout=0.4)
    late = sim.faults.quote(rfq_id, "100000", lp_name="A")
    assert [r["quoteOrderId"] for r in private.topic("bestQuote", rfq_id)["data"]] == [late]


def test_latest_quote_per_lp_and_push_again_on_change(make_sim: Callable[..., Simulator],
                                                      readers: list[WsReader]) -> None:
    sim, client, private = setup(make_sim, readers, bestquote_min_quotes=1)
    rfq_id = client.create_rfq()
    sim.faults.quote(rfq_id, "100000", lp_name="A")
    private.topic("bestQuote", rfq_id)
    newer = sim.faults.quote(rfq_id, "99990", lp_name="A")
    rows = private.topic("bestQuote", rfq_id)["data"]
    assert [r["quoteOrderId"] for r in rows] == [newer]
    other = sim.faults.quote(rfq_id, "99980", lp_name="B")
    rows = private.topic("bestQuote", rfq_id)["data"]
    assert [r["quoteOrderId"] for r in rows] == [other, newer]
    active = client.json("GET", f"/api/v1/market-place/rfq-active/{rfq_id}")
    assert [(a["quoteId"], a["rank"]) for a in active] == [(other, 1), (newer, 2)]


def test_rfq_mode_ranks_before_price_and_selling_base_prefers_higher(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim, client, private = setup(make_sim, readers, bestquote_min_quotes=3)
    rfq_id = client.create_rfq(buy="USDT", sell="BTC", amount="1")
    sim.faults.quote(rfq_id, "100100", lp_name="Delayed", mode="delayed")  # best price, other mode
    sim.faults.quote(rfq_id, "100000", lp_name="Low")
    sim.faults.quote(rfq_id, "100050", lp_name="High")
    rows = private.topic("bestQuote", rfq_id)["data"]
    assert [r["lpName"] for r in rows] == ["High", "Low", "Delayed"]
    assert [r["quoteSettleType"] for r in rows] == [2, 2, 1]
    assert rows[0]["buyAmount"] == "100050" and rows[0]["direction"] == 2


def test_expired_quotes_leave_the_set(make_sim: Callable[..., Simulator],
                                      readers: list[WsReader]) -> None:
    sim, client, private = setup(make_sim, readers, time_scale=10, bestquote_min_quotes=2)
    rfq_id = client.create_rfq()
    sim.faults.quote(rfq_id, "100000", lp_name="Short", lifetime_s=3)
    keeper = sim.faults.quote(rfq_id, "100100", lp_name="Long", lifetime_s=600)
    assert len(private.topic("bestQuote", rfq_id)["data"]) == 2
    rows = private.topic("bestQuote", rfq_id, timeout=3)["data"]
    assert [r["quoteOrderId"] for r in rows] == [keeper]


def test_other_accounts_rfqs_never_reach_my_private_stream(
        make_sim: Callable[..., Simulator], readers: list[WsReader]) -> None:
    sim, client, private = setup(make_sim, readers, time_scale=50, background_rfqs_per_min=60,
                                 lps=2)
    client.create_rfq()
    mine = {e["rfq_id"] for e in sim.truth("rfq_created") if e["owner"] == "sim-account"}
    private.topic("bestQuote", timeout=3)
    frames = []
    while True:
        try:
            frames.append(private.next_raw(timeout=0.2))
        except queue.Empty:
            break
    pushed = {e["rfq_id"] for e in sim.truth("push") if e["stream"] == "private"}
    assert pushed and pushed <= mine
    assert any(e["owner"] != "sim-account" for e in sim.truth("rfq_created"))
    assert all(Decimal(r["price"]) > 0 for f in private.seen if isinstance(f, dict)
               and f.get("topic") == "bestQuote" for r in f["data"])
