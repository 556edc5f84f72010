"""JSON out and in for the wire, without floats.

The venue sends money as strings almost everywhere but as a bare JSON number in a few places
(``rfqUpdates.price``). ``json.dumps`` cannot write a ``Decimal`` as a number, so this module has
a tiny encoder: ``Decimal`` values become JSON numbers written digit for digit, ``str`` stays a
string. Frame builders therefore choose number-vs-string explicitly, as the documents do.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def dec_text(value: Decimal) -> str:
    """Plain decimal text (no exponent): ``Decimal('1E+5')`` -> ``'100000'``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def dumps(value: Any) -> str:
    """Compact JSON; Decimal -> number literal, everything else as the json module does."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        out.append(dec_text(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, float):
        raise TypeError("floats never reach the wire; use Decimal or str")
    else:
        out.append(json.dumps(value))


def loads(text: str | bytes) -> Any:
    """Parse JSON with Decimal for every non-integer number (never float)."""
    return json.loads(text, parse_float=Decimal)
