"""Config checks that need more than a schema: inline secrets, and readable schema errors.

pydantic reports errors by location tuples full of its own tags (``function-after[...]``,
``[key]``); a user needs ``strategies.BTC/USDT[0].limit_price`` at line 14 with a hint. The
translation lives here so schema.py stays the schema.
"""

from __future__ import annotations

import difflib
import math
import typing
from collections import Counter
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from rfqbot.config.yaml_reader import format_path
from rfqbot.errors import ConfigError
from rfqbot.secret_names import is_secret_key

_SECRET_HINT = ("secrets never go in the config file: put the API key and secret in the environment "
                "(RFQBOT_API_KEY / RFQBOT_API_SECRET, or the variables named by credentials.api_key_env / "
                "credentials.api_secret_env) or in systemd credentials (LoadCredential=api-key:... and "
                "LoadCredential=api-secret:...), and remove this value")


def _entropy_bits_per_char(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_like_secret(text: str) -> bool:
    """A long, random-looking token such as an API key or secret (not a URL, path or name)."""
    if len(text) < 24 or any(c in text for c in "/. :@"):
        return False
    classes = sum((any(c.islower() for c in text), any(c.isupper() for c in text), any(c.isdigit() for c in text)))
    return classes >= 3 and _entropy_bits_per_char(text) >= 3.5


def check_inline_secrets(data: Any, file: str, lines: Mapping[str, int],
                         path: tuple[str | int, ...] = ()) -> None:
    """Raise ``ConfigError`` for any value that is, or looks like, a secret written inline."""
    if isinstance(data, dict):
        for key, value in data.items():
            child = path + (str(key),)
            if is_secret_key(str(key)) and value not in (None, "") and not isinstance(value, (dict, list)):
                raise ConfigError(f"'{key}' looks like an inline secret; {_SECRET_HINT}",
                                  file=file, key=format_path(child), line=lines.get(format_path(child)))
            check_inline_secrets(value, file, lines, child)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            check_inline_secrets(item, file, lines, path + (i,))
    elif isinstance(data, str) and looks_like_secret(data):
        key = format_path(path)
        raise ConfigError(f"this value looks like an inline secret (a long random token); {_SECRET_HINT}",
                          file=file, key=key, line=lines.get(key))


def _model_at(model: type[BaseModel], path: list[str | int]) -> type[BaseModel] | None:
    """The pydantic model class found by following ``path`` from ``model`` (for key hints)."""
    current: Any = model
    for part in path:
        while True:
            origin = typing.get_origin(current)
            if origin in (list, dict):
                current = typing.get_args(current)[-1]
                break
            if origin is typing.Union:
                models = [a for a in typing.get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
                current = models[0] if models else None
                continue
            break
        if isinstance(current, type) and issubclass(current, BaseModel):
            if isinstance(part, int):
                return None
            field_info = current.model_fields.get(part)
            if field_info is None:
                return None
            current = field_info.annotation
        elif current is None:
            return None
    while typing.get_origin(current) in (list, dict):
        current = typing.get_args(current)[-1]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _data_path(loc: tuple[Any, ...], data: Any, error_type: str) -> list[str | int]:
    """Keep only the parts of a pydantic ``loc`` that index the user's data."""
    path: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
            path.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            path.append(part)
        elif (i == len(loc) - 1 and isinstance(part, str) and error_type in ("missing", "extra_forbidden")):
            path.append(part)
    return path


_CONTAINER_TYPES = ("model_type", "dict_type", "list_type")


def _describe(error: Mapping[str, Any], path: list[str | int], root: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        parent = _model_at(root, path[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        message = f"unknown key '{key}'"
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            return f"{message}; did you mean '{close[0]}'?"
        if allowed:
            return f"{message}; allowed keys here: {', '.join(allowed)}"
        return message
    if kind == "missing":
        return "required key is missing"
    if kind in _CONTAINER_TYPES and error.get("input", "") is None:
        # Where an empty value has no default to fall back on (a pair's chain, a list item).
        return "is empty (every line under it commented out?); give it its entries, or remove it"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    got = error.get("input")
    shown = repr(got) if isinstance(got, str) else str(got)
    if (kind not in _CONTAINER_TYPES and not isinstance(got, (dict, list))
            and shown not in message and len(shown) < 80):
        message += f" (got {shown})"
    return message


def pydantic_errors_to_config_error(exc: ValidationError, data: Any, lines: Mapping[str, int], file: str,
                                   root: type[BaseModel]) -> ConfigError:
    """One ``ConfigError`` for all schema errors: the first in full, the others as extra lines."""
    problems: list[tuple[str, int | None, str]] = []
    for error in exc.errors():
        path = _data_path(tuple(error["loc"]), data, error["type"])
        key = format_path(path)
        line = lines.get(key)
        if line is None:
            # A missing key has no line; point at its parent mapping instead.
            probe = list(path)
            while probe and line is None:
                probe.pop()
                line = lines.get(format_path(probe))
        problems.append((key, line, _describe(error, path, root)))
    key, line, message = problems[0]
    for other_key, other_line, other_message in problems[1:]:
        where = f"{file}:{other_line}" if other_line else file
        message += f"\n{where}: {other_key}: {other_message}" if other_key else f"\n{where}: {other_message}"
    return ConfigError(message, file=file, key=key or None, line=line)
