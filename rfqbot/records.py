"""Typed records of the venue's things (pairs, RFQs, quotes), decoded once at the edge.

One name per concept whatever the wire called it (``rfq_id`` for ``rfqId`` and
``inquiryOrderId``; ``quote_id`` for ``quoteId`` and ``quoteOrderId``); money is ``Decimal``,
times are integer Unix milliseconds, statuses and modes are enums that keep the raw word when
the venue says something we do not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum


class RfqStatus(str, Enum):
    """RFQ statuses documented by the venue, plus UNKNOWN for anything else (raw kept beside)."""

    NEW = "new"
    ACCEPTED = "accepted"
    PROCESSING = "processing"
    SUCCESSFUL = "successful"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DECLINED = "declined"
    MANUAL_ORDER = "manual-order"
    MANUAL_ORDER_CONFIRMATION = "manual-order-confirmation"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: str) -> "RfqStatus":
        word = raw.strip().lower().replace("_", "-")
        try:
            status = cls(word)
        except ValueError:
            return cls.UNKNOWN
        return status

    @property
    def is_final(self) -> bool:
        """Final statuses never change again; the engine stops watching such an RFQ."""
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset(
    {RfqStatus.SUCCESSFUL, RfqStatus.EXPIRED, RfqStatus.CANCELLED, RfqStatus.DECLINED, RfqStatus.FAILED}
)
# The same set as words, for SQL and other text (``status NOT IN (...)``): derived, never retyped.
FINAL_STATUS_WORDS: tuple[str, ...] = tuple(status.value for status in RfqStatus if status in _FINAL_STATUSES)
# Statuses that mean an accept took (ours or one made elsewhere): the RFQ is filled or filling.
ACCEPT_TOOK_STATUSES = frozenset({RfqStatus.ACCEPTED, RfqStatus.PROCESSING, RfqStatus.SUCCESSFUL})


class QuoteMode(str, Enum):
    """Settlement mode of an RFQ or quote: ``real-time`` or ``delayed``."""

    REAL_TIME = "real-time"
    DELAYED = "delayed"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: str) -> "QuoteMode":
        # bestQuote's quoteSettleType/inquirySettleType: 1 delayed, 2 real-time.
        word = raw.strip().lower().replace("_", "-")
        if word in ("real-time", "realtime", "2"):
            return cls.REAL_TIME
        if word in ("delayed", "1"):
            return cls.DELAYED
        return cls.UNKNOWN


class Side(str, Enum):
    """What the account does with the pair's base currency in an RFQ."""

    BUY_BASE = "buy"
    SELL_BASE = "sell"


@dataclass(frozen=True, slots=True)
class Pair:
    """A tradable Market Place pair from ``get-pairs``; prices are quote currency per base."""

    base: str
    quote: str
    base_precision: Decimal
    quote_precision: Decimal
    min_base: Decimal | None
    max_base: Decimal | None
    min_quote: Decimal | None
    max_quote: Decimal | None
    trading_status: str

    @property
    def name(self) -> str:
        return f"{self.base}/{self.quote}"

    @property
    def spot_symbol(self) -> str:
        return f"{self.base}{self.quote}"

    def side_of(self, buy_ccy: str, sell_ccy: str) -> Side | None:
        """The account's side for an RFQ buying ``buy_ccy`` with ``sell_ccy``, or None if not this pair."""
        if (buy_ccy, sell_ccy) == (self.base, self.quote):
            return Side.BUY_BASE
        if (buy_ccy, sell_ccy) == (self.quote, self.base):
            return Side.SELL_BASE
        return None


@dataclass(frozen=True, slots=True)
class Rfq:
    """An RFQ as one message saw it (create result, history row, rfqCreated, rfqUpdates)."""

    rfq_id: str
    buy_ccy: str | None = None
    sell_ccy: str | None = None
    buy_amount: Decimal | None = None
    sell_amount: Decimal | None = None
    rfq_mode: QuoteMode = QuoteMode.UNKNOWN
    status: RfqStatus | None = None
    status_raw: str | None = None
    status_int: int | None = None
    client_order_id: str | None = None
    quote_id: str | None = None
    price: Decimal | None = None
    quote_mode: QuoteMode | None = None
    created_ms: int | None = None
    executed_ms: int | None = None
    expires_ms: int | None = None
    lp_rejected: bool | None = None
    mode_raw: str | None = None          # rfqMode as the venue wrote it (kept when UNKNOWN)
    quote_mode_raw: str | None = None    # quoteMode as the venue wrote it


@dataclass(frozen=True, slots=True)
class Quote:
    """A quote on an RFQ (bestQuote entry, rfq-active row, quotesCreated)."""

    quote_id: str
    rfq_id: str
    price: Decimal
    buy_ccy: str | None = None
    sell_ccy: str | None = None
    buy_amount: Decimal | None = None
    sell_amount: Decimal | None = None
    lp_name: str | None = None
    mode: QuoteMode = QuoteMode.UNKNOWN
    rank: int | None = None
    submitted_ms: int | None = None
    expires_ms: int | None = None
    status_raw: str | None = None
    manual: bool = False
    mode_raw: str | None = None          # quoteMode / quoteSettleType as sent (kept when UNKNOWN)
