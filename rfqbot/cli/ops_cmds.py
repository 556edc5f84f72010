"""``rfqbot doctor`` (is this host ready to trade?) and ``rfqbot status`` (what is the daemon doing?)."""

from __future__ import annotations

import argparse
from typing import Any

from rfqbot.cli.common import EXIT_CONFIG, EXIT_OK, EXIT_VENUE, common_options, load_settings
from rfqbot.cli.output import print_json

_MARKS = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]", "skip": "[skip]"}


def register(subparsers: Any) -> None:
    doctor = subparsers.add_parser(
        "doctor", parents=[common_options()],
        help="check config, credentials, clock, REST auth, listen key, streams and journal; say how to fix")
    doctor.add_argument("--stream-timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for each stream to subscribe (default 10)")
    doctor.set_defaults(func=cmd_doctor)
    status = subparsers.add_parser(
        "status", parents=[common_options()],
        help="the running daemon's state from its status file and journal (no venue call)")
    status.set_defaults(func=cmd_status)


def cmd_doctor(args: argparse.Namespace) -> int:
    from rfqbot.ops.doctor import run_doctor
    from rfqbot.logs import configure_logging

    # Doctor reports failures itself; log lines would only repeat them (use -v to see venue calls).
    configure_logging("debug" if getattr(args, "verbose", False) else "critical", "console")
    checks = run_doctor(getattr(args, "config", None), stream_timeout_s=args.stream_timeout)
    if getattr(args, "json", False):
        print_json([c.as_dict() for c in checks])
    else:
        for check in checks:
            print(f"{_MARKS.get(check.status, check.status)} {check.name}: {check.detail}")
            if check.fix:
                print(f"       fix: {check.fix}")
        failed = sum(1 for c in checks if c.status == "fail")
        warned = sum(1 for c in checks if c.status == "warn")
        print("all checks passed" if not failed and not warned else f"{failed} failed, {warned} warning(s)")
    if checks and checks[0].name == "config" and checks[0].status == "fail":
        return EXIT_CONFIG
    return EXIT_VENUE if any(c.status == "fail" for c in checks) else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from rfqbot.clock import SystemClock
    from rfqbot.ops.status import build_report, format_report

    settings = load_settings(args)
    report = build_report(settings, SystemClock().now_ms())
    if getattr(args, "json", False):
        print_json(report.as_dict())
    else:
        for line in format_report(report):
            print(line)
    return EXIT_OK if report.running else EXIT_VENUE
