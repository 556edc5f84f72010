"""One client under test, in its own process: ``python -m benchmarks.client_main <client>``.

A process per client keeps the measurements apart: each starts cold with only its own imports,
its peak RSS is its own, and no client inherits another's threads. The orchestrator passes the
venue as JSON in ``BENCH_VENUE`` and the API key/secret in ``RFQBOT_BENCH_API_KEY`` /
``RFQBOT_BENCH_API_SECRET`` (never on the command line), writes ``stop`` (or closes stdin) to
end the run, and reads JSON lines from stdout: ``{"event": "ready"}`` then
``{"event": "result", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

CLIENTS = ("rfqbot", "rfqbot-normal", "floor", "sample", "rfqbot-ingest", "minimal-ingest",
           "minimal-ingest-default")


def _say(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def rss_kb() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Samples RSS every ``every_s`` so the result can say whether memory stayed flat."""

    def __init__(self, every_s: float = 0.1) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.every_s = every_s
        self.samples: list[tuple[int, int]] = []   # (perf_counter_ns, rss_kb)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.perf_counter_ns(), rss_kb()))
            self.halt.wait(self.every_s)


def _watch_stdin(stop: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.client_main")
    parser.add_argument("client", choices=CLIENTS)
    parser.add_argument("--frames", type=int, default=0, help="ingest: frames to wait for")
    parser.add_argument("--journal", default="", help="rfqbot journal / minimal receiver database path")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-file", default=os.devnull, help="where rfqbot's JSON logs go")
    args = parser.parse_args(argv)
    venue = json.loads(os.environ["BENCH_VENUE"])
    key, secret = os.environ["RFQBOT_BENCH_API_KEY"], os.environ["RFQBOT_BENCH_API_SECRET"]
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop,), name="stdin-watch", daemon=True).start()
    sampler = RssSampler()
    sampler.start()

    def ready() -> None:
        _say({"event": "ready"})

    from rfqbot.logs import configure_logging

    # stdout is the answer channel; rfqbot's logs go to their own file, as in production.
    log_file = open(args.log_file, "a", encoding="utf-8")  # noqa: SIM115 - lives for the run
    configure_logging(args.log_level, "json", stream=log_file)
    started = time.perf_counter_ns()
    if args.client in ("rfqbot", "rfqbot-normal"):
        from benchmarks.rfqbot_client import run_tick

        ready()
        result = run_tick(venue, key, secret, stop, args.journal, args.log_level,
                          "normal" if args.client == "rfqbot-normal" else "full")
    elif args.client == "rfqbot-ingest":
        from benchmarks.rfqbot_client import run_ingest

        result = run_ingest(venue, key, secret, args.frames, stop, args.journal, ready, args.log_level)
    else:
        from benchmarks import baselines

        if args.client == "floor":
            ready()
            result = baselines.run_floor(venue, key, secret, stop)
        elif args.client == "sample":
            ready()
            result = baselines.run_sample(venue, key, secret, stop)
        else:
            result = baselines.run_minimal_ingest(venue, args.journal, args.frames, stop, ready,
                                                  library_utf8_check=args.client == "minimal-ingest-default")
    sampler.halt.set()
    sampler.join()
    samples = sampler.samples + [(time.perf_counter_ns(), rss_kb())]
    _say({"event": "result", "client": args.client, "started_perf_ns": started, **result,
          "rss_peak_kb": max(kb for _, kb in samples), "rss_samples": samples})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
