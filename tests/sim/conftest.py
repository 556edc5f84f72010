"""Fixtures for the simulator tests; the helpers live in tests/sim/helpers.py."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from rfqbot.sim import SimConfig, Simulator
from tests.sim.helpers import OPEN_SESSIONS, VenueClient, WsReader, quiet_config


@pytest.fixture(autouse=True)
def close_sessions() -> Iterator[None]:
    yield
    while OPEN_SESSIONS:
        OPEN_SESSIONS.pop().close()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    sims: list[Simulator] = []

    def factory(config: SimConfig | None = None, **overrides: Any) -> Simulator:
        sim = Simulator(config or quiet_config(**overrides)).start()
        sims.append(sim)
        return sim

    yield factory
    for sim in sims:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim()


@pytest.fixture
def client(sim: Simulator) -> VenueClient:
    return VenueClient(sim)


@pytest.fixture
def readers() -> Iterator[list[WsReader]]:
    opened: list[WsReader] = []
    yield opened
    for reader in opened:
        reader.close()
