"""``make faults``: run the whole fault suite (long scenarios included) and print the report.

    python -m tests.faults.report [--kills 30] [--examples 100] [--out FILE] [-- pytest args]

Each scenario test appends its row (recovered, time to recover, facts lost, duplicate accepts)
to a JSONL file named by ``RFQBOT_FAULTS_REPORT``; this runner sets it, runs pytest, and prints
the rows as a Markdown table (pasted into the README, section Reliability). The exit status is
pytest's: any scenario that did not recover fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HEADER = ("scenario", "recovered", "time to recover", "facts lost", "duplicate accepts", "note")


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in sorted(rows, key=lambda r: _order(r["scenario"])):
        took = "-" if r.get("recover_s") is None else f"{r['recover_s']:.2f} s"
        cells = [r["scenario"], "yes" if r["recovered"] else "**NO**", took, str(r["facts_lost"]),
                 str(r["duplicate_accepts"]), str(r.get("note") or "").replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _order(name: str) -> tuple[int, str]:
    head = name.split(" ", 1)[0]
    digits = "".join(ch for ch in head if ch.isdigit())
    return (int(digits) if digits else 99, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.report", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30, help="kill -9 rounds of scenario 9 (default 30)")
    parser.add_argument("--examples", type=int, default=100, help="hypothesis examples of scenario 7 (default 100)")
    parser.add_argument("--seed", type=int, default=9, help="seed of the kill moments (default 9)")
    parser.add_argument("--out", help="also write the table to this file")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rfqbot-faults-") as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        env = {**os.environ, "RFQBOT_FAULTS_REPORT": str(rows_file), "RFQBOT_FAULTS_KILLS": str(args.kills),
               "RFQBOT_FAULTS_EXAMPLES": str(args.examples), "RFQBOT_FAULTS_SEED": str(args.seed)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults",
                   "-m", "faults_long or not faults_long", "-o", "log_cli=false", *args.pytest_args]
        code = subprocess.call(command, cwd=REPO, env=env)
        rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    text = table(rows)
    print()
    print(text)
    failed = sum(1 for r in rows if not r["recovered"])
    print(f"\n{len(rows)} scenarios, {len(rows) - failed} recovered, {failed} not; "
          f"facts lost {sum(r['facts_lost'] for r in rows)}, duplicate accepts "
          f"{sum(r['duplicate_accepts'] for r in rows)}")
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
