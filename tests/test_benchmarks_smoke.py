"""Benchmark harness: its arithmetic, its report, and one tiny end-to-end run.

No timing is asserted (benchmarks measure; tests check that the measuring works). The
end-to-end run uses the floor client and five RFQs so it stays within a few seconds.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest

from benchmarks import micro
from benchmarks.micro import run_micro, run_ingest_profile
from benchmarks.report import markdown_table, write_results
from benchmarks.run import Bench, parse_args, summarise
from benchmarks.simhost import flood_frames, latency_rows
from benchmarks.stats import latency_summary_ms, memory_summary, percentile
from rfqbot.streams.wire import decode_frame


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7], 90) == 7
    assert math.isnan(percentile([], 50))


def test_latency_summary_in_ms() -> None:
    summary = latency_summary_ms([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    assert summary["p50_ms"] == 2.0 and summary["max_ms"] == 4.0 and summary["n"] == 4


def test_memory_growth_is_measured_from_a_quarter_in() -> None:
    samples = [(t, 40_000 + t * 1000) for t in range(0, 101)]   # grows 1 MB per tick
    grown = memory_summary(samples, 0, 100)
    assert grown["growth_mb"] == pytest.approx(73.2, abs=0.1) and grown["flat"] is False
    flat = memory_summary([(t, 40_000) for t in range(0, 101)], 0, 100)
    assert flat["growth_mb"] == 0 and flat["flat"] is True


def test_latency_rows_match_the_last_push_before_the_accept() -> None:
    pushes = [
        {"topic": "bestQuote", "rfq_id": "R1", "quote_ids": ["Q1"], "perf_ns": 100},
        {"topic": "bestQuote", "rfq_id": "R1", "quote_ids": ["Q2", "Q1"], "perf_ns": 200},
        {"topic": "rfqUpdates", "rfq_id": "R1", "perf_ns": 250},
        {"topic": "bestQuote", "rfq_id": "R2", "quote_ids": ["Q9"], "perf_ns": 900},   # after its accept
    ]
    accepts = [
        {"rfq_id": "R1", "quote_id": "Q1", "perf_ns": 260},
        {"rfq_id": "R1", "quote_id": "Q1", "perf_ns": 270},   # duplicate accept
        {"rfq_id": "R2", "quote_id": "Q9", "perf_ns": 800},
        {"rfq_id": "OTHER", "quote_id": "Q5", "perf_ns": 10},
    ]
    out = latency_rows(pushes, accepts, {"R1", "R2", "R3"})
    assert out["rows"] == [{"rfq_id": "R1", "quote_id": "Q1", "latency_ns": 60}]
    assert out["duplicate_accepts"] == 1
    assert out["push_stamped_after_accept"] == 1
    assert out["missing"] == 1   # R3 never accepted


def test_flood_frames_decode_as_public_rfqs_and_quotes() -> None:
    frames = flood_frames(4, 1_760_000_000_000)
    kinds = [type(decode_frame("public", text, 1_760_000_000_000)[0]).__name__ for text in frames]
    assert kinds == ["PublicRfq", "PublicQuote", "PublicRfq", "PublicQuote"]
    assert len(set(frames)) == 4


def test_summary_verdicts_follow_the_issue_targets() -> None:
    tick = {"floor": {"p50_ms": 1.0, "p99_ms": 2.0}, "rfqbot": {"p50_ms": 1.2, "p99_ms": 5.0},
            "sample": {"p50_ms": 6.0, "p99_ms": 9.0}}
    ingest = {"minimal-ingest": {"frames_per_s": 1000}, "minimal-ingest-default": {"frames_per_s": 400},
              "rfqbot-ingest": {"frames_per_s": 600, "peak_mb": 70, "flat": True}}
    out = summarise(tick, ingest)
    assert (out["ingest_rfqbot_over_minimal"], out["ingest_rfqbot_over_minimal_default"]) == (0.6, 1.5)
    assert out["targets"] == {"p50_within_1.25x_floor": True, "p99_within_2x_floor": False,
                              "at_least_4x_faster_than_sample_p50": True, "ingest_at_least_50pct_of_minimal": True,
                              "ingest_memory_under_80mb": True, "ingest_memory_flat": True}


def test_micro_benchmark_runs_the_real_engine(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(micro, "IDLE_BEFORE_S", 0.01)
    monkeypatch.setattr(micro, "REHEARSE_EVERY_S", 0.002)   # several fit in each idle gap
    result = run_micro(iterations=20, profile_path=tmp_path / "profile.txt", paced_iterations=3)
    assert result["decision_path"]["n"] == 20 and result["journal_append_commit"]["n"] == 20
    assert result["decision_path_at_rfq_pace"]["n"] == 3
    assert result["decision_path_at_rfq_pace_rehearsed"]["n"] == 3
    assert result["rehearsals_in_the_rehearsed_run"] > 0   # they ran (an own RFQ was open)
    assert "engine/loop.py" in (tmp_path / "profile.txt").read_text()


def test_ingest_engine_profile_is_a_separate_pass_from_the_timed_one(tmp_path, monkeypatch) -> None:
    passes = []
    real = micro._drain_through_engine
    monkeypatch.setattr(micro, "_drain_through_engine",
                        lambda decoded, profiler=None: passes.append(profiler) or real(decoded, profiler))
    result = run_ingest_profile(200, tmp_path / "ingest.txt")
    assert passes[0] is None and passes[1] is not None   # timed without the profiler, then profiled
    assert result["engine_journal_per_s"] > 0 and "engine/loop.py" in (tmp_path / "ingest.txt").read_text()


def test_tiny_end_to_end_floor_run_writes_results(tmp_path) -> None:
    """Venue process + floor client + five RFQs: every RFQ accepted once and timed."""
    args = parse_args(["--out", str(tmp_path), "--work-dir", str(tmp_path), "--rfqs", "5", "--warmup", "0",
                       "--interval-ms", "20"])
    bench = Bench(args)
    try:
        bench.start_venue()
        floor = bench.tick_to_accept("floor")
    finally:
        bench.close()
    assert floor["n"] + floor["push_stamped_after_accept"] == 5
    assert floor["missing_accepts"] == 0 and floor["duplicate_accepts"] == 0
    results = {"tick_to_accept": {"floor": floor}, "ingest": {}, "summary": {}}
    path = write_results(results, tmp_path)
    saved = json.loads(path.read_text())
    assert sum(saved["tick_to_accept"]["floor"]["histogram_ms"]["counts"]) == floor["n"]
    assert "| floor |" in markdown_table(saved)


def test_quick_flag_shrinks_every_size() -> None:
    args = parse_args(["--quick"])
    assert isinstance(args, argparse.Namespace)
    assert (args.rfqs, args.frames, args.micro_iterations) == (20, 2000, 50)
    assert args.interval_ms >= 100   # under the venue's 10 orders/s: the smoke run must not measure pacing
