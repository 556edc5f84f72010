"""The ``rfqbot`` command line: the only place in rfqbot that prints.

Each command group lives in its own module with a ``register(subparsers)`` function; adding a
command means adding a module to ``COMMAND_MODULES``. Exit codes: 0 ok, 1 venue or runtime
error, 2 usage error, 78 configuration error (systemd's RestartPreventExitStatus keys on it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from rfqbot import __version__
from rfqbot.cli.common import EXIT_CONFIG, EXIT_USAGE, EXIT_VENUE
from rfqbot.errors import ConfigError, OutcomeUnknown, RateLimited, RfqbotError

# Modules with register(subparsers); imported in this order, so help lists them in it.
COMMAND_MODULES = [
    "rfqbot.cli.config_cmd",
    "rfqbot.cli.market_cmds",
    "rfqbot.cli.sim_cmd",
    "rfqbot.cli.run_cmds",
    "rfqbot.cli.journal_cmd",
    "rfqbot.cli.ops_cmds",
    "rfqbot.cli.replay_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfqbot", description="Taker daemon and tools for HashKey's Market Place (RFQ).")
    parser.add_argument("--version", action="version", version=f"rfqbot {__version__}")
    parser.add_argument("--config", metavar="PATH", default=None,
                        help="config file (default: $RFQBOT_CONFIG, else ./config.yaml)")
    parser.add_argument("--json", action="store_true", default=False, help="machine-readable JSON output")
    parser.add_argument("-v", "--verbose", action="store_true", default=False, help="log venue calls to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _sim_argv(argv: Sequence[str]) -> list[str] | None:
    """Arguments after ``sim``, untouched: the simulator parses its own options."""
    for i, token in enumerate(argv):
        if token == "sim":
            return list(argv[i + 1:])
        if not token.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        sim_args = _sim_argv(args_list)
        if sim_args is not None:
            from rfqbot.cli.sim_cmd import run_sim

            return run_sim(sim_args)
        parser = build_parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
            return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
        return int(args.func(args) or 0)
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_CONFIG
    except OutcomeUnknown as exc:   # the daemon's wording ("will reconcile") is for its logs
        _error(exc.cli_message())
        return EXIT_VENUE
    except RateLimited as exc:   # the daemon's wording ("all requests pause") is for its logs
        _error(exc.cli_message())
        return EXIT_VENUE
    except RfqbotError as exc:
        _error(str(exc))
        return EXIT_VENUE
    except argparse.ArgumentTypeError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _error(message: str) -> None:
    lines = message.splitlines() or [""]
    print(f"rfqbot: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
