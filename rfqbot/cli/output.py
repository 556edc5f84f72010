"""Output for humans (aligned tables) and machines (``--json``), from the same records.

JSON keeps exact values: ``Decimal`` as strings (never floats), enums as their wire words,
timestamps as integer milliseconds. Tables format the same values for reading.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Callable, Sequence, TextIO

Column = tuple[str, Callable[[Any], Any]]


def jsonable(value: Any) -> Any:
    """Plain JSON data from records: Decimal -> exact string, Enum -> value, dataclass -> dict."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def print_json(data: Any, out: TextIO | None = None) -> None:
    print(json.dumps(jsonable(data), indent=2, ensure_ascii=False), file=out or sys.stdout)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def ms_to_text(ms: int | None) -> str | None:
    """A millisecond timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC, for tables."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def print_table(rows: Sequence[Any], columns: Sequence[Column], out: TextIO | None = None,
                empty: str = "(none)") -> None:
    stream = out or sys.stdout
    if not rows:
        print(empty, file=stream)
        return
    cells = [[cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(header), *(len(r[i]) for r in cells)) for i, (header, _) in enumerate(columns)]
    print("  ".join(h.ljust(w) for (h, _), w in zip(columns, widths)).rstrip(), file=stream)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=stream)


def emit(as_json: bool, data: Any, columns: Sequence[Column], *, empty: str = "(none)") -> None:
    """Print ``data`` (a record or a list of records) as JSON or as a table."""
    if as_json:
        print_json(data)
        return
    rows = data if isinstance(data, (list, tuple)) else [data]
    print_table(rows, columns, empty=empty)
