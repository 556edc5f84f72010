"""A pair the venue closes (or stops listing) after start stops being accepted without a
restart: the scheduler asks get-pairs again, the engine applies and journals the change."""

from __future__ import annotations

import dataclasses

import pytest

from rfqbot.config.schema import load_config_text
from rfqbot.config.checks import ConfigError
from rfqbot.events import Note, PairsRefreshed
from rfqbot.records import RfqStatus
from rfqbot.scheduler import SchedulerJobs
from tests.test_engine import BTC, Harness

ETH = dataclasses.replace(BTC, base="ETH")


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.journal.close()


def refreshed(h: Harness, *pairs) -> None:
    h.engine.handle(PairsRefreshed(h.now, tuple(pairs)))


def changes(h: Harness) -> list:
    return [{"changes": p["changes"], "added": p["added"]} for k, p in h.seen if k == "pairs.changed"]


def test_a_pair_closed_after_start_is_no_longer_accepted_and_reopens(h):
    h.update(RfqStatus.NEW)
    refreshed(h, dataclasses.replace(BTC, trading_status="CLOSED"))
    assert changes(h) == [{"changes": [{"pair": "BTC/USDT", "from": "OPENED", "to": "CLOSED"}], "added": []}]
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == []
    reason = h.rows("SELECT reason FROM decisions")[-1]["reason"]
    assert "trading status is CLOSED" in reason
    refreshed(h, BTC)
    h.best(h.quote("Q2", "91", 1))
    assert h.actions.accepts == [("accept", "R1", "Q2")]


def test_a_pair_missing_from_the_answer_counts_as_closed(h):
    h.update(RfqStatus.NEW)
    refreshed(h, ETH)
    assert changes(h)[0]["changes"][0]["to"] == "CLOSED" and changes(h)[0]["added"] == ["ETH/USDT"]
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == []


def test_a_pair_listed_after_start_gets_market_context_from_then_on(h):
    """Spot ticks and public quotes of a pair added by a refresh reach the strategies' context
    (before the fix they were dropped until a restart: the market book knew only start's pairs)."""
    from decimal import Decimal

    from rfqbot.events import PublicQuote, SpotTick

    def feed() -> None:
        h.engine.handle(SpotTick(h.now, "ETHUSDT", Decimal("3500.5"), h.now, "trade", "{}"))
        h.engine.handle(PublicQuote(h.now, h.quote("PQ1", "3501", rfq="OTHER", buy="ETH"), "{}"))

    feed()
    assert h.engine.market.context("ETH/USDT").references == {}
    refreshed(h, BTC, ETH)
    assert changes(h) == [{"changes": [], "added": ["ETH/USDT"]}]
    feed()
    context = h.engine.market.context("ETH/USDT")
    assert context.references["spot"].price == Decimal("3500.5")
    assert [q.quote_id for q in context.recent_quotes] == ["PQ1"]
    assert h.engine.market.context("BTC/USDT").recent_quotes == ()   # nothing leaked to the old pair


def test_an_empty_answer_is_ignored_and_journaled(h):
    h.update(RfqStatus.NEW)
    refreshed(h)
    assert [k for k, _ in h.seen if k.startswith("pairs.")] == ["pairs.ignored"]
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == [("accept", "R1", "Q1")]


def test_an_unchanged_answer_journals_nothing(h):
    refreshed(h, BTC)
    assert [k for k, _ in h.seen if k.startswith("pairs.")] == []


class PairsVenue:
    def __init__(self, answer):
        self.answer = answer

    def get_pairs(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_scheduler_job_posts_the_answer_or_a_failure_note():
    posted = []
    jobs = SchedulerJobs(marketplace=PairsVenue([BTC]), post=posted.append, reconcile_targets=lambda: [])
    jobs.refresh_pairs()
    assert isinstance(posted[0], PairsRefreshed) and posted[0].pairs == (BTC,)
    jobs = SchedulerJobs(marketplace=PairsVenue(RuntimeError("HTTP 502")), post=posted.append,
                         reconcile_targets=lambda: [])
    jobs.refresh_pairs()
    assert isinstance(posted[1], Note) and posted[1].kind == "pairs_refresh_failed"
    assert "HTTP 502" in posted[1].detail["error"]


def test_the_interval_is_configurable_and_bounded():
    assert load_config_text("{}", file="c.yaml").pairs_refresh.every_s == 300
    assert load_config_text("pairs_refresh:\n  every_s: 60\n", file="c.yaml").pairs_refresh.every_s == 60
    with pytest.raises(ConfigError, match="pairs_refresh.every_s"):
        load_config_text("pairs_refresh:\n  every_s: 5\n", file="c.yaml")


class PingVenue:
    def __init__(self, fail=False):
        self.pings = 0
        self.fail = fail

    def ping(self):
        self.pings += 1
        if self.fail:
            raise RuntimeError("connection refused")


def test_keep_warm_pings_and_survives_a_failure():
    venue = PingVenue()
    jobs = SchedulerJobs(marketplace=venue, post=lambda ev: None, reconcile_targets=lambda: [])
    jobs.keep_warm()
    assert venue.pings == 1
    failing = PingVenue(fail=True)
    SchedulerJobs(marketplace=failing, post=lambda ev: None, reconcile_targets=lambda: []).keep_warm()
    assert failing.pings == 1          # logged, not raised


def test_keep_warm_is_on_by_default_and_can_be_turned_off():
    from rfqbot.scheduler import build_scheduler_from_settings
    on = build_scheduler_from_settings(load_config_text("{}", file="c.yaml"), marketplace=PingVenue(),
                                       post=lambda ev: None, reconcile_targets=list)
    assert on.aps.get_job("keep_warm").trigger.interval.total_seconds() == 20
    off = build_scheduler_from_settings(load_config_text("keep_warm:\n  every_s: 0\n", file="c.yaml"),
                                        marketplace=PingVenue(), post=lambda ev: None, reconcile_targets=list)
    assert "keep_warm" not in off.job_ids()
    with pytest.raises(ConfigError, match="keep_warm.every_s"):
        load_config_text("keep_warm:\n  every_s: 2\n", file="c.yaml")


def test_keep_warm_logs_an_outage_once_and_its_end():
    import structlog
    from structlog.testing import capture_logs
    venue = PingVenue(fail=True)
    jobs = SchedulerJobs(marketplace=venue, post=lambda ev: None, reconcile_targets=lambda: [])
    with capture_logs() as logs:
        for _ in range(4):
            jobs.keep_warm()
        venue.fail = False
        jobs.keep_warm()
    events = [entry["event"] for entry in logs]
    assert venue.pings == 5
    assert events.count("keep_warm_failed") == 1 and events.count("keep_warm_recovered") == 1
    structlog.reset_defaults()
