"""The unit files: required directives (parsed, always), systemd-analyze verify and security (when present)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"
SERVICE = UNITS / "rfqbot.service"
TEMPLATE = UNITS / "rfqbot@.service"
SHIPPED_EXEC = "/opt/rfqbot/venv/bin/rfqbot"
MAX_EXPOSURE = 1.5

HARDENING = {
    "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "PrivateUsers": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes", "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native", "UMask": "0077",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value (directives may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: directive outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.mark.parametrize("unit", [SERVICE, TEMPLATE], ids=lambda p: p.name)
def test_required_directives(unit: Path) -> None:
    u = parse_unit(unit)
    svc, head = u["Service"], u["Unit"]
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert int(svc["WatchdogSec"][0]) >= 10
    assert svc["Restart"] == ["on-failure"] and svc["RestartPreventExitStatus"] == ["78"]
    assert "network-online.target" in head["After"][0] and head["Wants"] == ["network-online.target"]
    assert int(head["StartLimitBurst"][0]) >= 1 and int(head["StartLimitIntervalSec"][0]) > 0
    assert "kill -HUP $MAINPID" in svc["ExecReload"][0]
    assert svc["StateDirectory"][0].startswith("rfqbot") and svc["ConfigurationDirectory"][0].startswith("rfqbot")
    creds = [v.split(":", 1)[0] for v in svc["LoadCredential"]]
    assert sorted(creds) == ["api-key", "api-secret"]
    assert svc["User"][0].startswith("rfqbot") or svc.get("DynamicUser") == ["yes"]
    assert svc["ExecStart"][0].startswith(SHIPPED_EXEC + " run --config /etc/rfqbot/")
    for key, value in HARDENING.items():
        assert svc.get(key) == [value], f"{unit.name}: {key}={value} expected, got {svc.get(key)}"
    assert "@system-service" in svc["SystemCallFilter"]
    assert u["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.parametrize("unit", [SERVICE, TEMPLATE], ids=lambda p: p.name)
def test_every_hardening_line_has_its_own_comment(unit: Path) -> None:
    lines = unit.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# --- hardening"))
    end = next(i for i, line in enumerate(lines) if line.startswith("[Install]"))
    directives = [i for i in range(start, end) if lines[i] and not lines[i].startswith("#")]
    assert len(directives) >= len(HARDENING) - 1
    for i in directives:
        assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 10, f"{unit.name}:{i + 1} {lines[i]} has no why"


def test_template_keeps_instances_apart() -> None:
    svc = parse_unit(TEMPLATE)["Service"]
    assert svc["User"] == ["rfqbot-%i"] and svc["StateDirectory"] == ["rfqbot/%i"]
    assert svc["ConfigurationDirectory"] == ["rfqbot/%i"]
    assert all("/etc/rfqbot/%i/credentials/" in v for v in svc["LoadCredential"])
    assert "--config /etc/rfqbot/%i/config.yaml" in svc["ExecStart"][0]


def test_env_example_holds_no_secrets() -> None:
    text = (UNITS / "rfqbot.env.example").read_text()
    active = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert active == ["PYTHONDONTWRITEBYTECODE=1"]
    assert not re.search(r"(?im)^\s*RFQBOT_API_(KEY|SECRET)\s*=", text)
    assert "LoadCredential" in (UNITS / "credentials.md").read_text()


# --- systemd's own tools (skipped where systemd is not installed) --------------------------------

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze not installed")


def runnable_copy(unit: Path, folder: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    exe = Path(sys.executable).parent / "rfqbot"
    target = folder / unit.name
    target.write_text(unit.read_text().replace(SHIPPED_EXEC, str(exe if exe.exists() else sys.executable)))
    return target


@needs_analyze
@pytest.mark.parametrize("unit, name", [(SERVICE, "rfqbot.service"), (TEMPLATE, "rfqbot@desk1.service")],
                         ids=["service", "template"])
def test_systemd_analyze_verify_is_clean(unit: Path, name: str, tmp_path: Path) -> None:
    runnable_copy(unit, tmp_path)
    result = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "rfqbot" in line]  # verify also reports unrelated host units; ours must be silent
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


@needs_analyze
@pytest.mark.parametrize("unit", [SERVICE, TEMPLATE], ids=lambda p: p.name)
def test_security_exposure_at_most_1_5(unit: Path, tmp_path: Path) -> None:
    result = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
