"""Stream frames -> typed events: the one place that reads the venue's WebSocket JSON.

Stream threads hand every text frame here and put whatever comes back on the engine's queue.
``decode_frame`` never raises: a frame it cannot make sense of becomes a ``RejectedFrame`` with
a reason specific enough to act on (which field, which value, which character), so the engine
can journal it as rejected input and the daemon goes on. Values are normalised through
``rfqbot.decode`` so that REST results and stream frames absorb the venue's looseness in one
place.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable, Mapping

import structlog

from rfqbot.decode import quote_from_json, rfq_from_json
from rfqbot.events import (
    BestQuotes, Event, Heartbeat, PublicQuote, PublicRfq, RejectedFrame, RfqUpdate, SpotTick, StreamName,
)
from rfqbot.normalise import NormaliseError, to_decimal, to_int, to_ms, to_text

log = structlog.get_logger(__name__)

MAX_FRAME_CHARS = 1 << 20
"""Frames above 1 MiB are refused unread: no documented message comes close, and parsing an
unbounded blob on the stream thread would stall heartbeats."""

RAW_KEEP_CHARS = 4096
"""How much of a rejected oversized or binary frame is kept for the journal."""

_ACK_EVENTS = frozenset({"subscribe", "unsubscribe", "sub", "cancel", "cancel_all"})
_PUBLIC_TOPICS = frozenset({"rfqs", "quotes", "realtimes", "trade", "depth"})
_PRIVATE_TOPICS = frozenset({"bestQuote", "rfqUpdates"})
_SUCCESS_CODES = frozenset({"0", "200"})


class _Reject(Exception):
    """Internal: carries a rejection reason up to ``decode_frame``."""


def decode_frame(stream: StreamName, text: str | bytes, received_ms: int) -> list[Event]:
    """Decode one WebSocket frame into events; never raises.

    Returns ``[Heartbeat]`` for pings, pongs and subscription acks, ``[RejectedFrame]`` for
    anything that cannot be decoded, else the decoded events (usually one).
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        blob = bytes(text)
        return [RejectedFrame(received_ms, stream,
                              f"binary frame ({len(blob)} bytes); the venue sends JSON text frames",
                              _clip(blob.decode("utf-8", errors="replace")))]
    if not isinstance(text, str):
        return [RejectedFrame(received_ms, stream, f"frame of type {type(text).__name__}, expected text",
                              _clip(repr(text)))]
    if len(text) > MAX_FRAME_CHARS:
        return [RejectedFrame(received_ms, stream,
                              f"frame over 1 MiB ({len(text)} chars); refused unread", _clip(text))]
    try:
        return _decode_text(stream, text, received_ms)
    except _Reject as exc:
        return [RejectedFrame(received_ms, stream, str(exc), text)]
    except NormaliseError as exc:
        return [RejectedFrame(received_ms, stream, f"bad value: {exc}", text)]
    except RecursionError:
        return [RejectedFrame(received_ms, stream, "JSON nested too deeply", _clip(text))]
    except Exception as exc:  # noqa: BLE001 - last guard: a decoder bug must not kill a stream thread
        log.error("wire.decoder_bug", error=f"{type(exc).__name__}: {exc}", stream=stream)
        return [RejectedFrame(received_ms, stream, f"decoder error {type(exc).__name__}: {exc}", _clip(text))]


def rehearse_decode(event: BestQuotes) -> None:
    """The engine's rehearsal hook (``rfqbot.engine.rehearsal``): decode its made-up frame as the
    private stream would, so the decoder is in the CPU caches for the next real one. A frame
    that does not decode to that quote set raises (rehearsals then go off, logged once) rather
    than keep warming the reject path."""
    events = decode_frame("private", event.raw, event.received_ms)
    if len(events) != 1 or not isinstance(events[0], BestQuotes) or events[0].rfq_id != event.rfq_id:
        got = ", ".join(type(e).__name__ for e in events)
        raise ValueError(f"the rehearsal's bestQuote frame decoded to [{got}], not its quote set")


def _clip(text: str) -> str:
    if len(text) <= RAW_KEEP_CHARS:
        return text
    return text[:RAW_KEEP_CHARS] + f"...[{len(text) - RAW_KEEP_CHARS} more chars]"


def _no_constants(word: str) -> Any:
    raise _Reject(f"invalid JSON: {word} is not a number rfqbot accepts")


# One decoder for every frame: ``json.loads`` with these arguments builds a new one per call.
_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constants)


def _parse(text: str) -> Any:
    try:
        return _JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise _Reject(f"invalid JSON at char {exc.pos}: {exc.msg}") from None


def _decode_text(stream: StreamName, text: str, received_ms: int) -> list[Event]:
    obj = _parse(text)
    if not isinstance(obj, dict):
        raise _Reject(f"expected a JSON object, got {_json_type(obj)}")
    if "ping" in obj and "topic" not in obj:
        return [Heartbeat(received_ms, stream, "ping", _heartbeat_value(obj["ping"], "ping"), text)]
    if "pong" in obj and "topic" not in obj:
        return [Heartbeat(received_ms, stream, "pong", _heartbeat_value(obj["pong"], "pong"), text)]
    topic = obj.get("topic")
    if "data" not in obj and _looks_like_ack(obj):
        return [Heartbeat(received_ms, stream, "ack", None, text)]
    if topic is None:
        if "code" in obj:
            raise _Reject(f"venue error code {to_text(obj.get('code'))}: {to_text(obj.get('msg')) or 'no message'}")
        raise _Reject("missing field topic (not a ping, pong, ack or topic frame)")
    if not isinstance(topic, str):
        raise _Reject(f"field topic must be text, got {_json_type(topic)}")
    decoder = _DECODERS.get(topic)
    if decoder is None:
        raise _Reject(f"unknown topic {topic!r}")
    expected = "private" if topic in _PRIVATE_TOPICS else "public"
    if expected != stream:
        raise _Reject(f"topic {topic!r} belongs to the {expected} stream but arrived on the {stream} stream")
    return decoder(obj, text, received_ms)


def _looks_like_ack(obj: Mapping[str, Any]) -> bool:
    """Subscription echoes/acks: an ``event`` word like SUBSCRIBE/sub, or a success code without data."""
    event = obj.get("event")
    if isinstance(event, str) and event.lower() in _ACK_EVENTS:
        code = obj.get("code")
        if code is None or str(code) in _SUCCESS_CODES:
            return True
        raise _Reject(f"subscription refused: code {code}: {to_text(obj.get('msg')) or 'no message'}")
    code = obj.get("code")
    return code is not None and str(code) in _SUCCESS_CODES and "topic" in obj


def _heartbeat_value(value: Any, name: str) -> int | None:
    try:
        return to_int(value, name)
    except NormaliseError as exc:
        raise _Reject(f"bad {name} value: {exc}") from None


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _data_object(obj: Mapping[str, Any], topic: str) -> Mapping[str, Any]:
    data = obj.get("data")
    if data is None:
        raise _Reject(f"{topic}: missing field data")
    if not isinstance(data, dict):
        raise _Reject(f"{topic}: field data must be an object, got {_json_type(data)}")
    return data


def _data_list(obj: Mapping[str, Any], topic: str) -> list[Any]:
    data = obj.get("data")
    if data is None:
        raise _Reject(f"{topic}: missing field data")
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise _Reject(f"{topic}: field data must be an array, got {_json_type(data)}")
    if not data:
        raise _Reject(f"{topic}: field data is an empty array")
    return data


def _with_topic(topic: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except NormaliseError as exc:
        raise _Reject(f"{topic}: {exc}") from None


# --- Market Place topics ---------------------------------------------------------------------

def _decode_rfqs(obj: Mapping[str, Any], text: str, received_ms: int) -> list[Event]:
    data = _data_object(obj, "rfqs")
    rfq = _with_topic("rfqs", lambda: rfq_from_json(data))
    return [PublicRfq(received_ms, rfq, text)]


def _decode_quotes(obj: Mapping[str, Any], text: str, received_ms: int) -> list[Event]:
    data = _data_object(obj, "quotes")
    quote = _with_topic("quotes", lambda: quote_from_json(data))
    return [PublicQuote(received_ms, quote, text)]


def _decode_best_quote(obj: Mapping[str, Any], text: str, received_ms: int) -> list[Event]:
    entries = _data_list(obj, "bestQuote")
    quotes = []
    for index, entry in enumerate(entries):
        quotes.append(_with_topic(f"bestQuote data[{index}]", lambda entry=entry: quote_from_json(entry)))
    rfq_ids = {q.rfq_id for q in quotes}
    if len(rfq_ids) != 1:
        raise _Reject(f"bestQuote: entries name {len(rfq_ids)} different RFQs ({', '.join(sorted(rfq_ids))}); "
                      "one frame must be one RFQ's quote set")
    # Venue ranking first (rank 1 is best); entries without a rank keep frame order after ranked ones.
    ordered = sorted(enumerate(quotes), key=lambda iq: (iq[1].rank is None, iq[1].rank or 0, iq[0]))
    return [BestQuotes(received_ms, quotes[0].rfq_id, tuple(q for _, q in ordered), text)]


def _decode_rfq_updates(obj: Mapping[str, Any], text: str, received_ms: int) -> list[Event]:
    entries = _data_list(obj, "rfqUpdates")
    events: list[Event] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _Reject(f"rfqUpdates data[{index}]: expected an object, got {_json_type(entry)}")
        rfq = _with_topic("rfqUpdates", lambda entry=entry: rfq_from_json(entry))
        if rfq.status is None:
            raise _Reject("rfqUpdates: missing field status")
        events.append(RfqUpdate(received_ms, rfq, text))
    return events


# --- spot reference topics -------------------------------------------------------------------

def _spot_positive(value: Any, field: str) -> Decimal:
    price = to_decimal(value, field)
    if price is None:
        raise _Reject(f"missing field {field}")
    if price <= 0:
        raise _Reject(f"bad price {value!r} in {field}: must be positive")
    return price


def _spot_price(topic: str, data: list[Any]) -> Decimal:
    if topic == "realtimes":
        first = data[0]
        if not isinstance(first, dict):
            raise _Reject("realtimes: data[0] must be an object")
        return _spot_positive(first.get("c"), "realtimes data[0].c")
    if topic == "trade":
        last = data[-1]
        if not isinstance(last, dict):
            raise _Reject("trade: data[-1] must be an object")
        return _spot_positive(last.get("p"), "trade data[-1].p")
    book = data[0]
    if not isinstance(book, dict):
        raise _Reject("depth: data[0] must be an object")
    bid = _best_level(book.get("b"), "depth data[0].b")
    ask = _best_level(book.get("a"), "depth data[0].a")
    return (bid + ask) / 2


def _best_level(levels: Any, field: str) -> Decimal:
    if not isinstance(levels, list) or not levels:
        raise _Reject(f"{field}: missing or empty book side; a mid price needs both sides")
    level = levels[0]
    if not isinstance(level, list) or not level:
        raise _Reject(f"{field}[0]: expected [price, quantity]")
    return _spot_positive(level[0], f"{field}[0][0]")


def _decode_spot(obj: Mapping[str, Any], text: str, received_ms: int) -> list[Event]:
    topic = str(obj["topic"])
    data = _data_list(obj, topic)
    first = data[0] if isinstance(data[0], dict) else {}
    symbol = to_text(obj.get("symbol")) or to_text(first.get("s"))
    if symbol is None:
        raise _Reject(f"{topic}: missing field symbol")
    price = _with_topic(topic, lambda: _spot_price(topic, data))
    venue_ms = _with_topic(topic, lambda: to_ms(obj.get("sendTime"), "sendTime") or to_ms(first.get("t"), "t"))
    return [SpotTick(received_ms, symbol, price, venue_ms, topic, text)]


_DECODERS: dict[str, Callable[[Mapping[str, Any], str, int], list[Event]]] = {
    "rfqs": _decode_rfqs,
    "quotes": _decode_quotes,
    "bestQuote": _decode_best_quote,
    "rfqUpdates": _decode_rfq_updates,
    "realtimes": _decode_spot,
    "trade": _decode_spot,
    "depth": _decode_spot,
}

__all__ = ["MAX_FRAME_CHARS", "RAW_KEEP_CHARS", "decode_frame"]
