"""The simulator imports nothing from rfqbot outside rfqbot.sim.

It is the venue written from the documents; if it shared rfqbot's client, decoding or model
code, a misunderstanding shared by both would pass every test. Two checks: the source (every
import statement, including relative ones) and the running interpreter (what importing every
simulator module actually pulls in, which also catches imports done through importlib).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIM = REPO / "rfqbot" / "sim"
ALLOWED = ("rfqbot", "rfqbot.sim")   # the package itself (only __version__) and the simulator


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])


def _imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``source`` (a module of ``package``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            if base == "rfqbot":   # from rfqbot import x -> rfqbot.x
                found += [(node.lineno, f"rfqbot.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def _outside(module: str) -> bool:
    return (module == "rfqbot" or module.startswith("rfqbot.")) and not (
        module in ALLOWED or module.startswith("rfqbot.sim."))


def test_no_simulator_source_imports_rfqbot_outside_the_simulator() -> None:
    files = sorted(SIM.rglob("*.py"))
    assert len(files) > 10
    offenders = [f"{path.relative_to(REPO)}:{line}: {module}"
                 for path in files
                 for line, module in _imported_modules(path.read_text(encoding="utf-8"),
                                                       _package_of(path))
                 if _outside(module)]
    assert offenders == []


def test_the_scan_sees_every_import_form() -> None:
    """The scanner itself must flag each way of reaching rfqbot code (else the guard is blind)."""
    probe = ("import rfqbot.records\nfrom rfqbot import decode\nfrom rfqbot.errors import X\n"
             "from .. import normalise\nfrom ..rest import RestClient\nfrom . import wirejson\n"
             "from rfqbot.sim import config\nimport yaml\n")
    flagged = [module for _, module in _imported_modules(probe, "rfqbot.sim") if _outside(module)]
    assert flagged == ["rfqbot.records", "rfqbot.decode", "rfqbot.errors", "rfqbot.normalise",
                       "rfqbot.rest"]


def test_importing_the_simulator_loads_no_other_rfqbot_module() -> None:
    code = ("import json, pkgutil, importlib, sys\n"
            "import rfqbot.sim\n"
            "for info in pkgutil.walk_packages(rfqbot.sim.__path__, 'rfqbot.sim.'):\n"
            "    if not info.name.endswith('__main__'):\n"
            "        importlib.import_module(info.name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'rfqbot')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "rfqbot.sim.server" in loaded and "rfqbot.sim.cli" in loaded
    assert [m for m in loaded if _outside(m)] == []
