"""Guards on the repository itself: things a reviewer should never have to find again.

Each guard scans source text, so a regression fails here with the file and line to fix.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
# Spelled in pieces so this file does not trip its own guard.
_OUTSIDE_PATHS = re.compile("/" + "work/|shared/" + "docs/frames")


def _python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_tests_read_nothing_outside_the_repository() -> None:
    """A fresh clone must run the suite: fixtures live under tests/, found relative to __file__."""
    offenders = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for path in _python_files(TESTS)
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if _OUTSIDE_PATHS.search(line)]
    assert offenders == []


def test_documented_frames_are_in_the_repository() -> None:
    frames = sorted(p.name for p in (TESTS / "fixtures" / "frames").glob("*.json"))
    assert "ws-private-bestQuote.json" in frames and "rest-create-rfq.json" in frames and len(frames) == 13
