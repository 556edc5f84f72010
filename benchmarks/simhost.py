"""The simulated venue in its own process, driven over stdin/stdout JSON lines.

Why a separate process: the simulator is a busy asyncio loop (LPs, frames, ground-truth writes).
In the same process as the client under test it would compete for the GIL and every client's
latency would include the venue's Python work. On its own process it gets its own core, as a
real venue would, and the clients are measured on theirs.

Both latency stamps (``bestQuote`` frame written, accept request arrived) are taken here, by the
simulator's ground truth (``rfqbot/sim/truth.py``), so no clock is compared across processes.

Load is built through the simulator's Python API (``Simulator.call``), not through its REST
API, so that creating RFQs costs the client under test nothing:

* ``rfqs``: ``Market.create_rfq`` for the account, paced; the simulator's own LPs quote and its
  own best-quote rule pushes ``bestQuote`` exactly as in production use.
* ``flood``: documented ``rfqs``/``quotes`` frames (the venue's own examples, with fresh ids)
  written straight to every subscribed public connection as fast as the socket takes them.
  The simulator has no flood knob and its per-frame queue and ground-truth line would make the
  venue, not the client, the bottleneck; see the README, section Benchmarks.

Protocol: one JSON command per stdin line, one JSON answer per stdout line. The first stdout
line describes the venue (urls, CA file, ground-truth path). Secrets come in by environment
(``RFQBOT_SIM_API_KEY``/``RFQBOT_SIM_API_SECRET``) and never go out.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import structlog

from rfqbot.sim import SimConfig, Simulator
from rfqbot.sim.server import ACCOUNT

PAIRS = {"BTC/USDT": ("BTC", "USDT", "5000"), "ETH/USDT": ("USDT", "ETH", "0.8")}


def flood_frames(count: int, start_ms: int) -> list[str]:
    """``count`` distinct public frames, alternating rfqCreated and quotesCreated (documented shapes)."""
    frames = []
    expire_s = start_ms // 1000 + 600
    for index in range(count):
        rfq_id = f"MPF{index // 2:09d}"
        if index % 2 == 0:
            frame: dict[str, Any] = {"event": "rfqCreated", "topic": "rfqs", "data": {
                "rfqId": rfq_id, "buyCcy": "BTC", "sellCcy": "USDT", "buyAmount": "",
                "sellAmount": "5000", "rfqMode": "real-time", "expire_time": expire_s}}
        else:
            frame = {"event": "quotesCreated", "topic": "quotes", "data": {
                "quoteId": f"MPQF{index:09d}", "rfqId": rfq_id, "buyCcy": "BTC", "sellCcy": "USDT",
                "buyAmount": "0.0471", "sellAmount": "5000", "price": f"{106000 + index % 97}.5",
                "expireTime": expire_s}}
        frames.append(json.dumps(frame, separators=(",", ":")))
    return frames


class SimHost:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    # -------------------------------------------------------------- commands
    def wait_subscribed(self, public: bool = True, private: bool = True, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until a client is on the streams (public: subscribed to rfqs and quotes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pub, priv = self.sim.call(self._subscribers)
            if (pub or not public) and (priv or not private):
                return {"ok": True, "public": pub, "private": priv}
            time.sleep(0.05)
        return {"ok": False, "error": f"no subscriber within {timeout} s"}

    def _subscribers(self) -> tuple[int, int]:
        hub = self.sim.state.hub
        pub = sum(1 for c in hub.public_conns if {"rfqs", "quotes"} <= c.subs)
        return pub, len(hub.private_conns)

    def rfqs(self, count: int, interval_ms: float, pair: str = "BTC/USDT", prefix: str = "bench") -> dict[str, Any]:
        """Create ``count`` RFQs for the account, one every ``interval_ms`` (absolute schedule)."""
        buy, sell, amount = PAIRS[pair]
        market = self.sim.state.market
        ids = []
        started = time.monotonic()
        for index in range(count):
            due = started + index * interval_ms / 1000
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            params = {"buyCcy": buy, "sellCcy": sell, "sellAmount": amount, "rfqMode": "real-time",
                      "expireSec": "600", "rfqClOrderId": f"{prefix}-{index}"}
            rfq = self.sim.call(market.create_rfq, ACCOUNT, params)
            ids.append(rfq.rfq_id)
        return {"ok": True, "rfq_ids": ids, "seconds": round(time.monotonic() - started, 3)}

    def wait_accepts(self, rfq_ids: list[str], timeout: float = 60.0) -> dict[str, Any]:
        """Wait until each RFQ got an accept; return one latency row per RFQ (the first accept)."""
        wanted = set(rfq_ids)
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        # Tail the ground-truth file rather than Simulator.truth(): that copies every event under
        # the lock the venue loop records with, which would stall the venue mid-measurement.
        with open(self.sim.ground_truth_path, encoding="utf-8") as truth:
            partial = ""
            while len(seen) < len(wanted) and time.monotonic() < deadline:
                lines = (partial + truth.read()).split("\n")
                partial = lines.pop()  # an unfinished last line waits for its end
                for line in lines:
                    if '"accept_received"' in line:
                        seen.add(json.loads(line).get("rfq_id"))
                seen &= wanted
                time.sleep(0.25)
        time.sleep(0.3)  # let late duplicates (there should be none) land in the truth too
        return {"ok": True, **latency_rows(self.sim.truth("push"), self.sim.truth("accept_received"), wanted)}

    def flood(self, frames: int) -> dict[str, Any]:
        """Write ``frames`` public frames to every subscribed public connection; stamps in perf ns."""
        texts = flood_frames(frames, int(time.time() * 1000))
        return {"ok": True, **self.sim.call(self._flood, texts, timeout=3600)}

    async def _flood(self, texts: list[str]) -> dict[str, Any]:
        targets = [c for c in self.sim.state.hub.public_conns if {"rfqs", "quotes"} <= c.subs]
        start = time.perf_counter_ns()
        sent = 0
        for conn in targets:
            for text in texts:
                await conn.ws.send_str(text)  # awaits the transport's drain: real back-pressure
                sent += 1
        return {"start_perf_ns": start, "end_perf_ns": time.perf_counter_ns(), "sent": sent,
                "connections": len(targets)}


def latency_rows(pushes: list[dict[str, Any]], accepts: list[dict[str, Any]], wanted: set[str]) -> dict[str, Any]:
    """Match each RFQ's first accept with the last ``bestQuote`` push before it carrying its quote."""
    by_rfq: dict[str, list[dict[str, Any]]] = {}
    for push in pushes:
        if push.get("topic") == "bestQuote" and push.get("rfq_id") in wanted:
            by_rfq.setdefault(push["rfq_id"], []).append(push)
    rows, seen, duplicates, stamped_late = [], set(), 0, 0
    for accept in accepts:
        rfq_id = accept.get("rfq_id")
        if rfq_id not in wanted:
            continue
        if rfq_id in seen:
            duplicates += 1
            continue
        seen.add(rfq_id)
        before = [p for p in by_rfq.get(rfq_id, ()) if accept.get("quote_id") in p.get("quote_ids", ())
                  and p["perf_ns"] <= accept["perf_ns"]]
        if before:
            rows.append({"rfq_id": rfq_id, "quote_id": accept["quote_id"],
                         "latency_ns": accept["perf_ns"] - before[-1]["perf_ns"]})
        else:
            # The simulator stamps a push after ``await ws.send_str`` returns; when that await
            # yields, the client can have answered before the stamp. Counted, not guessed at.
            stamped_late += 1
    return {"rows": rows, "missing": len(wanted - seen), "duplicate_accepts": duplicates,
            "push_stamped_after_accept": stamped_late}


def _answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main() -> int:
    # stdout is the answer channel: every log line goes to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    options = json.loads(os.environ.get("BENCH_SIM_OPTIONS", "{}"))
    config = SimConfig(tls=True, seed=options.get("seed", 1),
                       api_key=os.environ["RFQBOT_SIM_API_KEY"], api_secret=os.environ["RFQBOT_SIM_API_SECRET"],
                       ground_truth_path=options.get("ground_truth"), ca_dir=options.get("ca_dir"),
                       rate_limits=False, background_rfqs_per_min=0.0,
                       spot_streams=bool(options.get("spot_streams", True)))
    sim = Simulator(config).start()
    host = SimHost(sim)
    _answer({"ok": True, "rest_url": sim.rest_url, "ws_url": sim.ws_url, "ca_file": sim.ca_file,
             "ground_truth": sim.ground_truth_path, "pid": os.getpid()})
    lock = threading.Lock()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            name = command.pop("cmd")
            if name == "stop":
                break
            with lock:
                try:
                    _answer(getattr(host, name)(**command))
                except Exception as exc:  # noqa: BLE001 - report to the orchestrator, keep serving
                    _answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        sim.stop()
    _answer({"ok": True, "stopped": True})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
