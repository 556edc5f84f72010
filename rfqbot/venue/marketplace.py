"""Typed Market Place API: the venue's RFQ endpoints as methods returning records.

Everything returned is already normalised (``Decimal`` money, integer milliseconds, status
and mode enums) by the shared decoders in ``rfqbot.decode``, so callers never see wire names.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping
from urllib.parse import quote

import structlog

from rfqbot.clock import DAY_MS, Clock, VenueClock
from rfqbot.config.credentials import Credentials
from rfqbot.decode import pair_from_json, quote_from_json, rfq_from_json, server_time_from_json
from rfqbot.errors import Banned, NotSent, TransportError
from rfqbot.events import VenueCall
from rfqbot.normalise import NormaliseError, to_ms, to_status, to_text
from rfqbot.records import Pair, Quote, QuoteMode, Rfq, RfqStatus
from rfqbot.venue.rest import RestClient
from rfqbot.venue.profiles import VenueProfile

log = structlog.get_logger(__name__)

CREATE_RFQ = "/api/v1/market-place/create-rfq"
ACCEPT_QUOTE = "/api/v1/market-place/accept-quote"
GET_PAIRS = "/api/v1/market-place/get-pairs"
RFQ_HISTORY = "/api/v1/market-place/rfqs"
RFQ_ACTIVE = "/api/v1/market-place/rfq-active/"
LISTEN_KEY = "/api/v1/userDataStream"
# An accept's expiry earlier than this (2001-09-09) is not a timestamp; the docs also show a
# bare duration (1800) in that field, which we refuse to turn into a 1970 date.
_PLAUSIBLE_MS = 1_000_000_000_000


@dataclass(frozen=True, slots=True)
class AcceptAck:
    """The venue's answer to accept-quote (accept or decline)."""

    rfq_id: str
    quote_id: str
    status: RfqStatus
    status_raw: str
    expires_ms: int | None


def new_client_order_id(prefix: str = "rfqbot") -> str:
    """A fresh client order id: ``prefix-`` plus 20 random hex digits (unique, URL-safe)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def _rows(body: Any, endpoint: str) -> list[Any]:
    """A list result; tolerates the common ``{"data": [...]}`` wrapper."""
    if isinstance(body, Mapping) and isinstance(body.get("data"), list):
        body = body["data"]
    if body is None:
        return []
    if not isinstance(body, list):
        raise TransportError(endpoint, f"expected a JSON list, got {type(body).__name__}")
    return body


class MarketPlace:
    """The Market Place REST API of one venue and one account."""

    def __init__(self, profile: VenueProfile, credentials: Credentials | None, *, clock: Clock | None = None,
                 observer: Callable[[VenueCall], None] | None = None,
                 on_ban: Callable[[Banned], None] | None = None, client_id_prefix: str = "rfqbot",
                 rest: RestClient | None = None) -> None:
        self.profile = profile
        self.client_id_prefix = client_id_prefix
        self.rest = rest or RestClient(profile, credentials.api_key if credentials else None,
                                       credentials.api_secret if credentials else None,
                                       clock=clock, observer=observer, on_ban=on_ban)

    @property
    def venue_clock(self) -> VenueClock:
        return self.rest.venue_clock

    def close(self) -> None:
        self.rest.close()

    # --- unsigned ---------------------------------------------------------------------------

    def sync_clock(self) -> int:
        return self.rest.sync_clock()

    def server_time(self) -> int:
        body = self.rest.request("GET", "/api/v1/time", signed=False)
        try:
            return server_time_from_json(body)
        except NormaliseError as exc:
            raise TransportError("/api/v1/time", f"bad serverTime: {exc}") from None

    def ping(self) -> None:
        """One ``GET /api/v1/ping``, no retries: a probe (and the keep-warm job) wants the answer
        now, and a retry would only double the noise while the venue is down."""
        self.rest.request("GET", "/api/v1/ping", signed=False, retries=0)

    # --- queries ----------------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        body = self.rest.request("GET", "/api/v1/account")
        if not isinstance(body, dict):
            raise TransportError("/api/v1/account", f"expected a JSON object, got {type(body).__name__}")
        return body

    def get_pairs(self) -> list[Pair]:
        body = self.rest.request("GET", GET_PAIRS)
        rows = body.get("quotePair") if isinstance(body, Mapping) else body
        return [pair for pair in (self._decode(pair_from_json, row, GET_PAIRS) for row in _rows(rows, GET_PAIRS))
                if pair is not None]

    def rfq_history(self, *, start_ms: int | None = None, end_ms: int | None = None, rfq_id: str | None = None,
                    quote_id: str | None = None, client_order_id: str | None = None,
                    status: str | RfqStatus | None = None, limit: int | None = None) -> list[Rfq]:
        """RFQ history; the venue requires a window, so the default is the last 24 h."""
        end = end_ms if end_ms is not None else self.venue_clock.now_ms()
        start = start_ms if start_ms is not None else end - DAY_MS
        status_text = status.value if isinstance(status, RfqStatus) else status
        params = [("startTime", start), ("endTime", end), ("rfqId", rfq_id), ("quoteId", quote_id),
                  ("rfqClOrderId", client_order_id), ("status", status_text), ("limit", limit)]
        body = self.rest.request("GET", RFQ_HISTORY, [(k, str(v)) for k, v in params if v is not None])
        return [rfq for rfq in (self._decode(rfq_from_json, row, RFQ_HISTORY) for row in _rows(body, RFQ_HISTORY))
                if rfq is not None]

    def active_quotes(self, rfq_id: str) -> list[Quote]:
        path = RFQ_ACTIVE + quote(rfq_id, safe="")
        body = self.rest.request("GET", path)
        return [q for q in (self._decode(quote_from_json, row, RFQ_ACTIVE) for row in _rows(body, path))
                if q is not None]

    # --- order-type calls: never retried ----------------------------------------------------

    def create_rfq(self, buy_ccy: str, sell_ccy: str, sell_amount: Decimal, mode: QuoteMode,
                   expire_sec: int | None = None, client_order_id: str | None = None) -> Rfq:
        """Create an RFQ; a client order id is generated when not given and is in the result."""
        if mode not in (QuoteMode.REAL_TIME, QuoteMode.DELAYED):
            raise NotSent(f"mode must be real-time or delayed, got {mode.value}")
        if not isinstance(sell_amount, Decimal) or not sell_amount.is_finite() or sell_amount <= 0:
            raise NotSent(f"sell_amount must be a positive Decimal, got {sell_amount!r}")
        client_id = client_order_id or new_client_order_id(self.client_id_prefix)
        params = [("rfqClOrderId", client_id), ("buyCcy", buy_ccy), ("sellCcy", sell_ccy),
                  ("sellAmount", format(sell_amount, "f")), ("rfqMode", mode.value)]
        if expire_sec is not None:
            params.append(("expireSec", str(expire_sec)))
        body = self.rest.request("POST", CREATE_RFQ, params, kind="order")
        try:
            rfq = rfq_from_json(body if isinstance(body, Mapping) else {})
        except NormaliseError as exc:
            raise TransportError(CREATE_RFQ, f"created, but the answer is unreadable ({exc}); "
                                 f"look it up by client order id {client_id}") from None
        return dataclasses.replace(
            rfq, client_order_id=rfq.client_order_id or client_id, buy_ccy=rfq.buy_ccy or buy_ccy,
            sell_ccy=rfq.sell_ccy or sell_ccy, sell_amount=rfq.sell_amount or sell_amount,
            rfq_mode=mode if rfq.rfq_mode is QuoteMode.UNKNOWN else rfq.rfq_mode)

    def accept_quote(self, rfq_id: str, quote_id: str, send_by_ms: int | None = None) -> AcceptAck:
        """Accept; with ``send_by_ms`` (venue time) the request is not sent once that has passed."""
        return self._accept_or_decline(rfq_id, quote_id, "accept", send_by_ms)

    def decline_quote(self, rfq_id: str, quote_id: str) -> AcceptAck:
        return self._accept_or_decline(rfq_id, quote_id, "decline")

    def begin_accept(self, rfq_id: str, quote_id: str, send_by_ms: int | None = None,
                     action: str = "accept") -> Callable[[], AcceptAck] | None:
        """Send the accept (or decline) now on this thread if that cannot block (see
        ``RestClient.begin_order``); returns what waits for the answer, or None when nothing
        was sent and ``accept_quote``/``decline_quote`` must be used instead."""
        inflight = self.rest.begin_order("POST", ACCEPT_QUOTE, _accept_params(rfq_id, quote_id, action),
                                         send_by_ms=send_by_ms)
        if inflight is None:
            return None
        return lambda: accept_ack_from_json(inflight.finish(), rfq_id, quote_id)

    def rehearse_accept(self, rfq_id: str, quote_id: str) -> None:
        """The accept request's bytes built and dropped (``RestClient.rehearse_order``): nothing sent."""
        self.rest.rehearse_order("POST", ACCEPT_QUOTE, _accept_params(rfq_id, quote_id, "accept"))

    def _accept_or_decline(self, rfq_id: str, quote_id: str, action: str,
                           send_by_ms: int | None = None) -> AcceptAck:
        body = self.rest.request("POST", ACCEPT_QUOTE, _accept_params(rfq_id, quote_id, action),
                                 kind="order", send_by_ms=send_by_ms)
        return accept_ack_from_json(body, rfq_id, quote_id)

    # --- listen keys ----------------------------------------------------------------------

    def create_listen_key(self) -> str:
        body = self.rest.request("POST", LISTEN_KEY, kind="query")
        key = to_text(body.get("listenKey")) if isinstance(body, Mapping) else None
        if not key:
            raise TransportError(LISTEN_KEY, "the venue's answer has no listenKey")
        from rfqbot.logs import register_secret

        register_secret(key)
        return key

    def extend_listen_key(self, key: str) -> None:
        self.rest.request("PUT", LISTEN_KEY, [("listenKey", key)])

    def delete_listen_key(self, key: str) -> None:
        self.rest.request("DELETE", LISTEN_KEY, [("listenKey", key)])

    @staticmethod
    def _decode(decoder: Callable[[Any], Any], row: Any, endpoint: str) -> Any:
        try:
            return decoder(row)
        except NormaliseError as exc:
            log.warning("skipping undecodable row", endpoint=endpoint, reason=str(exc), row=str(row)[:300])
            return None


def _accept_params(rfq_id: str, quote_id: str, action: str) -> list[tuple[str, str]]:
    # The accept path's request construction lives here and in RestClient.prepare only.
    return [("rfqId", rfq_id), ("quoteId", quote_id), ("action", action)]


def accept_ack_from_json(body: Any, rfq_id: str, quote_id: str) -> AcceptAck:
    """The accept-quote answer. Never raises: the venue has answered, so the request was sent.

    An unreadable field must not turn an answered accept into "not sent" (a second accept could
    follow). Ids fall back to what was sent, an unreadable status is ``UNKNOWN`` (the caller then
    reports the outcome as unknown and reconciliation asks the venue), odd expiries become None.
    """
    d = body if isinstance(body, Mapping) else {}
    value = d.get("status")
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        status, raw = to_status(value)
    else:
        status, raw = RfqStatus.UNKNOWN, "" if value is None else str(value)[:100]
    try:
        expires = to_ms(d.get("expiryTime"), "expiryTime")
    except (ValueError, TypeError, ArithmeticError):
        expires = None
    if expires is not None and expires < _PLAUSIBLE_MS:
        log.warning("accept-quote expiryTime is not a timestamp; ignoring it", expiryTime=str(d.get("expiryTime")))
        expires = None
    return AcceptAck(rfq_id=_text_or(d.get("rfqId"), rfq_id), quote_id=_text_or(d.get("quoteId"), quote_id),
                     status=status, status_raw=raw, expires_ms=expires)


def _text_or(value: Any, fallback: str) -> str:
    try:
        return to_text(value) or fallback
    except NormaliseError:
        return fallback
