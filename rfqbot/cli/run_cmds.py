"""``rfqbot run`` (the daemon in the foreground) and ``rfqbot demo`` (daemon + simulator)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rfqbot.cli.common import EXIT_OK, common_options
from rfqbot.config.schema import load_config, load_credentials
from rfqbot.logs import configure_logging

DEFAULT_DEMO_JOURNAL = "rfqbot-demo-journal.db"


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", parents=[common_options()],
                                help="run the daemon in the foreground (SIGTERM/SIGINT stop, SIGHUP reloads)")
    run.set_defaults(func=cmd_run)
    demo = subparsers.add_parser("demo", parents=[common_options()],
                                 help="run the daemon against the built-in simulator (no API key needed)")
    demo.add_argument("--duration", type=float, default=60.0, metavar="S",
                      help="seconds to run (default 60; 0 = until Ctrl-C)")
    demo.add_argument("--journal", default=DEFAULT_DEMO_JOURNAL, metavar="PATH",
                      help=f"journal file (default ./{DEFAULT_DEMO_JOURNAL}, replaced at each demo; "
                           "any other existing file is refused unless --resume)")
    demo.add_argument("--resume", action="store_true",
                      help="append to an existing --journal instead of starting a fresh one")
    demo.add_argument("--seed", type=int, default=7, help="simulator seed (same seed, same market)")
    demo.set_defaults(func=cmd_demo)


def cmd_run(args: argparse.Namespace) -> int:
    from rfqbot.daemon import Daemon, serve

    settings = load_config(getattr(args, "config", None))
    configure_logging(settings.logging.level, settings.logging.format)
    credentials = load_credentials(settings)
    from rfqbot.ops.service import Operations  # systemd notify/watchdog, status file, alerts, metrics

    ops = Operations(settings)
    daemon = Daemon(settings, credentials, observers=ops.observers)
    ops.attach(daemon)
    try:
        return serve(daemon)
    finally:
        ops.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from rfqbot.daemon import Daemon, serve
    from rfqbot.demo import demo_settings, first_rfqs_soon, summarise
    from rfqbot.sim import SimConfig, Simulator

    level = "info" if getattr(args, "verbose", False) else "warning"
    configure_logging(level, "console")
    journal = Path(args.journal)
    resume = getattr(args, "resume", False)
    if journal.exists() and not resume:
        if args.journal != DEFAULT_DEMO_JOURNAL:
            # Someone's journal (maybe a real one): never replaced, never silently mixed with a demo.
            raise argparse.ArgumentTypeError(
                f"--journal {journal} already exists; the demo replaces only its default "
                f"./{DEFAULT_DEMO_JOURNAL}. Pass --resume to append to it, or give a new path")
        for suffix in ("", "-wal", "-shm"):
            Path(str(journal) + suffix).unlink(missing_ok=True)
    printer = LifePrinter()
    sim = Simulator(SimConfig(seed=args.seed, tls=True)).start()
    try:
        venue = demo_settings(sim, journal, log_level=level)
        printer.say(f"simulator up at {sim.rest_url} (TLS, CA {sim.ca_file}); journal {journal}")
        printer.say("strategies: buy BTC at <= 106400 USDT with >= 5 s left; sell ETH at >= 3790 USDT; "
                    "buy USDC at <= 0.9990 USD (never, on this market)")
        duration = None if args.duration == 0 else args.duration
        printer.say("running " + ("until Ctrl-C" if duration is None else f"for {duration:g} s") + " ...")
        daemon = Daemon(venue.settings, venue.credentials, observers=(printer,))
        daemon.add_listener(first_rfqs_soon(daemon))
        serve(daemon, duration_s=duration)
    finally:
        sim.stop()
    summary = summarise(journal)
    printer.say("summary:")
    print(f"  RFQs created:        {summary.rfqs_created}")
    print(f"  by venue status:     " + (", ".join(f"{k} {v}" for k, v in sorted(summary.by_status.items()))
                                        or "none"))
    print(f"  accepts sent:        {summary.accepts_sent} (confirmed by the venue: {summary.accepts_confirmed})")
    print(f"  settled (sold):      " + (", ".join(f"{v} {k}" for k, v in sorted(summary.notional_by_ccy.items()))
                                        or "nothing"))
    print(f"  rejected frames:     {summary.rejected_frames}")
    print(f"  audit it:            .venv/bin/rfqbot journal list --journal {journal}")
    return EXIT_OK


class LifePrinter:
    """Engine observer that prints each RFQ's life as it happens, in the venue's words."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.best: dict[str, tuple[int, str]] = {}

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def __call__(self, kind: str, p: dict[str, Any]) -> None:
        rfq = p.get("rfq_id") or "-"
        if kind == "create.requested":
            c = p["command"]
            self.say(f"create   buy {c.buy_ccy} selling {c.sell_amount} {c.sell_ccy} ({c.client_order_id})")
        elif kind == "rfq.reconciled" and p.get("source") == "create":
            self.say(f"{rfq}  created ({p['rfq'].client_order_id})")
        elif kind == "create.failed":
            self.say(f"create failed ({p.get('client_order_id')}): {p.get('outcome')} {p.get('message')}")
        elif kind == "frame.best_quotes":
            quotes = p.get("quotes") or []
            if quotes:
                top = quotes[0]
                key = (len(quotes), str(top.price))
                if self.best.get(rfq) != key:
                    self.best[rfq] = key
                    self.say(f"{rfq}  {len(quotes)} quote(s), best {top.price} from {top.lp_name or '?'}")
        elif kind == "decision":
            action = p.get("action")
            price = f" at {p['price']}" if p.get("price") is not None else ""
            self.say(f"{rfq}  decision: {action}{price} - {p.get('reason')}")
        elif kind == "accept.result":
            self.say(f"{rfq}  accept {p.get('outcome')}" + (f": {p.get('message')}" if p.get("message") else ""))
        elif kind == "rfq.transition":
            before = p.get("from")
            self.say(f"{rfq}  status {p.get('to')}" if before is None else f"{rfq}  {before} -> {p.get('to')}")
        elif kind == "rfq.unknown_status":
            self.say(f"{rfq}  unknown status {p.get('status_raw')!r} (journaled)")

