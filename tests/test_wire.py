"""wire.decode_frame: every documented frame, the looseness around it, and never raising."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from rfqbot.events import BestQuotes, Heartbeat, PublicQuote, PublicRfq, RejectedFrame, RfqUpdate, SpotTick
from rfqbot.records import QuoteMode, RfqStatus
from rfqbot.streams.wire import MAX_FRAME_CHARS, RAW_KEEP_CHARS, decode_frame

FRAMES = Path(__file__).resolve().parent / "fixtures" / "frames"
NOW = 1_760_000_000_000


def frame(name: str) -> str:
    return (FRAMES / name).read_text()


def one(stream, text):
    events = decode_frame(stream, text, NOW)
    assert len(events) == 1, events
    return events[0]


def test_public_rfq_created_frame():
    ev = one("public", frame("ws-public-rfqCreated.json"))
    assert isinstance(ev, PublicRfq)
    assert ev.rfq.rfq_id == "RFQ_123"
    assert ev.rfq.buy_amount == Decimal("2") and ev.rfq.sell_amount is None
    assert ev.rfq.rfq_mode is QuoteMode.REAL_TIME
    assert ev.rfq.expires_ms == 1717410000 * 1000
    assert ev.received_ms == NOW and ev.raw == frame("ws-public-rfqCreated.json")


def test_public_quote_created_frame():
    ev = one("public", frame("ws-public-quotesCreated.json"))
    assert isinstance(ev, PublicQuote)
    assert ev.quote.quote_id == "QUOTE_789456123" and ev.quote.price == Decimal("68900")
    assert ev.quote.expires_ms == 1717394200000


def test_best_quote_frame_sorted_by_rank():
    obj = json.loads(frame("ws-private-bestQuote.json"))
    obj["data"].reverse()  # rank 2 first on the wire
    ev = one("private", json.dumps(obj))
    assert isinstance(ev, BestQuotes)
    assert ev.rfq_id == "MP738048140639408128"
    assert [q.rank for q in ev.quotes] == [1, 2]
    best = ev.quotes[0]
    assert best.quote_id == "MPQ738048203885318144" and best.lp_name == "WX"
    assert best.price == Decimal("106050") and best.mode is QuoteMode.DELAYED
    assert best.expires_ms == 1753772464507 and best.submitted_ms == 1753772404507


def test_best_quote_without_ranks_keeps_frame_order():
    obj = json.loads(frame("ws-private-bestQuote.json"))
    for entry in obj["data"]:
        del entry["rank"]
    ev = one("private", json.dumps(obj))
    assert [q.price for q in ev.quotes] == [Decimal("106050"), Decimal("106059")]


def test_best_quote_mixed_rfq_ids_rejected():
    obj = json.loads(frame("ws-private-bestQuote.json"))
    obj["data"][1]["inquiryOrderId"] = "OTHER"
    ev = one("private", json.dumps(obj))
    assert isinstance(ev, RejectedFrame) and "different RFQs" in ev.reason


def test_rfq_updates_frame_number_price():
    ev = one("private", frame("ws-private-rfqUpdates.json"))
    assert isinstance(ev, RfqUpdate)
    assert ev.rfq.status is RfqStatus.ACCEPTED and ev.rfq.status_raw == "accepted"
    assert ev.rfq.price == Decimal("120001") and isinstance(ev.rfq.price, Decimal)
    assert ev.rfq.status_int == 2 and ev.rfq.quote_id == "quote_123"


def test_rfq_updates_unknown_status_is_not_rejected():
    obj = json.loads(frame("ws-private-rfqUpdates.json"))
    obj["data"]["status"] = "half-baked"
    ev = one("private", json.dumps(obj))
    assert isinstance(ev, RfqUpdate)
    assert ev.rfq.status is RfqStatus.UNKNOWN and ev.rfq.status_raw == "half-baked"


def test_rfq_updates_float_price_stays_decimal():
    text = frame("ws-private-rfqUpdates.json").replace("120001", "120001.1")
    ev = one("private", text)
    assert ev.rfq.price == Decimal("120001.1")


def test_private_ping_and_public_pong_and_acks():
    ping = one("private", frame("ws-private-ping.json"))
    assert ping == Heartbeat(NOW, "private", "ping", 1748504490208, frame("ws-private-ping.json"))
    pong = one("public", '{"pong": 1748503865406}')
    assert isinstance(pong, Heartbeat) and pong.kind == "pong" and pong.value == 1748503865406
    for ack in (frame("ws-public-subscribe.json"), '{"event":"sub","topic":"trade","symbol":"BTCUSDT","code":"0"}',
                '{"event":"UNSUBSCRIBE","topic":"quotes"}'):
        ev = one("public", ack)
        assert isinstance(ev, Heartbeat) and ev.kind == "ack", ack


@pytest.mark.parametrize("text, reason", [
    ("{not json", "invalid JSON at char 1"),
    ('{"topic": "rfqs", "data": {"rfqId": 1,}}', "invalid JSON at char"),
    ("[1, 2]", "expected a JSON object, got an array"),
    ('{"topic": "bananas", "data": {}}', "unknown topic 'bananas'"),
    ('{"topic": "rfqs", "event": "rfqCreated"}', "missing field data"),
    ('{"topic": "rfqs", "data": {"buyCcy": "BTC"}}', "missing required field rfqId"),
    ('{"topic": "quotes", "data": {"quoteId": "q", "rfqId": "r", "price": "abc"}}', "price"),
    ('{"topic": "quotes", "data": {"quoteId": "q", "rfqId": "r", "price": "-1"}}', "must be positive"),
    ('{"topic": "quotes", "data": {"quoteId": "q", "rfqId": "r", "price": NaN}}', "NaN"),
    ('{"topic": "bestQuote", "data": []}', "empty array"),
    ('{"topic": "rfqUpdates", "data": {"rfqId": "r"}}', "missing field status"),
    ('{"event":"sub","topic":"trade","code":"-100010","msg":"Invalid Symbols!"}', "subscription refused"),
    ('{"code": "-1", "msg": "boom"}', "venue error code -1"),
    ('{"ping": "soon"}', "bad ping value"),
    ('{"hello": 1}', "missing field topic"),
])
def test_rejections_are_specific(text, reason):
    ev = one("public" if '"quotes"' in text or '"rfqs"' in text or "sub" in text else "private", text)
    assert isinstance(ev, RejectedFrame), ev
    assert reason in ev.reason, ev.reason
    assert ev.raw == text


def test_private_topic_on_public_stream_rejected():
    ev = one("public", frame("ws-private-bestQuote.json"))
    assert isinstance(ev, RejectedFrame) and "private stream" in ev.reason


def test_binary_and_oversized_frames():
    ev = one("public", b"\x00\x01binary")
    assert isinstance(ev, RejectedFrame) and ev.reason.startswith("binary frame (8 bytes)")
    huge = '{"topic":"rfqs","data":"' + "x" * MAX_FRAME_CHARS + '"}'
    ev = one("public", huge)
    assert isinstance(ev, RejectedFrame) and "over 1 MiB" in ev.reason
    assert len(ev.raw) < RAW_KEEP_CHARS + 100


def test_deep_nesting_does_not_raise():
    ev = one("public", "[" * 100_000 + "]" * 100_000)
    assert isinstance(ev, RejectedFrame)


@pytest.mark.parametrize("topic, data, price", [
    ("realtimes", [{"t": 1760000000000, "s": "BTCUSDT", "c": "65000.5", "h": "1", "l": "1", "o": "1"}],
     Decimal("65000.5")),
    ("trade", [{"t": 1, "p": "64000", "q": "1"}, {"t": 2, "p": "64001", "q": "1"}], Decimal("64001")),
    ("depth", [{"t": 1, "s": "BTCUSDT", "b": [["100", "1"], ["99", "2"]], "a": [["102", "1"]]}], Decimal("101")),
])
def test_spot_frames(topic, data, price):
    text = json.dumps({"symbol": "BTCUSDT", "topic": topic, "data": data, "sendTime": 1760000000123})
    ev = one("public", text)
    assert isinstance(ev, SpotTick)
    assert ev.symbol == "BTCUSDT" and ev.price == price and ev.topic == topic and ev.venue_ms == 1760000000123


def test_depth_with_one_side_rejected():
    text = json.dumps({"symbol": "BTCUSDT", "topic": "depth", "data": [{"b": [["1", "1"]], "a": []}]})
    ev = one("public", text)
    assert isinstance(ev, RejectedFrame) and "both sides" in ev.reason


def test_extra_fields_and_missing_optionals_survive():
    obj = json.loads(frame("ws-private-bestQuote.json"))
    for entry in obj["data"]:
        entry["brandNew"] = {"x": [1, 2]}
        del entry["lpName"], entry["submitTime"]
    obj["extra"] = True
    ev = one("private", json.dumps(obj))
    assert isinstance(ev, BestQuotes) and ev.quotes[0].lp_name is None


def test_every_documented_ws_frame_decodes_without_rejection():
    for path in sorted(FRAMES.glob("ws-*.json")):
        stream = "private" if "private" in path.name else "public"
        for ev in decode_frame(stream, path.read_text(), NOW):
            assert not isinstance(ev, RejectedFrame), (path.name, ev)


def test_rest_shaped_frames_are_rejected_not_raised():
    for path in sorted(FRAMES.glob("rest-*.json")):
        for ev in decode_frame("public", path.read_text(), NOW):
            assert isinstance(ev, RejectedFrame), path.name


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=100)), st.sampled_from(["public", "private"]))
def test_arbitrary_input_never_raises(text, stream):
    events = decode_frame(stream, text, NOW)
    assert events and all(ev.received_ms == NOW for ev in events)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.decimals(allow_nan=False).map(str),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["rfqs", "quotes", "bestQuote", "rfqUpdates", "realtimes", "trade", "depth"]),
       json_values)
def test_arbitrary_json_under_known_topics_never_raises(topic, data):
    stream = "private" if topic in ("bestQuote", "rfqUpdates") else "public"
    events = decode_frame(stream, json.dumps({"topic": topic, "data": data, "symbol": "X"}), NOW)
    assert events


@pytest.mark.parametrize("field, value", [("expireTime", 10 ** 20), ("expireTime", "1e20"),
                                          ("expireTime", 253_402_300_800_000)])
def test_a_public_quote_with_an_impossible_time_is_rejected_at_the_edge(field, value) -> None:
    """A value past SQLite's 64-bit INTEGER used to reach the journal and fail the whole batch
    (and with it every decision until a restart): it must become a RejectedFrame here."""
    import json as _json
    frame = _json.loads((FRAMES / "ws-public-quotesCreated.json").read_text())
    frame["data"][field] = value
    events = decode_frame("public", _json.dumps(frame), 1_717_394_000_000)
    assert [type(e).__name__ for e in events] == ["RejectedFrame"]
    assert "after the year 9999" in events[0].reason
