"""Logging set-up: structlog, JSON lines for journald, console output for humans, redaction.

Redaction is a processor, not a convention: whatever a module logs, values under sensitive keys
(signature, api keys, secrets, listen keys) are masked, and any registered secret value is
masked wherever it appears inside any string, including rendered exceptions.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import Any, MutableMapping, TextIO

import structlog

MASK = "***"

_SENSITIVE_KEY = re.compile(
    r"(signature|sign$|api[-_]?key|apikey|secret|password|passwd|token|listen[-_]?key|"
    r"authorization|x-hk-apikey|x-apikey|x-api-sign)",
    re.IGNORECASE,
)
# Keys that name where a secret lives rather than holding it.
_NAME_OF_SECRET = re.compile(r"(_env|_file|_header|_hint)$", re.IGNORECASE)

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
    return bool(_SENSITIVE_KEY.search(key)) and not _NAME_OF_SECRET.search(key)


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
    if key and is_sensitive_key(key) and isinstance(value, (str, bytes, int)) and value not in ("", b""):
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
