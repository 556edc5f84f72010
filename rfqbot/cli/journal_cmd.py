"""``rfqbot journal list|show|tail|export|stats|verify|rebuild|prune|upgrade``: audit the journal.

Every command takes ``--journal PATH`` (default: ``journal.path`` from ``--config``). Reads use a
read-only connection, so they are safe while the daemon runs, and never upgrade an older
journal. ``rebuild``, ``prune`` and ``upgrade`` write through the journal's own code as its one
writer: they hold one write transaction for as long as replaying every event takes, which would
stall a running daemon, so they refuse to run while it holds the journal (stop it first).
"""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import sys
import time
from contextlib import closing
from typing import Any, Callable

from rfqbot.audit import prune as prune_mod
from rfqbot.audit import queries, reader, stats, timeparse
from rfqbot.audit.verify import parse_head, verify_connection
from rfqbot.cli.common import EXIT_OK, EXIT_VENUE, common_options
from rfqbot.cli.output import cell, emit, ms_to_text, print_json, print_table
from rfqbot.clock import SystemClock
from rfqbot.config.schema import load_config
from rfqbot.errors import ConfigError
from rfqbot.journal.store import JournalError, JournalUnreachable
from rfqbot.logs import configure_logging


def _time(text: str) -> int:
    try:
        return timeparse.parse_time(text, SystemClock().now_ms())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _head(text: str) -> tuple[int, str]:
    try:
        return parse_head(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    parent = argparse.ArgumentParser(add_help=False, parents=[common_options()])
    parent.add_argument("--journal", metavar="PATH", default=None,
                        help="journal file (default: journal.path from the config)")
    group = subparsers.add_parser("journal", help="audit the journal: list, show, tail, export, stats, verify, "
                                                  "rebuild, prune, upgrade")
    commands = group.add_subparsers(dest="journal_command", metavar="SUBCOMMAND", required=True)

    p = commands.add_parser("list", parents=[parent], help="own RFQs, newest first")
    p.add_argument("--status", help="a status (new, accepted, successful, expired, ...) or open|final|filled")
    p.add_argument("--pair", help="e.g. BTC/USDT or BTCUSDT")
    p.add_argument("--since", type=_time, metavar="TIME", help=timeparse.HELP)
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100; 0 = all)")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("show", parents=[parent], help="one RFQ: timeline, quotes, verdicts, venue calls")
    p.add_argument("rfq_id", metavar="RFQ_ID", help="venue RFQ id (or the client order id rfqbot gave it)")
    p.set_defaults(func=cmd_show)

    p = commands.add_parser("tail", parents=[parent], help="the last events; -f follows while the daemon writes")
    p.add_argument("-n", "--lines", type=int, default=20, help="how many recent events first (default 20)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events until Ctrl-C")
    p.add_argument("--for", dest="for_s", type=float, default=None, metavar="S",
                   help="with -f: stop after S seconds (scripts)")
    p.add_argument("--poll", type=float, default=0.5, metavar="S", help="with -f: poll interval (default 0.5)")
    p.set_defaults(func=cmd_tail)

    p = commands.add_parser("export", parents=[parent], help="a table or view as CSV or JSON lines, to stdout")
    p.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    p.add_argument("--table", choices=tuple(queries.EXPORTS), default="events", help="default events")
    p.add_argument("--since", type=_time, metavar="TIME", help=timeparse.HELP)
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("stats", parents=[parent], help="RFQs, fill rate, price vs reference, latency")
    p.add_argument("--by", choices=stats.GROUPINGS, default=None, help="group by day (UTC), pair or LP")
    p.add_argument("--since", type=_time, metavar="TIME", help=timeparse.HELP)
    p.set_defaults(func=cmd_stats)

    p = commands.add_parser("verify", parents=[parent],
                            help="hash chain, integrity_check, schema, derived tables == rebuild (exit 1 if not)")
    p.add_argument("--expect-head", type=_head, metavar="SEQ:HASH",
                   help="a head printed by an earlier verify (kept elsewhere): fail if that row is gone or changed")
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser("rebuild", parents=[parent], help="regenerate the derived tables from events "
                                                              "(daemon stopped)")
    p.set_defaults(func=cmd_rebuild)

    p = commands.add_parser("upgrade", parents=[parent], help="migrate an older journal to this rfqbot's schema "
                                                              "(daemon stopped; the daemon also does it at start)")
    p.set_defaults(func=cmd_upgrade)

    p = commands.add_parser("prune", parents=[parent], help="drop events before a date, keeping the chain "
                                                            "verifiable (daemon stopped; --dry-run any time)")
    p.add_argument("--before", type=_time, required=True, metavar="TIME", help=timeparse.HELP)
    p.add_argument("--dry-run", action="store_true", help="say what would go, change nothing")
    p.set_defaults(func=cmd_prune)


def _pipe_safe(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``rfqbot journal export | head`` closes our stdout early: that is not an error."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
            return EXIT_OK
    return run


# SQLite's primary result codes for a file that is not (or no longer) a sound database.
_DAMAGED_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def _sqlite_errors_explained(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A journal SQLite cannot read past the open (a damaged page deep in a table) fails a
    command mid-way; the user gets one line naming the journal and what to do, not a traceback.
    ``verify`` reports damage as failed checks itself; this catches what is left."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except JournalError as exc:
            # Opening wraps SQLite errors as "is it an rfqbot journal?"; a journal whose folder is
            # not writable is not a bad file, and its own message says what to do instead.
            if isinstance(exc.__cause__, JournalUnreachable):
                raise exc.__cause__ from None
            raise
        except sqlite3.DatabaseError as exc:
            raise JournalError(_sqlite_failure(getattr(args, "journal", None) or "(from the config)", exc)) \
                from exc
    return run


def _sqlite_failure(path: str, exc: sqlite3.DatabaseError) -> str:
    """What to tell the user when SQLite fails on ``path`` mid-command."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _DAMAGED_CODES:
        return (f"journal {path} is damaged (SQLite: {exc}); run `rfqbot journal verify --journal {path}` to "
                f"see what is affected, then restore it from a backup (or `sqlite3 {path} .recover | sqlite3 "
                "recovered.db`)")
    return (f"cannot read journal {path} (SQLite: {exc}); run `rfqbot journal verify --journal {path}` to "
            "check the file, and restore it from a backup if it is damaged")


def _journal_command(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """What every ``rfqbot journal`` command is wrapped in: a closed pipe is not an error, and
    a SQLite failure mid-way is one line naming the journal and what to do."""
    return _pipe_safe(_sqlite_errors_explained(command))


def journal_path(args: argparse.Namespace) -> str:
    """The journal to read: ``--journal``, else ``journal.path`` from the config. Also points
    logging at stderr (warnings only, unless -v) so stdout carries nothing but the output.

    The path found is kept in ``args.journal`` so an error later can name the file."""
    configure_logging("debug" if getattr(args, "verbose", False) else "warning", "console", stream=sys.stderr)
    if args.journal:
        return str(args.journal)
    try:
        args.journal = load_config(getattr(args, "config", None)).journal.path
    except ConfigError as exc:
        raise ConfigError(f"{exc}\nor name the journal directly: --journal PATH") from None
    return str(args.journal)


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


# --- list / show ---------------------------------------------------------------------------

LIST_COLUMNS = [
    ("RFQ ID", lambda r: r["rfq_id"]), ("CREATED", lambda r: ms_to_text(r["created_ms"])),
    ("PAIR", lambda r: r["pair"]), ("SIDE", lambda r: r["side"]),
    ("SELL", lambda r: f"{cell(r['sell_amount'])} {cell(r['sell_ccy'])}"),
    ("STATUS", lambda r: r["status"]), ("ACCEPT", lambda r: r["accept_state"]),
    ("PRICE", lambda r: r["price"]), ("LP", lambda r: r["lp_name"]), ("DECISIONS", lambda r: r["decisions"]),
]


@_journal_command
def cmd_list(args: argparse.Namespace) -> int:
    with closing(reader.connect(journal_path(args))) as conn:
        found = queries.list_rfqs(conn, status=args.status, pair=args.pair, since_ms=args.since,
                                  limit=args.limit or None)
    emit(_json(args), found, LIST_COLUMNS, empty="(no RFQs match)")
    return EXIT_OK


@_journal_command
def cmd_show(args: argparse.Namespace) -> int:
    with closing(reader.connect(journal_path(args))) as conn:
        rfq = queries.find_rfq(conn, args.rfq_id)
        if rfq is None:
            print(f"rfqbot: error: no RFQ {args.rfq_id!r} in the journal; `rfqbot journal list` shows the ones "
                  "it has", file=sys.stderr)
            return EXIT_VENUE
        detail = queries.rfq_detail(conn, rfq)
    if _json(args):
        print_json(detail)
        return EXIT_OK
    _print_show(detail)
    return EXIT_OK


def _rel(ms: Any) -> str:
    return "-" if ms is None else f"+{ms}"


def _print_show(detail: dict[str, Any]) -> None:
    r = detail["rfq"]
    print(f"RFQ {r['rfq_id']}" + (f" (client id {r['client_order_id']})" if r.get("client_order_id") else ""))
    print(f"  {cell(r['pair'])} {cell(r['side'])}: buy {cell(r['buy_amount'])} {cell(r['buy_ccy'])}, "
          f"sell {cell(r['sell_amount'])} {cell(r['sell_ccy'])}, mode {cell(r['mode'])}")
    print(f"  status {cell(r['status'])} (venue: {cell(r['status_raw'])}), accept {cell(r['accept_state'])}"
          + (f" of {r['accepted_quote_id']} at {cell(r['price'])}" if r.get("accepted_quote_id") else ""))
    print(f"  first seen {cell(ms_to_text(r.get('first_ms')))}, expires {cell(ms_to_text(r.get('expires_ms')))}")
    print("\nTIMELINE (ms after the first event)")
    print_table(detail["timeline"], [("+MS", lambda t: _rel(t["rel_ms"])), ("SEQ", lambda t: t["seq"]),
                                     ("KIND", lambda t: t["kind"]), ("SOURCE", lambda t: t["source"]),
                                     ("DETAIL", lambda t: t["detail"])])
    print("\nQUOTES")
    print_table(detail["quotes"], [("QUOTE ID", lambda q: q["quote_id"]), ("LP", lambda q: q["lp_name"]),
                                   ("PRICE", lambda q: q["price"]), ("RANK", lambda q: q["rank"]),
                                   ("MODE", lambda q: q["mode"]), ("BUY AMOUNT", lambda q: q["buy_amount"]),
                                   ("SELL AMOUNT", lambda q: q["sell_amount"]),
                                   ("EXPIRES", lambda q: ms_to_text(q["expires_ms"])),
                                   ("SEEN VIA", lambda q: q["source"])])
    print("\nDECISIONS")
    if not detail["decisions"]:
        print("(none)")
    for d in detail["decisions"]:
        target = f" {d['quote_id']}" if d.get("quote_id") else ""
        price = f" at {d['price']}" if d.get("price") is not None else ""
        outcome = f"; venue answer: {d['result_outcome']}" if d.get("result_outcome") else ""
        blocked = f"; blocked by {d['blocked_by']}" if d.get("blocked_by") else ""
        print(f"  {_rel(d['rel_ms'])} ms  #{d['seq']}  {d['action']}{target}{price} (chain says {d['final']}, "
              f"trigger {cell(d['trigger'])}, {cell(d['latency_ms'])} ms after the frame){blocked}{outcome}")
        print(f"      reason: {cell(d['reason'])}")
        for v in d["verdicts"]:
            print(f"      step {cell(v.get('step'))} {cell(v.get('use'))}: {cell(v.get('kind'))} - {cell(v.get('reason'))}")
    print("\nVENUE CALLS")
    print_table(detail["venue_calls"], [("+MS", lambda c: _rel(c["rel_ms"])), ("SEQ", lambda c: c["seq"]),
                                        ("METHOD", lambda c: c["method"]), ("ENDPOINT", lambda c: c["endpoint"]),
                                        ("HTTP", lambda c: c["http_status"]), ("CODE", lambda c: c["venue_code"]),
                                        ("OUTCOME", lambda c: c["outcome"]), ("MS", lambda c: c["duration_ms"]),
                                        ("ERROR", lambda c: c["error"])])


# --- tail / export ---------------------------------------------------------------------------

def _print_events(as_json: bool) -> Callable[[list[dict[str, Any]]], None]:
    def emit_rows(batch: list[dict[str, Any]]) -> None:
        out = sys.stdout
        if as_json:
            queries.write_jsonl(out, list(batch[0].keys()), (tuple(r.values()) for r in batch))
        else:
            for r in batch:
                print(f"{r['seq']:>8}  {ms_to_text(r['local_ms'])}  {r['kind']:<22} {cell(r['rfq_id']):<22} "
                      f"{cell(r['detail']) if r['detail'] else r['payload'][:120]}", file=out)
        out.flush()
    return emit_rows


@_journal_command
def cmd_tail(args: argparse.Namespace) -> int:
    printer = _print_events(_json(args))
    with closing(reader.connect(journal_path(args), min_version=1)) as conn:
        recent = queries.last_events(conn, args.lines)
        if recent:
            printer(recent)
        if not args.follow:
            return EXIT_OK
        last = recent[-1]["seq"] if recent else (conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events")
                                                 .fetchone()[0])
        deadline = None if args.for_s is None else time.monotonic() + args.for_s
        try:
            queries.follow(conn, last, printer, poll_s=args.poll, sleep=time.sleep,
                           should_stop=lambda: deadline is not None and time.monotonic() >= deadline)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


@_journal_command
def cmd_export(args: argparse.Namespace) -> int:
    oldest = 1 if args.table == "events" else reader.READ_MIN_VERSION
    with closing(reader.connect(journal_path(args), min_version=oldest)) as conn:
        try:
            names, data = queries.export_rows(conn, args.table, args.since)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        writer = queries.write_csv if args.format == "csv" else queries.write_jsonl
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = writer(out, names, data)
            print(f"exported {count} {args.table} rows to {args.output}", file=sys.stderr)
        else:
            writer(sys.stdout, names, data)
    return EXIT_OK


# --- stats / verify / rebuild / prune ---------------------------------------------------------

@_journal_command
def cmd_stats(args: argparse.Namespace) -> int:
    with closing(reader.connect(journal_path(args))) as conn:
        summary = stats.compute_stats(conn, by=args.by, since_ms=args.since)
    key = args.by or "all"
    columns = [(key.upper(), lambda s: s[key]), ("RFQS", lambda s: s["rfqs"]), ("FILLS", lambda s: s["fills"]),
               ("FILL %", lambda s: s["fill_rate_pct"]), ("DECISIONS", lambda s: s["decisions"]),
               ("DEC P50 MS", lambda s: s["decision_latency_p50_ms"]),
               ("DEC P99 MS", lambda s: s["decision_latency_p99_ms"]), ("ACCEPTS", lambda s: s["accepts_sent"]),
               ("ACC P50 MS", lambda s: s["accept_latency_p50_ms"]), ("ACC P99 MS", lambda s: s["accept_latency_p99_ms"]),
               ("VS REF BPS", lambda s: s["avg_vs_reference_bps"]), ("WITH REF", lambda s: s["fills_with_reference"])]
    if args.by == "pair":
        columns.insert(4, ("AVG PRICE", lambda s: s["avg_fill_price"]))
    emit(_json(args), summary, columns, empty="(nothing in the journal for that period)")
    return EXIT_OK


@_journal_command
def cmd_verify(args: argparse.Namespace) -> int:
    path = journal_path(args)
    with closing(reader.connect(path, min_version=1)) as conn:
        report = verify_connection(conn, path, expect_head=args.expect_head)
    if _json(args):
        print_json({"ok": report.ok, "path": report.path, "schema_version": report.schema_version,
                    "events": report.events, "head_seq": report.head_seq, "head_hash": report.head_hash,
                    "checks": report.checks})
    else:
        print_table(report.checks, [("CHECK", lambda c: c.name), ("RESULT", lambda c: "ok" if c.ok else "FAILED"),
                                    ("DETAIL", lambda c: c.detail)])
        events = "events unreadable" if report.events is None else f"{report.events} events"
        print(f"\n{events}, schema v{report.schema_version}; head seq {cell(report.head_seq)} "
              f"hash {cell(report.head_hash)}")
        if report.head_seq is not None:
            print(f"keep the head elsewhere; later: rfqbot journal verify --expect-head "
                  f"{report.head_seq}:{report.head_hash}")
        print("journal verified" if report.ok else "JOURNAL FAILED VERIFICATION (see above)")
    return EXIT_OK if report.ok else EXIT_VENUE


@_journal_command
def cmd_rebuild(args: argparse.Namespace) -> int:
    journal = reader.open_writer(journal_path(args), command="rebuild")
    try:
        count = journal.rebuild_projections()
    finally:
        journal.close()
    if _json(args):
        print_json({"rebuilt_from_events": count})
    else:
        print(f"derived tables rebuilt from {count} events")
    return EXIT_OK


@_journal_command
def cmd_upgrade(args: argparse.Namespace) -> int:
    before, after = reader.upgrade_in_place(journal_path(args))
    if _json(args):
        print_json({"schema_version_before": before, "schema_version": after})
    elif before == after:
        print(f"journal is already at schema v{after}; nothing to do")
    else:
        print(f"journal upgraded from schema v{before} to v{after} (derived tables rebuilt from events)")
    return EXIT_OK


@_journal_command
def cmd_prune(args: argparse.Namespace) -> int:
    path = journal_path(args)
    now_ms = SystemClock().now_ms()
    if args.dry_run:  # reads only: no writer, fine while the daemon runs
        with closing(reader.connect(path)) as conn:
            plan = prune_mod.plan(conn, args.before, now_ms=now_ms)
    else:
        journal = reader.open_writer(path, command="prune")
        try:
            plan = prune_mod.prune(journal, args.before, now_ms=now_ms)
        finally:
            journal.close()
    if _json(args):
        print_json({"dry_run": args.dry_run, **plan.__dict__})
        return EXIT_OK
    verb = "would prune" if args.dry_run else "pruned"
    if plan.last_seq is None:
        print(f"nothing to prune before {ms_to_text(args.before)}" + (f" ({plan.held_back_by})" if plan.held_back_by else ""))
    else:
        print(f"{verb} events {plan.first_seq}..{plan.last_seq} ({plan.events} events, {plan.rfqs} RFQs) before "
              f"{ms_to_text(args.before)}" + (f"; cut earlier: {plan.held_back_by}" if plan.held_back_by else ""))
        if not args.dry_run:
            print(f"checkpoint row seq {plan.last_seq} carries their digest; `rfqbot journal verify` still passes")
    return EXIT_OK
