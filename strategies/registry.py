"""Strategy lookup (built-ins by name, user classes by ``module:Class``) and chain compilation.

``compile_chains`` is what the config loader calls, at start and on every reload, so a typo in
a strategy step is reported by ``check-config`` with the exact key path, before the daemon runs.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any, Mapping

from rfqbot.errors import ConfigError
from strategies.base import Strategy
from strategies.builtin import BUILTINS
from strategies.chain import Chain, ChainSet

_PAIR = re.compile(r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,15}$")


# rfqbot's own strategy modules: never reloaded (a second ``Strategy`` class would make every
# user class fail the subclass check, and built-ins do not change while rfqbot runs).
_OWN_MODULES = frozenset({"strategies", "strategies.base", "strategies.builtin", "strategies.chain",
                          "strategies.registry", "strategies.reference"})


def _import_user_module(module_name: str, fresh: set[str] | None) -> Any:
    """Import a user's module; with ``fresh``, re-execute it once per compile if already loaded.

    WHY: ``import_module`` returns the cached module, so a plug-in edited on disk would keep
    running its old code after SIGHUP. Only the named module is re-executed (not the modules it
    imports). A reload that fails raises, and the caller keeps the old chains.
    """
    module = sys.modules.get(module_name)
    if fresh is None or module is None or module_name in _OWN_MODULES or module_name.startswith("rfqbot."):
        return importlib.import_module(module_name)
    if module_name not in fresh:
        importlib.invalidate_caches()
        module = importlib.reload(module)
        fresh.add(module_name)
    return module


def resolve(use: Any, *, key: str, file: str | None = None, fresh: set[str] | None = None) -> type[Strategy]:
    """The strategy class for a step's ``use:`` value: a built-in name or ``package.module:ClassName``.

    ``fresh``: names of user modules already re-read by this compile (``compile_chains`` passes
    one set per compile so a plug-in edited since the last compile runs its new code).
    """
    if not isinstance(use, str) or not use.strip():
        raise ConfigError(f"'use' must name a strategy: one of {', '.join(sorted(BUILTINS))}, or "
                          "package.module:ClassName", file=file, key=key)
    use = use.strip()
    if ":" not in use:
        cls = BUILTINS.get(use)
        if cls is None:
            raise ConfigError(f"unknown strategy {use!r}; built-ins are {', '.join(sorted(BUILTINS))}; "
                              "for your own class write package.module:ClassName", file=file, key=key)
        return cls
    module_name, _, class_name = use.partition(":")
    try:
        module = _import_user_module(module_name, fresh)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} ({exc}); is it installed in rfqbot's "
                          "environment or on PYTHONPATH?", file=file, key=key) from None
    except Exception as exc:  # noqa: BLE001 - a user module failing at import time
        raise ConfigError(f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}",
                          file=file, key=key) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"module {module_name!r} has no attribute {class_name!r}", file=file, key=key)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"{use} is not a subclass of strategies.base.Strategy", file=file, key=key)
    return cls


def compile_chains(raw: Mapping[str, Any] | None, *, file: str | None = None) -> ChainSet:
    """Validate the YAML ``strategies:`` section and build a ``ChainSet``.

    ``raw`` maps a pair (``BTC/USDT``) or ``*`` to an ordered list of steps, each a mapping
    with ``use:`` and the strategy's parameters. Every problem raises ``ConfigError`` with
    ``key="strategies.<pair>[i].<name>"``. User modules (``module:Class``) are re-read from disk
    on every compile, so a reload (SIGHUP) runs a plug-in's current code.
    """
    if raw is None:
        return ChainSet({})
    if not isinstance(raw, Mapping):
        raise ConfigError("must map a pair (BTC/USDT) or '*' to a list of steps", file=file, key="strategies")
    chains: dict[str, Chain] = {}
    fresh: set[str] = set()  # user modules re-read by this compile (each once)
    for pair, steps in raw.items():
        key = f"strategies.{pair}"
        if not isinstance(pair, str) or (pair != "*" and not _PAIR.match(pair)):
            raise ConfigError(f"pair {pair!r} must be written BASE/QUOTE in capitals (e.g. BTC/USDT) or '*'",
                              file=file, key=key)
        if not isinstance(steps, list) or not steps:
            raise ConfigError("must be a non-empty list of steps, each with 'use:'", file=file, key=key)
        built = []
        for index, step in enumerate(steps):
            step_key = f"{key}[{index}]"
            if not isinstance(step, Mapping):
                raise ConfigError("each step must be a mapping with 'use:' and parameters", file=file, key=step_key)
            if "use" not in step:
                raise ConfigError(f"missing 'use:'; name a strategy: {', '.join(sorted(BUILTINS))}",
                                  file=file, key=f"{step_key}.use")
            cls = resolve(step["use"], key=f"{step_key}.use", file=file, fresh=fresh)
            built.append(cls.from_config(step, key=step_key, file=file))
        chains[pair] = Chain(pair, tuple(built))
    return ChainSet(chains)
