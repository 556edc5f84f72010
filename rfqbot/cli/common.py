"""What every command shares: the common options, settings, a MarketPlace, exit codes."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import Iterator

from rfqbot.config.schema import Settings, load_config, load_credentials
from rfqbot.errors import EX_CONFIG
from rfqbot.logs import configure_logging
from rfqbot.venue.marketplace import MarketPlace

EXIT_OK = 0
EXIT_VENUE = 1
EXIT_USAGE = 2
EXIT_CONFIG = EX_CONFIG   # one definition: rfqbot.errors


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
