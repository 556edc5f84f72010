"""``make soak [MINUTES=10]``: a real ``rfqbot run`` against a busy simulator for a long while.

    python -m benchmarks.soak [--minutes 10] [--time-scale 20] [--sample-s 5] [--json FILE]

The simulator (four LPs, other accounts' traffic, rate limits on) runs in this process; the
daemon is a child process, so its memory and file descriptors are its own: they are read
from /proc/<pid> every ``--sample-s`` seconds. The daemon creates an RFQ every second and
accepts BTC quotes within its limit. Venue time runs ``--time-scale`` times faster and the
simulator's listen keys live 80 real seconds (``listen_key.extend_every_s`` cannot go under
60 s, so a key's life must stay above that): a 10-minute soak sees about 7 key lifetimes.

Report: RSS and fd count at start/end, whether they stayed flat (the median of the last third
of the samples within max(5 MiB, 10 %) of the median of the first third, after a warm-up;
fds within +2), listen keys extended and whether any key ran out or the private stream had
to reconnect (a gap), RFQs created and accepted, and ``rfqbot journal verify`` at the end.
Exit status 0 only when memory and fds are flat, no key lapsed and the journal verifies.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from rfqbot.sim import SimConfig, Simulator

REPO = Path(__file__).resolve().parents[1]
KEY_LIFE_REAL_S = 80.0
EXTEND_EVERY_S = 60  # the config minimum: the soak renews as often as rfqbot allows
OWNER = "sim-account"


def proc_sample(pid: int) -> tuple[int, int]:
    """(RSS bytes, open fds) of ``pid`` from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def flat(values: list[int], *, slack_abs: int, slack_rel: float) -> tuple[bool, int, int]:
    """Median of the first third vs the last third: (flat?, first, last)."""
    third = max(1, len(values) // 3)
    first, last = int(statistics.median(values[:third])), int(statistics.median(values[-third:]))
    return last <= first + max(slack_abs, int(first * slack_rel)), first, last


def config_text(sim: Simulator, journal: Path) -> str:
    config = {
        "venue": {"name": "simulator", "rest_url": sim.rest_url, "ws_url": sim.ws_url, "ca_file": sim.ca_file},
        "journal": {"path": str(journal)},
        "logging": {"level": "warning", "format": "json"},
        "listen_key": {"extend_every_s": EXTEND_EVERY_S},
        "engine": {"min_time_left_ms": 200},
        "reconcile": {"every_s": 10},
        "risk": {"max_accepts_per_minute": 1000, "max_open_rfqs": 1000},
        "strategies": {"BTC/USDT": [{"use": "price_limit", "limit_price": "200000"}],
                       "ETH/USDT": [{"use": "price_limit", "limit_price": "5000"}]},
        "rfqs": [
            {"every": "1s", "buy": "BTC", "sell": "USDT", "sell_amount": "2000", "mode": "real-time",
             "expire_sec": 600, "client_id_prefix": "soak-btc"},
            {"every": "3s", "buy": "USDT", "sell": "ETH", "sell_amount": "0.5", "mode": "delayed",
             "expire_sec": 600, "client_id_prefix": "soak-eth"},
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def run(minutes: float, time_scale: float, sample_s: float, workdir: Path) -> dict[str, Any]:
    sim = Simulator(SimConfig(tls=True, seed=42, lps=4, background_rfqs_per_min=30, time_scale=time_scale,
                              listen_key_life_s=KEY_LIFE_REAL_S * time_scale, truth_in_memory=False,
                              ground_truth_path=str(workdir / "ground-truth.jsonl"))).start()
    journal = workdir / "journal.db"
    config = workdir / "config.yaml"
    config.write_text(config_text(sim, journal), encoding="utf-8")
    env = {**os.environ, "RFQBOT_API_KEY": sim.api_key, "RFQBOT_API_SECRET": sim.api_secret,
           "PYTHONPATH": str(REPO)}
    env.pop("RFQBOT_CONFIG", None)
    samples: list[dict[str, float]] = []
    log_file = workdir / "daemon.log"
    try:
        with open(log_file, "wb") as out:
            child = subprocess.Popen([sys.executable, "-m", "rfqbot.cli", "run", "--config", str(config)],
                                     cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        started = time.monotonic()
        try:
            while time.monotonic() - started < minutes * 60:
                if child.poll() is not None:
                    raise RuntimeError(f"rfqbot run exited with {child.returncode}; see {log_file}")
                rss, fds = proc_sample(child.pid)
                samples.append({"t_s": round(time.monotonic() - started, 1), "rss": rss, "fds": fds})
                time.sleep(sample_s)
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                exit_code = child.wait(60)
            else:
                exit_code = child.returncode
        keys = [e for e in sim.truth("listen_key") if e.get("owner") == OWNER]
        connects = len([e for e in sim.truth("private_connected") if e.get("owner") == OWNER])
        own = [e["rfq_id"] for e in sim.truth("rfq_created") if e["owner"] == OWNER]
        taken = [e for e in sim.truth("accept_result") if e.get("outcome") == "accepted" and e.get("rfq_id") in set(own)]
    finally:
        sim.stop()
    verify = subprocess.run([sys.executable, "-m", "rfqbot.cli", "journal", "verify", "--journal", str(journal)],
                            capture_output=True, text=True, cwd=workdir, env={**os.environ, "PYTHONPATH": str(REPO)})
    warm = [s for s in samples if s["t_s"] >= min(60.0, minutes * 60 / 6)] or samples
    rss_flat, rss_first, rss_last = flat([int(s["rss"]) for s in warm], slack_abs=5 << 20, slack_rel=0.10)
    fds_flat, fds_first, fds_last = flat([int(s["fds"]) for s in warm], slack_abs=2, slack_rel=0.0)
    actions = [k["action"] for k in keys]
    lapsed = [a for a in actions if a not in ("created", "extended", "deleted")]
    return {
        "minutes": minutes, "time_scale": time_scale, "samples": len(samples),
        "key_lifetimes": round(minutes * 60 / KEY_LIFE_REAL_S, 1),
        "rss_mib": {"first": round(rss_first / 2**20, 1), "last": round(rss_last / 2**20, 1),
                    "max": round(max(s["rss"] for s in samples) / 2**20, 1), "flat": rss_flat},
        "fds": {"first": fds_first, "last": fds_last, "max": max(s["fds"] for s in samples), "flat": fds_flat},
        "listen_keys": {"created": actions.count("created"), "extended": actions.count("extended"),
                        "lapsed_or_ended_otherwise": lapsed, "private_connects": connects,
                        "renewed_without_gap": actions.count("extended") if not lapsed and connects == 1 else 0},
        "rfqs_created": len(own), "rfqs_accepted": len(taken),
        "daemon_exit": exit_code, "journal_verify": verify.returncode == 0,
        "journal_mib": round(journal.stat().st_size / 2**20, 1),
        "series": samples,
    }


def summary(report: dict[str, Any]) -> str:
    keys = report["listen_keys"]
    # A run longer than one keepalive interval (plus slack) must have renewed the key at least once:
    # a soak that never exercised the renewal proves nothing about it.
    renewal_due = report["minutes"] * 60 > EXTEND_EVERY_S * 1.5
    ok = (report["rss_mib"]["flat"] and report["fds"]["flat"] and not keys["lapsed_or_ended_otherwise"]
          and report["journal_verify"] and report["daemon_exit"] == 0
          and (keys["renewed_without_gap"] >= 1 or not renewal_due))
    return "\n".join([
        f"soak: {report['minutes']} min, time scale {report['time_scale']}, {report['samples']} samples, "
        f"~{report['key_lifetimes']} listen-key lifetimes",
        f"  RSS   {report['rss_mib']['first']} -> {report['rss_mib']['last']} MiB (max {report['rss_mib']['max']}): "
        f"{'flat' if report['rss_mib']['flat'] else 'GROWING'}",
        f"  fds   {report['fds']['first']} -> {report['fds']['last']} (max {report['fds']['max']}): "
        f"{'flat' if report['fds']['flat'] else 'GROWING'}",
        f"  listen keys: {keys['created']} created, {keys['extended']} extended, renewed without a gap: "
        f"{keys['renewed_without_gap']}, lapsed: {keys['lapsed_or_ended_otherwise'] or 'none'}, "
        f"private connections: {keys['private_connects']}",
        f"  RFQs: {report['rfqs_created']} created, {report['rfqs_accepted']} accepted; journal "
        f"{report['journal_mib']} MiB, verify {'ok' if report['journal_verify'] else 'FAILED'}; "
        f"daemon exit {report['daemon_exit']}",
        f"  result: {'OK' if ok else 'FAILED'}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--time-scale", type=float, default=20.0)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--json", help="write the full report (with the sample series) here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rfqbot-soak-") as tmp:
        report = run(args.minutes, args.time_scale, args.sample_s, Path(tmp))
    text = summary(report)
    print(text)  # noqa: T201 - a command-line report
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0 if text.endswith("OK") else 1


if __name__ == "__main__":
    sys.exit(main())
