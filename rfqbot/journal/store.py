"""The journal: an append-only, hash-chained SQLite log of everything rfqbot saw and did.

Why these settings:

- **WAL + synchronous=FULL.** A decision to accept is committed before the accept request
  leaves; after a power cut the journal must still say that the accept may be in flight. In WAL
  mode ``synchronous=NORMAL`` survives a process crash but may lose the last commits on power
  loss; ``FULL`` fsyncs the WAL on every commit, so a returned ``append`` is on disk. Market
  data bursts use ``batch()`` (one commit, one fsync) to keep that affordable. ``journal.synchronous:
  normal`` is the operator's choice to drop that fsync (process crashes still lose nothing).
- **One writer.** The engine thread is the only writer; a lock guards the connection anyway so
  a misuse is slow rather than corrupt. Across processes, a ``Journal`` holds an exclusive
  advisory lock on ``<journal>.lock`` while open (``rfqbot.audit.writer_lock``): a second daemon
  or a maintenance command (rebuild, prune, upgrade: long write transactions that would make the
  daemon's appends time out) is refused up front. Readers (CLI, audit) open read-only
  connections, take no lock, and never migrate.
- **Busy is transient.** Something outside rfqbot (sqlite3, sqlite-utils) may still hold a
  write transaction; ``BEGIN IMMEDIATE`` then waits ``busy_timeout_ms``, and is retried for
  ``busy_retry_s`` more before a ``JournalError`` that names the lock and the likely culprit.
- **Hash chain.** Each row's ``hash`` is sha256 over the previous hash and the row's canonical
  fields, so an edited, deleted or reordered row is found by ``verify_chain``.
- **File mode 0600.** The journal holds the account's trading history. SQLite creates the
  ``-wal`` and ``-shm`` files with the main file's permissions.
- **Schema version** lives in ``PRAGMA user_version``; ``_MIGRATIONS`` upgrades in place, one
  version at a time, each in its own transaction (a crash mid-upgrade leaves the old version).
- **Pruning** (``rfqbot.audit.prune``) replaces a prefix of the chain by one checkpoint row
  that carries the pruned rows' digest and keeps the hash the next row links to; ``verify_rows``
  accepts a chain that starts at such a checkpoint.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import sqlite_utils
import structlog

from rfqbot.clock import Clock
from rfqbot.errors import RfqbotError
from rfqbot.audit.chain import (
    GENESIS_HASH, NotPlain, canonical_json, checkpoint_seal, plain_json, row_hash, verify_rows,
)
from rfqbot.audit.views import create_views
from rfqbot.audit.writer_lock import WriterLock
from rfqbot.journal.apply import apply_deferred, apply_projection, insert_rows, project_or_log
from rfqbot.journal.projections import DERIVED_TABLES, SCHEMA_V1, SCHEMA_V2, EventRow, Op

log = structlog.get_logger(__name__)

# Commits between checkpoints taken while the engine is idle (Journal.checkpoint_when_idle).
IDLE_CHECKPOINT_COMMITS = 8
_DEFERRED_SOURCE = "public"  # rows from the public streams: the bulk of the journal, batched
_INSERT_EVENT = ("INSERT INTO events (seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload, prev_hash, "
                 "hash) VALUES (?,?,?,?,?,?,?,?,?,?)")

SCHEMA_VERSION = 3
__all__ = ["GENESIS_HASH", "SCHEMA_VERSION", "Journal", "JournalDamaged", "JournalError", "JournalLocked", "JournalState",
           "JournalUnreachable", "JOURNAL_WRITE_ERRORS",
           "apply_projection", "canonical_json", "checkpoint_seal", "open_readonly", "replay_events", "row_hash",
           "verify_rows"]


class JournalError(RfqbotError, RuntimeError):
    """The journal cannot be opened or written; the message says which file and what to do."""


class JournalDamaged(JournalError):
    """SQLite's ``quick_check`` found the file damaged (opened with ``check_first=True``)."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class JournalLocked(JournalError):
    """Another process holds the journal's writer lock (the daemon, or a maintenance command)."""


class JournalUnreachable(JournalError, sqlite3.OperationalError):
    """A reader cannot open the ``-wal``/``-shm`` files beside a WAL journal (a read-only folder,
    another user's files): the journal itself is probably fine. Also an ``OperationalError``, so
    callers that report an unreadable journal inline (``rfqbot status``, ``doctor``) still do."""


# What a failed write of the journal itself raises (as opposed to a bug on odd input): the
# engine stops deciding on these.
JOURNAL_WRITE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, JournalError)


def _is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED (any extended code): another connection holds the lock we need."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)
    return "locked" in str(exc) or "busy" in str(exc)


@dataclass
class JournalState:
    """What a restarting engine needs: own RFQs with their last state, accepts in doubt."""

    rfqs: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown_accepts: list[dict[str, Any]] = field(default_factory=list)
    recent_accepts: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int = 0


def _create_v1(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db["events"].create({"seq": int, "local_ms": int, "venue_ms": int, "source": str, "kind": str,
                         "rfq_id": str, "quote_id": str, "payload": str, "prev_hash": str, "hash": str},
                        pk="seq", not_null={"local_ms", "source", "kind", "payload", "prev_hash", "hash"})
    db["events"].create_index(["rfq_id"], index_name="idx_events_rfq")
    db["events"].create_index(["quote_id"], index_name="idx_events_quote")
    db["events"].create_index(["local_ms"], index_name="idx_events_time")
    db["events"].create_index(["kind"], index_name="idx_events_kind")
    for statement in SCHEMA_V1:
        conn.execute(statement)


def _upgrade_v2(conn: sqlite3.Connection) -> None:
    """Audit columns, reference prices, more indexes and the audit views; then refill every
    derived table from ``events`` so old rows get the new columns too."""
    for statement in SCHEMA_V2:
        conn.execute(statement)
    create_views(conn)
    replay_events(conn)


def _upgrade_v3(conn: sqlite3.Connection) -> None:
    """Projection fixes, no new columns: quotes keep what a later source lacks (REST rfq-active
    has no LP, submit time or rank), and venue calls with the RFQ id only in the path
    (``GET .../rfq-active/{rfqId}``) are linked to it. Replaying ``events`` applies both."""
    create_views(conn)
    replay_events(conn)


def replay_events(conn: sqlite3.Connection) -> int:
    """Empty the derived tables and re-project every event in seq order (caller holds the
    transaction); returns the number of events replayed."""
    for table in DERIVED_TABLES:
        conn.execute(f"DELETE FROM {table}")
    count = 0
    for row in conn.execute("SELECT seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, payload "
                            "FROM events ORDER BY seq").fetchall():
        apply_projection(conn, EventRow(*row[:7], json.loads(row[7])))
        count += 1
    return count


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _create_v1, 2: _upgrade_v2, 3: _upgrade_v3}
"""version -> function that upgrades a journal at version-1 to it (1: create from empty)."""


class Journal:
    """The single-writer journal. ``append`` returns after the row is committed (fsynced)."""

    def __init__(self, path: str | os.PathLike[str], clock: Clock, *, busy_timeout_ms: int = 5000,
                 busy_retry_s: float = 3.0, synchronous: str = "full", check_first: bool = False) -> None:
        if synchronous not in ("full", "normal"):
            raise JournalError(f"journal.synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.synchronous = synchronous
        self._check_first = check_first   # quick_check before anything reads or migrates the file
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.RLock()
        self._batch_depth = 0
        self._batch_start: tuple[int, str] | None = None
        self._commits_since_checkpoint = 0   # see checkpoint_when_idle
        self._pending: list[tuple[Any, ...]] = []  # events rows of the open batch, not yet inserted
        self._pending_ops: list[tuple[EventRow, list[Op]]] = []  # their projections, not yet applied
        self._rehearsing = False   # inside rehearsal(): a failed projection fails it (_apply_projection)
        self._wal_fd: int | None = None   # see warm_sync
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._busy_retry_s = float(busy_retry_s)
        self._writer_lock = WriterLock(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            acquired = self._writer_lock.acquire()
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}; check the directory exists and is "
                               "writable by rfqbot (journal.path in the config)") from exc
        if not acquired:
            raise JournalLocked(
                f"journal {self.path} is already open for writing by another process ({self._writer_lock.path} "
                "is locked): a running rfqbot daemon, or a `rfqbot journal rebuild|prune|upgrade`; one writer at "
                "a time: stop the other one first (systemctl stop rfqbot), or point journal.path elsewhere")
        try:
            self._open()
        except BaseException:
            self._writer_lock.release()
            raise

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            if self.path.stat().st_mode & 0o077:
                log.warning("journal.permissions_tightened", path=str(self.path))
                os.chmod(self.path, 0o600)
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}; check the directory exists and is "
                               "writable by rfqbot (journal.path in the config)") from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"journal {self.path}: SQLite refused WAL mode (got {mode}); use a local disk")
            self._conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if self._check_first:
                self._refuse_if_damaged()
            self._migrate()
            row = self._conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        except BaseException:
            self._conn.close()
            raise
        self._last_seq, self._last_hash = (row[0], row[1]) if row else (0, GENESIS_HASH)

    # --- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(f"journal {self.path} has schema version {version}, newer than this rfqbot "
                               f"({SCHEMA_VERSION}); upgrade rfqbot or point journal.path elsewhere")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._begin()
            try:
                _MIGRATIONS[target](self._conn)
                self._conn.execute(f"PRAGMA user_version = {target}")
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:   # a failed COMMIT (disk full) may have ended it already
                    self._conn.execute("ROLLBACK")
                raise
        if version == 0:
            log.info("journal.created", path=str(self.path), version=SCHEMA_VERSION)
        elif version < SCHEMA_VERSION:   # one line per upgrade, not one per schema step
            log.info("journal.migrated", path=str(self.path), from_version=version, version=SCHEMA_VERSION)

    def _refuse_if_damaged(self) -> None:
        problems = self.quick_check()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise JournalDamaged(
                f"journal {self.path} is damaged (SQLite quick_check: {problems[0][:200]}{more}); rfqbot will not "
                f"trade on it. See what is affected with `rfqbot journal verify --journal {self.path}`; then restore "
                f"it from a backup, or recover what SQLite can (`sqlite3 {self.path} .recover | sqlite3 recovered.db`) "
                "and point journal.path at the result", problems)

    def quick_check(self) -> list[str]:
        """SQLite's ``PRAGMA quick_check``: what it found wrong in the file, [] when sound.

        About 0.15 s for a 170 MB journal in the page cache. The daemon runs it before trading:
        a damaged page can sit unread for days while the engine restores state and appends
        around it, and accept-at-most-once rests on reading that state right. Damage that stops
        the check itself is reported as a problem; any other SQLite error (a full disk, an I/O
        error) is raised, since it says nothing about the file."""
        with self._lock:
            try:
                rows = self._conn.execute("PRAGMA quick_check").fetchall()
            except sqlite3.DatabaseError as exc:
                code = getattr(exc, "sqlite_errorcode", None)
                if code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                    return [f"SQLite could not read the file: {exc}"]
                raise
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # --- writing ----------------------------------------------------------------------------

    def append(self, kind: str, *, source: str, payload: Mapping[str, Any], rfq_id: str | None = None,
               quote_id: str | None = None, venue_ms: int | None = None) -> int:
        """Append one event (and its projection); returns its seq once committed (or, inside
        ``batch()``, once written to the open transaction)."""
        try:
            parsed: Any = plain_json(payload)
            text = canonical_json(parsed)
        except (NotPlain, RecursionError):
            text = canonical_json(payload)  # raises for what cannot be journaled, as before
            parsed = json.loads(text)
        with self._lock:
            own_txn = self._batch_depth == 0
            if own_txn:
                self._begin()
            elif not self._conn.in_transaction:
                # SQLite rolled the batch back on its own (disk full, I/O error): an insert now
                # would autocommit a row linked to rows that no longer exist.
                raise JournalError(f"journal {self.path}: the batch's transaction was rolled back after a "
                                   "write error; nothing of this batch is committed")
            try:
                seq = self._last_seq + 1
                local_ms = int(self.clock.now_ms())
                digest = row_hash(self._last_hash, seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, text)
                row = (seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, text, self._last_hash, digest)
                if not own_txn and source == _DEFERRED_SOURCE:
                    # Market data inside a batch: its events rows go in with one executemany
                    # before the commit (or before the next other row, keeping insert order),
                    # and its projection statements likewise (``_apply_projection``). Derived
                    # tables never read ``events``, so inserting later is the same.
                    self._pending.append(row)
                else:
                    self._flush_pending()
                    self._conn.execute(_INSERT_EVENT, row)
                self._apply_projection(EventRow(seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, parsed))
                if own_txn:
                    self._conn.execute("COMMIT")
                    self._commits_since_checkpoint += 1
            except BaseException:
                if own_txn:
                    self._rollback()
                raise
            self._last_seq, self._last_hash = seq, digest
            return seq

    def _apply_projection(self, row: EventRow) -> None:
        """Project ``row`` now; inside ``batch()`` a public row's statements wait in
        ``_pending_ops`` for ``_flush_pending`` (which runs before any other row is written, so
        every statement still runs in seq order)."""
        if self._batch_depth and row.source == _DEFERRED_SOURCE:
            ops = project_or_log(row)
            if ops:
                self._pending_ops.append((row, ops))
        elif not apply_projection(self._conn, row) and self._rehearsing:
            # Logged once; failing the rehearsal turns rehearsals off instead of logging it again
            # every few ms about rows that never exist.
            raise RuntimeError(f"the projection of a rehearsal's {row.kind} row failed (logged above)")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group appends into one transaction (one fsync), e.g. a burst of market data."""
        with self._lock:
            if self._batch_depth == 0:
                self._begin()
                self._batch_start = (self._last_seq, self._last_hash)
            self._batch_depth += 1
            try:
                yield
                if self._batch_depth == 1:
                    self._flush_pending()
                    self._conn.execute("COMMIT")  # disk full may only show here (WAL frames written)
                    if self._batch_start is not None and self._last_seq != self._batch_start[0]:
                        self._commits_since_checkpoint += 1   # an empty turn (a bare tick) wrote nothing
            except BaseException:
                self._batch_depth -= 1
                if self._batch_depth == 0:
                    assert self._batch_start is not None
                    self._abandon(self._batch_start)
                raise
            self._batch_depth -= 1

    @contextmanager
    def rehearsal(self) -> Iterator[None]:
        """Appends that are written and then rolled back, always: the engine's idle rehearsal of
        its decision path (``rfqbot.engine.rehearsal``) runs the very statements a decision
        runs, so SQLite's code and pages stay in the CPU caches, and leaves nothing behind: no
        row, no change to the chain head, no commit. Refused inside ``batch()``. If the
        rollback cannot be made, ``JournalError`` (the engine then stops deciding, as for any
        failed write)."""
        with self._lock:
            if self._batch_depth:
                raise RuntimeError("a rehearsal cannot run inside batch()")   # a bug, not the journal
            start = (self._last_seq, self._last_hash)
            self._begin()
            self._batch_depth += 1
            self._rehearsing = True
            failure: BaseException | None = None
            try:
                yield
                self._flush_pending()
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._rehearsing = False
                self._batch_depth -= 1
                self._abandon(start)
                if self._conn.in_transaction:   # the journal is unusable: this outranks the body's error
                    after = f" (after {type(failure).__name__}: {failure})" if failure is not None else ""
                    raise JournalError(f"journal {self.path}: a rehearsal's transaction could not be rolled "
                                       f"back{after}") from failure

    def _abandon(self, head: tuple[int, str]) -> None:
        """Drop the open transaction: buffered rows, the chain head back to ``head``, ROLLBACK.
        The head goes back first: a failing ROLLBACK must not leave it pointing at rows that
        were never committed."""
        self._pending.clear()
        self._pending_ops.clear()
        self._last_seq, self._last_hash = head
        self._rollback()

    def in_transaction(self) -> bool:
        """A transaction is open on the writer connection (between turns: something went wrong)."""
        with self._lock:
            return self._conn.in_transaction

    def _flush_pending(self) -> None:
        """Insert the batch's buffered events rows and apply their projections (caller holds
        the lock, inside the batch)."""
        if self._pending or self._pending_ops:
            rows, self._pending = self._pending, []
            deferred, self._pending_ops = self._pending_ops, []
            if not self._conn.in_transaction:
                raise JournalError(f"journal {self.path}: the batch's transaction was rolled back after a "
                                   "write error; nothing of this batch is committed")
            try:
                if rows:
                    insert_rows(self._conn, _INSERT_EVENT, rows)
                apply_deferred(self._conn, deferred)
            except sqlite3.Error:
                raise
            except Exception as exc:
                # These rows are already part of the chain head: going on without them would
                # commit a chain with a hole. The whole batch fails instead (the engine stops
                # deciding and says why); input that could cause this is rejected at the edge.
                raise JournalError(f"journal {self.path}: buffered rows could not be written "
                                   f"({type(exc).__name__}: {exc}); nothing of this batch is committed") from exc

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, treating another connection's write lock as transient.

        SQLite itself waits ``busy_timeout_ms``; if the lock is still held we retry for
        ``busy_retry_s`` more (each retry's wait capped by what is left), then give up with an
        error that names the lock and who likely holds it, not a bare "database is locked".
        """
        started = time.monotonic()
        deadline: float | None = None
        try:
            while True:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self._busy_retry_s
                        log.warning("journal.busy", path=str(self.path), waited_s=round(now - started, 3),
                                    retry_s=self._busy_retry_s, error=str(exc))
                    remaining = deadline - now
                    if remaining <= 0:
                        raise JournalError(
                            f"journal {self.path} stayed locked by another connection for {now - started:.1f} s "
                            f"(SQLite: {exc}): something else holds a write transaction on it - a maintenance "
                            "command (`rfqbot journal rebuild|prune|upgrade`), a second rfqbot on the same "
                            "journal.path, or a tool (sqlite3, sqlite-utils, datasette) writing to it; stop that, "
                            "then restart rfqbot (nothing committed is lost)") from exc
                    time.sleep(min(0.05, remaining))
                    wait_ms = max(1, min(int(remaining * 1000), self._busy_timeout_ms))
                    self._conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        finally:
            if deadline is not None:
                self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")

    def _rollback(self) -> None:
        """ROLLBACK if a transaction is still open: after SQLITE_FULL or an I/O error SQLite may
        already have rolled back, and a second ROLLBACK would hide the real error."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("journal.rollback_failed", path=str(self.path), error=str(exc))

    def rebuild_projections(self) -> int:
        """Drop and rebuild every derived table from ``events``; returns the number of events replayed."""
        with self._lock:
            with self.write_transaction() as conn:
                return replay_events(conn)

    @contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside BEGIN IMMEDIATE, committed on success (maintenance: prune,
        rebuild). Refused inside ``batch()``. The cached chain head is re-read afterwards."""
        with self._lock:
            if self._batch_depth:
                raise JournalError("a maintenance transaction cannot run inside batch()")
            self._begin()
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                row = self._conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
                self._last_seq, self._last_hash = (row[0], row[1]) if row else (0, GENESIS_HASH)

    # --- reading ----------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows as dicts (tests, diagnostics). Reads on the writer's connection."""
        with self._lock:
            self._flush_pending()
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def verify_chain(self) -> int | None:
        """The first seq whose hash (or link to the previous row) does not verify, or None."""
        with self._lock:
            self._flush_pending()
            return verify_rows(self._conn)

    def own_rfq_rows(self, where: str = "", params: tuple[Any, ...] = ()) -> dict[str, dict[str, Any]]:
        """Own RFQs' ``rfqs`` rows by id, money as ``Decimal``; ``where`` (SQL on that table, with
        ``params``) narrows them."""
        rows: dict[str, dict[str, Any]] = {}
        for row in self.query("SELECT * FROM rfqs WHERE own = 1" + (f" AND {where}" if where else ""), params):
            for money in ("buy_amount", "sell_amount", "price"):
                row[money] = Decimal(row[money]) if row[money] is not None else None
            rows[row["rfq_id"]] = row
        return rows

    def load_state(self, *, since_ms: int | None = None,
                   rfqs_where: tuple[str, tuple[Any, ...]] = ("", ())) -> JournalState:
        """Restart recovery: own RFQs' last state (those ``rfqs_where`` keeps; all by default),
        accepts whose outcome is unknown, and accepts since ``since_ms`` (venue time) that were
        not definitively refused (for risk counters)."""
        state = JournalState(last_seq=self._last_seq)
        state.rfqs = self.own_rfq_rows(*rfqs_where)
        state.unknown_accepts = self.query(
            "SELECT seq AS decision_seq, rfq_id, quote_id, price, at_ms, result_outcome FROM decisions "
            "WHERE action = 'accept' AND (result_outcome IS NULL OR result_outcome = 'unknown') ORDER BY seq")
        if since_ms is not None:
            for row in self.query("SELECT at_ms, amounts, rfq_id FROM decisions WHERE action = 'accept' AND "
                                  "at_ms >= ? AND (result_outcome IS NULL OR result_outcome != 'rejected') "
                                  "ORDER BY seq", (since_ms,)):
                amounts = json.loads(row["amounts"]) if row["amounts"] else {}
                state.recent_accepts.append({"at_ms": row["at_ms"], "rfq_id": row["rfq_id"],
                                             "amounts": {k: Decimal(v) for k, v in amounts.items()}})
        return state

    def checkpoint_when_idle(self, min_commits: int = IDLE_CHECKPOINT_COMMITS) -> bool:
        """Copy the WAL into the database file now, if ``min_commits`` commits happened since the
        last time; True when it ran. The engine calls this when its queue is empty.

        Why: SQLite's own checkpoint runs inside the COMMIT that pushes the WAL past 1,000 pages,
        on the engine thread, between a decision's commit and its accept: measured at 5-15 ms,
        about one decision in a hundred (the p99 of tick-to-accept). Small checkpoints while
        idle keep the WAL under that mark (SQLite's stays as the backstop under a flood). A
        failed checkpoint loses nothing (the WAL keeps the data); it is logged and retried.
        """
        with self._lock:
            if self._batch_depth or self._commits_since_checkpoint < min_commits:
                return False
            self._commits_since_checkpoint = 0
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                log.warning("journal.checkpoint_failed", error=str(exc))
                return False
            return True

    def warm_sync(self) -> bool:
        """Flush the WAL file to the disk once more, between commits; True when it did.

        Why: on an idle machine the first fsync after a quiet spell is several times slower
        than one right after another (measured here: a commit's fsync 0.5-0.7 ms p50, 1.2-1.6
        ms p90 after 150 ms idle; 0.39 / 0.5 ms with this every 5 ms), and a decision waits for
        its commit's fsync before its accept may leave. The engine's idle rehearsals call this
        (``engine.rehearse_sync``) to keep that path warm. A FULL commit left the WAL synced,
        so nothing new is written: the disk only confirms its cache is flushed. With
        ``synchronous=NORMAL`` commits do not fsync: nothing to keep warm, nothing done.
        ``OSError`` from the flush propagates (the caller turns the warm-up off)."""
        if self.synchronous != "full":
            return False
        with self._lock:
            if self._wal_fd is None:
                self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
            os.fdatasync(self._wal_fd)
        return True

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                log.warning("journal.checkpoint_failed", error=str(exc))
            self._conn.close()
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
            self._writer_lock.release()


def open_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection for the CLI and audits; never blocks or alters the writer.

    The journal is in WAL mode, so even a reader must open (or create) ``-wal`` and ``-shm``
    beside it. Where it cannot (a read-only folder, another user's files), SQLite says "unable
    to open database file" at the first read, which reads as a broken journal: that case is
    detected here and raised as ``JournalUnreachable``, naming the real cause and what to do.
    Any other failure is left to the caller's first query, which reports it in its own words.
    Never ``immutable=1`` instead: it would ignore an un-checkpointed WAL and show stale data.
    """
    target = Path(path).resolve()
    conn = sqlite3.connect(target.as_uri() + "?mode=ro", uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 5000")
    try:
        _first_read(conn)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and _wal_files_unreachable(target, exc):
            conn.close()
            raise JournalUnreachable(_wal_files_message(target, exc)) from exc
    return conn


def _first_read(conn: sqlite3.Connection) -> None:
    """Read the schema once: the point where SQLite opens the -wal and -shm files."""
    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()


# SQLite's primary result codes when it cannot open or create a file beside the journal.
_SQLITE_CANTOPEN = 14
_SQLITE_READONLY = 8
_WAL_OPEN_ERRORS = ("unable to open database file", "attempt to write a readonly database")


def _wal_files_unreachable(target: Path, exc: sqlite3.OperationalError) -> bool:
    """True when ``exc`` is SQLite failing to open the WAL side files of a sound WAL journal."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        if code & 0xFF not in (_SQLITE_CANTOPEN, _SQLITE_READONLY):
            return False
    elif str(exc) not in _WAL_OPEN_ERRORS:
        return False
    return _is_wal_database(target)


def _is_wal_database(target: Path) -> bool:
    """The file starts with SQLite's header and its read/write versions say WAL (2)."""
    try:
        with open(target, "rb") as f:
            header = f.read(20)
    except OSError:
        return False
    return header[:16] == b"SQLite format 3\x00" and len(header) == 20 and 2 in (header[18], header[19])


def _wal_files_message(target: Path, exc: sqlite3.OperationalError) -> str:
    folder = target.parent
    if not os.access(folder, os.W_OK):
        why = (f"its folder {folder} is not writable for this user (a read-only mount, an archived copy, "
               "or another user's folder)")
    else:
        why = f"{target.name}-wal or {target.name}-shm there belongs to another user and cannot be opened"
    return (f"cannot read journal {target} (SQLite: {exc}): the file is probably fine, but it is in WAL mode, so "
            f"a reader must open or create {target.name}-wal and {target.name}-shm beside it, and {why}. "
            f"Copy the journal together with its -wal file, if there is one, to a writable folder (e.g. "
            f"cp {target}* /tmp/, then --journal /tmp/{target.name}), or, as a user who can write there (the "
            f"journal's owner), make a consistent copy: sqlite3 {target} \".backup /tmp/journal-copy.db\"")
