"""records.ACCEPT_TOOK_STATUSES is the one definition of "an accept took"; retyped copies drift."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOK = {"ACCEPTED", "PROCESSING", "SUCCESSFUL"}


def _took_members(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {e.attr for e in node.elts if isinstance(e, ast.Attribute) and e.attr in TOOK}
    return set()


def test_accept_took_statuses_are_listed_only_in_records():
    sources = [p for base in ("rfqbot", "strategies") for p in (REPO / base).rglob("*.py")
               if "sim" not in p.relative_to(REPO).parts and p.name != "records.py"]
    offenders = [f"{p.relative_to(REPO)}:{node.lineno}" for p in sources
                 for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))) if _took_members(node) == TOOK]
    assert offenders == []


def test_the_guard_sees_a_retyped_set():
    node = ast.parse("{RfqStatus.ACCEPTED, RfqStatus.PROCESSING, RfqStatus.SUCCESSFUL}").body[0].value
    assert _took_members(node) == TOOK
