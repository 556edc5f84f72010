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


# --- one place for each constant --------------------------------------------------------------
# rfqbot/sim/ is the independent venue (it may not import rfqbot's constants); rfqbot/audit/
# belongs to the journal work of this round and is listed in its own review.
RFQBOT = REPO / "rfqbot"
_SKIPPED = (RFQBOT / "sim", RFQBOT / "audit")
_FINAL_WORD = re.compile(r"""['"](successful|expired|cancelled|declined|failed)['"]""")
_DAY_IN_MS = re.compile(r"86_?400_?000|86_?400 \* 1_?000|24 \* 3_?600 \* 1_?000|24 \* 60 \* 60 \* 1_?000")


def _rfqbot_sources() -> list[Path]:
    return [p for p in _python_files(RFQBOT) if not any(p.is_relative_to(skip) for skip in _SKIPPED)]


def _final_words(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return set(_FINAL_WORD.findall(node.value))
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant)
                and e.value in ("successful", "expired", "cancelled", "declined", "failed")}
    return set()


def test_final_statuses_are_listed_only_in_records() -> None:
    """RfqStatus.is_final / FINAL_STATUS_WORDS is the one list; a retyped copy drifts."""
    offenders = [f"{path.relative_to(REPO)}:{node.lineno}"
                 for path in _rfqbot_sources()
                 for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if len(_final_words(node)) >= 3]
    assert offenders == []


def test_the_guard_sees_final_statuses_in_sql_and_tuples() -> None:
    sql = ast.parse('"x NOT IN " "(\'successful\', \'expired\', \'failed\')"').body[0].value  # type: ignore[attr-defined]
    words = ast.parse('("successful", "expired", "cancelled")').body[0].value  # type: ignore[attr-defined]
    assert len(_final_words(sql)) == 3 and len(_final_words(words)) == 3


def test_day_ms_is_defined_only_in_clock() -> None:
    offenders = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for path in _rfqbot_sources() if path != RFQBOT / "clock.py"
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if _DAY_IN_MS.search(line)]
    assert offenders == []


def test_exit_code_78_is_defined_only_in_errors() -> None:
    offenders = [f"{path.relative_to(REPO)}:{node.lineno}"
                 for path in _rfqbot_sources() if path != RFQBOT / "errors.py"
                 for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Constant) and type(node.value) is int and node.value == 78]
    assert offenders == []
    from rfqbot.cli.common import EXIT_CONFIG
    from rfqbot.errors import EX_CONFIG, ConfigError

    assert EXIT_CONFIG == EX_CONFIG == ConfigError.exit_code == 78
