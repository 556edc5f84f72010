"""rfqbot under test: the real ``Daemon`` (streams, listen key, engine, strategies, journal,
REST workers) pointed at the benchmark venue, exactly as ``rfqbot run`` wires it.

The configuration is the production default except what a benchmark needs: a price limit every
simulated quote meets (so every RFQ is accepted and each accept can be timed) and risk limits
high enough for a thousand accepts a minute. Logging stays at the default ``info`` level, JSON,
to a file: a production daemon pays for its logs too.
"""

from __future__ import annotations

import cProfile
import functools
import os
import pstats
import threading
import time
from pathlib import Path
from typing import Any

from rfqbot.journal import projections as kinds
from rfqbot.config.schema import Settings, load_config_text
from rfqbot.config.credentials import Credentials
from rfqbot.daemon import Daemon
from rfqbot.demo import simulator_venue_yaml
from rfqbot.logs import register_secret

BENCH_CONFIG = """
{venue}
journal:
  path: "{journal}"
  synchronous: {synchronous}
logging:
  level: {log_level}
  format: json
strategies:
  BTC/USDT:                # buying BTC: every simulated quote (~106000) is under this limit
    - use: price_limit
      limit_price: "200000"
risk:
  max_accepts_per_minute: 100000
  max_open_rfqs: 100000
"""

PUBLIC_KINDS = frozenset({"frame.public_rfq", kinds.KIND_PUBLIC_QUOTE})


def bench_settings(venue: dict[str, Any], journal: str | Path, log_level: str = "info",
                   synchronous: str = "full") -> Settings:
    text = BENCH_CONFIG.format(venue=simulator_venue_yaml(venue["rest_url"], venue["ws_url"], venue["ca_file"]),
                               journal=str(journal), log_level=log_level, synchronous=synchronous)
    return load_config_text(text, file="<benchmark>")


def start_daemon(venue: dict[str, Any], key: str, secret: str, journal: str | Path,
                 log_level: str = "info", synchronous: str = "full") -> Daemon:
    register_secret(key)
    register_secret(secret)
    daemon = Daemon(bench_settings(venue, journal, log_level, synchronous), Credentials(key, secret, source="benchmark"))
    daemon.start()
    return daemon


def run_tick(venue: dict[str, Any], key: str, secret: str, stop: threading.Event, journal: str,
             log_level: str = "info", synchronous: str = "full") -> dict[str, Any]:
    """Run the daemon until ``stop``; the venue times every accept."""
    daemon = start_daemon(venue, key, secret, journal, log_level, synchronous)
    try:
        stop.wait()
    finally:
        daemon.stop("benchmark done")
    return {"journal": journal}


class _PublicCounter:
    """Engine observer: counts journaled public frames and notes when the N-th one was written."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.reached = threading.Event()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        if kind in PUBLIC_KINDS:
            self.count += 1
            if self.count >= self.target:
                self.reached.set()


PROFILE_ENV = "RFQBOT_BENCH_PROFILE_DIR"
"""Set to a directory to cProfile the ingest client's engine and public stream threads (one text
file each, sorted by internal time): the whole daemon under the real flood, GIL waits included."""


def _profile_threads(directory: str) -> None:
    """Wrap ``Engine.run`` and ``StreamConnection._run`` (this process only) in a per-thread cProfile."""
    from rfqbot.engine.loop import Engine
    from rfqbot.streams.connection import StreamConnection

    def wrap(cls: type, name: str, label: Any) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def profiled(self: Any, *args: Any, **kwargs: Any) -> Any:
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                return original(self, *args, **kwargs)
            finally:
                profiler.disable()
                path = os.path.join(directory, f"profile-ingest-{label(self)}.txt")
                with open(path, "w", encoding="utf-8") as out:
                    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)

        setattr(cls, name, profiled)

    wrap(Engine, "run", lambda self: "engine-thread")
    wrap(StreamConnection, "_run", lambda self: f"stream-{self.name}")


def run_ingest(venue: dict[str, Any], key: str, secret: str, frames: int, stop: threading.Event,
               journal: str, on_started: Any, log_level: str = "info") -> dict[str, Any]:
    """Returns the perf_counter_ns at which the transaction holding the N-th public frame committed."""
    if os.environ.get(PROFILE_ENV):
        _profile_threads(os.environ[PROFILE_ENV])
    daemon = start_daemon(venue, key, secret, journal, log_level)
    counter = _PublicCounter(frames)
    assert daemon.engine is not None
    daemon.engine.add_observer(counter)
    on_started()
    done_ns = None
    try:
        while not stop.is_set() and not counter.reached.wait(0.05):
            pass
        if counter.reached.is_set():
            seen = time.monotonic()
            # The observer runs inside the engine's burst transaction: the frame is journaled
            # once that loop turn has committed, i.e. once the loop heartbeat moves past it.
            while (daemon.engine.last_loop_monotonic or 0) < seen and not stop.is_set():
                time.sleep(0.0005)
            done_ns = time.perf_counter_ns()
    finally:
        daemon.stop("benchmark done")
    return {"stored": counter.count, "done_perf_ns": done_ns, "journal": journal}
