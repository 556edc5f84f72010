"""The real process: ``rfqbot run`` with a config file and env credentials, signals, exit codes;
``rfqbot demo`` end to end.

These run ``python -m rfqbot.cli`` as a child process against a simulator in this test process,
exactly as systemd would start it: SIGTERM must end it cleanly (exit 0, listen key deleted,
journal closed and intact), SIGHUP must reload strategies without a restart.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from rfqbot.clock import SystemClock
from rfqbot.journal.store import Journal
from rfqbot.sim import Simulator
from tests.integration.helpers import JournalView, accepts_at_sim, daemon_yaml, quote_three, wait_for
from tests.sim.helpers import VenueClient

REPO = Path(__file__).resolve().parents[2]


class Child:
    def __init__(self, proc: subprocess.Popen[str], journal: JournalView, config: Path) -> None:
        self.proc = proc
        self.journal = journal
        self.config = config

    def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out


@pytest.fixture
def spawn_run(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    """``spawn_run(sim, **config sections)`` -> ``rfqbot run`` as a child, killed at teardown if alive."""
    children: list[Child] = []

    def spawn(sim: Simulator, **sections: Any) -> Child:
        journal = tmp_path / "journal.db"
        config = tmp_path / "config.yaml"
        config.write_text(daemon_yaml(sim, journal, **sections), encoding="utf-8")
        env = {**os.environ, "RFQBOT_API_KEY": sim.api_key, "RFQBOT_API_SECRET": sim.api_secret,
               "PYTHONPATH": str(REPO)}
        env.pop("RFQBOT_CONFIG", None)
        proc = subprocess.Popen([sys.executable, "-m", "rfqbot.cli", "run", "--config", str(config)],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        child = Child(proc, JournalView(journal), config)
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.communicate(timeout=10)


def started(child: Child) -> bool:
    if child.proc.poll() is not None:
        raise AssertionError(f"rfqbot run exited early with {child.proc.returncode}: {child.proc.stdout.read()}")
    states = [(r["payload"]["stream"], r["payload"]["state"]) for r in child.journal.events("stream.status")]
    return ("private", "subscribed") in states and ("public", "subscribed") in states


BTC_LIMIT = {"BTC/USDT": [{"use": "price_limit", "limit_price": "100000"}]}


def test_sigterm_stops_cleanly_deletes_the_key_and_closes_the_journal(
        make_sim: Callable[..., Simulator], spawn_run: Callable[..., Child]) -> None:
    sim = make_sim()
    child = spawn_run(sim, strategies=BTC_LIMIT)
    wait_for(lambda: started(child), 20, "the daemon to be up (both streams subscribed)")
    created = [k for k in sim.truth("listen_key") if k["action"] == "created"]
    assert len(created) == 1

    child.proc.send_signal(signal.SIGTERM)
    code, out = child.finish()
    assert code == 0, out
    deleted = [k for k in sim.truth("listen_key") if k["action"] == "deleted"]
    assert [k["key_tail"] for k in deleted] == [created[0]["key_tail"]]
    assert sim.api_secret not in out and sim.api_key not in out

    journal = Journal(child.journal.path, SystemClock())
    try:
        assert journal.verify_chain() is None
    finally:
        journal.close()
    kinds = [r["kind"] for r in child.journal.events()]
    assert "shutdown" in kinds
    assert child.journal.listen_key_actions()[-1] == "deleted"
    stopped = {r["payload"]["stream"] for r in child.journal.events("stream.status")
               if r["payload"]["state"] == "stopped"}
    assert stopped == {"public", "private"}


def test_sighup_reloads_a_valid_file_and_rejects_an_invalid_one(
        make_sim: Callable[..., Simulator], spawn_run: Callable[..., Child]) -> None:
    sim = make_sim()
    child = spawn_run(sim, strategies=BTC_LIMIT)
    wait_for(lambda: started(child), 20, "the daemon to be up")

    new_limit = {"BTC/USDT": [{"use": "price_limit", "limit_price": "123456"}]}
    child.config.write_text(daemon_yaml(sim, child.journal.path, strategies=new_limit), encoding="utf-8")
    child.proc.send_signal(signal.SIGHUP)
    applied = wait_for(lambda: child.journal.events("reload.applied"), 10, "reload.applied")
    assert "123456" in str(applied[0]["payload"]["strategies"])

    good_text = child.config.read_text(encoding="utf-8")
    bad = {"BTC/USDT": [{"use": "price_limit", "limit_price": "-5"}]}
    child.config.write_text(daemon_yaml(sim, child.journal.path, strategies=bad), encoding="utf-8")
    child.proc.send_signal(signal.SIGHUP)
    rejected = wait_for(lambda: child.journal.events("reload.rejected"), 10, "reload.rejected")
    assert "limit_price" in rejected[0]["payload"]["error"]
    assert len(child.journal.events("reload.applied")) == 1

    # The chains in force are still the reloaded ones: an RFQ made elsewhere on the account
    # (a plain signed REST call) quoted at 110000 is accepted under 123456, not under 100000.
    rfq_id = VenueClient(sim).create_rfq("BTC", "USDT", "5000")
    quote_three(sim, rfq_id, ["110000", "110500", "111000"])
    wait_for(lambda: sim.rfq_status(rfq_id) == "successful", 10, "the accept under the kept chains")
    assert [e["quote_id"] for e in accepts_at_sim(sim, rfq_id)] == \
        [q["quote_id"] for q in sim.truth("quote_created") if q["rfq_id"] == rfq_id
                                         and Decimal(q["price"]) == 110000]

    # A reload of the good file again applies the same chains: nothing was half-replaced.
    child.config.write_text(good_text, encoding="utf-8")
    child.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(child.journal.events("reload.applied")) == 2, 10, "the second reload.applied")
    child.proc.send_signal(signal.SIGTERM)
    code, out = child.finish()
    assert code == 0, out


def test_demo_runs_and_prints_a_summary(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    journal = tmp_path / "demo.db"
    proc = subprocess.run([sys.executable, "-m", "rfqbot.cli", "demo", "--duration", "5",
                           "--journal", str(journal)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "summary:" in proc.stdout
    created = re.search(r"RFQs created:\s+(\d+)", proc.stdout)
    assert created and int(created.group(1)) >= 1, proc.stdout  # the first RFQs come at once
    assert "accepts sent:" in proc.stdout and " status new" in proc.stdout
    assert journal.exists()
