"""``rfqbot replay``: what a config would have decided on the journaled RFQs, next to what was decided.

Check a new YAML before reloading it: ``rfqbot replay --journal rfqbot-journal.db --config new.yaml``.
Pure: it reads the journal read-only and never calls the venue, so it needs no API key.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rfqbot.cli.common import EXIT_OK, common_options, load_settings
from rfqbot.cli.output import cell, ms_to_text, print_json, print_table
from rfqbot.config.schema import parse_duration


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay", parents=[common_options()],
        help="re-run journaled RFQs and quotes through a config; compare with what was decided")
    replay.add_argument("--journal", required=True, metavar="PATH", help="the journal to replay (read-only)")
    replay.add_argument("--since", type=_duration, default=None, metavar="DURATION",
                        help="only RFQs first quoted in this last stretch, like 7d, 12h, 30m (default: all)")
    replay.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from rfqbot.replay import replay_journal
    from strategies import ChainSet

    settings = load_settings(args)
    since_ms = None if args.since is None else int(time.time() * 1000) - args.since * 1000
    chains = settings.chains if isinstance(settings.chains, ChainSet) else ChainSet({})
    report = replay_journal(args.journal, chains, settings.risk, min_time_left_ms=settings.engine.min_time_left_ms,
                            since_ms=since_ms)
    if getattr(args, "json", False):
        print_json(report)
        return EXIT_OK
    print(f"journal {report.journal}; config {settings.file}" +
          (f"; RFQs first quoted since {ms_to_text(since_ms)}" if since_ms is not None else ""))
    print_table(report.rfqs, [
        ("rfq", lambda r: r.rfq_id), ("pair", lambda r: r.pair), ("side", lambda r: r.side),
        ("then", lambda r: _short(r.then)), ("now", lambda r: _short(r.now)),
        ("now: why", lambda r: (r.now.reason if r.now else "")[:90]),
    ], empty="(no own RFQs with quotes in the journal)")
    print()
    print_table([("then", report.then), ("now", report.now)], [
        ("", lambda t: t[0]), ("RFQs", lambda t: t[1].rfqs), ("accepts", lambda t: t[1].accepts),
        ("unfilled", lambda t: t[1].unfilled), ("declined", lambda t: t[1].declines),
        ("blocked", lambda t: t[1].blocked),
        ("bought", lambda t: ", ".join(f"{cell(v)} {k}" for k, v in t[1].bought.items())),
        ("sold", lambda t: ", ".join(f"{cell(v)} {k}" for k, v in t[1].sold.items())),
        ("avg price", lambda t: ", ".join(f"{k} {cell(v)}" for k, v in t[1].average_price.items())),
        ("vs reference (bps, + is better)", lambda t: (f"{cell(t[1].average_vs_reference_bps)} over "
                                                       f"{t[1].with_reference}") if t[1].with_reference else None),
    ])
    return EXIT_OK


def _short(outcome: Any) -> str:
    if outcome is None:
        return "-"
    if outcome.action in ("accept", "refused", "decline") and outcome.price is not None:
        return f"{outcome.action} {outcome.quote_id} @ {cell(outcome.price)}"
    if outcome.action == "blocked":
        return f"blocked by {outcome.blocked_by}"
    return outcome.action
