"""Times on the command line: ``--since 2h``, ``--since 2025-10-01``, ``--before 2025-09-01T12:00Z``.

All dates are UTC (the journal's days are UTC days); the result is integer Unix milliseconds.
"""

from __future__ import annotations

from rfqbot.clock import DAY_MS

import re
from datetime import datetime, timedelta, timezone

_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
_AGO = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
HELP = "a time: 30m, 2h, 7d (ago), 2025-10-01 (UTC midnight), 2025-10-01T12:30Z, or Unix milliseconds"


def parse_time(text: str, now_ms: int) -> int:
    """Unix ms for ``text``; ``ValueError`` naming the accepted forms if it is none of them."""
    value = text.strip()
    ago = _AGO.match(value)
    if ago:
        return now_ms - int(ago.group(1)) * _UNITS_MS[ago.group(2)]
    if value.isdigit():
        number = int(value)
        if number < 100_000_000_000:
            raise ValueError(f"{text!r} looks like Unix seconds; give milliseconds ({number * 1000}) or {HELP}")
        return number
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a time; use {HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def day_of(ms: int | None) -> str | None:
    """The UTC day (``YYYY-MM-DD``) of a millisecond timestamp, as the journal's views group it."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%d")
