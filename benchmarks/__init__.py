"""rfqbot benchmarks: tick-to-accept and ingest against baselines, and the decision path.

Run with ``make bench`` or ``python -m benchmarks --help``; see the README, section Benchmarks.
"""
