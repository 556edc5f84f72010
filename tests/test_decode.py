"""Shared decoders: an unknown mode keeps the venue's own word beside QuoteMode.UNKNOWN."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rfqbot.decode import quote_from_json, rfq_from_json, server_time_from_json
from rfqbot.normalise import NormaliseError
from rfqbot.records import QuoteMode


def test_an_unknown_rfq_mode_keeps_its_raw_word() -> None:
    rfq = rfq_from_json({"rfqId": "R1", "rfqMode": "T+1", "quoteMode": "instant-ish"})
    assert (rfq.rfq_mode, rfq.mode_raw) == (QuoteMode.UNKNOWN, "T+1")
    assert (rfq.quote_mode, rfq.quote_mode_raw) == (QuoteMode.UNKNOWN, "instant-ish")


def test_known_modes_keep_the_spelling_the_venue_used() -> None:
    rfq = rfq_from_json({"rfqId": "R1", "rfqMode": "REAL_TIME"})
    assert (rfq.rfq_mode, rfq.mode_raw, rfq.quote_mode_raw) == (QuoteMode.REAL_TIME, "REAL_TIME", None)
    quote = quote_from_json({"quoteOrderId": "Q1", "inquiryOrderId": "R1", "price": 1, "quoteSettleType": 1})
    assert (quote.mode, quote.mode_raw) == (QuoteMode.DELAYED, "1")


def test_an_unknown_quote_mode_keeps_its_raw_word() -> None:
    quote = quote_from_json({"quoteId": "Q1", "rfqId": "R1", "price": "2.5", "quoteMode": "next-week"})
    assert (quote.mode, quote.mode_raw, quote.price) == (QuoteMode.UNKNOWN, "next-week", Decimal("2.5"))


def test_no_mode_means_no_raw_word() -> None:
    assert rfq_from_json({"rfqId": "R1"}).mode_raw is None
    assert quote_from_json({"quoteId": "Q1", "rfqId": "R1", "price": "1"}).mode_raw is None


def test_server_time_is_integer_ms_or_an_error() -> None:
    assert server_time_from_json({"serverTime": 1764645641393}) == 1764645641393
    with pytest.raises(NormaliseError, match="no serverTime"):
        server_time_from_json([])
    with pytest.raises(NormaliseError, match="expected an integer"):
        server_time_from_json({"serverTime": "soon"})


def test_the_cli_shows_the_raw_word_of_an_unknown_mode() -> None:
    from rfqbot.cli.market_cmds import RFQ_COLUMNS

    mode_column = dict(RFQ_COLUMNS)["MODE"]
    assert mode_column(rfq_from_json({"rfqId": "R1", "rfqMode": "T+1"})) == "unknown (T+1)"
    assert mode_column(rfq_from_json({"rfqId": "R1", "rfqMode": "REAL_TIME"})) == "real-time"


@pytest.mark.parametrize("value", [2 ** 63 - 1, 253_402_300_800_000, 0, -5])
def test_an_absurd_server_time_is_refused(value) -> None:
    """Found by review: serverTime 2**63-1 became the clock offset, and the next journaled venue
    time overflowed SQLite's INTEGER (the engine stopped deciding, again after each restart)."""
    with pytest.raises(NormaliseError, match="between 1970 and the year 9999"):
        server_time_from_json({"serverTime": value})
