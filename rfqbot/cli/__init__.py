"""The ``rfqbot`` command line: the only place in rfqbot that prints.

Each command group lives in its own module with a ``register(subparsers)`` function; adding a
command means adding a module to ``COMMAND_MODULES``. Exit codes: 0 ok, 1 venue or runtime
error, 2 usage error, 78 configuration error (systemd's RestartPreventExitStatus keys on it).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import traceback
from typing import Sequence

from rfqbot import __version__
from rfqbot.cli.common import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_USAGE, EXIT_VENUE, OrderInterrupted
from rfqbot.errors import ConfigError, OutcomeUnknown, RateLimited, RfqbotError
from rfqbot.logs import MASK, redact_text
from rfqbot.secret_names import is_secret_key

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
    except OrderInterrupted as exc:   # the order may be at the venue: say how to find out
        _error(exc.outcome.cli_message())
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line, never a bare traceback (it may hold secrets)
        _unexpected(exc, args_list)
        return EXIT_VENUE


# ``name=value`` / ``name: value`` inside an exception's text, e.g. a URL's query string.
_NAMED_VALUE = re.compile(r"(?P<name>[A-Za-z][\w-]*)(?P<sep>=|:\s*)(?P<value>[^\s&'\",;)}\]]+)")
_MAX_LINE = 300


def _masked(text: str) -> str:
    """``text`` without secrets: registered values (API key and secret, listen keys) and any
    value under a secret's name (a request signature is never registered: it changes per call)."""
    def mask(match: re.Match[str]) -> str:
        if not is_secret_key(match["name"]):
            return match[0]
        return f"{match['name']}{match['sep']}{MASK}"
    return _NAMED_VALUE.sub(mask, redact_text(text))


def _wants_traceback(args_list: Sequence[str]) -> bool:
    """-v/--verbose anywhere on the command line (the parser may not have run yet), or the
    daemon (`rfqbot run`): under systemd nobody re-runs it with -v, so a crash's traceback
    must reach journald the first time."""
    command = next((token for token in args_list if not token.startswith("-")), None)
    return command == "run" or any(token in ("-v", "--verbose") for token in args_list)


def _unexpected(exc: Exception, args_list: Sequence[str]) -> None:
    """Report an exception no command handled: what it was, whether it is a bug, how to see more.

    An OSError (a file that cannot be written, a closed pipe) names its file and is the
    environment's, not a bug; anything else is a bug. The traceback goes to stderr only with -v,
    masked like the one line, so a user can paste either into a report without leaking a key.
    """
    verbose = _wants_traceback(args_list)
    if verbose:
        print(_masked("".join(traceback.format_exception(exc))), end="", file=sys.stderr)
    first = (str(exc).splitlines() or [""])[0]
    what = _masked(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
    if len(what) > _MAX_LINE:
        what = what[:_MAX_LINE] + "..."
    if isinstance(exc, OSError):
        _error(what)
        return
    hint = "the traceback is above" if verbose else "-v shows the traceback"
    _error(f"{what} (a bug: please report it with the command you ran; {hint})")


def _error(message: str) -> None:
    lines = message.splitlines() or [""]
    print(f"rfqbot: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
