"""``rfqbot sim ...``: hand every remaining argument to the simulator's own CLI."""

from __future__ import annotations

import argparse
import importlib
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sim", help="run the built-in venue simulator (rfqbot sim --help)",
                                   add_help=False)
    parser.add_argument("sim_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=lambda args: run_sim(args.sim_args))


def run_sim(argv: list[str]) -> int:
    """Import lazily: the simulator's dependencies load only when it is used."""
    module = importlib.import_module("rfqbot.sim.cli")
    result = module.main(list(argv))
    return int(result or 0)
