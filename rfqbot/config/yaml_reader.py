"""YAML loading for the config: Decimal floats, line numbers per key path, no duplicate keys.

PyYAML builds floats as binary ``float`` (``70000.1`` would not be exact) and silently keeps
the last of two equal keys. Neither is acceptable for a trading desk's config, so the loader
here builds ``Decimal`` from the scalar's text and reports duplicates; it also records the
line of every key so schema errors can point at it.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Sequence

import yaml

from rfqbot.errors import ConfigError


class _DecimalSafeLoader(yaml.SafeLoader):
    """SafeLoader whose floats are ``Decimal`` built from the exact text written."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "").strip()
    lowered = text.lower()
    if lowered in (".nan", ".inf", "+.inf", "-.inf"):
        raise ConfigError(f"{text} is not a usable number; write a finite decimal like 0.5",
                          line=node.start_mark.line + 1)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{text!r} is not a decimal number", line=node.start_mark.line + 1) from None


_DecimalSafeLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def format_path(path: Sequence[str | int]) -> str:
    """``("strategies", "BTC/USDT", 0, "limit_price")`` -> ``strategies.BTC/USDT[0].limit_price``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], lines: dict[str, int], file: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            child = path + (key,)
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} (first at line {seen[key]}); remove one of them",
                                  file=file, key=format_path(child), line=line)
            seen[key] = line
            lines[format_path(child)] = line
            _index_lines(value_node, child, lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = path + (i,)
            lines[format_path(child)] = item.start_mark.line + 1
            _index_lines(item, child, lines, file)


def load_yaml_with_lines(text: str, file: str) -> tuple[Any, dict[str, int]]:
    """Parse ``text``; return the data and ``{key path: line}``. Raises ``ConfigError``."""
    loader = _DecimalSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[str, int] = {}
        _index_lines(node, (), lines, file)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise ConfigError(f"YAML syntax error: {problem}{context}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=file) from None
    except ConfigError as exc:
        raise ConfigError(exc.detail, file=file, key=exc.key, line=exc.line) from None
    finally:
        loader.dispose()
    return data, lines


_DURATION_PART = re.compile(r"(\d+)\s*(d|h|m|s)")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str | int) -> int:
    """``30s``, ``5m``, ``1h``, ``1d``, ``1h30m`` or a bare number of seconds -> seconds (> 0)."""
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}; write it like 30s, 5m, 1h or 1d")
    if isinstance(text, int):
        seconds = text
    else:
        compact = str(text).strip().lower()
        if compact.isdigit():
            seconds = int(compact)
        else:
            parts = _DURATION_PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact.replace(" ", ""):
                raise ValueError(f"invalid duration {text!r}; write it like 30s, 5m, 1h or 1d")
            seconds = sum(int(n) * _UNIT_S[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}; it must be longer than 0 s")
    return seconds
