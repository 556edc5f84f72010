"""``rfqbot pairs`` and ``rfqbot rfq create|list|quotes|accept|decline``: the venue by hand."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from rfqbot.cli.common import EXIT_OK, common_options, marketplace, order_call
from rfqbot.cli.output import emit, ms_to_text
from rfqbot.clock import DAY_MS
from rfqbot.config.schema import parse_duration
from rfqbot.venue.marketplace import ACCEPT_QUOTE, CREATE_RFQ, new_client_order_id
from rfqbot.records import QuoteMode, RfqStatus

HISTORY_MAX_DAYS = 90         # the venue's rfqs history keeps createTime filters within 90 days
HISTORY_MAX_LIMIT = 1000      # and pages at most 1000 rows
STATUS_WORDS = [status.value for status in RfqStatus if status is not RfqStatus.UNKNOWN]

PAIR_COLUMNS = [
    ("PAIR", lambda p: p.name), ("STATUS", lambda p: p.trading_status),
    ("MIN BASE", lambda p: p.min_base), ("MAX BASE", lambda p: p.max_base),
    ("MIN QUOTE", lambda p: p.min_quote), ("MAX QUOTE", lambda p: p.max_quote),
    ("BASE STEP", lambda p: p.base_precision), ("QUOTE STEP", lambda p: p.quote_precision),
]
def _mode_text(mode: QuoteMode, raw: str | None) -> str:
    """The mode, or the venue's own word when we do not know it (never a bare 'unknown')."""
    return f"{mode.value} ({raw})" if mode is QuoteMode.UNKNOWN and raw else mode.value


RFQ_COLUMNS = [
    ("RFQ ID", lambda r: r.rfq_id), ("CLIENT ID", lambda r: r.client_order_id),
    ("STATUS", lambda r: r.status_raw or r.status), ("BUY", lambda r: r.buy_ccy), ("SELL", lambda r: r.sell_ccy),
    ("BUY AMOUNT", lambda r: r.buy_amount), ("SELL AMOUNT", lambda r: r.sell_amount),
    ("PRICE", lambda r: r.price), ("MODE", lambda r: _mode_text(r.rfq_mode, r.mode_raw)),
    ("CREATED", lambda r: ms_to_text(r.created_ms)),
]
QUOTE_COLUMNS = [
    ("QUOTE ID", lambda q: q.quote_id), ("PRICE", lambda q: q.price), ("BUY AMOUNT", lambda q: q.buy_amount),
    ("SELL AMOUNT", lambda q: q.sell_amount), ("MODE", lambda q: _mode_text(q.mode, q.mode_raw)), ("RANK", lambda q: q.rank),
    ("EXPIRES", lambda q: ms_to_text(q.expires_ms)), ("LP", lambda q: q.lp_name),
]
ACK_COLUMNS = [
    ("RFQ ID", lambda a: a.rfq_id), ("QUOTE ID", lambda a: a.quote_id), ("STATUS", lambda a: a.status_raw or a.status),
    ("EXPIRES", lambda a: ms_to_text(a.expires_ms)),
]


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _expire_sec(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if not 600 <= value <= 3600:
        raise argparse.ArgumentTypeError("the venue allows 600..3600 seconds (10 to 60 minutes)")
    return value


def _since(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than 0, e.g. 24h")
    if seconds * 1000 > HISTORY_MAX_DAYS * DAY_MS:
        raise argparse.ArgumentTypeError(f"{text!r} is more than the {HISTORY_MAX_DAYS} days the venue "
                                         f"keeps; use at most {HISTORY_MAX_DAYS}d")
    return seconds


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= HISTORY_MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..{HISTORY_MAX_LIMIT} (the venue's page size)")
    return value


def _identifier(what: str) -> Any:
    """A parser for an id argument: non-empty text, surrounding blanks removed."""
    def parse(text: str) -> str:
        value = text.strip()
        if not value:
            raise argparse.ArgumentTypeError(f"{what} must not be empty")
        return value
    parse.__name__ = what   # argparse names the type in its messages
    return parse


def register(subparsers: Any) -> None:
    common = common_options()
    pairs = subparsers.add_parser("pairs", parents=[common], help="list tradable Market Place pairs")
    pairs.set_defaults(func=cmd_pairs)

    rfq = subparsers.add_parser("rfq", parents=[common], help="create, list and answer RFQs by hand")
    actions = rfq.add_subparsers(dest="rfq_command", metavar="ACTION", required=True)

    create = actions.add_parser("create", parents=[common], help="create an RFQ")
    create.add_argument("--buy", required=True, type=str.upper, help="currency to buy, e.g. BTC")
    create.add_argument("--sell", required=True, type=str.upper, help="currency to sell, e.g. USDT")
    create.add_argument("--sell-amount", required=True, type=_amount, help="amount of --sell to sell")
    create.add_argument("--mode", required=True, choices=["real-time", "delayed"], help="settlement mode")
    create.add_argument("--expire-sec", type=_expire_sec, default=None, help="RFQ validity, 600..3600 s")
    create.add_argument("--client-id", default=None, type=_identifier("--client-id"),
                        help="your own RFQ id (generated and printed when absent)")
    create.set_defaults(func=cmd_create)

    listing = actions.add_parser("list", parents=[common], help="RFQ history")
    listing.add_argument("--status", default=None, choices=STATUS_WORDS, metavar="STATUS",
                         help=f"only RFQs in this status: {', '.join(STATUS_WORDS)}")
    listing.add_argument("--since", type=_since, default=24 * 3600, metavar="DURATION",
                         help="how far back, e.g. 30m, 24h, 7d (default 24h; the venue keeps 90 days)")
    listing.add_argument("--limit", type=_limit, default=None, help="at most this many rows, 1..1000")
    listing.add_argument("--client-id", default=None, type=_identifier("--client-id"),
                         help="only the RFQ with this client order id")
    listing.set_defaults(func=cmd_list)

    quotes = actions.add_parser("quotes", parents=[common], help="active quotes of an RFQ")
    quotes.add_argument("rfq_id", type=_identifier("RFQ_ID"), metavar="RFQ_ID")
    quotes.set_defaults(func=cmd_quotes)

    for name, helptext in (("accept", "accept a quote"), ("decline", "decline a manual quote")):
        parser = actions.add_parser(name, parents=[common], help=helptext)
        parser.add_argument("rfq_id", type=_identifier("RFQ_ID"), metavar="RFQ_ID")
        parser.add_argument("quote_id", type=_identifier("QUOTE_ID"), metavar="QUOTE_ID")
        parser.set_defaults(func=cmd_answer, answer=name)


def cmd_pairs(args: argparse.Namespace) -> int:
    with marketplace(args) as market:
        emit(getattr(args, "json", False), market.get_pairs(), PAIR_COLUMNS)
    return EXIT_OK


def cmd_create(args: argparse.Namespace) -> int:
    if args.buy == args.sell:
        raise argparse.ArgumentTypeError("--buy and --sell must differ")
    with marketplace(args) as market:
        # Chosen here, not in MarketPlace, so that the user holds it even when the answer is lost.
        client_id = args.client_id or new_client_order_id(market.client_id_prefix)
        with order_call(CREATE_RFQ, client_id):
            rfq = market.create_rfq(args.buy, args.sell, args.sell_amount, QuoteMode(args.mode),
                                    expire_sec=args.expire_sec, client_order_id=client_id)
        emit(getattr(args, "json", False), rfq, RFQ_COLUMNS)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with marketplace(args) as market:
        end = market.venue_clock.now_ms()
        rows = market.rfq_history(start_ms=end - args.since * 1000, end_ms=end, status=args.status, limit=args.limit,
                                  client_order_id=args.client_id)
        emit(getattr(args, "json", False), rows, RFQ_COLUMNS, empty="(no RFQs in this window)")
    return EXIT_OK


def cmd_quotes(args: argparse.Namespace) -> int:
    with marketplace(args) as market:
        emit(getattr(args, "json", False), market.active_quotes(args.rfq_id), QUOTE_COLUMNS,
             empty="(no active quotes)")
    return EXIT_OK


def cmd_answer(args: argparse.Namespace) -> int:
    with marketplace(args) as market:
        with order_call(ACCEPT_QUOTE):   # decline goes to the same endpoint
            if args.answer == "accept":
                ack = market.accept_quote(args.rfq_id, args.quote_id)
            else:
                ack = market.decline_quote(args.rfq_id, args.quote_id)
        emit(getattr(args, "json", False), ack, ACK_COLUMNS)
    return EXIT_OK
