"""Value normalisation shared by every decoder at the edge (REST results and stream frames).

The venue's documents are loose: money arrives as strings or JSON numbers, timestamps in
seconds or milliseconds, modes spelled ``real-time`` or ``REAL_TIME``, statuses as words
(with ``statusInt`` beside them as a string). Each of those is absorbed here, once, so that
everything inside rfqbot sees ``Decimal`` money, integer milliseconds and enums.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from rfqbot.records import QuoteMode, RfqStatus

# A Unix time below this many units is in seconds: 1e11 s is the year 5138, while 1e11 ms is
# 1973-03-03. No venue timestamp we meet is from before 1973 in milliseconds, nor after 5138
# in seconds, so the magnitude tells the unit unambiguously.
_SECONDS_MS_BOUNDARY = 100_000_000_000


class NormaliseError(ValueError):
    """A field's value cannot be normalised; the message names the field and the value."""


# Largest timestamp accepted: 9999-12-31T23:59:59.999Z. Beyond it a value is garbage, and one
# past SQLite's 64-bit INTEGER would fail the journal's insert (a frame must be rejected here,
# at the edge, not break the batch it lands in).
MAX_TIMESTAMP_MS = 253_402_300_799_999
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _plausible_ms(ms: int, field: str, value: Any) -> int:
    if ms > MAX_TIMESTAMP_MS:
        raise NormaliseError(f"{field}: timestamp {value!r} is after the year 9999")
    return ms


def to_ms(value: Any, field: str = "timestamp") -> int | None:
    """Return a timestamp in integer milliseconds, deciding seconds vs ms by magnitude.

    ``None`` and ``""`` mean "not given" and return ``None``. Booleans, negative numbers,
    non-numeric strings and times after the year 9999 are errors: a wrong timestamp must never
    be guessed into a plausible one.
    """
    if type(value) is int:  # the usual JSON number: no text round trip (same checks, same result)
        if value < 0:
            raise NormaliseError(f"{field}: expected a non-negative timestamp, got {value!r}")
        return _plausible_ms(value * 1000 if value < _SECONDS_MS_BOUNDARY else value, field, value)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise NormaliseError(f"{field}: expected a timestamp, got boolean {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise NormaliseError(f"{field}: expected a timestamp, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise NormaliseError(f"{field}: expected a non-negative timestamp, got {value!r}")
    if number < _SECONDS_MS_BOUNDARY:
        number = number * 1000
    if number > MAX_TIMESTAMP_MS:
        raise NormaliseError(f"{field}: timestamp {value!r} is after the year 9999")
    return int(number)


MAX_MAGNITUDE = 60
"""A money field lies within 1E-60 .. 1E+60 (zero aside). Real prices and amounts are far inside;
a value like ``1E-999999999`` is valid text but overflows the first ``quantize`` or comparison
that meets it, deep in the engine: it is refused here, at the edge, as bad input."""
MAX_SIGNIFICANT_DIGITS = 80
"""...and has at most this many significant digits (trailing zeros do not count)."""


def _significant_digits(number: Decimal) -> int:
    digits = number.as_tuple().digits
    return len(bytes(digits).rstrip(b"\x00"))


def _bounded(result: Decimal, field: str, value: Any) -> Decimal:
    if not result.is_finite():
        raise NormaliseError(f"{field}: expected a finite decimal number, got {value!r}")
    magnitude_ok = -MAX_MAGNITUDE <= result.adjusted() < MAX_MAGNITUDE
    if magnitude_ok and type(value) is str and len(value) <= MAX_SIGNIFICANT_DIGITS:
        return result   # the usual case, decided without looking at the digits (once per money field)
    if not result or (magnitude_ok and _significant_digits(result) <= MAX_SIGNIFICANT_DIGITS):
        return result   # zero (any exponent), or a long text of a reasonable number
    raise NormaliseError(f"{field}: {str(value)[:40]!r} is not a price or amount (outside 1E-{MAX_MAGNITUDE} .. "
                         f"1E+{MAX_MAGNITUDE}, or more than {MAX_SIGNIFICANT_DIGITS} significant digits)")


def to_decimal(value: Any, field: str = "amount") -> Decimal | None:
    """Return money as ``Decimal`` from a JSON string or number; ``None``/``""`` mean not given.

    JSON numbers reach us as ``int`` or ``float`` when a plain ``json`` parser was used; a float
    is converted through ``repr`` (shortest round-trip text), never through binary arithmetic,
    so ``120001.1`` stays ``Decimal('120001.1')``. Decoders should parse JSON with
    ``parse_float=Decimal`` so that floats never appear at all.
    """
    if type(value) is str and value:  # the usual money field: straight to Decimal, same checks after
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise NormaliseError(f"{field}: expected a decimal number, got {value!r}") from None
        return _bounded(result, field, value)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise NormaliseError(f"{field}: expected a decimal number, got boolean {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise NormaliseError(f"{field}: expected a decimal number, got {value!r}") from None
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        raise NormaliseError(f"{field}: expected a decimal number, got {type(value).__name__}")
    return _bounded(result, field, value)


def to_int(value: Any, field: str = "value") -> int | None:
    """Return an ``int`` from a JSON number or a numeric string (``statusInt`` is a string)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise NormaliseError(f"{field}: expected an integer, got boolean {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise NormaliseError(f"{field}: expected an integer, got {value!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise NormaliseError(f"{field}: expected an integer, got {value!r}")
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise NormaliseError(f"{field}: integer {value!r} is out of the 64-bit range")
    return int(number)


def to_status(value: Any) -> tuple[RfqStatus, str]:
    """Return ``(status, raw)``; an unknown word maps to ``RfqStatus.UNKNOWN`` with raw kept."""
    raw = "" if value is None else str(value)
    return RfqStatus.parse(raw), raw


def to_mode(value: Any) -> tuple[QuoteMode, str]:
    """Return ``(mode, raw)`` for ``real-time``/``REAL_TIME``/``delayed``/``DELAYED``/1/2."""
    raw = "" if value is None else str(value)
    return QuoteMode.parse(raw), raw


def to_text(value: Any) -> str | None:
    """Return an identifier or name as text; ``None``/``""`` mean not given."""
    if type(value) is str:
        return value or None
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        raise NormaliseError(f"expected text, got {type(value).__name__}")
    return str(value)
