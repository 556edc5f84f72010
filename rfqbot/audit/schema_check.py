"""Does the journal's schema still look the way this rfqbot's code makes it?

``verify`` trusts the derived tables and views only if their definitions are the code's: a view
redefined by hand (``fills`` that hides a fill), a dropped or altered derived table, or a trigger
that rewrites rows as they are inserted would otherwise pass every other check. The reference is
built the only honest way: by running this rfqbot's migrations on an empty in-memory database,
so a fresh journal and an upgraded one are both compared with exactly what the code creates.

Objects the code does not create are tolerated when harmless (an extra table, view or index a
user made for their own queries) and named in the detail; an unknown trigger is not harmless.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass

Signature = tuple[object, ...]


@dataclass(frozen=True)
class SchemaDiff:
    missing: list[str]      # "view fills", "table quotes", ...
    changed: list[str]
    unknown_triggers: list[str]
    extra: list[str]        # tolerated

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.unknown_triggers)


def _normalise_sql(sql: str | None) -> str:
    return re.sub(r"\s+", " ", sql or "").strip()


def describe(conn: sqlite3.Connection, schema: str = "main") -> dict[tuple[str, str], Signature]:
    """(type, name) -> a signature of its definition: columns for tables, columns and uniqueness
    for indexes, the normalised SQL for views and triggers."""
    found: dict[tuple[str, str], Signature] = {}
    for kind, name, table, sql in [tuple(r) for r in conn.execute(
            f"SELECT type, name, tbl_name, sql FROM {schema}.sqlite_master WHERE name NOT LIKE 'sqlite_%'")]:
        quoted = '"' + name.replace('"', '""') + '"'
        if kind == "table":
            found[(kind, name)] = tuple(tuple(r) for r in conn.execute(f"PRAGMA {schema}.table_info({quoted})"))
        elif kind == "index":
            columns = tuple(r[2] for r in conn.execute(f"PRAGMA {schema}.index_info({quoted})"))
            unique = bool(re.match(r"\s*CREATE\s+UNIQUE", sql or "", flags=re.I))
            found[(kind, name)] = (table, columns, unique)
        else:
            found[(kind, name)] = (table, _normalise_sql(sql))
    return found


@functools.lru_cache(maxsize=1)
def _reference() -> tuple[dict[tuple[str, str], Signature], dict[str, str]]:
    from rfqbot.journal.store import SCHEMA_VERSION, _MIGRATIONS  # import here: journal imports audit modules

    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for version in range(1, SCHEMA_VERSION + 1):
            _MIGRATIONS[version](conn)
        tables = {name: sql for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
        return describe(conn), tables
    finally:
        conn.close()


def expected_schema() -> dict[tuple[str, str], Signature]:
    """What this rfqbot's migrations create, from version 1 up (built once, in memory)."""
    return dict(_reference()[0])


def table_sql() -> dict[str, str]:
    """The CREATE TABLE statement of each table as this rfqbot's migrations leave it."""
    return dict(_reference()[1])


def compare(conn: sqlite3.Connection) -> SchemaDiff:
    expected, actual = expected_schema(), describe(conn)
    missing = [f"{k} {n}" for (k, n) in expected if (k, n) not in actual]
    changed = [f"{k} {n}" for (k, n), sig in expected.items() if (k, n) in actual and actual[(k, n)] != sig]
    unknown = [f"trigger {n}" for (k, n) in actual if k == "trigger" and (k, n) not in expected]
    extra = [f"{k} {n}" for (k, n) in actual if k != "trigger" and (k, n) not in expected]
    return SchemaDiff(sorted(missing), sorted(changed), sorted(unknown), sorted(extra))


def changed_tables(diff: SchemaDiff) -> set[str]:
    """Tables whose definition is not the code's (missing or altered)."""
    return {item.split(" ", 1)[1] for item in diff.missing + diff.changed if item.startswith("table ")}
