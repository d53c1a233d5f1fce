"""Staging on SQLite (the LSM step of `core.batchstore`): moving a staged table's rows into the table itself.

A `SQLiteBatchStore(staging=True)` appends the new rows of a table declared with `batchstore.stage` to its
staging table (arrival order; its only index the key with the time first, so that an append writes the end of
it, not a page per row all over). Here they go on into the table, clustered by its key: `StagingMover` (a
thread of the writer) runs rounds — a round sorts the keys of the rows staged when it began once
(`sort_staged`), copies the rows in that order, a chunk of whole devices per transaction, then deletes them
from the staging table in arrival order — and `flush_staged` moves everything at once (at a writer's stop).
Readers read both tables and skip a staged row the table has already (`safety.models.all_positions`), so a row
is read once before, during and after a round, and a crash anywhere in it loses or repeats nothing.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError

from smartcity.core.batchstore import SQLITE_CACHE_KIB, STAGED, _driver, _errors_as_sqlalchemy

log = logging.getLogger(__name__)


def sort_staged(conn, table: str, up_to: int | None = None) -> str:
    """Sort the keys of the rows of `table` staged up to rowid `up_to` (all when None) once, into a temporary
    table of this connection clustered by the key, each with its staged row's rowid; returns its name. The
    staging table's own key is time first (the intake appends at its end), so it cannot give the rows in the
    table's key order: a round sorts them here once, and its chunks then read this table by key and the staged
    rows by rowid. A temporary table is the connection's own: no write lock, and gone with the connection."""
    staging, key = STAGED[table]
    raw = _driver(conn)
    scratch = f"{staging}_round"
    names = ", ".join(key)
    upto, params = ("rowid <= ?", (up_to,)) if up_to is not None else ("1", ())
    raw.execute(f"DROP TABLE IF EXISTS temp.{scratch}")
    raw.execute(f"CREATE TEMP TABLE {scratch} ({names}, staged_rowid, PRIMARY KEY ({names})) WITHOUT ROWID")
    # OR IGNORE: a key staged twice (the staging table's key forbids it) would be copied once anyway.
    raw.execute(
        f"INSERT OR IGNORE INTO temp.{scratch} SELECT {names}, rowid FROM {staging} WHERE {upto} ORDER BY {names}",
        params,
    )
    return scratch


def drop_sorted(conn, scratch: str) -> None:
    _driver(conn).execute(f"DROP TABLE IF EXISTS temp.{scratch}")


def _chunk(raw, scratch: str, key: tuple[str, ...], max_rows: int, cursor: tuple[str, Any] | None):
    """The next about `max_rows` keys of the sorted round from `cursor` on, whole devices: (a WHERE clause on
    the sorted table `k`, its parameters, the next cursor or None when this chunk ends the round)."""
    lead, order = key[0], ", ".join(key)
    where, params = "1", []
    if cursor is not None:
        where = f"k.{lead} >= ?" if cursor[0] == "ge" else f"k.{lead} > ?"
        params.append(cursor[1])
    bound = raw.execute(
        f"SELECT k.{lead} FROM temp.{scratch} k WHERE {where} ORDER BY {order} LIMIT 1 OFFSET ?", (*params, max_rows)
    ).fetchone()
    following = None
    if bound is not None:
        first = raw.execute(f"SELECT min(k.{lead}) FROM temp.{scratch} k WHERE {where}", params).fetchone()[0]
        alone = first == bound[0]  # one device has more than `max_rows`: it goes whole
        where += f" AND k.{lead} <= ?" if alone else f" AND k.{lead} < ?"
        params.append(bound[0])
        following = ("gt", bound[0]) if alone else ("ge", bound[0])
    return where, params, following


def copy_staged(conn, table: str, scratch: str, max_rows: int, cursor: tuple[str, Any] | None) -> tuple:
    """Copy the next about `max_rows` rows of a sorted round (`sort_staged`; whole devices, from `cursor` on)
    into `table` in key order, leaving them staged: readers skip a staged row whose key the table has, and the
    round deletes its rows at its end (`purge_staged`), in arrival order, so a chunk dirties only the
    table's pages, not pages of the staging table all over. Returns (rows copied, the next cursor or None
    when the round's rows are all copied). Call it in a transaction of its own."""
    staging, key = STAGED[table]
    raw = _driver(conn)
    where, params, following = _chunk(raw, scratch, key, max_rows, cursor)
    before = raw.total_changes
    sql = _copy_sql(raw, table, staging, scratch, key, where)
    with _errors_as_sqlalchemy(conn, sql):
        raw.execute(sql, params)
    return raw.total_changes - before, following


def _copy_sql(raw, table: str, staging: str, scratch: str, key: tuple[str, ...], where: str) -> str:
    cols = [r[1] for r in raw.execute(f"PRAGMA table_info({table})").fetchall()]
    order = ", ".join(f"k.{k}" for k in key)
    # CROSS JOIN: SQLite keeps the written order, the sorted keys outside (read down their key), each staged
    # row fetched by its rowid.
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(f's.{c}' for c in cols)} "
        f"FROM temp.{scratch} k CROSS JOIN {staging} s ON s.rowid = k.staged_rowid WHERE {where} ORDER BY {order} "
        "ON CONFLICT DO NOTHING"
    )


def move_staged(conn, table: str, max_rows: int = 20_000, up_to: int | None = None) -> int:
    """Move up to about `max_rows` staged rows of `table` (those of the lowest keys, whole devices at a time)
    into it, in key order; returns how many left the staging table (0: nothing was left to move). `up_to`:
    only rows staged up to that rowid. Call it in a transaction of its own (it sorts what is staged: to move
    everything, `flush_staged` sorts once)."""
    scratch = sort_staged(conn, table, up_to)
    try:
        return _move_chunk(conn, table, scratch, max_rows, None)[0]
    finally:
        drop_sorted(conn, scratch)


def _move_chunk(conn, table: str, scratch: str, max_rows: int, cursor) -> tuple[int, Any]:
    """Copy a chunk of a sorted round into `table` and delete its rows from the staging table at once."""
    staging, key = STAGED[table]
    raw = _driver(conn)
    where, params, following = _chunk(raw, scratch, key, max_rows, cursor)
    sql = _copy_sql(raw, table, staging, scratch, key, where)
    with _errors_as_sqlalchemy(conn, sql):
        raw.execute(sql, params)
        gone = f"DELETE FROM {staging} WHERE rowid IN (SELECT k.staged_rowid FROM temp.{scratch} k WHERE {where})"
        return raw.execute(gone, params).rowcount, following


def purge_staged(conn, table: str, up_to: int, max_rows: int = 50_000) -> int:
    """Delete up to `max_rows` of the oldest staged rows up to rowid `up_to` (rows a round has copied into
    `table`); returns how many. Call it in a transaction of its own."""
    staging = STAGED[table][0]
    raw = _driver(conn)
    low = raw.execute(f"SELECT min(rowid) FROM {staging}").fetchone()[0]
    if low is None or low > up_to:
        return 0
    sql = f"DELETE FROM {staging} WHERE rowid >= ? AND rowid <= ?"
    with _errors_as_sqlalchemy(conn, sql):
        return raw.execute(sql, (low, min(up_to, low + max_rows - 1))).rowcount


def flush_staged(engine, table: str, max_rows: int = 20_000) -> int:
    """Move every staged row of `table`, a transaction per `max_rows` (sorted once); returns how many moved."""
    moved = 0
    with engine.connect() as conn:
        while True:
            with conn.begin():
                scratch = sort_staged(conn, table)
            try:
                cursor, n_round = None, 0
                while True:
                    with conn.begin():
                        n, cursor = _move_chunk(conn, table, scratch, max_rows, cursor)
                    n_round += n
                    if cursor is None:
                        break
            finally:
                drop_sorted(conn, scratch)
                conn.commit()
            moved += n_round
            if n_round == 0:  # rows staged while this round ran go in the next one
                return moved


def span_sql(staging: str) -> str:
    """The staged rowid range. Each bound in its own subquery: SQLite answers a lone min() or max() from the
    end of the rowid b-tree, but scans the whole table for both in one expression (measured: 70 ms a look at
    a million staged rows, every half second, in the writer process)."""
    return f"SELECT (SELECT max(rowid) FROM {staging}) - (SELECT min(rowid) FROM {staging}) + 1"


class StagingMover:
    """SQLite: moves a staged table's rows into it (`SQLiteBatchStore.move_staged`) from a thread and connection
    of its own.

    A round starts when the staging table holds `threshold` rows (an int, or a callable read at each look: a
    few times the active devices, so that each device has a few fixes staged and they share one page write of
    the keyed table) or when its oldest row has waited `max_age` seconds (so a quiet city's fixes still move).
    A round moves everything staged, in chunks in key order, one transaction each, and after each chunk leaves
    the store's write lock free for at least as long as the chunk held it (never less than `min_pause`): the
    intake writer gets half the time or more while a round lasts. A chunk's rows adapt so that it holds the
    lock about `chunk_ms` (starting from `chunk_rows`): a large backlog, or a busy machine, makes more chunks,
    not longer ones. The writer in the same process takes `lock` around its own transactions, so it waits for
    at most the chunk in hand and is woken as soon as it ends (not by SQLite's busy handler, which sleeps up to
    100 ms between tries); while `urgent()` says an alarm waits, no chunk starts. A crash between or within
    chunks loses nothing: a chunk's copy and delete commit together.

    `backlog` is about how many rows are staged (read at each look, plus what the writer has staged since
    (`staged_more`), less what rounds have deleted): the intake refuses ordinary positions while it is over
    the limit it is given. `stats`: rounds, chunks, moved, longest_chunk_s, staged (at the last look)."""

    def __init__(
        self,
        path: str,
        table: str,
        *,
        threshold: int | Callable[[], int] = 50_000,
        max_age: float = 60.0,
        poll: float = 0.5,
        chunk_rows: int = 5_000,
        min_pause: float = 0.02,
        chunk_ms: float = 50.0,
        urgent: Callable[[], bool] | None = None,
    ):
        self.path, self.table = path, table
        self.threshold, self.max_age, self.poll = threshold, max_age, poll
        self.chunk_rows, self.min_pause = chunk_rows, min_pause
        self.purge_rows = chunk_rows * 10  # deleting in arrival order is cheaper per row than copying by key
        self.chunk_s = chunk_ms / 1000
        self.urgent = urgent
        self.lock = threading.Lock()  # held by a chunk's transaction; the writer in this process takes it too
        self.stats = {"rounds": 0, "chunks": 0, "moved": 0, "longest_chunk_s": 0.0, "longest_sort_s": 0.0, "staged": 0}
        self._backlog = 0
        self._staged_since_look = 0  # what the writer staged while a look was reading the table
        self._count_lock = threading.Lock()
        self._waiting_since: float | None = None  # when rows were first seen staged after the last round
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def moved(self) -> int:
        return self.stats["moved"]

    @property
    def backlog(self) -> int:
        """About how many rows are staged now."""
        return self._backlog

    def staged_more(self, n: int) -> None:
        """The writer staged `n` more rows (so the backlog is known between two looks). Call it once they are
        committed: a look between the insert and the commit would read the table without them and forget them."""
        if n:
            with self._count_lock:
                self._backlog += n
                self._staged_since_look += n

    def start(self) -> StagingMover:
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="staging-mover", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop after the chunk in hand; what is still staged waits for `flush_staged` or the next mover."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        # A chunk dirties a page of the keyed table per device and staged pages all over: with SQLite's default
        # 2 MB cache they spill into the WAL before the commit (measured: 4x longer chunks).
        conn.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        conn.execute("PRAGMA temp_store = MEMORY")  # a round's sorted keys (`sort_staged`)
        try:
            while not self._stopping.wait(self.poll):
                try:
                    due = self.due(conn)
                except sqlite3.Error as exc:
                    log.debug("staging look skipped: %s", exc)
                    continue
                if due:
                    self.round(conn)
        finally:
            conn.close()

    def staged(self, conn) -> int:
        """About how many rows are staged (an upper bound read from the rowid range: two index look-ups, where
        count(*) would read the whole table)."""
        span = conn.execute(span_sql(STAGED[self.table][0])).fetchone()[0]
        return int(span or 0)

    def due(self, conn) -> bool:
        # Rows the writer stages while the table is read may be missing from what the look reads: they are added
        # back, so the backlog is never under-counted (a row both read and added is over-counted until the next
        # look). Assigning the look alone once let a position through over SAFETY_STAGING_MAX_BEHIND.
        with self._count_lock:
            self._staged_since_look = 0
        staged = self.stats["staged"] = self.staged(conn)
        with self._count_lock:
            self._backlog = staged + self._staged_since_look
        if not staged:
            self._waiting_since = None
            return False
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        threshold = self.threshold() if callable(self.threshold) else self.threshold
        return staged >= max(1, threshold) or now - self._waiting_since >= self.max_age

    def round(self, conn) -> int:
        """Move everything staged now: copy it in key-ordered chunks, then delete it from the staging table in
        arrival order, a transaction per chunk; returns how many rows left the staging table."""
        self.stats["rounds"] += 1
        staging = STAGED[self.table][0]
        top = conn.execute(f"SELECT max(rowid) FROM {staging}").fetchone()[0]
        scratch = None
        if top is not None:
            # Sorted once for the round, holding no lock: a read of the staging table, a write of this
            # connection's temporary table.
            started = time.perf_counter()
            try:
                scratch = sort_staged(conn, self.table, top)
            except sqlite3.Error as exc:
                log.debug("staging sort skipped: %s", exc)
                return 0
            self.stats["longest_sort_s"] = max(self.stats["longest_sort_s"], time.perf_counter() - started)
        try:
            moved = self._move_round(conn, top, scratch)
        finally:
            if scratch is not None:
                with contextlib.suppress(sqlite3.Error):
                    drop_sorted(conn, scratch)
        self.stats["moved"] += moved
        self._waiting_since = None
        return moved

    def _move_round(self, conn, top: int | None, scratch: str | None) -> int:
        cursor: tuple | None = None
        copying, moved = top is not None, 0
        while top is not None and not self._stopping.is_set():
            while self.urgent is not None and self.urgent() and not self._stopping.is_set():
                self._stopping.wait(self.min_pause)  # an alarm is being written: it never waits for a chunk
            purging = not copying
            try:
                with self.lock:
                    conn.execute("BEGIN IMMEDIATE")
                    started = time.perf_counter()  # from holding the lock: what the writer may wait
                    if copying:
                        n, cursor = copy_staged(conn, self.table, scratch, self.chunk_rows, cursor)
                        copying = cursor is not None
                        done = False
                    else:
                        n = purge_staged(conn, self.table, top, self.purge_rows)
                        moved += n
                        done = n == 0
                    conn.execute("COMMIT")
                    held = time.perf_counter() - started
            except (sqlite3.Error, DBAPIError) as exc:  # busy: the next round does it (a copied row is skipped)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                log.debug("staging move skipped: %s", exc)
                break
            self._fit(held, n, purging)
            if purging:
                with self._count_lock:
                    self._backlog = max(0, self._backlog - n)
            self.stats["chunks"] += 1
            self.stats["longest_chunk_s"] = max(self.stats["longest_chunk_s"], held)
            if done:
                break
            # A pause as long as the chunk: the writer (waiting on `lock`) gets at least half the time.
            self._stopping.wait(max(self.min_pause, held))
        return moved

    def _fit(self, held: float, rows: int, purge: bool) -> None:
        """Size the next chunk so that it holds the write lock about `chunk_s`: in proportion to what this one
        took, by at most a factor of 2 each way (one slow chunk, e.g. a page cache being filled, does not
        shrink the next ones to nothing)."""
        if rows <= 0 or held <= 0:
            return
        current = self.purge_rows if purge else self.chunk_rows
        if rows < current // 2:  # the last chunk of a round: what it took says little
            return
        scaled = int(current * min(2.0, max(0.5, self.chunk_s / held)))
        if purge:
            self.purge_rows = max(1_000, min(500_000, scaled))
        else:
            self.chunk_rows = max(100, min(50_000, scaled))
