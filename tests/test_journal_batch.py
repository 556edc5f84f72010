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
from rfqbot.journal.store import Journal
from rfqbot.records import Quote, QuoteMode, RfqStatus, Side


@pytest.fixture
def journal(tmp_path):
    opened = Journal(tmp_path / "j.db", FakeClock())
    yield opened
    opened.close()


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


def test_rows_of_an_open_batch_are_readable_and_a_failed_batch_leaves_none(journal):
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


# --- deferred projections: public rows' derived-table statements run as one executemany -----

def _mixed_burst(journal: Journal) -> None:
    """Public quotes (some quote ids seen again, and privately in between: the merge order
    matters), spot ticks, public stream statuses and a private row between public runs."""
    for n in range(40):
        q = _quote(n % 7)
        if n % 5 == 0:
            q = Quote(**{**{f: getattr(q, f) for f in q.__slots__}, "lp_name": f"LP{n}", "rank": 1, "manual": n % 2 == 0})
        journal.append("frame.public_quote", source="public", payload={"quote": q, "raw": "{}", "received_ms": n},
                       rfq_id=q.rfq_id, quote_id=q.quote_id, venue_ms=n)
        if n % 9 == 4:
            journal.append("frame.best_quotes", source="private", payload={"quotes": [_quote(n % 7)]},
                           rfq_id=_quote(n % 7).rfq_id)
        if n % 6 == 1:
            journal.append("frame.spot", source="public", payload={"pair": "BTC/USDT", "price": Decimal(n) + 1,
                                                                   "topic": "trade", "raw": "{}"}, venue_ms=n)
        if n % 13 == 3:
            journal.append("stream.status", source="public", payload={"stream": "public", "state": "connected",
                                                                      "detail": str(n), "session": n % 2})
        if n == 20:
            journal.append("frame.spot", source="public", payload={"pair": {"not": "text"}, "price": Decimal(1)})


def _derived(journal: Journal) -> dict[str, list[dict]]:
    return {t: journal.query(f"SELECT * FROM {t} ORDER BY 1, 2")
            for t in ("events", "quotes", "reference_prices", "stream_sessions")}


def _row_by_row_and_batched(tmp_path, fill) -> dict:
    """``fill`` on a journal committing row by row and on one inside a single batch: the derived
    tables must match, the batched chain verify, and a rebuild leave the same; returns them."""
    one = Journal(tmp_path / "one.db", FakeClock())
    many = Journal(tmp_path / "many.db", FakeClock())
    try:
        fill(one)
        with many.batch():
            fill(many)
        batched = _derived(many)
        assert batched == _derived(one)
        assert many.verify_chain() is None
        many.rebuild_projections()
        assert _derived(many) == batched
        return batched
    finally:
        one.close()
        many.close()


def test_deferred_public_projections_leave_what_a_rebuild_and_row_by_row_leave(tmp_path):
    batched = _row_by_row_and_batched(tmp_path, _mixed_burst)
    assert len(batched["quotes"]) == 7 and batched["reference_prices"] and batched["stream_sessions"]


def test_a_failing_deferred_statement_loses_only_its_own_rows_view(journal, monkeypatch):
    # The spot row whose pair is an object cannot be bound: the batch's executemany fails, is
    # undone and re-applied row by row, so the rows around it keep their views.
    import rfqbot.journal.apply as journal_module

    failed: list[int] = []
    monkeypatch.setattr(journal_module, "_projection_failed", lambda row, exc: failed.append(row.seq))
    with journal.batch():
        for n in range(3):
            journal.append("frame.public_quote", source="public",
                           payload={"quote": _quote(n), "raw": "{}", "received_ms": n})
        journal.append("frame.spot", source="public", payload={"pair": {"not": "text"}, "price": Decimal(1)})
        journal.append("frame.spot", source="public", payload={"pair": "BTC/USDT", "price": Decimal(2)})
    assert failed == [4]
    assert [r["quote_id"] for r in journal.query("SELECT quote_id FROM quotes ORDER BY 1")] == ["q0", "q1", "q2"]
    assert [r["seq"] for r in journal.query("SELECT seq FROM reference_prices")] == [5]
    assert journal.verify_chain() is None and journal.last_seq == 5


def test_a_failed_batch_leaves_no_deferred_projection_behind(journal):
    with pytest.raises(RuntimeError, match="burst failed"):
        with journal.batch():
            journal.append("frame.public_quote", source="public",
                           payload={"quote": _quote(1), "raw": "{}", "received_ms": 1})
            raise RuntimeError("burst failed")
    with journal.batch():
        journal.append("frame.public_quote", source="public",
                       payload={"quote": _quote(2), "raw": "{}", "received_ms": 2})
    assert [r["quote_id"] for r in journal.query("SELECT quote_id FROM quotes")] == ["q2"]
    assert journal.verify_chain() is None


def test_reads_inside_a_batch_see_the_deferred_projections(journal):
    with journal.batch():
        journal.append("frame.public_quote", source="public",
                       payload={"quote": _quote(1), "raw": "{}", "received_ms": 1})
        assert [r["quote_id"] for r in journal.query("SELECT quote_id FROM quotes")] == ["q1"]


def test_long_runs_go_in_as_multi_row_inserts_and_still_equal_row_by_row(tmp_path):
    # 150 public quotes in one batch: events rows and upserts in chunks of 64, 64, 16, 4, 2
    # statements; quote ids repeat across chunks, so an upsert must see the rows before it.
    def fill(journal: Journal) -> None:
        for n in range(150):
            q = _quote(n % 11)
            if n % 4 == 0:
                q = Quote(**{**{f: getattr(q, f) for f in q.__slots__}, "lp_name": f"LP{n}", "rank": n})
            journal.append("frame.public_quote", source="public", payload={"quote": q, "raw": "{}",
                                                                         "received_ms": n},
                           rfq_id=q.rfq_id, quote_id=q.quote_id, venue_ms=n)

    batched = _row_by_row_and_batched(tmp_path, fill)
    assert len(batched["events"]) == 150 and len(batched["quotes"]) == 11


def test_multi_row_sql_only_for_one_row_inserts():
    from rfqbot.journal.store import _INSERT_EVENT
    from rfqbot.journal.apply import _multi_row_sql

    assert _multi_row_sql(_INSERT_EVENT, 2).endswith("VALUES (?,?,?,?,?,?,?,?,?,?),(?,?,?,?,?,?,?,?,?,?)")
    assert _multi_row_sql("UPDATE decisions SET result_outcome = ? WHERE seq = ?", 2) is None


def test_a_buffered_row_that_cannot_be_stored_fails_the_whole_batch_never_leaves_a_hole(journal):
    """A public row SQLite refuses with a non-SQLite error (an int past 64 bits) used to be
    dropped at the flush while the chain head had moved past it: the batch committed a chain
    with a hole. Now the batch fails whole (JournalError: the engine stops deciding, says why)."""
    from rfqbot.journal.store import JournalError
    journal.append("first", source="test", payload={})
    with pytest.raises(JournalError, match="buffered rows could not be written"):
        with journal.batch():
            journal.append("frame.spot", source="public", payload={"price": Decimal("2")}, venue_ms=10 ** 20)
            journal.append("frame.best_quotes", source="private", payload={"quotes": []}, rfq_id="R1")
    assert [r["kind"] for r in journal.query("SELECT kind FROM events")] == ["first"]
    journal.append("after", source="test", payload={})
    assert journal.last_seq == 2 and journal.verify_chain() is None


def test_checkpoint_when_idle_runs_after_enough_commits_and_never_inside_a_batch(journal):
    journal.checkpoint_when_idle()
    for n in range(7):
        journal.append("x", source="test", payload={"n": n})
    assert journal.checkpoint_when_idle(min_commits=8) is False
    journal.append("x", source="test", payload={"n": 7})
    with journal.batch():
        journal.append("y", source="test", payload={})
        assert journal.checkpoint_when_idle(min_commits=8) is False
    assert journal.checkpoint_when_idle(min_commits=8) is True
    busy, wal_frames, copied = journal._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and wal_frames == copied                 # everything already copied
    assert journal.checkpoint_when_idle(min_commits=8) is False   # nothing new since
    assert journal.verify_chain() is None


def test_empty_batches_do_not_count_towards_the_idle_checkpoint(journal):
    journal.append("x", source="test", payload={})
    journal.checkpoint_when_idle(min_commits=1)
    for _ in range(20):
        with journal.batch():
            pass                                  # a bare tick: nothing journaled
    assert journal.checkpoint_when_idle(min_commits=1) is False
    with journal.batch():
        journal.append("y", source="test", payload={})
    assert journal.checkpoint_when_idle(min_commits=1) is True
