"""One writer per store: write jobs from many request threads, committed together in groups.

Many request threads writing at once make SQLite's writers wait on its lock (its busy handler sleeps and
backs off, so a few writers at once give a long tail of waits) and make PostgreSQL flush its log once per
small transaction. Like Datasette's write thread, the writer takes the writes instead: callers hand it a
*job*, a function of a SQLAlchemy session, and get back the job's result or its exception.

    writer(db).run(job)          from a thread: waits for the answer
    await writer(db).arun(job)   from the event loop: awaits it without holding up the loop
    writer(db).submit(job)       a concurrent.futures.Future

How a group goes: one thread takes the first job waiting in the queue and every other job already queued
behind it (there is no waiting for more: a group is what queued while the previous group committed), opens
one transaction on one connection, runs each job in submission order in a session of its own whose
transaction is a SAVEPOINT of the group's (SQLAlchemy's join_transaction_mode="create_savepoint": a session's
commit releases its savepoint, its rollback returns to it, and session events such as the event bus's work
per job as they do per request), commits once and only then answers the callers (a result is durable before
it is acknowledged; events are handed out after the commit, not at a savepoint). A job that raises rolls back to its
savepoint alone (the events it published are dropped with it); its exception goes to its caller and the
others go on. If the commit itself fails, each job that had succeeded runs again alone in a transaction of
its own, so one job cannot sink the rest of its group.

Jobs run on the writer's thread, one at a time: keep them to database work (parse, decode and check what
needs no store before submitting), and return plain values or objects whose needed attributes are loaded
(the session is closed when the caller gets them). On SQLite the group's transaction takes the write lock at
its start (BEGIN IMMEDIATE); a commit is as durable as the store is set to be (WAL, synchronous=NORMAL).
The thread stops after a while without jobs and starts again with the next one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

from smartcity.core.context import Slot

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_GROUP = 256  # jobs in one transaction at most
IDLE_S = 30.0  # the thread ends after this long without a job


@dataclass
class _Job:
    fn: Callable[[Session], Any]
    future: Future = field(default_factory=Future)


@dataclass
class WriterStats:
    """What the writer has done (for tests and /metrics-style reporting)."""

    groups: int = 0
    jobs: int = 0
    failed: int = 0
    retried_groups: int = 0
    largest_group: int = 0


class Writer:
    """The store's single writer thread with its queue of jobs (see the module's docstring)."""

    def __init__(self, db, *, max_group: int = MAX_GROUP, idle_s: float = IDLE_S):
        self.db = db
        self.max_group = max_group
        self.idle_s = idle_s
        self.stats = WriterStats()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    # --- callers ----------------------------------------------------------------------------------------

    def submit(self, fn: Callable[[Session], T]) -> Future[T]:
        """Queue a job; its future gets the job's result once the group holding it has committed."""
        job = _Job(fn)
        with self._lock:
            if self._closed:
                raise RuntimeError("the writer is closed")
            self._queue.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="smartcity-writer", daemon=True)
                self._thread.start()
        return job.future

    def run(self, fn: Callable[[Session], T], timeout: float | None = None) -> T:
        """Run a job and wait for its result (or raise its exception)."""
        return self.submit(fn).result(timeout)

    async def arun(self, fn: Callable[[Session], T]) -> T:
        """Run a job from the event loop: the loop serves other requests while the job waits its turn."""
        return await asyncio.wrap_future(self.submit(fn))

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then stop the thread; later submits are refused."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    # --- the thread -------------------------------------------------------------------------------------

    def _next_group(self) -> list[_Job] | None:
        try:
            first = self._queue.get(timeout=self.idle_s)
        except queue.Empty:
            with self._lock:
                if self._queue.empty():  # a submit holds the lock while it queues: nothing is left behind
                    self._thread = None
                    return None
            first = self._queue.get()
        if first is None:
            return None
        group = [first]
        while len(group) < self.max_group:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this group
                break
            group.append(job)
        return group

    def _loop(self) -> None:
        while True:
            group = self._next_group()
            if group is None:
                return
            try:
                self._run(group)
            except Exception as exc:  # the store itself failed (no connection): every caller hears of it
                log.exception("write group failed")
                for job in group:
                    if not job.future.done():
                        job.future.set_exception(exc)

    def _run(self, group: list[_Job]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        held: list = []  # the group's events, handed out once it has committed
        conn = self.db.engine.connect()
        try:
            conn.begin()  # the jobs' sessions then join it with savepoints (and never commit it themselves)
            if conn.dialect.name == "sqlite":
                # pysqlite opens its transaction lazily, at the first write; an explicit one takes the write
                # lock now and makes the savepoints below nest inside it rather than stand for the transaction.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            for job in group:
                outcomes.append(self._one(conn, job, held))
            conn.commit()
        except Exception as exc:
            conn.rollback()
            conn.close()
            if len(outcomes) < len(group):  # the store failed before the jobs ran
                self._answer(group, [(False, exc)] * len(group))
            elif len(group) == 1:
                self._answer(group, [outcomes[0] if not outcomes[0][0] else (False, exc)])
            else:
                self.stats.retried_groups += 1
                log.warning("a group of %d writes failed to commit (%s); each runs again alone", len(group), exc)
                for job, outcome in zip(group, outcomes, strict=True):
                    if outcome[0]:
                        self._run([job])
                    else:
                        self._answer([job], [outcome])
            return
        conn.close()
        for ev in held:
            self.db.events.deliver(ev)
        self.stats.groups += 1
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        self._answer(group, outcomes)

    def _one(self, conn, job: _Job, held: list) -> tuple[bool, Any]:
        """One job in a session of its own whose transaction is a savepoint of the group's: its commit
        releases the savepoint, its rollback (any exception, a failed flush too) returns to it."""
        session = self.db.sessions(bind=conn, join_transaction_mode="create_savepoint")

        def take(sess: Session) -> None:
            # The bus delivers a session's events after its commit, which is here only the savepoint's: this
            # listener runs first and keeps them for the group's commit (they were logged in the savepoint).
            held.extend(sess.info.pop("pending_events", ()))

        event.listen(session, "after_commit", take, insert=True)
        try:
            value = job.fn(session)
            session.commit()
            return True, value
        except Exception as exc:
            session.rollback()  # to the savepoint; the events it published are dropped with it
            return False, exc
        finally:
            session.close()

    def _answer(self, group: list[_Job], outcomes: list[tuple[bool, Any]]) -> None:
        for job, (ok, value) in zip(group, outcomes, strict=True):
            self.stats.jobs += 1
            if job.future.done():
                continue
            if ok:
                job.future.set_result(value)
            else:
                self.stats.failed += 1
                job.future.set_exception(value)


WRITER: Slot[Writer] = Slot("core.writer", lambda context: Writer(context.db))


def writer(db) -> Writer:
    """The writer of `db` (one per store and process: it lives in the store's context)."""
    return WRITER.get(db)
