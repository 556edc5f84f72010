"""Reading a journal back for replay: event rows in order, and the records inside their payloads.

The journal stores records as canonical JSON (Decimal as exact text, enums as their words);
these helpers turn them back into ``Quote``s and ``Pair``s without ever making a float. The
journal is opened read-only: replay may run beside a live daemon on the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterator, Mapping

from rfqbot.errors import RfqbotError
from rfqbot.journal.store import open_readonly
from rfqbot.records import Pair, Quote, QuoteMode

# Kinds replay reads; everything else in the journal is irrelevant to a decision.
REPLAY_KINDS = ("frame.best_quotes", "reconcile.active_quotes", "frame.spot", "frame.public_quote", "decision",
                "accept.result", "rfq.transition", "rfq.state", "rfq.reconciled", "frame.rfq_update",
                "risk.kill_switch", "note.clock_sync", "pairs.changed")


class ReplayError(RfqbotError):
    """The journal cannot be read for replay; the message says which file and what to do."""


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    local_ms: int
    venue_ms: int | None
    kind: str
    rfq_id: str | None
    quote_id: str | None
    payload: Mapping[str, Any]


def read_rows(path: str | Path, *, since_local_ms: int | None = None) -> Iterator[Row]:
    """Rows of the kinds replay uses, in ``seq`` order (the engine's one total order)."""
    if not Path(path).is_file():
        raise ReplayError(f"journal {path} does not exist; pass --journal PATH (the daemon's journal.path)")
    try:
        conn = open_readonly(path)
    except Exception as exc:  # noqa: BLE001 - sqlite raises several kinds; the message says enough
        raise ReplayError(f"cannot open journal {path} read-only: {exc}") from None
    marks = ",".join("?" for _ in REPLAY_KINDS)
    sql = (f"SELECT seq, local_ms, venue_ms, kind, rfq_id, quote_id, payload FROM events "
           f"WHERE kind IN ({marks})" + (" AND local_ms >= ?" if since_local_ms is not None else "") +
           " ORDER BY seq")
    params: tuple[Any, ...] = REPLAY_KINDS + ((since_local_ms,) if since_local_ms is not None else ())
    try:
        for seq, local_ms, venue_ms, kind, rfq_id, quote_id, payload in conn.execute(sql, params):
            try:
                data = json.loads(payload, parse_float=Decimal)
            except ValueError:
                continue  # an unreadable payload cannot be replayed; the chain check reports tampering
            if isinstance(data, dict):
                yield Row(seq, local_ms, venue_ms, kind, rfq_id, quote_id, data)
    except Exception as exc:  # noqa: BLE001 - e.g. "no such table: events" for a file that is no journal
        raise ReplayError(f"cannot read journal {path}: {exc}; is it an rfqbot journal?") from None
    finally:
        conn.close()


def dec(value: Any) -> Decimal | None:
    """A Decimal from journaled text (or an int); None when absent or unreadable."""
    if value is None or value == "" or isinstance(value, (bool, float)):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def quote_of(d: Any) -> Quote | None:
    """A journaled ``Quote`` (dataclass as a mapping) back as a record; None if it is not one."""
    if not isinstance(d, Mapping):
        return None
    price = dec(d.get("price"))
    if price is None or not d.get("quote_id"):
        return None
    return Quote(str(d["quote_id"]), str(d.get("rfq_id") or ""), price, buy_ccy=d.get("buy_ccy"),
                 sell_ccy=d.get("sell_ccy"), buy_amount=dec(d.get("buy_amount")),
                 sell_amount=dec(d.get("sell_amount")), lp_name=d.get("lp_name"),
                 mode=QuoteMode.parse(str(d.get("mode") or "")), rank=integer(d.get("rank")),
                 submitted_ms=integer(d.get("submitted_ms")), expires_ms=integer(d.get("expires_ms")),
                 status_raw=d.get("status_raw"), manual=d.get("manual") is True)


def quotes_of(items: Any) -> tuple[Quote, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(q for q in (quote_of(d) for d in items) if q is not None)


def pair_named(name: str) -> Pair | None:
    """A ``Pair`` from its name; the journal does not keep precisions, and replay needs none."""
    base, _, quote = name.partition("/")
    if not base or not quote:
        return None
    return Pair(base, quote, Decimal(0), Decimal(0), None, None, None, None, "replay")


def pairs_in(rows: list[Row]) -> list[Pair]:
    """Every pair the journal names (RFQ snapshots, decisions, spot frames), sorted by name."""
    names: set[str] = set()
    for row in rows:
        state = row.payload.get("rfq_state")
        for value in (row.payload.get("pair"), state.get("pair") if isinstance(state, Mapping) else None):
            if isinstance(value, str) and "/" in value:
                names.add(value)
    return [p for p in (pair_named(n) for n in sorted(names)) if p is not None]
