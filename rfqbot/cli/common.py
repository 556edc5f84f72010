"""What every command shares: the common options, settings, a MarketPlace, exit codes."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import Iterator

from rfqbot.config.schema import Settings, load_config, load_credentials
from rfqbot.errors import EX_CONFIG, OutcomeUnknown
from rfqbot.logs import configure_logging
from rfqbot.venue.marketplace import MarketPlace

EXIT_OK = 0
EXIT_VENUE = 1
EXIT_USAGE = 2
EXIT_CONFIG = EX_CONFIG   # one definition: rfqbot.errors
EXIT_INTERRUPTED = 130    # 128 + SIGINT, as a shell reports a Ctrl-C


class OrderInterrupted(KeyboardInterrupt):
    """Ctrl-C while an order-type call (create, accept, decline) was in flight.

    The request may already have reached the venue, so "interrupted" alone would hide an RFQ or
    a trade. It stays a KeyboardInterrupt (exit 130, nothing catches it by accident) and carries
    the ``OutcomeUnknown`` whose ``cli_message()`` main() prints: one wording for a timeout, a
    5xx and a Ctrl-C.
    """

    def __init__(self, outcome: OutcomeUnknown) -> None:
        super().__init__(str(outcome))
        self.outcome = outcome


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after the command name.

    Defaults are SUPPRESS so a subcommand that does not see the option keeps the value given
    before the command name (argparse would otherwise overwrite it with the default).
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $RFQBOT_CONFIG, else ./config.yaml)")
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable JSON output")
    parent.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log venue calls to stderr")
    return parent


@contextmanager
def order_call(endpoint: str, client_order_id: str | None = None) -> Iterator[None]:
    """Around one order-type venue call: an unknown outcome names how to look it up.

    ``client_order_id`` is the id the user can search by (create RFQ): it is added to an
    ``OutcomeUnknown`` from the venue layer, and to the one a Ctrl-C mid-call becomes.
    """
    try:
        yield
    except OutcomeUnknown as exc:
        if client_order_id is None or exc.client_order_id:
            raise
        raise OutcomeUnknown(exc.endpoint, exc.reason, client_order_id=client_order_id) from exc
    except KeyboardInterrupt as exc:
        if isinstance(exc, OrderInterrupted):
            raise
        raise OrderInterrupted(OutcomeUnknown(endpoint, "interrupted", client_order_id=client_order_id)) from exc


def load_settings(args: argparse.Namespace) -> Settings:
    settings = load_config(getattr(args, "config", None))
    # The error line printed by main() says it all; -v shows every venue call as it happens.
    level = "debug" if getattr(args, "verbose", False) else "error"
    configure_logging(level, settings.logging.format)
    return settings


@contextmanager
def marketplace(args: argparse.Namespace) -> Iterator[MarketPlace]:
    """A MarketPlace for the configured venue and credentials, closed afterwards."""
    settings = load_settings(args)
    credentials = load_credentials(settings)
    market = MarketPlace(settings.profile(), credentials)
    try:
        yield market
    finally:
        market.close()
