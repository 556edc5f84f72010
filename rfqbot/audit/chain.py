"""The journal's hash chain: canonical JSON, row hashes, prune checkpoints, and the chain walk.

Kept apart from ``rfqbot.journal.store`` (which re-exports these names) so the writer stays small and
the rules an auditor must re-implement to check a journal independently are in one short file:

- ``hash = sha256(prev_hash | canonical_json([seq, local_ms, venue_ms, source, kind, rfq_id,
  quote_id, payload]))`` with the payload as stored, and ``prev_hash`` of seq 1 = 64 zeros;
- a prune checkpoint (only as the very first row) keeps the seq and hash of the last pruned row,
  and a ``seal`` in its payload over its own fields (see ``checkpoint_seal``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from decimal import Decimal
from enum import Enum
from typing import Any, Mapping

from rfqbot.journal.projections import KIND_CHECKPOINT

GENESIS_HASH = "0" * 64


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Dataclass type -> its field names: ``dataclasses.fields`` per value was a visible share of
the journal's per-frame cost (profile-ingest-engine.txt); types never change fields at run time."""


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    names = _FIELD_NAMES.get(type(value))
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: getattr(value, name) for name in names}
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"cannot journal a {type(value).__name__}")


# One encoder for every call: ``json.dumps`` with these arguments builds a new JSONEncoder each
# time; the output is byte-for-byte the same (the hash chain depends on it).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_to_jsonable, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, Decimal as its exact string, enums as values."""
    return _CANONICAL.encode(value)


class NotPlain(ValueError):
    """A value ``plain_json`` does not convert exactly; the caller encodes and decodes instead."""


_SCALARS = frozenset({str, int, bool, type(None)})


def plain_json(value: Any) -> Any:
    """``json.loads(canonical_json(value))`` without the text round trip, or ``NotPlain``.

    The journal encodes each payload once and hands this same object to the projection, whose
    input must equal what ``json.loads`` of the stored text gives (a rebuild replays exactly
    that): Decimals as strings, enums as their values, dataclasses as dicts, tuples as lists.
    Anything whose JSON form is not obvious (a non-string key, a float, an unknown type) raises
    ``NotPlain`` so the caller takes the slow, exact path; ``canonical_json`` of the result is
    byte-identical to ``canonical_json(value)``.

    Scalars and Decimals inside a dict or dataclass are converted in the loop rather than by
    a recursive call each: a journaled quote is ~20 values, and the calls were most of the cost.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise NotPlain("non-string key")
            item_kind = type(item)
            out[key] = item if item_kind in _SCALARS else str(item) if item_kind is Decimal else plain_json(item)
        return out
    if kind is list or kind is tuple:
        return [plain_json(item) for item in value]
    if kind is Decimal:
        return str(value)
    if isinstance(value, str):
        return str.__str__(value)  # str enums: the encoder writes the string content (the value)
    if isinstance(value, Enum):
        return plain_json(value.value)
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        out = {}
        for name in names:
            item = getattr(value, name)
            item_kind = type(item)
            out[name] = item if item_kind in _SCALARS else str(item) if item_kind is Decimal else plain_json(item)
        return out
    raise NotPlain(f"no exact plain form for a {kind.__name__}")


_encode_text = json.encoder.encode_basestring  # what _CANONICAL (ensure_ascii=False) writes for a str


def row_hash(prev_hash: str, seq: int, local_ms: int, venue_ms: int | None, source: str, kind: str,
             rfq_id: str | None, quote_id: str | None, payload: str) -> str:
    """sha256 over the previous hash and the row's canonical fields (payload as stored).

    The body is ``canonical_json`` of the field list; for the usual types (int, str, None) it
    is written directly, byte for byte what the encoder writes, without the encoder's setup.
    """
    if (type(seq) is int and type(local_ms) is int and (venue_ms is None or type(venue_ms) is int)
            and type(source) is str and type(kind) is str and (rfq_id is None or type(rfq_id) is str)
            and (quote_id is None or type(quote_id) is str) and type(payload) is str):
        body = (f"[{seq},{local_ms},{'null' if venue_ms is None else venue_ms},{_encode_text(source)},"
                f"{_encode_text(kind)},{'null' if rfq_id is None else _encode_text(rfq_id)},"
                f"{'null' if quote_id is None else _encode_text(quote_id)},{_encode_text(payload)}]")
    else:
        body = _CANONICAL.encode([seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload])
    return hashlib.sha256(f"{prev_hash}|{body}".encode("utf-8")).hexdigest()


def checkpoint_seal(seq: int, local_ms: int, prev_hash: str, anchor_hash: str, payload: Mapping[str, Any]) -> str:
    """The checkpoint's own integrity hash, over its fields and payload (without the seal).

    A checkpoint's ``hash`` column must equal the hash of the last pruned row (the next row links
    to it), so it cannot also be a hash of the checkpoint's content; the seal in the payload is.
    """
    body = canonical_json([seq, local_ms, prev_hash, anchor_hash, {k: v for k, v in payload.items() if k != "seal"}])
    return hashlib.sha256(f"checkpoint|{body}".encode("utf-8")).hexdigest()


def _checkpoint_ok(seq: int, local_ms: int, prev_hash: str, digest: str, payload_text: str) -> bool:
    try:
        payload = json.loads(payload_text)
    except ValueError:
        return False
    return (isinstance(payload, dict) and payload.get("anchor_hash") == digest
            and payload.get("pruned_to_seq") == seq
            and payload.get("seal") == checkpoint_seal(seq, local_ms, prev_hash, digest, payload))


def verify_rows(conn: sqlite3.Connection) -> int | None:
    """Walk ``events`` in seq order recomputing the chain; the first bad (or missing) seq, or None.

    The chain starts at seq 1 linked to the genesis hash, or at a checkpoint row left by pruning
    (only as the very first row): its sealed payload vouches for the hash the next row links to.
    A first row that is neither means the start was deleted: seq 1 is reported missing.
    """
    prev = GENESIS_HASH
    expected_seq: int | None = None
    for seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload, prev_hash, digest in conn.execute(
            "SELECT seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload, prev_hash, hash "
            "FROM events ORDER BY seq"):
        if expected_seq is None and kind == KIND_CHECKPOINT:
            if not _checkpoint_ok(seq, local_ms, prev_hash, digest, payload):
                return seq
        elif expected_seq is None and seq > 1:
            return 1
        elif expected_seq is not None and seq != expected_seq:
            return expected_seq
        elif prev_hash != prev or row_hash(prev, seq, local_ms, venue_ms, source, kind, rfq_id, quote_id,
                                           payload) != digest:
            return seq
        prev, expected_seq = digest, seq + 1
    return None
