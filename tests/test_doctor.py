"""rfqbot doctor against an in-test TLS simulator: every check, its failures and their fixes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest
import structlog

from rfqbot.cli import main
from rfqbot.clock import SystemClock
from rfqbot.ops.doctor import Check, Doctor, run_doctor
from rfqbot.journal.store import Journal
from rfqbot.sim import Simulator
from tests.test_service import sim_config_text, tls_sim, write_config


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    simulator = tls_sim(tmp_path_factory.mktemp("sim"))
    yield simulator
    simulator.stop()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def cred_dir(tmp_path: Path, key: str, secret: str, mode: int = 0o600) -> Path:
    folder = tmp_path / "creds"
    folder.mkdir(exist_ok=True)
    for name, value in (("api-key", key), ("api-secret", secret)):
        path = folder / name
        path.write_text(value + "\n")
        path.chmod(mode)
    return folder


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def doctor(config: Path, env: dict[str, str]) -> dict[str, Check]:
    return by_name(Doctor(str(config), env=env, stream_timeout_s=10, private_grace_s=0.3).run())


def local_checks(config: Path, env: dict[str, str]) -> dict[str, Check]:
    """Config, credentials and journal only: what needs no venue."""
    d = Doctor(str(config), env=env)
    assert d.check_config()
    d.check_credentials()
    d.check_journal()
    return by_name(d.checks)


def test_all_checks_pass_against_the_simulator(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    (tmp_path / "state").mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(cred_dir(tmp_path, sim.api_key, sim.api_secret))}
    checks = run_doctor(str(config), env=env, stream_timeout_s=10)
    assert [c.name for c in checks] == ["config", "credentials", "journal", "clock skew", "REST auth",
                                        "listen key", "private stream", "public stream"]
    assert {c.name: c.status for c in checks} == {c.name: "ok" for c in checks}, [c for c in checks if c.status != "ok"]
    named = by_name(checks)
    assert named["listen key"].detail.startswith("created and deleted k:")
    assert "ping answered" in named["public stream"].detail
    assert "will be created" in named["journal"].detail


def test_bad_secret_fails_auth_with_a_fix_and_skips_what_needs_it(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    (tmp_path / "state").mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(cred_dir(tmp_path, sim.api_key, "not-the-secret-at-all"))}
    checks = doctor(config, env)
    assert checks["REST auth"].status == "fail"
    assert checks["REST auth"].fix
    assert checks["listen key"].status == "skip" and checks["private stream"].status == "skip"
    assert checks["public stream"].status == "ok"  # the public stream needs no key
    assert "not-the-secret-at-all" not in json.dumps([c.as_dict() for c in checks.values()])


def test_credentials_readable_by_others_fail(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    (tmp_path / "state").mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(cred_dir(tmp_path, sim.api_key, sim.api_secret, mode=0o644))}
    check = local_checks(config, env)["credentials"]
    assert check.status == "fail" and "mode 0644" in check.detail and "chmod 0600" in check.fix


def test_credentials_from_environment_warn(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    (tmp_path / "state").mkdir()
    checks = local_checks(config, {"RFQBOT_API_KEY": sim.api_key, "RFQBOT_API_SECRET": sim.api_secret})
    assert checks["credentials"].status == "warn" and "LoadCredential" in checks["credentials"].fix


def test_missing_credentials_fail_and_venue_checks_skip(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    checks = doctor(config, {})
    assert checks["credentials"].status == "fail" and "RFQBOT_API_KEY" in checks["credentials"].detail
    assert all(checks[n].status == "skip" for n in ("clock skew", "REST auth", "listen key", "public stream"))


def test_clock_skew_fails_beyond_one_second(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    (tmp_path / "state").mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(cred_dir(tmp_path, sim.api_key, sim.api_secret))}
    sim.faults.clock_skew(5000)
    try:
        checks = doctor(config, env)
    finally:
        sim.faults.clock_skew(0)
    assert checks["clock skew"].status == "fail" and "timedatectl" in checks["clock skew"].fix
    assert abs(int(checks["clock skew"].detail.split()[3]) - 5000) < 1000, checks["clock skew"].detail


def test_invalid_config_fails_first_and_skips_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("venue:\n  recv_windw_ms: 5000\n")
    checks = run_doctor(str(config), env={})
    assert checks[0].status == "fail" and "recv_windw_ms" in checks[0].detail
    assert all(c.status == "skip" for c in checks[1:])


def test_journal_missing_folder_and_broken_chain(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim)
    env = {"CREDENTIALS_DIRECTORY": str(cred_dir(tmp_path, sim.api_key, sim.api_secret))}
    check = local_checks(config, env)["journal"]
    assert check.status == "ok" and "created at first start" in check.detail  # the daemon makes the folder

    blocked = tmp_path / "blocked.yaml"  # a folder under a regular file can never be created
    (tmp_path / "a-file").write_text("")
    blocked.write_text(sim_config_text(sim, tmp_path / "a-file" / "state" / "journal.db"))
    check = local_checks(blocked, env)["journal"]
    assert check.status == "fail" and "does not exist" in check.detail and "StateDirectory" in check.fix

    (tmp_path / "state").mkdir()

    journal = Journal(tmp_path / "state" / "journal.db", SystemClock())
    for i in range(3):
        journal.append("note.test", source="test", payload={"i": i})
    journal.close()
    assert local_checks(config, env)["journal"].status == "ok"
    conn = sqlite3.connect(tmp_path / "state" / "journal.db")
    conn.execute("UPDATE events SET payload = '{\"i\":9}' WHERE seq = 2")
    conn.commit()
    conn.close()
    check = local_checks(config, env)["journal"]
    assert check.status == "fail" and "seq 2" in check.detail and "keep the file for audit" in check.fix


def test_cli_doctor_prints_checklist_and_exit_codes(sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, sim)
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(cred_dir(tmp_path, sim.api_key, sim.api_secret)))
    monkeypatch.delenv("RFQBOT_CONFIG", raising=False)
    assert main(["doctor", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "[ ok ] REST auth: signed GET /api/v1/account accepted" in out and out.rstrip().endswith("all checks passed")

    assert main(["--json", "doctor", "--config", str(config)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["status"] for d in data] == ["ok"] * 8

    bad = tmp_path / "bad.yaml"
    bad.write_text("nope: 1\n")
    assert main(["doctor", "--config", str(bad)]) == 78
    out = capsys.readouterr().out
    assert "[FAIL] config:" in out and "fix:" in out and "[skip] REST auth" in out
