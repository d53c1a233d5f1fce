"""The intake's queue and its writer: who waits for a record (`Pending`, `Unit`), `BatchQueue` (alarms first and
alone, batches, linger, `Overloaded` when full, acknowledgments once committed), after-commit handlers
(`AfterCommit`) and the `Checkpointer` of state that changes with every record. Part of the intake pipeline
(core/intake.py, which re-exports it all)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import numpy as np

from smartcity.core.intake_columns import BatchOutcome, Columns, Overloaded

log = logging.getLogger(__name__)


# --- who waits for what -------------------------------------------------------------------------------


class Pending:
    """A validated record (or a `Columns` batch of them, answered with one `BatchOutcome`) waiting for the
    writer, and who waits for its outcome: a thread's `future`, an event loop's `waiter`, a `unit` of many
    records answered at once, or a `token` answered in another process through the queue's `on_resolved`."""

    __slots__ = ("record", "future", "waiter", "unit", "index", "token", "urgent", "size")

    def __init__(self, record: Any, urgent: bool = False, size: int = 1):
        self.record = record
        self.urgent = urgent
        self.size = size  # records it stands for (a Columns batch: its n)
        self.future: Future | None = None
        self.waiter: asyncio.Future | None = None
        self.unit: Unit | None = None
        self.index = 0
        self.token: int | None = None


class Unit:
    """Records submitted together: one future for all their outcomes, in order."""

    __slots__ = ("results", "remaining", "future", "loop", "token")

    def __init__(self, results: list, remaining: int, future, loop=None, token=None):
        self.results, self.remaining, self.future, self.loop = results, remaining, future, loop
        self.token = token


def _settle_waiters(outcomes: list) -> None:
    """In an event loop: hand a batch's outcomes to the coroutines awaiting them."""
    for waiter, outcome in outcomes:
        if not waiter.done():
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)


def settle_future(future, value) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


# --- the queue and its writer ---------------------------------------------------------------------------

# A feed's writer: one transaction for the batch, returning each pending's outcome (a Columns pending gets
# a list of outcomes, one per record).
WriteBatch = Callable[[list[Pending]], list[tuple[Pending, Any]]]


class BatchQueue:
    """Pending records, alarms first, written in batches by one writer: a thread of its own, or the caller
    (`start(thread=False)`, then `write_queued()` in its own loop, as the writer process does).

    `write` is the feed's transaction; when a batch of several fails, each pending is written alone so the
    culprit alone is refused. `after_batch` hooks run in the writer between batches (a checkpoint, an audit
    of refusals), `on_resolved` gets the outcomes of records waited for in another process."""

    def __init__(
        self,
        write: WriteBatch,
        batch_size: int = 1000,
        linger_s: float = 0.002,
        queue_max: int = 200_000,
        name: str = "intake",
    ):
        self.write = write
        self.batch_size = batch_size
        self.linger = linger_s
        self.queue_max = queue_max
        self.name = name
        self.on_resolved: Callable[[list[tuple[int, Any]]], None] | None = None
        self.after_batch: list[Callable[[bool], None]] = []  # called with `stopping`
        self._queue: deque[Pending] = deque()
        self._urgent: deque[Pending] = deque()
        self._size = 0  # records queued (a Columns pending counts its n)
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._external = False
        self._last_write = 0.0
        self.batches = 0

    # --- lifecycle ---

    @property
    def running(self) -> bool:
        return self._external or (self._thread is not None and self._thread.is_alive())

    @property
    def queued(self) -> int:
        return self._size

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def urgent(self) -> int:
        """Alarms waiting: work between batches waits for them."""
        return len(self._urgent)

    def start(self, thread: bool = True) -> None:
        if not thread:
            self._stopping = False
            self._external = True
        elif self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        """Write what is queued, then stop."""
        if self._external:
            while self.write_queued():
                pass
            self._stopping = True
            self._hooks()
            self._external = False
            return
        thread = self._thread
        if thread and thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._hurry.set()
            thread.join(timeout)
        self._thread = None

    # --- queueing ---

    def put(self, items: Iterable[Pending]) -> None:
        """Queue validated records (alarms ahead of the others); Overloaded if the queue would overflow."""
        items = list(items)
        size = sum(i.size for i in items)
        if self._size + size > self.queue_max:
            raise Overloaded("the intake queue is full; retry shortly")
        urgent = False
        for item in items:
            if item.urgent:
                self._urgent.append(item)
                urgent = True
            else:
                self._queue.append(item)
        self._size += size
        if urgent:
            self._hurry.set()
        if not self._wake.is_set():
            self._wake.set()

    def unit(self, items: list[Pending], results: list, future, loop=None, token=None) -> Unit:
        """Queue `items` as one unit whose outcome is `results` (errors already in place) once all are written."""
        unit = Unit(results, len(items), future, loop, token)
        for item in items:
            item.unit = unit
        if items:
            try:
                self.put(items)
                return unit
            except Overloaded as exc:
                for item in items:
                    results[item.index] = exc
                unit.remaining = 0
        if token is not None:
            self.on_resolved([(token, results)])
        elif loop is None:
            settle_future(future, results)
        else:
            future.set_result(results)
        return unit

    def take(self) -> list[Pending]:
        """The next batch: alarms alone first (they never wait behind ordinary records), else up to
        `batch_size` records (a Columns batch is never split)."""
        source = self._urgent if self._urgent else self._queue
        batch: list[Pending] = []
        size = 0
        while source and (not batch or size + source[0].size <= self.batch_size):
            item = source.popleft()
            batch.append(item)
            size += item.size
        self._size -= size
        return batch

    # --- writing ---

    def write_queued(self) -> bool:
        """Write one batch of what is queued; False when nothing was queued."""
        self._hooks()
        batch = self.take()
        if not batch:
            return False
        self._write(batch)
        return True

    def _hooks(self) -> None:
        for hook in self.after_batch:
            try:
                hook(self._stopping)
            except Exception:  # noqa: BLE001 - a hook's failure never stops the intake
                log.exception("an intake hook failed")

    def _run(self) -> None:
        wake, hurry = self._wake, self._hurry
        while True:
            self._hooks()
            if not self._queue and not self._urgent:
                if self._stopping:
                    self._hooks()
                    break
                wake.wait(0.5)
                wake.clear()  # cleared before taking: whatever is queued from now on sets it again
                if not self._queue and not self._urgent:
                    continue
                if (
                    self.linger
                    and not self._urgent
                    and not self._stopping
                    and time.monotonic() - self._last_write > self.linger
                ):
                    # Idle until now: let a batch gather, unless an alarm comes. A busy writer does not wait:
                    # records gather by themselves while it commits (group commit).
                    hurry.wait(self.linger)
            hurry.clear()
            batch = self.take()
            if batch:
                self._write(batch)

    def _write(self, batch: list[Pending]) -> None:
        try:
            results = self.write(batch)
        except Exception as exc:  # noqa: BLE001 - isolate the culprit: retry one by one
            if len(batch) == 1:
                log.exception("storing a batch failed")
                item = batch[0]
                self.resolve(
                    [(item, BatchOutcome.refused(item.size, exc) if isinstance(item.record, Columns) else exc)]
                )
                return
            for item in batch:
                self._write([item])
            return
        self.batches += 1
        self.resolve(results)
        self._last_write = time.monotonic()

    def resolve(self, results: list[tuple[Pending, Any]]) -> None:
        """Hand each outcome to whoever waits: futures at once, event loops with one call per batch."""
        by_loop: dict[Any, list] = {}
        remote = []
        for item, outcome in results:
            if item.token is not None:
                remote.append((item.token, outcome))
            elif item.waiter is not None:
                by_loop.setdefault(item.waiter.get_loop(), []).append((item.waiter, outcome))
            elif item.unit is not None:
                unit = item.unit
                unit.results[item.index] = outcome
                unit.remaining -= 1
                if unit.remaining == 0:
                    if unit.token is not None:
                        remote.append((unit.token, unit.results))
                    elif unit.loop is None:
                        settle_future(unit.future, unit.results)
                    else:
                        by_loop.setdefault(unit.loop, []).append((unit.future, unit.results))
            elif item.future is not None:
                settle_future(item.future, outcome)
        for loop, outcomes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle_waiters, outcomes)
        if remote and self.on_resolved is not None:
            self.on_resolved(remote)


# --- after the commit -----------------------------------------------------------------------------------


class AfterCommit:
    """Handlers a feed calls with each committed batch's result (alerts, incidents, live events): any module
    may register one; a failing handler is logged and never undoes the committed batch."""

    def __init__(self) -> None:
        self.handlers: list[Callable[[Any], None]] = []

    def register(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        self.handlers.append(handler)
        return handler

    def __call__(self, result: Any) -> None:
        for handler in self.handlers:
            try:
                handler(result)
            except Exception:  # noqa: BLE001 - the batch is committed; the others still run
                log.exception("an after-commit handler failed")


class Checkpointer:
    """State that changes with nearly every record but is cheap to lose for a moment (a device's last
    position: the records themselves are stored) is marked dirty and written about every `every_s`, and
    at stop, by `flush(keys)` — one statement for all of them rather than one per record."""

    def __init__(self, flush: Callable[[np.ndarray], None], every_s: float = 1.0, most: int = 5000):
        self.flush_keys = flush
        self.every = every_s
        self.most = most  # keys written per round at most: a round never holds the writer long
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._due = time.monotonic() + every_s
        self.rounds = 0

    def mark(self, keys: Iterable[int]) -> None:
        with self._lock:
            self._dirty.update(keys)

    def forget(self, keys: Iterable[int]) -> None:
        """Keys whose state was just written some other way (in a batch's own transaction)."""
        with self._lock:
            self._dirty.difference_update(keys)

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def take_due(self, force: bool = False) -> np.ndarray | None:
        """The keys of a round if one is due (or `force`), no longer dirty: the caller writes them (in a
        batch's own transaction, say) or marks them again if it could not; None when no round is due."""
        now = time.monotonic()
        if not self._dirty or (not force and now < self._due):
            return None
        with self._lock:
            if len(self._dirty) <= self.most:
                keys, self._dirty = self._dirty, set()
                self._due = now + self.every
            else:  # the rest in the next rounds, with or between the next batches
                keys = {self._dirty.pop() for _ in range(self.most)}
                self._due = now
        self.rounds += 1
        return np.fromiter(keys, dtype=np.int64, count=len(keys))

    def __call__(self, force: bool = False) -> bool:
        """Write the dirty keys if due (or `force`) in a round of their own; True if something was written."""
        keys = self.take_due(force)
        if keys is None:
            return False
        try:
            self.flush_keys(keys)
        except Exception:  # noqa: BLE001 - kept dirty: the next round tries again
            log.exception("checkpointing intake state failed")
            self.rounds -= 1
            self.mark(keys.tolist())
            return False
        return True
