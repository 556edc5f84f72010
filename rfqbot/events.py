"""Events: everything that reaches the engine thread, as frozen records.

Stream threads, the scheduler and REST workers never touch state; they put one of these on the
engine's queue. That gives a single total order of what happened, and lets tests drive the
engine with a plain list of events and a fake clock. Every event carries ``received_ms``: the
local wall-clock time (integer Unix milliseconds) when rfqbot learnt of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Union

from rfqbot.records import Pair, Quote, QuoteMode, Rfq

StreamName = Literal["public", "private"]


# --- decoded stream frames --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PublicRfq:
    """``rfqs`` topic: an RFQ (anyone's) that is new, or new again."""

    received_ms: int
    rfq: Rfq
    raw: str


@dataclass(frozen=True, slots=True)
class PublicQuote:
    """``quotes`` topic: a quote (on anyone's RFQ) as it was created."""

    received_ms: int
    quote: Quote
    raw: str


@dataclass(frozen=True, slots=True)
class BestQuotes:
    """``bestQuote`` topic: the ranked quote set of one of the account's own RFQs."""

    received_ms: int
    rfq_id: str
    quotes: tuple[Quote, ...]
    raw: str


@dataclass(frozen=True, slots=True)
class RfqUpdate:
    """``rfqUpdates`` topic: a status change of one of the account's own RFQs."""

    received_ms: int
    rfq: Rfq
    raw: str


@dataclass(frozen=True, slots=True)
class SpotTick:
    """Spot reference price from the public stream (``realtimes``, ``trade`` or ``depth``)."""

    received_ms: int
    symbol: str
    price: Decimal
    venue_ms: int | None
    topic: str
    raw: str


@dataclass(frozen=True, slots=True)
class RejectedFrame:
    """A frame that could not be decoded; journaled as rejected input, never fatal."""

    received_ms: int
    stream: StreamName
    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A ping or pong, or a subscription acknowledgement (``kind="ack"``).

    Consumed by the stream thread (answer pings, mark liveness); not forwarded to the engine.
    """

    received_ms: int
    stream: StreamName
    kind: Literal["ping", "pong", "ack"]
    value: int | None = None
    raw: str = ""


# --- connections and keys ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A stream's lifecycle step: connecting, connected, subscribed, stale, closed, backoff, stopped."""

    received_ms: int
    stream: StreamName
    state: str
    detail: str = ""
    session: int = 0


@dataclass(frozen=True, slots=True)
class ListenKeyStatus:
    """A listen-key lifecycle step: created, extended, extend_failed, replaced, deleted, failed.

    ``key_hint`` is a short fingerprint, never the key itself: the key grants the private stream.
    """

    received_ms: int
    action: str
    key_hint: str = ""
    detail: str = ""


# --- venue calls and their results ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class VenueCall:
    """One REST call: parameters without signature, HTTP status, venue code, duration."""

    received_ms: int
    method: str
    endpoint: str
    params: dict[str, str]
    http_status: int | None
    venue_code: str | None
    duration_ms: float
    outcome: Literal["ok", "error", "unknown"]
    error: str = ""


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """What the venue said to an accept or decline (or that nobody knows: ``unknown``)."""

    received_ms: int
    rfq_id: str
    quote_id: str
    action: Literal["accept", "decline"]
    outcome: Literal["accepted", "declined", "rejected", "unknown"]
    status_raw: str | None = None
    venue_code: str | None = None
    message: str = ""
    expires_ms: int | None = None
    latency_ms: float | None = None
    # With venue_code "429": how long the venue asked every request to pause (ms).
    retry_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RfqReconciled:
    """The venue's view of an RFQ from ``rfqs`` history (reconciliation).

    ``asked_ms`` is when the query was SENT (local clock). The answer describes the venue at
    some moment after that, so only a query asked after an accept's answer was lost can tell
    whether that accept took; ``received_ms`` (when the answer came back) cannot.
    """

    received_ms: int
    rfq: Rfq
    source: Literal["history", "create"]
    asked_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ActiveQuotes:
    """The venue's active quotes of an RFQ from ``rfq-active`` (reconciliation).

    ``asked_ms``: when the query was sent (see ``RfqReconciled``).
    """

    received_ms: int
    rfq_id: str
    quotes: tuple[Quote, ...]
    asked_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RfqCreateFailed:
    """A create-rfq request that the venue refused, or whose outcome is unknown."""

    received_ms: int
    client_order_id: str
    outcome: Literal["rejected", "unknown"]
    venue_code: str | None
    message: str


# --- commands ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CreateRfqCommand:
    """Ask the engine to create an RFQ (from the schedule, the demo or an operator)."""

    received_ms: int
    buy_ccy: str
    sell_ccy: str
    sell_amount: Decimal
    mode: QuoteMode
    expire_sec: int | None
    client_order_id: str
    source: str = "schedule"


@dataclass(frozen=True, slots=True)
class Tick:
    """A periodic wake-up so waits with deadlines are re-evaluated without a new frame."""

    received_ms: int


@dataclass(frozen=True, slots=True)
class ReloadRequested:
    """SIGHUP: reload strategies and risk limits from the YAML, atomically."""

    received_ms: int
    settings: Any = None
    error: str = ""
    # Changed sections a reload does not apply (all but strategies and risk): they need a restart.
    restart_needed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    """SIGTERM/SIGINT or end of a demo: stop deciding and drain."""

    received_ms: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PairsRefreshed:
    """A fresh ``get-pairs`` answer (asked every ``pairs_refresh.every_s``): a pair the venue
    closes after start must stop being accepted without a restart."""

    received_ms: int
    pairs: tuple[Pair, ...]


@dataclass(frozen=True, slots=True)
class Note:
    """Anything else worth a journal line (clock sync, scheduler notices, alerts)."""

    received_ms: int
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


FrameEvent = Union[PublicRfq, PublicQuote, BestQuotes, RfqUpdate, SpotTick, RejectedFrame]
Event = Union[
    FrameEvent, StreamStatus, ListenKeyStatus, VenueCall, AcceptResult, RfqReconciled,
    ActiveQuotes, RfqCreateFailed, CreateRfqCommand, Tick, ReloadRequested, ShutdownRequested, Note,
]

__all__ = [
    "ActiveQuotes", "AcceptResult", "BestQuotes", "CreateRfqCommand", "Event", "FrameEvent", "Heartbeat",
    "ListenKeyStatus", "Note", "PublicQuote", "PublicRfq", "Quote", "QuoteMode", "RejectedFrame",
    "ReloadRequested", "Rfq", "RfqCreateFailed", "RfqReconciled", "RfqUpdate", "ShutdownRequested",
    "SpotTick", "StreamName", "StreamStatus", "Tick", "VenueCall",
]
