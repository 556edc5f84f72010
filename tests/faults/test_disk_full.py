"""Scenario 10: the journal's disk fills up while the daemon trades.

Disk full is simulated with SQLite's ``PRAGMA max_page_count`` on the daemon's own writer
connection (set to the pages the file has): SQLite then fails the next write that needs a new
page with SQLITE_FULL, "database or disk is full", the error a full filesystem gives, and rolls
the transaction back as it would. Why not a real small filesystem: the suite runs as root in a
container, where a loop or tmpfs mount needs privileges a test should not take, and chmod does
not stop root. A read-only journal fails the same write path with SQLITE_READONLY and is
handled by the same code (``sqlite3.Error`` from the journal).

The daemon runs with its operations layer (``Operations``: monitor, alerts) as under
``rfqbot run``. It must stop deciding (no accept leaves without its committed decision), raise
a CRITICAL ``journal_failed`` alert, and lose nothing that was committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from rfqbot.ops.alerts import Alerter
from rfqbot.clock import SystemClock
from rfqbot.config.credentials import Credentials
from rfqbot.daemon import Daemon
from rfqbot.journal.store import Journal
from rfqbot.ops.service import Operations, status_line
from rfqbot.sim import Simulator
from tests.faults.support import ReportRow, chain_rows, duplicate_accepts, rows_lost
from tests.integration.helpers import JournalView, accepts_at_sim, quote_three, wait_for
from tests.sim.helpers import VenueClient

REPO = Path(__file__).resolve().parents[2]
BTC_LIMIT = {"BTC/USDT": [{"use": "price_limit", "limit_price": "106000"}]}


def fill_disk(journal: Journal) -> None:
    with journal._lock:  # the writer's own connection, between two of its transactions
        pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]
        journal._conn.execute(f"PRAGMA max_page_count = {pages}")


def make_read_only(journal: Journal) -> None:
    """The journal turns read-only under the daemon (a remount, a revoked permission).

    ``query_only`` makes SQLite refuse every write on the writer's connection with
    SQLITE_READONLY, as a read-only filesystem does, without root's chmod immunity.
    """
    with journal._lock:
        journal._conn.execute("PRAGMA query_only = ON")


BREAKERS = {"disk_full": fill_disk, "read_only": make_read_only}


def accepts_without_committed_decision(sim: Simulator, journal: JournalView) -> list[str]:
    decided = {r["quote_id"] for r in journal.events("decision") if r["payload"].get("action") == "accept"}
    return [e["quote_id"] for e in sim.truth("accept_received")
            if e.get("action") == "accept" and e["quote_id"] not in decided]


@pytest.mark.scenario("10 journal disk full or read-only mid-run")
@pytest.mark.parametrize("breakage", sorted(BREAKERS))
def test_disk_full_stops_deciding_alerts_and_loses_nothing(make_sim: Callable[..., Simulator],
                                                           settings_for: Callable[..., Any],
                                                           tmp_path: Path, row: ReportRow,
                                                           breakage: str) -> None:
    sim = make_sim(time_scale=10, bestquote_window_s=30, bestquote_min_quotes=3)
    settings = settings_for(sim, strategies=BTC_LIMIT)
    alerter = Alerter()
    ops = Operations(settings, env={}, alerter=alerter)
    ops.monitor.tick_s = 0.1
    daemon = Daemon(settings, Credentials(sim.api_key, sim.api_secret, source="sim"), observers=ops.observers,
                    engine_tick_s=0.05)
    ops.attach(daemon)
    journal = JournalView(settings.journal.path)
    venue = VenueClient(sim)  # RFQs made elsewhere on the account: the private stream brings them
    try:
        daemon.start()
        wait_for(lambda: daemon.private_stream.state == "subscribed", 10, "the private stream")
        first = venue.create_rfq("BTC", "USDT", "5000")
        quote_three(sim, first, ["105900", "105800", "105950"])
        wait_for(lambda: journal.status(first) == "successful", 10, "a first trade, journaled")
        before = chain_rows(journal)

        BREAKERS[breakage](daemon.journal)
        started = time.monotonic()
        made = []
        for _ in range(20):  # pages with room left may take a few more rows: keep the market busy
            if daemon.health()["journal_failure"]:
                break
            rfq_id = venue.create_rfq("BTC", "USDT", "5000")
            made.append(rfq_id)
            quote_three(sim, rfq_id, ["105900", "105800", "105950"])
            time.sleep(0.2)
        wait_for(lambda: daemon.health()["journal_failure"], 10, "the engine to notice the full disk")
        alert = wait_for(lambda: [a for a in alerter.sent if a.kind == "journal_failed"], 10,
                         "the journal_failed alert")
        row.recover_s = time.monotonic() - started  # time to the safe state: not deciding, alerted
        assert alert[0].severity == "critical" and "restart" in alert[0].message
        health = daemon.health()
        assert health["deciding"] is False
        assert "NOT DECIDING" in status_line(health, "ready")

        # Still not deciding while the market goes on: a new RFQ quoted well inside the limit.
        late = venue.create_rfq("BTC", "USDT", "5000")
        quote_three(sim, late, ["105000", "105100", "105200"])
        time.sleep(1.0)
        assert accepts_at_sim(sim, late) == []
        assert accepts_without_committed_decision(sim, journal) == []
        row.note = f"{breakage}: {len(made)} RFQs quoted after the journal broke; first write failure: {health['journal_failure'][:60]}"
    finally:
        daemon.stop("test finished", drain_s=3)
        ops.close()
        venue.session.close()

    row.facts_lost = rows_lost(before, journal)
    row.duplicate_accepts = duplicate_accepts(sim)
    assert row.facts_lost == 0 and row.duplicate_accepts == 0
    # After the operator frees space (a fresh connection has no page limit), the journal verifies.
    reopened = Journal(settings.journal.path, SystemClock())
    try:
        assert reopened.verify_chain() is None
    finally:
        reopened.close()
    verify = subprocess.run([sys.executable, "-m", "rfqbot.cli", "journal", "verify", "--journal",
                             str(settings.journal.path)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
