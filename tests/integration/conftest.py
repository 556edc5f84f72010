"""Fixtures for the daemon-against-simulator integration tests (TLS on loopback).

Every test gets its own simulator (its own port, CA, seed and API key), a daemon built from
YAML text exactly as ``rfqbot run`` would build it, and a journal in ``tmp_path``. Timings are
shortened through the same config keys a user would set, and the simulator's ``time_scale``
shrinks venue durations (quote lifetimes, RFQ expiry, server pings). Waits are bounded polls on
the journal or the simulator's ground truth; a timeout fails with what was being waited for.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from rfqbot.config.schema import Settings, load_config_text
from rfqbot.config.credentials import Credentials
from rfqbot.daemon import Daemon
from rfqbot.sim import SimConfig, Simulator
from tests.integration.helpers import JournalView, daemon_yaml

_seeds = itertools.count(101)

# Venue side: no LPs and no background traffic unless a test asks (tests inject the quotes
# they need), fast server pings so the private stream's staleness can be tested in seconds.
QUIET_SIM: dict[str, Any] = dict(tls=True, lps=0, background_rfqs_per_min=0, spot_streams=False,
                                 rate_limits=True)


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    """``make_sim(**SimConfig overrides)`` -> a started TLS simulator, stopped at teardown."""
    sims: list[Simulator] = []

    def factory(**overrides: Any) -> Simulator:
        # A fresh seed per simulator: a new API key, so client-side pacing state (kept per key)
        # never carries over from one test to the next.
        fields = {**QUIET_SIM, "seed": next(_seeds), **overrides}
        # Server pings every 0.5 real seconds whatever the scale (private_stale_after_s is 2).
        fields.setdefault("private_ping_interval_s", 0.5 * float(fields.get("time_scale", 1.0)))
        sim = Simulator(SimConfig(**fields)).start()
        sims.append(sim)
        return sim

    yield factory
    for sim in sims:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim()


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    """``settings_for(sim, strategies=..., **yaml sections)`` -> validated ``Settings``."""

    def build(sim: Simulator, **kwargs: Any) -> Settings:
        text = daemon_yaml(sim, tmp_path / "journal.db", **kwargs)
        return load_config_text(text, file=str(tmp_path / "config.yaml"))

    return build


class RunningDaemon:
    """A started ``Daemon`` plus a reader of its journal."""

    def __init__(self, daemon: Daemon, sim: Simulator) -> None:
        self.daemon = daemon
        self.sim = sim
        self.journal = JournalView(daemon.settings.journal.path)

    def stop(self) -> None:
        self.daemon.stop("test finished", drain_s=3)


@pytest.fixture
def start_daemon() -> Iterator[Callable[[Settings, Simulator], RunningDaemon]]:
    """``start_daemon(settings, sim)`` -> a running daemon; always stopped at teardown."""
    running: list[RunningDaemon] = []

    def start(settings: Settings, sim: Simulator) -> RunningDaemon:
        daemon = Daemon(settings, Credentials(sim.api_key, sim.api_secret, source="simulator"),
                        engine_tick_s=0.05)
        run = RunningDaemon(daemon, sim)
        running.append(run)
        daemon.start()
        return run

    yield start
    for run in running:
        run.stop()
