"""Ground truth: a JSONL record of everything the simulated venue did.

Tests and benchmarks compare rfqbot's journal against this file, so every line carries both a
wall-clock ``ts_ms`` (server clock, skew included) and a ``mono_ns`` from ``time.monotonic_ns``
for ordering; pushes of ``bestQuote`` and accept arrivals also carry ``perf_ns`` from
``time.perf_counter_ns`` for latency benchmarks.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from rfqbot.sim import wirejson


class GroundTruth:
    """Append-only event log; thread-safe because tests read it from their own thread.

    Embedded use (tests, benchmarks) keeps the events in memory too for fast ``events()``;
    the CLI, which may run for days, keeps only the file.
    """

    def __init__(self, path: str | Path, now_ms: Callable[[], int],
                 keep_in_memory: bool = True) -> None:
        self.path = str(path)
        self.keep_in_memory = keep_in_memory
        self._now_ms = now_ms
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._by_event: dict[str, list[dict[str, Any]]] = {}
        self._file = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - one run per file
        self._seq = 0

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "event": event, "ts_ms": self._now_ms(),
                     "mono_ns": time.monotonic_ns(), **fields}
            if self.keep_in_memory:
                self._events.append(entry)
                self._by_event.setdefault(event, []).append(entry)
            if not self._file.closed:
                self._file.write(wirejson.dumps(entry) + "\n")
            return entry

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """A copy of the events so far, optionally only those named ``event``."""
        with self._lock:
            if not self.keep_in_memory:
                self._file.flush()
                return self._read_file(event)
            chosen = self._events if event is None else self._by_event.get(event, [])
            return [dict(e) for e in chosen]

    def _read_file(self, event: str | None) -> list[dict[str, Any]]:
        """Long runs keep nothing in memory; the file is the record."""
        with open(self.path, encoding="utf-8") as source:
            rows = [wirejson.loads(line) for line in source if line.strip()]
        return [row for row in rows if event is None or row["event"] == event]

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()
