"""The intake pipeline every high-rate feed stands on: decode → validate → columnar batch → store →
after-commit handlers → acknowledgment.

    decoders (pure: bytes/params → records, or straight into `Columns`)
      → sink.submit / intake / intake_all / intake_columns     (an `IntakeSink`: in-process or a writer process)
      → BatchQueue: alarms first, batches up to `batch_size`, a linger when idle, `Overloaded` when full
      → the feed's `write(batch)`: one transaction (the feed's store), then its after-commit handlers
      → each waiter answered (a thread's Future, an event loop's future, a unit's list, a remote token)

A record is acknowledged only after the transaction holding it has committed (durable before
acknowledged); feeds key their rows so that a replay is found again as a duplicate, not stored twice.

`Columns` is the batch as arrays (one numpy array per field) rather than one object per record: a step over
a whole batch costs a few microseconds where per-record Python objects cost a hundred. `Checkpointer`
writes state that changes often but matters little (a device's last position) about once a second instead
of once per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

import numpy as np

from smartcity.core.errors import SmartCityError

log = logging.getLogger(__name__)

# The columns of a batch of device positions (any feed of located fixes: trackers, and later sensors). Times
# are int64 epoch milliseconds UTC; a float NaN is an absent value; object columns hold str or None.
POSITION_SCHEMA: dict[str, Any] = {
    "slot": np.int32,
    "device_id": np.int64,
    "person_id": np.int64,
    "fix_time": np.int64,
    "received_at": np.int64,
    "lat": np.float64,
    "lon": np.float64,
    "speed": np.float64,
    "bearing": np.float64,
    "altitude": np.float64,
    "accuracy": np.float64,
    "battery": np.float64,
    "valid": np.bool_,
    "sos": np.bool_,
    "alarm": object,
    "protocol": object,
    "attributes": object,
    "outside_city": np.bool_,
    "district": np.int32,
    "stored": np.bool_,
}


class Overloaded(SmartCityError):
    status = 503
    code = "overloaded"


class Columns:
    """A batch of records as one array per field, all of length `n`."""

    __slots__ = ("cols", "n")

    def __init__(self, cols: dict[str, np.ndarray], n: int | None = None):
        if n is None:
            n = len(next(iter(cols.values()))) if cols else 0
        for name, arr in cols.items():
            if len(arr) != n:
                raise ValueError(f"column {name!r} has {len(arr)} values, not {n}")
        self.cols, self.n = cols, n

    @classmethod
    def empty(cls, schema: dict[str, Any], n: int) -> Columns:
        """Columns of `schema` for n records: NaN floats, False flags, -1 integers, None objects."""
        cols = {}
        for name, dtype in schema.items():
            if dtype is object:
                cols[name] = np.full(n, None, dtype=object)
            elif np.issubdtype(dtype, np.floating):
                cols[name] = np.full(n, np.nan, dtype=dtype)
            elif dtype is np.bool_:
                cols[name] = np.zeros(n, dtype=np.bool_)
            else:
                cols[name] = np.full(n, -1, dtype=dtype)
        return cls(cols, n)

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        """One batch of several, in order (fields missing from a part are not kept)."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls({}, 0)
        names = [k for k in parts[0].cols if all(k in p.cols for p in parts)]
        return cls({k: np.concatenate([p.cols[k] for p in parts]) for k in names}, sum(p.n for p in parts))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        if len(values) != self.n:
            raise ValueError(f"column {name!r} has {len(values)} values, not {self.n}")
        self.cols[name] = values

    def __contains__(self, name: str) -> bool:
        return name in self.cols

    def take(self, index: np.ndarray | Sequence[int]) -> Columns:
        """The records selected by a boolean mask or by their positions, in that order."""
        index = np.asarray(index)
        n = int(index.sum()) if index.dtype == np.bool_ else len(index)
        return Columns({k: v[index] for k, v in self.cols.items()}, n)

    def rows(self, names: Sequence[str]) -> list[tuple]:
        """The records as tuples of plain Python values (NaN → None), for a driver's executemany or COPY."""
        lists = []
        for name in names:
            arr = self.cols[name]
            values = arr.tolist()
            if arr.dtype.kind == "f":
                nan = np.isnan(arr)
                if nan.any():
                    for i in np.flatnonzero(nan).tolist():
                        values[i] = None
            lists.append(values)
        return list(zip(*lists, strict=True))


REFUSED, STORED, DUPLICATE = 0, 1, 2  # a row's outcome in a BatchOutcome


class BatchOutcome:
    """The outcome of a columnar batch, row by row: `status` (REFUSED, STORED or DUPLICATE) and the refused
    rows' errors by row. One object for the batch instead of one acknowledgment per record."""

    __slots__ = ("status", "errors")

    def __init__(self, status: np.ndarray, errors: dict[int, BaseException] | None = None):
        self.status = status
        self.errors = {} if errors is None else errors

    @classmethod
    def refused(cls, n: int, error: BaseException) -> BatchOutcome:
        return cls(np.zeros(n, dtype=np.int8), dict.fromkeys(range(n), error))

    def merge(self, rows: np.ndarray, part: BatchOutcome) -> None:
        """Put the outcome of the batch made of `rows` of this one in place."""
        self.status[rows] = part.status
        for i, exc in part.errors.items():
            self.errors[int(rows[i])] = exc

    @property
    def stored(self) -> int:
        return int((self.status == STORED).sum())

    @property
    def duplicates(self) -> int:
        return int((self.status == DUPLICATE).sum())

    def __reduce__(self):
        return BatchOutcome, (self.status, self.errors)


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


# --- the interface every intake implements -------------------------------------------------------------


@runtime_checkable
class IntakeSink(Protocol):
    """What a protocol adapter hands records to: the in-process engine or a writer process's client.

    Every method answers only once the record is durably stored (or refused): `submit`/`submit_all` with a
    concurrent Future (threads), `intake`/`intake_all`/`intake_columns` awaited in an event loop."""

    @property
    def running(self) -> bool: ...

    @property
    def queued(self) -> int: ...

    def start(self) -> IntakeSink: ...

    def stop(self, timeout: float = ...) -> None: ...

    def submit(self, record: Any) -> Future: ...

    def submit_all(self, records: list) -> Future: ...

    async def intake(self, record: Any) -> Any: ...

    async def intake_all(self, records: list) -> list: ...

    async def intake_columns(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> BatchOutcome: ...

    def columns_future(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> asyncio.Future:
        """`intake_columns` without a coroutine: the batch is handed on now (in the running event loop), and
        the loop's future gets its BatchOutcome."""
        ...

    def handle(self, topic: str, data: dict) -> None: ...


# --- records gathered in an event loop -----------------------------------------------------------------


class SharedWait(asyncio.Future):
    """An event-loop future that many coroutines await together (the requests of one batch): cancelling one
    waiter (its client went away, a server shutting down) ends that waiter's wait only, never the others'."""

    def cancel(self, msg: Any = None) -> bool:
        return False


class RowBatch:
    """The records gathered in one turn of the event loop: `rows` (tuples in the batcher's field order) and
    `done`, the one future all their requests await. Once it is done, `status[i]` (REFUSED, STORED,
    DUPLICATE) and `errors` say what became of row i."""

    __slots__ = ("rows", "done", "status", "errors")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.rows: list[tuple] = []
        self.done: asyncio.Future = SharedWait(loop=loop)
        self.status: list[int] = []
        self.errors: dict[int, BaseException] = {}


class RowBatcher:
    """Records that arrive one at a time in an event loop (a request each) gathered into `Columns` batches and
    handed to a sink: one batch per turn of the loop, or — while `in_flight` batches are already with the
    sink — everything that arrives until one of them is answered (group commit: the writer's fixed cost per
    batch, a commit above all, is shared by more records exactly when it is busy), or `most` records.

    A request appends one tuple and awaits its batch's shared future: no object, future or task per record,
    and everything else (columns, validation, the sink's round trip, counting) is done once per batch.
    `fields` are the tuples' fields and their dtypes (`POSITION_SCHEMA`'s conventions: None in a float field
    is NaN, absent); `constants` are fields with one value for every record. `send(cols)` hands the batch on
    and returns a future of its `BatchOutcome` (`IntakeSink.columns_future`); `settled(outcome)` is called
    once per batch (counting) before the requests resume."""

    def __init__(
        self,
        fields: dict[str, Any],
        send: Callable[[Columns], asyncio.Future],
        constants: dict[str, Any] | None = None,
        settled: Callable[[BatchOutcome], None] | None = None,
        most: int = 5000,
        in_flight: int = 2,
    ):
        self.fields = list(fields.items())
        self.send = send
        self.constants = constants or {}
        self.settled = settled
        self.most = most
        self.in_flight = in_flight
        self._batch: RowBatch | None = None
        self._sent = 0  # batches with the sink, not yet answered
        self.batches = 0
        self.rows = 0

    def add(self, row: tuple) -> tuple[RowBatch, int]:
        """Gather one record; returns its batch and its index in it (await `batch.done`, then read
        `batch.status[index]`)."""
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = RowBatch(loop)
            # After the callbacks of this turn: every request that arrived with this one is in the batch.
            loop.call_soon(self._turn_ended, batch)
        batch.rows.append(row)
        index = len(batch.rows) - 1
        if index + 1 >= self.most:
            self.flush(batch)
        return batch, index

    def _turn_ended(self, batch: RowBatch) -> None:
        if self._sent < self.in_flight:
            self.flush(batch)
        # else: it keeps gathering until the sink answers a batch (`_finish`)

    def columns(self, rows: list[tuple]) -> Columns:
        """Rows as columns of the batcher's fields and constants."""
        n = len(rows)
        cols: dict[str, np.ndarray] = {}
        for (name, dtype), values in zip(self.fields, zip(*rows, strict=True), strict=True):
            if dtype is object:
                arr = np.empty(n, dtype=object)
                arr[:] = values
                cols[name] = arr
            else:
                cols[name] = np.array(values, dtype=dtype)
        for name, value in self.constants.items():
            cols[name] = np.full(n, value, dtype=object if value is None or isinstance(value, str) else None)
        return Columns(cols, n)

    def flush(self, batch: RowBatch) -> None:
        """Hand the batch on now (once: a batch already sent is not sent again)."""
        if batch is not self._batch:
            return
        self._batch = None
        self.batches += 1
        self.rows += len(batch.rows)
        try:
            future = self.send(self.columns(batch.rows))
        except Exception as exc:  # noqa: BLE001 - every record of the batch gets the error as its outcome
            self._settle(batch, BatchOutcome.refused(len(batch.rows), exc))
            return
        self._sent += 1
        future.add_done_callback(lambda f: self._finish(batch, f))

    def _finish(self, batch: RowBatch, future: asyncio.Future) -> None:
        self._sent -= 1
        waiting = self._batch
        if waiting is not None:  # gathered while the sink was busy: it goes now
            self.flush(waiting)
        n = len(batch.rows)
        if future.cancelled():
            outcome = BatchOutcome.refused(n, Overloaded("the intake stopped before storing; retry"))
        elif future.exception() is not None:
            outcome = BatchOutcome.refused(n, future.exception())
        else:
            outcome = future.result()
        self._settle(batch, outcome)

    def _settle(self, batch: RowBatch, outcome: BatchOutcome) -> None:
        batch.status = outcome.status.tolist()
        batch.errors = outcome.errors
        if self.settled is not None:
            try:
                self.settled(outcome)
            except Exception:  # noqa: BLE001 - counting must never keep the requests from their answers
                log.exception("counting an intake batch failed")
        if not batch.done.done():
            batch.done.set_result(outcome)


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
