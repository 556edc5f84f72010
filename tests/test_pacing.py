"""Pacing margins and the 418 ban's scope (an IP ban: every key of the process stops)."""

from __future__ import annotations

import pytest

from rfqbot.clock import FakeClock, SystemClock
from rfqbot.errors import Banned
from rfqbot.venue.pacing import WINDOW_SLACK_S, RateGate, SlidingWindow, ban_for, gate_for


def test_the_window_slack_covers_latency_jitter_not_just_rounding() -> None:
    assert WINDOW_SLACK_S >= 0.1
    window = SlidingWindow(2)
    assert window.reserve(0.0) == 0.0 and window.reserve(0.0) == 0.0
    assert window.reserve(0.5) == pytest.approx(1.0 + WINDOW_SLACK_S)


def test_a_418_on_one_key_stops_every_key_of_the_process() -> None:
    clock = FakeClock()
    desk_a, desk_b = gate_for(clock, "key-of-desk-a"), gate_for(clock, "key-of-desk-b")
    assert desk_a is not desk_b
    desk_a.ban()
    assert desk_b.banned
    with pytest.raises(Banned, match="earlier in this process"):
        desk_b.before_send("order", "/api/v1/market-place/accept-quote")
    assert RateGate(clock).banned   # a gate made later in the same process too


def test_a_429_pause_stays_per_key() -> None:
    clock = FakeClock()
    desk_a, desk_b = gate_for(clock, "pause-a"), gate_for(clock, "pause-b")
    desk_a.pause(30)
    assert desk_a.paused_for() == 30 and desk_b.paused_for() == 0


def test_every_real_clock_shares_one_ban_and_fake_clocks_are_separate_processes() -> None:
    """Daemon, doctor and CLI each make their own SystemClock; the ban must not care."""
    assert ban_for(SystemClock()) is ban_for(SystemClock())
    assert ban_for(FakeClock()) is not ban_for(FakeClock())
    real = RateGate(SystemClock())
    try:
        RateGate(SystemClock()).ban()
        assert real.banned
    finally:   # tests/conftest.py lifts it too; be explicit here
        from rfqbot.venue.pacing import lift_process_ban

        lift_process_ban()
    assert not real.banned
