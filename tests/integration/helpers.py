"""Helpers for the integration tests: config text, journal reading, bounded waits.

Kept apart from conftest.py so tests can import them by name.
"""

from __future__ import annotations

import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from rfqbot.events import CreateRfqCommand
from rfqbot.journal.store import open_readonly
from rfqbot.records import QuoteMode
from rfqbot.sim import Simulator

T = TypeVar("T")

SIM_ACCOUNT = "sim-account"  # the simulator's owner name for the API key's account


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def daemon_yaml(sim: Simulator, journal: str | Path, **sections: Any) -> str:
    """A config file for a daemon against ``sim`` with short, test-friendly timings.

    ``sections`` are merged over the defaults (``strategies={...}``, ``engine={...}``, ...).
    Only documented config keys are used: what a user can set, the tests set.
    """
    venue: dict[str, Any] = {"name": "simulator", "rest_url": sim.rest_url, "ws_url": sim.ws_url}
    if sim.ca_file:
        venue["ca_file"] = sim.ca_file
    base: dict[str, Any] = {
        "venue": venue,
        "journal": {"path": str(journal)},
        "logging": {"level": "warning", "format": "console"},
        "streams": {"ping_interval_s": 1, "public_stale_after_s": 2, "private_stale_after_s": 2,
                    "reconnect_max_backoff_s": 1},
        "listen_key": {"fresh_key_grace_s": 1},
        "engine": {"min_time_left_ms": 300, "shutdown_drain_s": 3},
        "reconcile": {"every_s": 5},
        "risk": {"max_accepts_per_minute": 100, "max_open_rfqs": 100},
    }
    return yaml.safe_dump(deep_merge(base, sections), sort_keys=False)


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class JournalView:
    """Read-only queries on a live journal (WAL: readers never block the engine)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        if not Path(self.path).exists():
            return []
        conn = open_readonly(self.path)
        try:
            try:
                cursor = conn.execute(sql, args)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # a journal being created right now
                    return []
                raise
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        finally:
            conn.close()

    def events(self, kind: str | None = None, rfq_id: str | None = None,
               kind_prefix: str | None = None) -> list[dict[str, Any]]:
        """Event rows (oldest first) with ``payload`` parsed; Decimals stay strings."""
        sql = "SELECT seq, local_ms, source, kind, rfq_id, quote_id, payload FROM events WHERE 1=1"
        args: list[Any] = []
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        if kind_prefix is not None:
            sql += " AND kind LIKE ?"
            args.append(kind_prefix + "%")
        if rfq_id is not None:
            sql += " AND rfq_id = ?"
            args.append(rfq_id)
        rows = self.query(sql + " ORDER BY seq", *args)
        for row in rows:
            row["payload"] = json.loads(row["payload"], parse_float=Decimal)
        return rows

    # The derived tables are views of ``events``; reading ``events`` keeps these helpers true
    # to what was journaled whatever the projections look like.

    def transitions(self, rfq_id: str) -> list[str]:
        """The journaled status sequence of ``rfq_id`` (``to`` of every transition)."""
        return [r["payload"]["to"] for r in self.events("rfq.transition", rfq_id=rfq_id)]

    def status(self, rfq_id: str) -> str | None:
        seen = self.transitions(rfq_id)
        return seen[-1] if seen else None

    def decisions(self, rfq_id: str) -> list[dict[str, Any]]:
        """Decision payloads (with ``seq``, ``quote_id`` and the matching accept ``result_outcome``)."""
        results = {r["payload"].get("decision_seq"): r["payload"].get("outcome")
                   for r in self.events("accept.result", rfq_id=rfq_id)}
        out = []
        for row in self.events("decision", rfq_id=rfq_id):
            p = dict(row["payload"])
            p.update(seq=row["seq"], quote_id=row["quote_id"], result_outcome=results.get(row["seq"]),
                     verdicts_text=json.dumps(p.get("verdicts"), default=str))
            out.append(p)
        return out

    def stream_states(self, stream: str) -> list[tuple[int, str]]:
        return [(r["payload"]["session"], r["payload"]["state"])
                for r in self.events("stream.status") if r["payload"]["stream"] == stream]

    def listen_key_actions(self) -> list[str]:
        return [r["payload"]["action"] for r in self.events("listen_key")]


_client_ids = iter(range(1, 1_000_000))


def create_rfq(run: Any, buy: str = "BTC", sell: str = "USDT", amount: str = "10000",
               mode: str = "real-time", expire_sec: int = 600, timeout: float = 10.0) -> str:
    """Have the daemon create an RFQ (an operator command on its queue); return the rfq id."""
    client_id = f"it-{time.monotonic_ns() % 10**9}-{next(_client_ids)}"
    run.daemon.post(CreateRfqCommand(int(time.time() * 1000), buy, sell, Decimal(amount),
                                     QuoteMode.parse(mode), expire_sec, client_id, source="test"))

    def created() -> str | None:
        for row in run.journal.events("rfq.reconciled"):
            rfq = row["payload"]["rfq"]
            if row["payload"]["source"] == "create" and rfq.get("client_order_id") == client_id:
                return row["rfq_id"]
        failed = [r for r in run.journal.events("create.failed")
                  if r["payload"]["client_order_id"] == client_id]
        if failed:
            raise AssertionError(f"create-rfq failed: {failed[0]['payload']}")
        return None

    return wait_for(created, timeout, f"RFQ {client_id} to be created")


def accepts_at_sim(sim: Simulator, rfq_id: str) -> list[dict[str, Any]]:
    """Accept requests (action=accept) that reached the venue for ``rfq_id``."""
    return [e for e in sim.truth("accept_received") if e.get("rfq_id") == rfq_id
            and e.get("action") == "accept"]


def sim_statuses(sim: Simulator, rfq_id: str) -> list[str]:
    """The venue's status sequence of ``rfq_id`` (ground truth), creation included."""
    return [e["to"] for e in sim.truth("status_change") if e["rfq_id"] == rfq_id]


def quote_three(sim: Simulator, rfq_id: str, prices: list[str], lifetime_s: float = 60,
                lps: tuple[str, ...] = ("LP-A", "LP-B", "LP-C", "LP-D")) -> list[str]:
    """Make one LP per price quote ``rfq_id`` now; returns the quote ids in the same order."""
    ids = []
    for price, lp in zip(prices, lps):
        quote_id = sim.faults.quote(rfq_id, price, lp_name=lp, lifetime_s=lifetime_s)
        assert quote_id, f"the simulator refused a quote on {rfq_id}"
        ids.append(quote_id)
    return ids


def idle(run: Any) -> bool:
    """No venue call of the REST worker pool is in flight."""
    actions = run.daemon.actions
    return actions is not None and actions.in_flight() == 0
