"""Staging on SQLite (the LSM step of `core.batchstore`): moving a staged table's rows into the table itself.

A `SQLiteBatchStore(staging=True)` appends the new rows of a table declared with `batchstore.stage` to its
staging table (arrival order, only the key indexed). Here they go on into the table, clustered by its key:
`StagingMover` (a thread of the writer) runs rounds — a round copies the rows staged when it began, in key
order, a chunk of whole devices per transaction, then deletes them from the staging table in arrival order —
and `flush_staged` moves everything at once (at a writer's stop). Readers read both tables and skip a staged
row the table has already (`safety.models.all_positions`), so a row is read once before, during and after a
round, and a crash anywhere in it loses or repeats nothing.
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


def move_staged(conn, table: str, max_rows: int = 20_000, up_to: int | None = None) -> int:
    """Move up to about `max_rows` staged rows of `table` (those of the lowest keys, whole devices at a time)
    into it, in key order; returns how many left the staging table (0: nothing was left to move). `up_to`:
    only rows staged up to that rowid (a round's rows, not those arriving meanwhile). Call it in a
    transaction of its own."""
    staging, key = STAGED[table]
    raw = _driver(conn)
    lead = key[0]
    order = ", ".join(key)
    upto, up_params = ("rowid <= ?", (up_to,)) if up_to is not None else ("1", ())
    # The first key value beyond `max_rows` rows: everything below it moves (all of each device), or all of
    # the first device when it alone has more.
    bound = raw.execute(
        f"SELECT {lead} FROM {staging} WHERE {upto} ORDER BY {order} LIMIT 1 OFFSET ?", (*up_params, max_rows)
    ).fetchone()
    where, params = f" WHERE {upto}", up_params
    if bound is not None:
        first = raw.execute(f"SELECT min({lead}) FROM {staging} WHERE {upto}", up_params).fetchone()[0]
        where += f" AND {lead} <= ?" if first == bound[0] else f" AND {lead} < ?"
        params = (*up_params, bound[0])
    cols = ", ".join(r[1] for r in raw.execute(f"PRAGMA table_info({table})").fetchall())
    sql = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging}{where} ORDER BY {order} ON CONFLICT DO NOTHING"
    with _errors_as_sqlalchemy(conn, sql):
        raw.execute(sql, params)
        return raw.execute(f"DELETE FROM {staging}{where}", params).rowcount


def copy_staged(conn, table: str, max_rows: int, up_to: int, cursor: tuple[str, Any] | None) -> tuple:
    """Copy the next about `max_rows` rows staged up to rowid `up_to` (whole devices, from `cursor` on) into
    `table` in key order, leaving them staged: readers skip a staged row whose key the table has, and the
    round deletes its rows at its end (`purge_staged`), in arrival order, so a chunk dirties only the
    table's pages, not pages of the staging table all over. Returns (rows copied, the next cursor or None
    when the round's rows are all copied). Call it in a transaction of its own."""
    staging, key = STAGED[table]
    raw = _driver(conn)
    lead, order = key[0], ", ".join(key)
    where, params = "rowid <= ?", [up_to]
    if cursor is not None:
        where += f" AND {lead} >= ?" if cursor[0] == "ge" else f" AND {lead} > ?"
        params.append(cursor[1])
    bound = raw.execute(
        f"SELECT {lead} FROM {staging} WHERE {where} ORDER BY {order} LIMIT 1 OFFSET ?", (*params, max_rows)
    ).fetchone()
    following = None
    if bound is not None:
        first = raw.execute(f"SELECT min({lead}) FROM {staging} WHERE {where}", params).fetchone()[0]
        alone = first == bound[0]  # one device has more than `max_rows`: it goes whole
        where += f" AND {lead} <= ?" if alone else f" AND {lead} < ?"
        params.append(bound[0])
        following = ("gt", bound[0]) if alone else ("ge", bound[0])
    cols = ", ".join(r[1] for r in raw.execute(f"PRAGMA table_info({table})").fetchall())
    sql = (
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} WHERE {where} ORDER BY {order} "
        "ON CONFLICT DO NOTHING"
    )
    before = raw.total_changes
    with _errors_as_sqlalchemy(conn, sql):
        raw.execute(sql, params)
    return raw.total_changes - before, following


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
    """Move every staged row of `table`, a transaction per `max_rows`; returns how many moved."""
    moved = 0
    while True:
        with engine.begin() as conn:
            n = move_staged(conn, table, max_rows)
        moved += n
        if n == 0:
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
        self.stats = {"rounds": 0, "chunks": 0, "moved": 0, "longest_chunk_s": 0.0, "staged": 0}
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
                        n, cursor = copy_staged(conn, self.table, self.chunk_rows, top, cursor)
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
        self.stats["moved"] += moved
        self._waiting_since = None
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
