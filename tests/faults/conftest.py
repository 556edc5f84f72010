"""Fixtures for the fault-injection suite: the integration fixtures (a TLS simulator per test,
config from YAML, a running daemon) plus ``row``, this scenario's line in the fault report.

``make faults`` (``python -m tests.faults.report``) sets ``RFQBOT_FAULTS_REPORT`` to a JSONL
file; each scenario test appends its row there at teardown, with ``recovered`` taken from the
test's own outcome: a scenario "recovered" only if every assertion of its test held.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import pytest

from tests.faults.support import ReportRow
from tests.integration.conftest import make_sim, settings_for, sim, start_daemon  # noqa: F401 - fixtures

REPORT_ENV = "RFQBOT_FAULTS_REPORT"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Iterator[ReportRow]:
    """The report row of this scenario; the test fills in its measurements."""
    marker = request.node.get_closest_marker("scenario")
    name = marker.args[0] if marker else request.node.name
    entry = ReportRow(scenario=name)
    yield entry
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    call = getattr(request.node, "rep_call", None)
    entry.recovered = bool(call is not None and call.passed)
    if call is not None and call.failed:
        entry.note = (entry.note + " " if entry.note else "") + str(call.longrepr).strip().splitlines()[-1][:160]
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry.as_dict()) + "\n")
