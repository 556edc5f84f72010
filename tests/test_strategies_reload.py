"""SIGHUP reload re-reads a plug-in's code (``use: module:Class``); a broken edit keeps the old chains."""

from __future__ import annotations

import sys
import textwrap
from types import SimpleNamespace

import pytest

from rfqbot.errors import ConfigError
from rfqbot.events import ReloadRequested
from strategies import compile_chains
from tests.test_engine import Harness
from tests.test_strategies import ctx, q

PLUGIN = """
    from strategies.base import Strategy, Verdict

    class Gate(Strategy):
        name = "gate"

        def evaluate(self, ctx):
            return {body}
"""
ALLOW = 'Verdict.allow("version one allows")'
DENY = 'Verdict.decline("version two declines everything, said at length")'


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    path = tmp_path / "hup_plugin_mod.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # the edit lands within the same second
    yield path
    sys.modules.pop("hup_plugin_mod", None)


def write(path, body):
    path.write_text(textwrap.dedent(PLUGIN.format(body=body)))


def test_edited_plugin_is_reread_by_the_next_compile(plugin):
    write(plugin, ALLOW)
    raw = {"BTC/USDT": [{"use": "hup_plugin_mod:Gate"}]}
    first = compile_chains(raw).for_pair("BTC/USDT")
    assert first.decide(ctx([q("a", "1", 1)])).kind == "accept"
    write(plugin, DENY)
    second = compile_chains(raw).for_pair("BTC/USDT")
    assert second.decide(ctx([q("a", "1", 1)])).kind != "accept"
    assert first.decide(ctx([q("a", "1", 1)])).kind == "accept"  # the running chain is untouched


def test_broken_edit_is_a_config_error_and_the_engine_keeps_the_old_chains(plugin, tmp_path):
    write(plugin, ALLOW)
    raw = {"BTC/USDT": [{"use": "hup_plugin_mod:Gate"}]}
    h = Harness(tmp_path, chains=compile_chains(raw))
    plugin.write_text("this is not python (\n")
    with pytest.raises(ConfigError) as err:
        compile_chains(raw, file="cfg.yaml")
    assert err.value.key == "strategies.BTC/USDT[0].use"
    h.engine.handle(ReloadRequested(h.now, settings=SimpleNamespace(strategies=raw, risk=None, file="cfg.yaml")))
    assert h.rows("SELECT count(*) AS n FROM events WHERE kind = 'reload.rejected'")[0]["n"] == 1
    h.best(h.quote("Q1", "90", 1))
    assert h.actions.accepts == [("accept", "R1", "Q1")]  # still version one
    h.journal.close()


def test_builtins_are_not_reloaded():
    import strategies.builtin as builtin_module
    before = builtin_module.BUILTINS["price_limit"]
    compile_chains({"BTC/USDT": [{"use": "strategies.builtin:PriceLimit", "limit_price": "1"}]})
    assert sys.modules["strategies.builtin"].BUILTINS["price_limit"] is before
