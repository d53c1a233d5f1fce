"""Records that arrive one request at a time in an event loop, gathered into columnar batches (`RowBatcher`):
one tuple per request, one shared future per batch. Part of the intake pipeline (core/intake.py, which
re-exports it all)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from smartcity.core.intake_columns import BatchOutcome, Columns, Overloaded

log = logging.getLogger(__name__)


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
