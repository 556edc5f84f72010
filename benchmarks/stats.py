"""Percentiles and memory summaries, kept tiny and dependency-free."""

from __future__ import annotations

import math
from typing import Any, Sequence


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (p100 is the max)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary_ms(latencies_ns: Sequence[int]) -> dict[str, Any]:
    values = sorted(v / 1e6 for v in latencies_ns)
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 3), "p90_ms": round(percentile(values, 90), 3),
            "p99_ms": round(percentile(values, 99), 3), "max_ms": round(percentile(values, 100), 3),
            "mean_ms": round(sum(values) / len(values), 3) if values else math.nan}


def memory_summary(samples: Sequence[Sequence[int]], start_ns: int, end_ns: int) -> dict[str, Any]:
    """Peak RSS, and growth over the measured window: RSS at its end minus RSS a quarter in.

    A quarter in, the process has warmed up (imports, connections, caches); whatever it gains
    after that while doing the same work again and again is what "not flat" means.
    """
    window = [(t, kb) for t, kb in samples if start_ns <= t <= end_ns] or list(samples)
    peak_kb = max(kb for _, kb in samples) if samples else 0
    if len(window) < 2:
        return {"peak_mb": round(peak_kb / 1024, 1), "growth_mb": None, "flat": None}
    quarter = start_ns + (end_ns - start_ns) // 4
    early = next((kb for t, kb in window if t >= quarter), window[0][1])
    late = window[-1][1]
    growth = (late - early) / 1024
    return {"peak_mb": round(peak_kb / 1024, 1), "rss_quarter_mb": round(early / 1024, 1),
            "rss_end_mb": round(late / 1024, 1), "growth_mb": round(growth, 1),
            "flat": abs(growth) <= max(5.0, 0.1 * early / 1024)}
