"""Value normalisation: the fast paths for the usual JSON types give what the general path gives."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from rfqbot.engine.passive import _submitted_at
from rfqbot.normalise import NormaliseError, to_decimal, to_int, to_ms, to_text
from rfqbot.records import Quote, QuoteMode


@pytest.mark.parametrize("value, expected", [
    (1_700_000_000, 1_700_000_000_000), (1_700_000_000_123, 1_700_000_000_123), (0, 0),
    ("1700000000", 1_700_000_000_000), (Decimal("1700000000.5"), 1_700_000_000_500), (None, None), ("", None),
])
def test_to_ms_by_magnitude(value, expected):
    assert to_ms(value) == expected


@pytest.mark.parametrize("bad", [-1, True, "soon", "-5", Decimal("NaN")])
def test_to_ms_refuses_what_is_not_a_timestamp(bad):
    with pytest.raises(NormaliseError):
        to_ms(bad, "expireTime")


@pytest.mark.parametrize("value, expected", [
    ("106000.5", Decimal("106000.5")), (" 0.0471\n", Decimal("0.0471")), ("1E-8", Decimal("1E-8")),
    (5000, Decimal(5000)), (Decimal("2.50"), Decimal("2.50")), (120001.1, Decimal("120001.1")), (None, None), ("", None),
])
def test_to_decimal_keeps_the_exact_value(value, expected):
    got = to_decimal(value)
    assert got == expected and str(got) == str(expected)


@pytest.mark.parametrize("bad", ["abc", " ", "Infinity", "NaN", True, [1]])
def test_to_decimal_refuses_what_is_not_money(bad):
    with pytest.raises(NormaliseError):
        to_decimal(bad, "price")


@pytest.mark.parametrize("absurd", ["1E-999999999", "1e70", "1" * 61, Decimal("1E+100"), 1e70, "1.5E-61",
                                    "0." + "1" * 81, Decimal("0." + "1" * 81)])
def test_to_decimal_refuses_absurd_magnitudes_at_the_edge(absurd):
    """Valid decimal text whose size no price or amount has: it would overflow the engine's first
    quantize or comparison and cost the whole frame there, with an unclear error."""
    with pytest.raises(NormaliseError, match="is not a price or amount"):
        to_decimal(absurd, "price")


def test_to_decimal_keeps_the_widest_real_values():
    assert to_decimal("1" * 60) == Decimal("1" * 60)
    assert to_decimal("0." + "0" * 59 + "1") == Decimal("1E-60")
    assert to_decimal("0." + "1" * 80) == Decimal("0." + "1" * 80)
    # Trailing zeros make text long, not the value wide: exact as written.
    assert str(to_decimal("1." + "0" * 61)) == "1." + "0" * 61
    assert to_decimal("0E-99999999") == 0


def test_a_best_quote_with_an_absurd_price_is_a_rejected_frame_not_an_engine_error(tmp_path):
    import json

    from benchmarks.micro import best_quote_frame
    from rfqbot.events import RejectedFrame
    from rfqbot.streams.wire import decode_frame

    frame = json.loads(best_quote_frame(1, 1_795_255_342_877))
    frame["data"][0]["price"] = "1E-999999999"
    [event] = decode_frame("private", json.dumps(frame), 1_795_255_342_877)
    assert isinstance(event, RejectedFrame) and "price" in event.reason and "1E-999999999" in event.raw


def test_to_text():
    assert to_text("MPQ1") == "MPQ1" and to_text("") is None and to_text(None) is None and to_text(7) == "7"
    with pytest.raises(NormaliseError):
        to_text({"a": 1})


def test_a_public_quote_aged_from_arrival_equals_dataclasses_replace():
    quote = Quote(quote_id="q", rfq_id="r", price=Decimal("1.5"), buy_ccy="BTC", sell_ccy="USDT",
                  buy_amount=None, sell_amount=Decimal("5000"), lp_name=None, mode=QuoteMode.UNKNOWN, rank=None,
                  submitted_ms=None, expires_ms=5, status_raw=None, manual=False, mode_raw=None)
    assert _submitted_at(quote, 42) == replace(quote, submitted_ms=42)


def test_timestamps_after_the_year_9999_and_integers_past_64_bits_are_errors() -> None:
    from rfqbot.normalise import MAX_TIMESTAMP_MS
    assert to_ms(MAX_TIMESTAMP_MS) == MAX_TIMESTAMP_MS
    for bad in (MAX_TIMESTAMP_MS + 1, 10 ** 20, "1e20", str(10 ** 30)):
        with pytest.raises(NormaliseError, match="after the year 9999"):
            to_ms(bad, "expireTime")
    assert to_int(2 ** 63 - 1) == 2 ** 63 - 1 and to_int(-(2 ** 63)) == -(2 ** 63)
    for bad in (2 ** 63, -(2 ** 63) - 1, "1e30"):
        with pytest.raises(NormaliseError, match="64-bit range"):
            to_int(bad, "rank")
