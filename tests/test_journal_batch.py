"""Batched market-data rows and the encode-once payload path of ``Journal.append``.

The projection is fed ``plain_json(payload)`` instead of ``json.loads`` of the stored text, and
public rows inside ``batch()`` are inserted with one executemany before the commit: both must
leave exactly what the one-row-at-a-time path left (text, chain, derived tables).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from rfqbot.audit.chain import NotPlain, canonical_json, plain_json
from rfqbot.clock import FakeClock
from rfqbot.journal import Journal
from rfqbot.records import Quote, QuoteMode, RfqStatus, Side


def _quote(n: int) -> Quote:
    return Quote(quote_id=f"q{n}", rfq_id=f"r{n % 3}", price=Decimal("65000.10") + n, buy_ccy="BTC",
                 sell_ccy="USDT", buy_amount=Decimal("0.1"), sell_amount=Decimal("6500.010"), lp_name=None,
                 mode=QuoteMode.REAL_TIME, rank=None,
                 submitted_ms=1_700_000_000_000 + n, expires_ms=None, status_raw=None, manual=False, mode_raw="1")


PAYLOADS = [
    {"quote": _quote(1), "raw": '{"topic":"quotes","é":"\\u2028"}', "received_ms": 1},
    {"status": list(RfqStatus)[0], "side": list(Side)[0], "amounts": {"BTC": Decimal("1E-8")}},
    {"nested": ({"a": (1, Decimal("2.50"), None, True)}, []), "text": "naïve \"quoted\"\n"},
    {"quotes": [_quote(2), _quote(3)], "n": 10**30},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_plain_json_is_what_the_stored_text_decodes_to_and_encodes_identically(payload):
    plain = plain_json(payload)
    assert plain == json.loads(canonical_json(payload))
    assert canonical_json(plain) == canonical_json(payload)
    assert json.dumps(plain)  # only JSON types are left (no Enum, Decimal, dataclass)


@pytest.mark.parametrize("odd", [{1: "int key"}, {"s": {1, 2}}, {"b": b"x"}, {"f": 0.5}])
def test_plain_json_refuses_what_it_cannot_convert_exactly(odd):
    with pytest.raises(NotPlain):
        plain_json(odd)


def _tables(journal: Journal) -> dict[str, list[dict]]:
    return {t: journal.query(f"SELECT * FROM {t} ORDER BY 1") for t in ("events", "quotes", "reference_prices")}


def _fill(journal: Journal, batched: bool) -> None:
    def burst() -> None:
        for n in range(6):
            journal.append("frame.public_quote", source="public", payload={"quote": _quote(n), "raw": "{}",
                                                                         "received_ms": n},
                           rfq_id=f"r{n % 3}", quote_id=f"q{n}", venue_ms=n)
            if n == 2:  # a private row in the middle keeps its place in the chain
                journal.append("frame.best_quotes", source="private", payload={"quotes": [_quote(n)]},
                               rfq_id="r2")
        journal.append("frame.spot", source="public", payload={"pair": "BTC/USDT", "price": Decimal("1.5"),
                                                               "topic": "t", "raw": "{}", "symbol": "BTCUSDT"})
        journal.append("odd", source="public", payload={"ids": {"a", "b"}})  # the slow path, same result

    if batched:
        with journal.batch():
            burst()
    else:
        burst()


def test_a_batched_burst_leaves_what_one_commit_per_row_leaves(tmp_path):
    one = Journal(tmp_path / "one.db", FakeClock())
    many = Journal(tmp_path / "many.db", FakeClock())
    try:
        _fill(one, batched=False)
        _fill(many, batched=True)
        assert _tables(many) == _tables(one)
        assert many.verify_chain() is None and many.last_seq == 9
        before = _tables(many)
        many.rebuild_projections()
        assert _tables(many) == before
    finally:
        one.close()
        many.close()


def test_rows_of_an_open_batch_are_readable_and_a_failed_batch_leaves_none(tmp_path):
    journal = Journal(tmp_path / "j.db", FakeClock())
    try:
        journal.append("first", source="test", payload={})
        with pytest.raises(RuntimeError, match="burst failed"):
            with journal.batch():
                journal.append("frame.spot", source="public", payload={"price": Decimal("2")})
                assert [r["kind"] for r in journal.query("SELECT kind FROM events ORDER BY seq")] == \
                    ["first", "frame.spot"]
                journal.append("frame.spot", source="public", payload={"price": Decimal("3")})
                raise RuntimeError("burst failed")
        assert [r["kind"] for r in journal.query("SELECT kind FROM events")] == ["first"]
        journal.append("after", source="test", payload={})
        assert journal.last_seq == 2 and journal.verify_chain() is None
    finally:
        journal.close()
