"""Reload outcomes reach lifecycle listeners (systemd notify) only once the engine decided."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from rfqbot.config.schema import Settings
from rfqbot.daemon import Daemon
from rfqbot.sim import Simulator
from tests.integration.conftest import RunningDaemon
from tests.integration.helpers import daemon_yaml, wait_for

LIMIT = {"BTC/USDT": [{"use": "price_limit", "limit_price": "107000"}]}


def _listen(daemon: Daemon) -> list[tuple[str, dict[str, Any]]]:
    stages: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def listener(stage: str, details: dict[str, Any]) -> None:
        with lock:
            # Which chains the engine runs at this moment: "reloaded ok" must come after the
            # engine swapped them in, never when the new settings were only queued.
            engine = daemon.engine
            stages.append((stage, {**details, "_chains": None if engine is None else engine.chains}))

    daemon.add_listener(listener)
    return stages


def test_reload_reports_applied_after_the_engine_applied_it(
        sim: Simulator, settings_for: Callable[..., Settings], start_daemon: Callable[..., RunningDaemon],
        tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    settings = settings_for(sim, strategies=LIMIT)
    config.write_text(daemon_yaml(sim, tmp_path / "journal.db", strategies=LIMIT))
    run = start_daemon(settings, sim)
    stages = _listen(run.daemon)
    engine = run.daemon.engine
    assert engine is not None
    old_chains = engine.chains
    # Hold the engine thread at the reload so "reloaded" cannot race ahead of it.
    release = threading.Event()
    original = engine._on_reload

    def held_reload(event: Any) -> None:
        release.wait(10)
        original(event)

    engine._on_reload = held_reload  # type: ignore[method-assign]
    assert run.daemon.request_reload(str(config))
    time_to_wrongly_report = 0.3
    release.wait(time_to_wrongly_report)
    assert not any(s == "reloaded" for s, _ in stages), "reported before the engine applied the reload"
    release.set()
    wait_for(lambda: any(s == "reloaded" for s, _ in stages), what="reloaded stage")
    reloaded = [d for s, d in stages if s == "reloaded"]
    assert len(reloaded) == 1 and reloaded[0]["ok"] is True
    assert reloaded[0]["_chains"] is not old_chains
    wait_for(lambda: run.journal.events("reload.applied"), what="reload.applied journaled")
    assert [s for s, _ in stages][:1] == ["reloading"]


def test_reload_of_a_broken_file_reports_the_reason_and_keeps_running(
        sim: Simulator, settings_for: Callable[..., Settings], start_daemon: Callable[..., RunningDaemon],
        tmp_path: Path) -> None:
    run = start_daemon(settings_for(sim, strategies=LIMIT), sim)
    stages = _listen(run.daemon)
    broken = tmp_path / "broken.yaml"
    broken.write_text("strategies:\n  BTC/USDT:\n    - use: price_limit\n      limit_prise: '1'\n")

    assert not run.daemon.request_reload(str(broken))
    wait_for(lambda: any(s == "reloaded" for s, _ in stages), what="reloaded stage")
    (details,) = [d for s, d in stages if s == "reloaded"]
    assert details["ok"] is False
    assert "limit_prise" in details["error"]
    wait_for(lambda: run.journal.events("reload.rejected"), what="reload.rejected journaled")

    missing = tmp_path / "does-not-exist" / "config.yaml"
    assert not run.daemon.request_reload(str(missing))
    wait_for(lambda: sum(s == "reloaded" for s, _ in stages) == 2, what="second reloaded stage")
    assert run.daemon.engine is not None and run.daemon.engine.deciding


def test_reload_names_changed_sections_it_cannot_apply(
        sim: Simulator, settings_for: Callable[..., Settings], start_daemon: Callable[..., RunningDaemon],
        tmp_path: Path) -> None:
    """A SIGHUP applies strategies and risk only; a changed journal.path (or venue, streams...) is
    named as needing a restart in the log, the journal and the systemd status, not ignored in silence."""
    from rfqbot.config.schema import load_config
    from rfqbot.daemon import restart_only_changes

    run = start_daemon(settings_for(sim, strategies=LIMIT), sim)
    stages = _listen(run.daemon)
    moved = tmp_path / "moved.yaml"
    moved.write_text(daemon_yaml(sim, tmp_path / "elsewhere" / "journal.db", strategies=LIMIT))
    expected = restart_only_changes(run.daemon.settings, load_config(str(moved)))
    assert "journal" in expected and "strategies" not in expected and "risk" not in expected
    assert run.daemon.request_reload(str(moved))
    wait_for(lambda: any(s == "reloaded" for s, _ in stages), what="reloaded stage")
    (details,) = [d for s, d in stages if s == "reloaded"]
    assert details["ok"] is True and details["restart_needed"] == expected
    applied = wait_for(lambda: run.journal.events("reload.applied"), what="reload.applied journaled")
    assert applied[-1]["payload"]["restart_needed"] == expected


def test_restart_only_changes_ignores_strategies_and_risk() -> None:
    from rfqbot.config.schema import load_config_text
    from rfqbot.daemon import restart_only_changes

    base = load_config_text("risk:\n  max_open_rfqs: 5\n", file="a.yaml")
    same_but_tuned = load_config_text("risk:\n  max_open_rfqs: 7\nstrategies:\n  BTC/USDT:\n"
                                      "    - use: price_limit\n      limit_price: '1'\n", file="b.yaml")
    assert restart_only_changes(base, same_but_tuned) == []
    moved = load_config_text("journal:\n  path: /tmp/other.db\nkeep_warm:\n  every_s: 0\n", file="c.yaml")
    assert restart_only_changes(base, moved) == ["journal", "keep_warm"]

