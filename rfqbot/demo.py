"""The demo: the built-in simulator and a daemon against it, on one machine, no API key.

The demo is the real daemon (same streams, keeper, engine, journal) pointed at an in-process
simulator over TLS, with a demo strategy set and a schedule that creates RFQs every few
seconds. What it prints lives in ``rfqbot/cli/run_cmds.py``; this module only builds and runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from rfqbot.config.schema import Settings, load_config_text
from rfqbot.config.credentials import Credentials
from rfqbot.journal.store import open_readonly
from rfqbot.logs import register_secret

# Limits sit around the simulator's reference prices (BTC ~106000, ETH ~3800 USDT, USDC ~1.0001
# USD) so that most BTC and ETH RFQs fill while USDC is never good enough: the demo shows both
# accepts and quotes left to expire, each with its reason.
DEMO_CONFIG = """
{venue}
journal:
  path: "{journal}"
logging:
  level: {log_level}
reconcile:
  every_s: 5
strategies:
  BTC/USDT:                # buying BTC: lower is better, accept at or below the limit
    - use: time_left
      min_ms: 5000
    - use: price_limit
      limit_price: "106400"
  ETH/USDT:                # selling ETH: higher is better, accept at or above the limit
    - use: price_limit
      limit_price: "3790"
  USDC/USD:                # buying USDC below par: LPs quote at or above par, so never
    - use: price_limit
      limit_price: "0.9990"
rfqs:
  - every: 6s
    buy: BTC
    sell: USDT
    sell_amount: "5000"
    mode: real-time
    expire_sec: 600
    client_id_prefix: demo-btc
  - every: 9s
    buy: USDT
    sell: ETH
    sell_amount: "0.8"
    mode: real-time
    expire_sec: 600
    client_id_prefix: demo-eth
  - every: 20s
    buy: USDC
    sell: USD
    sell_amount: "2000"
    mode: real-time
    expire_sec: 600
    client_id_prefix: demo-usdc
risk:
  max_accepts_per_minute: 30
  max_open_rfqs: 50
"""


def simulator_venue_yaml(rest_url: str, ws_url: str, ca_file: str | None) -> str:
    """The ``venue:`` section pointing rfqbot at a running simulator (the demo, tests, benchmarks)."""
    lines = ["venue:", "  name: simulator", f'  rest_url: "{rest_url}"', f'  ws_url: "{ws_url}"']
    if ca_file:
        lines.append(f'  ca_file: "{ca_file}"')
    return "\n".join(lines)


@dataclass(frozen=True)
class DemoVenue:
    settings: Settings
    credentials: Credentials


def demo_settings(sim: Any, journal_path: str | Path, log_level: str = "warning") -> DemoVenue:
    """Settings and credentials for a daemon against a started ``Simulator``."""
    text = DEMO_CONFIG.format(venue=simulator_venue_yaml(sim.rest_url, sim.ws_url, sim.ca_file),
                              journal=str(journal_path), log_level=log_level)
    settings = load_config_text(text, file="<demo>")
    register_secret(sim.api_key)
    register_secret(sim.api_secret)
    return DemoVenue(settings, Credentials(sim.api_key, sim.api_secret, source="simulator"))


def first_rfqs_soon(daemon: Any, stagger_s: float = 1.0) -> Callable[[str, dict[str, Any]], None]:
    """A daemon listener that brings each scheduled RFQ's first run forward to just after start.

    An ``every: 6s`` entry first fires one interval after start; a short demo (``--duration 5``)
    would then show nothing at all. Later runs keep their interval from the first one.
    """
    def on_stage(stage: str, _details: dict[str, Any]) -> None:
        scheduler = getattr(daemon, "scheduler", None)
        if stage != "started" or scheduler is None:
            return
        now = datetime.now(timezone.utc)
        for index, job_id in enumerate(j for j in scheduler.job_ids() if j.startswith("rfq_")):
            scheduler.aps.modify_job(job_id, next_run_time=now + timedelta(seconds=0.5 + stagger_s * index))

    return on_stage


@dataclass(frozen=True)
class DemoSummary:
    rfqs_created: int
    by_status: dict[str, int]
    accepts_sent: int
    accepts_confirmed: int
    notional_by_ccy: dict[str, Decimal]
    rejected_frames: int


def summarise(journal_path: str | Path) -> DemoSummary:
    """Totals for the end of a demo, read back from the journal (what an auditor would see)."""
    conn = open_readonly(journal_path)
    try:
        by_status = {row[0] or "unknown": row[1] for row in
                     conn.execute("SELECT status, COUNT(*) FROM rfqs WHERE own = 1 GROUP BY status")}
        created = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'create.requested'").fetchone()[0]
        sent = conn.execute("SELECT COUNT(*) FROM decisions WHERE action = 'accept'").fetchone()[0]
        confirmed = conn.execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'accept.result' "
            "AND json_extract(payload, '$.outcome') = 'accepted'").fetchone()[0]
        rejected = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'frame.rejected'").fetchone()[0]
        notional: dict[str, Decimal] = {}
        for sell_ccy, sell_amount in conn.execute(
                "SELECT sell_ccy, sell_amount FROM rfqs WHERE own = 1 AND status = 'successful'"):
            if sell_ccy and sell_amount:
                notional[sell_ccy] = notional.get(sell_ccy, Decimal(0)) + Decimal(str(sell_amount))
    finally:
        conn.close()
    return DemoSummary(created, by_status, sent, confirmed, notional, rejected)
