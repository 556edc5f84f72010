"""Results out: ``results.json`` (small: summaries plus a compact latency histogram), the PNG
chart, and a Markdown table for the README (``python -m benchmarks.report`` prints it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS_JSON = "results.json"
RESULTS_PNG = "results.png"


def _histogram(latencies_ms: list[float], edges: list[float]) -> list[int]:
    counts = [0] * (len(edges) + 1)
    for value in latencies_ms:
        index = next((i for i, edge in enumerate(edges) if value < edge), len(edges))
        counts[index] += 1
    return counts


HIST_EDGES_MS = [0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 50, 100]


def write_results(results: dict[str, Any], out: Path) -> Path:
    """JSON with summaries; per-accept latencies are kept as a histogram, not 3,000 numbers."""
    slim = json.loads(json.dumps(results))
    for row in slim.get("tick_to_accept", {}).values():
        latencies = row.pop("latencies_ms", [])
        row["histogram_ms"] = {"edges": HIST_EDGES_MS, "counts": _histogram(latencies, HIST_EDGES_MS)}
    for row in slim.get("ingest", {}).values():
        row.pop("rss_samples", None)
    path = out / RESULTS_JSON
    path.write_text(json.dumps(slim, indent=2) + "\n", encoding="utf-8")
    return path


def write_chart(results: dict[str, Any], out: Path) -> Path | None:
    """Latency CDF per client and ingest rates; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tick = results.get("tick_to_accept", {})
    ingest = results.get("ingest", {})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=80,
                                      gridspec_kw={"width_ratios": [2, 1]})
    for name, row in tick.items():
        values = sorted(row.get("latencies_ms", []))
        if values:
            ys = [(i + 1) / len(values) for i in range(len(values))]
            left.step(values, ys, where="post", label=f"{name} (p50 {row['p50_ms']:.2f} ms)")
    left.set_xscale("log")
    left.set_xlabel("tick-to-accept, ms (bestQuote written -> accept received, TLS loopback)")
    left.set_ylabel("fraction of accepts")
    left.grid(True, which="both", alpha=0.3)
    if tick:
        left.legend(loc="lower right", fontsize=8)
    left.set_title(f"tick-to-accept, {next(iter(tick.values()))['n'] if tick else 0} RFQs per client", fontsize=10)
    if ingest:
        names = list(ingest)
        rates = [ingest[n]["frames_per_s"] for n in names]
        bars = right.bar(names, rates, color=["#888888", "#1f77b4"][: len(names)])
        for bar, name in zip(bars, names):
            right.annotate(f"peak {ingest[name]['peak_mb']} MB", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                           ha="center", va="bottom", fontsize=8)
        right.set_ylabel("frames/s decoded + journaled")
        right.set_title(f"ingest, {ingest[names[0]]['frames']} public frames", fontsize=10)
        right.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    path = out / RESULTS_PNG
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown_table(results: dict[str, Any]) -> str:
    """The README table: one row per client, then the ratios and the target verdicts."""
    lines = ["| tick-to-accept | p50 ms | p90 ms | p99 ms | max ms | n |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in results.get("tick_to_accept", {}).items():
        lines.append(f"| {name} | {row['p50_ms']} | {row['p90_ms']} | {row['p99_ms']} | {row['max_ms']} | {row['n']} |")
    lines += ["", "| ingest | frames/s | peak RSS MB | RSS growth MB (¼ → end) |", "|---|---:|---:|---:|"]
    for name, row in results.get("ingest", {}).items():
        lines.append(f"| {name} | {row['frames_per_s']} | {row['peak_mb']} | {row.get('growth_mb')} |")
    micro = results.get("micro")
    if micro:
        lines += ["", "| decision path (in-process) | p50 ms | p99 ms |", "|---|---:|---:|"]
        for part in ("decision_path", "decision_path_at_rfq_pace", "decision_path_at_rfq_pace_rehearsed", "decode_only",
                     "journal_append_commit"):
            if part in micro:
                lines.append(f"| {part} | {micro[part]['p50_ms']} | {micro[part]['p99_ms']} |")
    summary = results.get("summary", {})
    if summary:
        lines += ["", "| ratio / target | value |", "|---|---|"]
        for key, value in summary.items():
            if key != "targets":
                lines.append(f"| {key} | {value} |")
        for key, met in summary.get("targets", {}).items():
            lines.append(f"| target: {key} | {'met' if met else 'NOT met'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or [str(Path(__file__).parent / "results" / RESULTS_JSON)])[0])
    sys.stdout.write(markdown_table(json.loads(path.read_text(encoding="utf-8"))) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
