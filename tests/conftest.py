"""Suite-wide fixtures: only what keeps one test from leaking into the next."""

from __future__ import annotations

from typing import Iterator

import pytest

from rfqbot.venue.pacing import lift_process_ban


@pytest.fixture(autouse=True)
def _no_ip_ban_leaks_between_tests() -> Iterator[None]:
    """A 418 bans the whole process (it is an IP ban); in the test process that would stop
    every later test that talks to a venue on the real clock."""
    yield
    lift_process_ban()
