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
writes state that changes often but matters little (a device's last position) now and then instead of once
per record.

The pipeline's parts, each in a module of its own and all importable from here (as httpx's public names
come from its private modules): `intake_columns` (Columns, POSITION_SCHEMA, BatchOutcome, Overloaded),
`intake_rows` (RowBatcher: a request at a time into batches), `intake_queue` (Pending, BatchQueue, AfterCommit,
Checkpointer); this module names the interface every intake implements, `IntakeSink`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from smartcity.core.errors import SmartCityError
from smartcity.core.intake_columns import (
    DUPLICATE,
    POSITION_SCHEMA,
    REFUSED,
    STORED,
    BatchOutcome,
    Columns,
    Overloaded,
)
from smartcity.core.intake_queue import (
    AfterCommit,
    BatchQueue,
    Checkpointer,
    Pending,
    Unit,
    WriteBatch,
    settle_future,
)
from smartcity.core.intake_rows import RowBatch, RowBatcher, SharedWait

__all__ = [
    "DUPLICATE",
    "POSITION_SCHEMA",
    "REFUSED",
    "STORED",
    "AfterCommit",
    "BatchOutcome",
    "BatchQueue",
    "Checkpointer",
    "Columns",
    "IntakeSink",
    "Overloaded",
    "Pending",
    "RowBatch",
    "RowBatcher",
    "SharedWait",
    "Unit",
    "WriteBatch",
    "settle_future",
]


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
