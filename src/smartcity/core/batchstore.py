"""Batch stores: how a high-rate feed's columnar batch reaches the store, one implementation per backend.

    store = batch_store(db)                       # SQLiteBatchStore or PostgresBatchStore
    with db.engine.begin() as conn:
        store.prepare(conn)                       # the backend's tuning for an intake transaction
        stored = store.insert_new(conn, "safety_positions", columns, ("device_id", "fix_time"))
        store.update_rows(conn, "safety_device_state", "device_id", state_rows)

`insert_new` writes the rows whose key is not in the table yet and returns a boolean mask over the batch:
True for a row it stored, False for a duplicate (already in the table, or an earlier row of the same batch
with the same key: the first copy wins). Columns are numpy arrays or lists, one value per row; a float NaN
is stored as NULL (the batch's "absent"). Nothing is committed here: the caller's transaction holds it all.

The storage tuning lives here and not in the modules: SQLite's intake PRAGMAs and the background WAL
checkpoint (`WalCheckpointer`); PostgreSQL's COPY and the daily partitions of tables partitioned by a time
in epoch milliseconds (`ensure_daily_partitions`, `drop_daily_partitions_before`).
"""

from __future__ import annotations

import collections
import logging
import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import numpy as np
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

SQLITE_CACHE_KIB = 128 * 1024  # an intake writer's SQLite page cache
SQLITE_CHECKPOINT_PAGES = 4096  # an intake writer's WAL size (pages) that triggers a checkpoint by the writer
WAL_RESET_FRAMES = 16_384  # with background checkpoints: the WAL size (frames, ~64 MB) at which it is restarted

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _name(name: str) -> str:
    """A table or column name put into SQL text: plain identifiers only (they come from code, never input)."""
    if not _NAME.match(name):
        raise ValueError(f"not a plain SQL name: {name!r}")
    return name


def python_columns(columns: Mapping[str, Any]) -> dict[str, list]:
    """Each column as a list of Python values a driver binds: numpy scalars become int/float/bool/str, and a
    float NaN becomes None."""
    out = {}
    for name, values in columns.items():
        if isinstance(values, np.ndarray):
            if values.dtype.kind == "f":
                absent = np.isnan(values)
                if absent.any():
                    boxed = values.astype(object)
                    boxed[absent] = None
                    out[name] = boxed.tolist()
                    continue
            out[name] = values.tolist()
        else:
            out[name] = list(values)
    return out


def _rows(columns: Mapping[str, Any]) -> tuple[list[str], list[tuple], int]:
    values = python_columns(columns)
    names = [_name(n) for n in values]
    lengths = {len(v) for v in values.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: { {n: len(v) for n, v in values.items()} }")
    n = lengths.pop() if lengths else 0
    return names, list(zip(*values.values(), strict=True)) if names else [], n


Rows = Sequence[Mapping[str, Any]] | Mapping[str, Any]  # dicts, one a row; or columns {name: values}


def _count(rows: Rows) -> int:
    if isinstance(rows, Mapping):
        return len(next(iter(rows.values()))) if rows else 0
    return len(rows)


class BatchStore(Protocol):
    """What a feed's pipeline needs of the store; one implementation per backend."""

    def prepare(self, conn) -> None:
        """Tune the connection of an intake transaction (called at its start)."""

    def insert_new(
        self,
        conn,
        table: str,
        columns: Mapping[str, Any],
        key_columns: Sequence[str],
        *,
        maybe_present: bool | np.ndarray = True,
    ) -> np.ndarray:
        """Store the rows whose key is new; the stored mask (see the module's docstring). `maybe_present=False`
        promises that no row's key is in the table or repeated in the batch (a backend may then write faster;
        a broken promise is an integrity error, never a silent loss); a boolean array says it row by row (False
        for a fix newer than its device's last stored one, say)."""

    def update_rows(self, conn, table: str, key: str | Sequence[str], rows: Rows) -> int:
        """UPDATE the rows identified by `key` with the other values of each row (a list of dicts, or columns
        {name: values}); returns how many matched."""


def _driver(conn):
    """The DB-API connection under a SQLAlchemy Connection (or the DB-API connection itself)."""
    raw = getattr(conn, "connection", None)
    if raw is None:
        return conn
    return getattr(raw, "driver_connection", None) or getattr(raw, "dbapi_connection", raw)


@contextmanager
def _errors_as_sqlalchemy(conn, sql: str):
    """The driver's errors as SQLAlchemy's (IntegrityError, …), as statements run through SQLAlchemy raise them,
    whichever the backend."""
    dbapi = getattr(getattr(conn, "dialect", None), "dbapi", None)
    if dbapi is None:
        yield
        return
    try:
        yield
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dbapi.Error) from exc


def _update_sql(table: str, key: Sequence[str], columns: Sequence[str], mark: str) -> str:
    sets = ", ".join(f"{_name(c)} = {mark}" for c in columns)
    where = " AND ".join(f"{_name(k)} = {mark}" for k in key)
    return f"UPDATE {_name(table)} SET {sets} WHERE {where}"


def _update_params(key: Sequence[str], rows) -> tuple[list[str], list[tuple]]:
    """The SET columns and the parameters of each row: from a list of dicts, or from columns {name: values}
    (DeviceTable.state_columns)."""
    if isinstance(rows, Mapping):
        columns = [c for c in rows if c not in key]
        values = python_columns({c: rows[c] for c in [*columns, *key]})
        return columns, list(zip(*values.values(), strict=True))
    columns = [c for c in rows[0] if c not in key]
    return columns, [tuple(row[c] for c in columns) + tuple(row[k] for k in key) for row in rows]


# Tables whose new rows a SQLite store with staging appends to a staging table first (see SQLiteBatchStore):
# table → (staging table, key columns). Declared by the module owning the tables (`stage`).
STAGED: dict[str, tuple[str, tuple[str, ...]]] = {}


def stage(table: str, staging: str, key: Sequence[str]) -> None:
    """Declare that `table`'s new rows may be staged in `staging` (same columns, a unique index on the columns of
    `key`: best with the time first, so that appends write the end of it; `core.staging` sorts by `key` itself)."""
    STAGED[_name(table)] = (_name(staging), tuple(_name(k) for k in key))


class SQLiteBatchStore:
    """executemany in the caller's transaction. A batch is first written as it is; only when SQLite reports
    fewer rows changed than given (a replay, a repeated key) is it written again, row by row from a savepoint,
    to learn which rows were new. So a batch of new rows costs one executemany and no read.

    With `staging`, a staged table's rows (`stage`) are appended to its staging table instead: rows in arrival
    order whose only index (the key, time first) grows at its end, so a batch writes a few pages however deep the
    history is, where the main table, clustered by its key, would take one page write per row of a random
    device. Rows that may already be stored (`maybe_present`) are looked up in the main table first. `core.staging` (its
    `StagingMover` beside the writer, `flush_staged` at the end) moves staged rows into the main table in key
    order, so the rows of one device that arrived over many batches share one page write. Readers read both."""

    dialect = "sqlite"

    def __init__(self, background_checkpoints: bool = False, staging: bool = False):
        self.background_checkpoints = background_checkpoints
        self.staging = staging
        self._sql: dict[tuple, str] = {}

    def prepare(self, conn) -> None:
        raw = _driver(conn)
        # SQLite's page cache is per connection (2 MB by default): an intake writer touches pages all over the
        # tables' keys, so it gets a larger one. Checkpoints (copying the WAL back, with an fsync) are made less
        # often, so that a page written by many batches is copied once — or by a thread of their own.
        raw.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        # An insert into a table (not a staging table: `_append`) runs in a savepoint (`_insert`): the pages it
        # changes are first copied to a sub-journal, a temporary file by default. In memory: 25 % less CPU per
        # row for 128-row batches into a table with a random-order key index (12.6 against 16.9 µs; session 24,
        # docs/safety-intake.md).
        raw.execute("PRAGMA temp_store = MEMORY")
        if not self.background_checkpoints:
            raw.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}")

    def insert_new(
        self,
        conn,
        table: str,
        columns: Mapping[str, Any],
        key_columns: Sequence[str],
        *,
        maybe_present: bool | np.ndarray = True,
    ) -> np.ndarray:
        names, rows, n = _rows(columns)
        stored = np.zeros(n, dtype=bool)
        if not n:
            return stored
        raw = _driver(conn)
        if not raw.in_transaction:
            # The savepoints below must not be the transaction itself. IMMEDIATE: the write lock is waited for
            # (busy timeout) before the look-ups; a deferred transaction that has read cannot wait for it when
            # another connection (the staging mover) commits meanwhile, and fails with "database is locked".
            raw.execute("BEGIN IMMEDIATE")
        target, check = table, maybe_present
        if self.staging and table in STAGED:
            target, staged_key = STAGED[table]
            present = self._present(conn, table, names, rows, key_columns, maybe_present)
            keep = np.flatnonzero(~present)
            # The staging table's key still catches a row staged before, or twice in this batch.
            stored[keep] = self._append(conn, target, staged_key, names, [rows[i] for i in keep.tolist()])
            return stored
        elif not isinstance(maybe_present, bool):
            check = bool(np.any(maybe_present))
        stored[:] = self._insert(conn, target, names, rows, bool(check))
        return stored

    def _present(self, conn, table, names, rows, key_columns, maybe_present) -> np.ndarray:
        """Which rows' keys are in `table` already (looked up only for the rows that may be)."""
        n = len(rows)
        present = np.zeros(n, dtype=bool)
        candidates = np.arange(n) if maybe_present is True else np.flatnonzero(np.asarray(maybe_present, dtype=bool))
        if maybe_present is False or not len(candidates):
            return present
        at = [names.index(k) for k in key_columns]
        where = " AND ".join(f"{_name(k)} = ?" for k in key_columns)
        # One point look-up per candidate, through the key: a row-value IN (VALUES …) list is not planned as one.
        sql = f"SELECT 1 FROM {_name(table)} WHERE {where}"
        cur = _driver(conn).cursor()
        with _errors_as_sqlalchemy(conn, sql):
            for i in candidates.tolist():
                row = rows[i]
                present[i] = cur.execute(sql, [row[j] for j in at]).fetchone() is not None
        return present

    def _insert(self, conn, table: str, names: list[str], rows: list[tuple], maybe_present: bool) -> np.ndarray:
        stored = np.zeros(len(rows), dtype=bool)
        if not rows:
            return stored
        raw = _driver(conn)
        sql = self._sql.get((table, tuple(names), maybe_present))
        if sql is None:
            sql = self._sql[(table, tuple(names), maybe_present)] = (
                f"INSERT INTO {_name(table)} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                # uniqueness only: a NOT NULL or foreign key violation still fails
                + (" ON CONFLICT DO NOTHING" if maybe_present else "")
            )
        raw.execute("SAVEPOINT batch_insert")
        try:
            with _errors_as_sqlalchemy(conn, sql):
                before = raw.total_changes
                raw.executemany(sql, rows)
                if raw.total_changes - before == len(rows):
                    stored[:] = True
                else:
                    raw.execute("ROLLBACK TO batch_insert")
                    cur = raw.cursor()
                    for i, row in enumerate(rows):
                        cur.execute(sql, row)
                        stored[i] = cur.rowcount == 1
        except BaseException:
            raw.execute("ROLLBACK TO batch_insert")  # the caller's transaction is as it was before the call
            raise
        finally:
            raw.execute("RELEASE batch_insert")
        return stored

    def _append(self, conn, staging: str, key: Sequence[str], names: list[str], rows: list[tuple]) -> np.ndarray:
        """Append rows to a staging table (rowid order is arrival order): `_insert` without its savepoint. A
        savepoint copies every page the insert changes to a sub-journal first (measured: 12.6 against 10.8 µs of
        CPU per row in 128-row batches, session 24). The staging table needs none: what this call added is the
        rows past the largest rowid before it, so a failure deletes them (the caller's transaction as it was)
        and a short count reads their keys back to say which rows went in."""
        stored = np.zeros(len(rows), dtype=bool)
        if not rows:
            return stored
        raw = _driver(conn)
        sql = self._sql.get((staging, tuple(names), True))
        if sql is None:
            sql = self._sql[(staging, tuple(names), True)] = (
                f"INSERT INTO {staging} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
                "ON CONFLICT DO NOTHING"
            )
        last = raw.execute(f"SELECT max(rowid) FROM {staging}").fetchone()[0] or 0
        before = raw.total_changes
        try:
            with _errors_as_sqlalchemy(conn, sql):
                raw.executemany(sql, rows)
        except BaseException:
            raw.execute(f"DELETE FROM {staging} WHERE rowid > ?", (last,))
            raise
        if raw.total_changes - before == len(rows):
            stored[:] = True
            return stored
        at = [names.index(k) for k in key]
        added = collections.Counter(
            raw.execute(f"SELECT {', '.join(key)} FROM {staging} WHERE rowid > ?", (last,)).fetchall()
        )
        for i, row in enumerate(rows):  # a key given twice went in once: its first row
            k = tuple(row[j] for j in at)
            if added[k]:
                added[k] -= 1
                stored[i] = True
        return stored

    def update_rows(self, conn, table: str, key: str | Sequence[str], rows: Rows) -> int:
        if not _count(rows):
            return 0
        key = (key,) if isinstance(key, str) else tuple(key)
        columns, params = _update_params(key, rows)
        raw = _driver(conn)
        sql = _update_sql(table, key, columns, "?")
        before = raw.total_changes
        with _errors_as_sqlalchemy(conn, sql):
            raw.executemany(sql, params)
        return raw.total_changes - before


class PostgresBatchStore:
    """COPY. Rows that may be in the table already go through a temporary table (COPY in, then INSERT … SELECT
    … ON CONFLICT DO NOTHING, which says which were new); a batch promised to be new is copied straight in."""

    dialect = "postgresql"

    def prepare(self, conn) -> None:
        """Nothing to tune per transaction: PostgreSQL's settings are the server's."""

    def insert_new(
        self,
        conn,
        table: str,
        columns: Mapping[str, Any],
        key_columns: Sequence[str],
        *,
        maybe_present: bool | np.ndarray = True,
    ) -> np.ndarray:
        names, rows, n = _rows(columns)
        stored = np.zeros(n, dtype=bool)
        if not n:
            return stored
        table = _name(table)
        cur = _driver(conn).cursor()
        if not np.any(maybe_present):
            sql = f"COPY {table} ({', '.join(names)}) FROM STDIN"
            with _errors_as_sqlalchemy(conn, sql), cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
            stored[:] = True
            return stored
        scratch = f"_batch_{table}"
        # One scratch table per connection and table; emptied at every commit, and its COPY undone by a rollback.
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {scratch} ON COMMIT DELETE ROWS AS "
            f"SELECT 0 AS batch_row, * FROM {table} WITH NO DATA"
        )
        cur.execute(f"TRUNCATE {scratch}")  # what an earlier statement of this transaction left
        sql = f"COPY {scratch} (batch_row, {', '.join(names)}) FROM STDIN"
        with _errors_as_sqlalchemy(conn, sql), cur.copy(sql) as copy:
            for i, row in enumerate(rows):
                copy.write_row((i, *row))
        key = ", ".join(_name(k) for k in key_columns)
        cols = ", ".join(names)
        sql = (
            f"WITH new AS (INSERT INTO {table} ({cols}) SELECT {cols} FROM {scratch} ORDER BY batch_row "
            f"ON CONFLICT DO NOTHING RETURNING {key}) "
            f"SELECT min(s.batch_row) FROM {scratch} s JOIN new USING ({key}) GROUP BY {key}"
        )
        with _errors_as_sqlalchemy(conn, sql):
            cur.execute(sql)
        first = [r[0] for r in cur.fetchall()]
        stored[np.asarray(first, dtype=np.int64)] = True
        return stored

    def update_rows(self, conn, table: str, key: str | Sequence[str], rows: Rows) -> int:
        if not _count(rows):
            return 0
        key = (key,) if isinstance(key, str) else tuple(key)
        columns, params = _update_params(key, rows)
        cur = _driver(conn).cursor()
        sql = _update_sql(table, key, columns, "%s")
        with _errors_as_sqlalchemy(conn, sql):
            cur.executemany(sql, params)  # psycopg pipelines it: one round trip
        return cur.rowcount

    # --- daily partitions of a table partitioned by RANGE of an epoch-milliseconds column -------------------

    @staticmethod
    def partition_name(table: str, day: date) -> str:
        return f"{_name(table)}_{day:%Y%m%d}"

    def partitions(self, conn, table: str) -> dict[str, date | None]:
        """The table's partitions: name → its day (None: the default or one not named by day)."""
        cur = _driver(conn).cursor()
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            (table,),
        )
        out: dict[str, date | None] = {}
        for (name,) in cur.fetchall():
            suffix = name[len(table) + 1 :]
            try:
                out[name] = datetime.strptime(suffix, "%Y%m%d").date() if len(suffix) == 8 else None
            except ValueError:
                out[name] = None
        return out

    def ensure_daily_partitions(self, conn, table: str, first: date, last: date, column: str = "fix_time") -> list[str]:
        """Make the missing daily partitions from `first` to `last` (inclusive, UTC days); returns their names.
        A day whose rows already sit in the default partition is left there (attaching it would fail)."""
        have = self.partitions(conn, table)
        cur = _driver(conn).cursor()
        made = []
        day = first
        while day <= last:
            name = self.partition_name(table, day)
            lo, hi = day_ms(day), day_ms(day + timedelta(days=1))
            if name not in have:
                default = f"{table}_default"
                if default in have:
                    in_day = f"{_name(column)} >= %s AND {_name(column)} < %s"
                    cur.execute(f"SELECT 1 FROM {default} WHERE {in_day} LIMIT 1", (lo, hi))
                    if cur.fetchone() is not None:
                        log.warning("%s: rows of %s are in the default partition; no partition made", table, day)
                        day += timedelta(days=1)
                        continue
                cur.execute(f"CREATE TABLE {name} PARTITION OF {_name(table)} FOR VALUES FROM ({lo}) TO ({hi})")
                made.append(name)
            day += timedelta(days=1)
        return made

    def drop_daily_partitions_before(self, conn, table: str, day: date) -> dict[str, int]:
        """Drop the daily partitions of days before `day`; returns {partition: rows it held}."""
        cur = _driver(conn).cursor()
        dropped = {}
        for name, its_day in sorted(self.partitions(conn, table).items()):
            if its_day is not None and its_day < day:
                cur.execute(f"SELECT count(*) FROM {name}")
                dropped[name] = cur.fetchone()[0]
                cur.execute(f"DROP TABLE {name}")
        return dropped


def day_ms(day: date) -> int:
    """The start of a UTC day in epoch milliseconds."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def batch_store(
    db, background_checkpoints: bool = False, staging: bool = False
) -> SQLiteBatchStore | PostgresBatchStore:
    """The batch store for `db`'s backend (`staging`: SQLite stages the declared tables' rows, see `stage`)."""
    if db.is_postgres:
        return PostgresBatchStore()
    return SQLiteBatchStore(background_checkpoints, staging)


class WalCheckpointer:
    """SQLite: copies the WAL back into the database file every `every` seconds from a thread of its own
    (PASSIVE: never waits for a reader or the writer), so that a checkpoint's fsync no longer lengthens the
    writer's commits.

    The WAL starts again from its beginning only when a write begins with every frame copied back, which a
    writer committing all the time never sees from a checkpoint made beside it: the WAL would grow without
    end (measured: 400 MB in ten seconds of load), and every page look-up in it with it. So once the WAL holds
    `reset_frames`, `restart_due` is set and the writer calls `restart(engine)` between two batches."""

    def __init__(self, path: str, every: float = 0.25, reset_frames: int = WAL_RESET_FRAMES):
        self.path, self.every, self.reset_frames = path, every, reset_frames
        self.restart_due = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WalCheckpointer:
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stopping.wait(self.every):
                try:
                    _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # busy or locked: the next round does it
                    log.debug("checkpoint skipped: %s", exc)
                    continue
                if frames >= self.reset_frames:
                    self.restart_due = True
        finally:
            conn.close()

    def restart(self, engine) -> None:
        """From the writer, between batches: copy back what the thread has not yet, so the next write starts
        the WAL again from its beginning."""
        self.restart_due = False
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as exc:  # noqa: BLE001 - busy: the thread asks again
            log.debug("WAL restart skipped: %s", exc)
