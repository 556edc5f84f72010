"""Logging set-up: structlog, JSON lines for journald, console output for humans, redaction.

Redaction is a processor, not a convention: whatever a module logs, text under secret keys
(signature, api keys, secrets, listen keys: ``rfqbot.secret_names``) is masked, and any registered secret value is
masked wherever it appears inside any string, including rendered exceptions.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, MutableMapping, TextIO

import structlog

from rfqbot.secret_names import is_secret_key

MASK = "***"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in any log line from now on."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _secrets_lock:
            _secrets.add(value)


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    with _secrets_lock:
        _secrets.clear()


def is_sensitive_key(key: str) -> bool:
    """Same rule as config checks: ``rfqbot.secret_names.is_secret_key``."""
    return is_secret_key(key)


def redact_text(text: str) -> str:
    """``text`` with every registered secret replaced by the mask."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any, key: str = "") -> Any:
    """Recursively mask sensitive keys and registered secrets inside ``value``."""
    # Only text can be a secret: a bool or a count under a secret-sounding key stays readable.
    if key and isinstance(value, (str, bytes)) and value not in ("", b"") and is_sensitive_key(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


def redaction_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets in every key and value of the event."""
    for key in list(event_dict):
        event_dict[key] = redact_value(event_dict[key], key if key != "event" else "")
    return event_dict


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once for the process.

    ``fmt``: ``json`` (one JSON object per line, for journald and log shippers), ``console``
    (readable, for a terminal) or ``auto`` (console when the stream is a terminal, else JSON).
    """
    out = stream if stream is not None else sys.stderr
    if level.lower() not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; use auto, json or console")
    if fmt == "auto":
        isatty = getattr(out, "isatty", None)
        fmt = "console" if callable(isatty) and isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(default=str)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redaction_processor,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level.lower()]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
