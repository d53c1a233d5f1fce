"""The core intake pipeline (core/intake.py) with a small feed of its own writing into a real table on both
stores: acknowledged only once committed, replays found again, alarms first, a full queue refused, a bad
record refused alone, columnar batches answered in order, checkpoints and after-commit handlers."""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future

import numpy as np
import pytest
from sqlalchemy import Column, Float, Integer, MetaData, Table, select, text

from smartcity.core.intake import (
    DUPLICATE,
    REFUSED,
    STORED,
    AfterCommit,
    BatchOutcome,
    BatchQueue,
    Checkpointer,
    Columns,
    IntakeSink,
    Overloaded,
    Pending,
    RowBatcher,
)
from tests.helpers import run_async

meta = MetaData()
readings = Table(
    "intake_probe",
    meta,
    Column("sensor", Integer, primary_key=True),
    Column("at", Integer, primary_key=True),
    Column("value", Float, nullable=False),
)
latest = Table("intake_probe_latest", meta, Column("sensor", Integer, primary_key=True), Column("at", Integer))


class ProbeFeed:
    """A feed on the pipeline: records are (sensor, at, value) tuples or Columns of them; a value of None
    breaks the NOT NULL constraint, so the store itself refuses it."""

    def __init__(self, db, **queue_options):
        self.db = db
        meta.create_all(db.engine)
        self.queue = BatchQueue(self.write, **queue_options)
        self.after = AfterCommit()
        self.committed_batches: list[int] = []

    def write(self, batch: list[Pending]) -> list[tuple[Pending, object]]:
        rows, spans = [], []
        for item in batch:
            if isinstance(item.record, Columns):
                part = item.record.rows(["sensor", "at", "value"])
                spans.append((item, len(rows), len(part)))
                rows.extend(part)
            else:
                spans.append((item, len(rows), 1))
                rows.append(item.record)
        stored = []
        with self.db.engine.begin() as conn:
            for sensor, at, value in rows:
                done = conn.execute(
                    text(
                        "INSERT INTO intake_probe (sensor, at, value) VALUES (:s, :a, :v) "
                        "ON CONFLICT (sensor, at) DO NOTHING"
                    ),
                    {"s": sensor, "a": at, "v": value},
                )
                stored.append("stored" if done.rowcount == 1 else "duplicate")
        self.after(stored)
        out = []
        for item, start, n in spans:
            if isinstance(item.record, Columns):
                codes = [STORED if x == "stored" else DUPLICATE for x in stored[start : start + n]]
                out.append((item, BatchOutcome(np.array(codes, dtype=np.int8))))
            else:
                out.append((item, stored[start]))
        return out

    def stored(self) -> set[tuple[int, int]]:
        with self.db.engine.connect() as conn:
            return {(r.sensor, r.at) for r in conn.execute(select(readings.c.sensor, readings.c.at))}


def pending(record, urgent=False) -> Pending:
    item = Pending(record, urgent=urgent)
    item.future = Future()
    return item


def test_acknowledged_only_once_committed_and_replays_are_duplicates(db):
    feed = ProbeFeed(db)
    feed.queue.start()
    try:
        items = [pending((1, t, 0.5)) for t in range(5)]
        feed.queue.put(items)
        outcomes = [i.future.result(10) for i in items]
        assert outcomes == ["stored"] * 5
        # Once answered, another connection sees every row: the commit came first.
        assert feed.stored() == {(1, t) for t in range(5)}
        again = pending((1, 3, 0.7))
        feed.queue.put([again])
        assert again.future.result(10) == "duplicate"
        assert len(feed.stored()) == 5
    finally:
        feed.queue.stop()
    assert not feed.queue.running


def test_alarms_are_written_first_and_alone(db):
    feed = ProbeFeed(db, batch_size=100)
    ordinary = [pending((2, t, 1.0)) for t in range(10)]
    alarm = pending((3, 0, 9.0), urgent=True)
    feed.queue.put(ordinary)
    feed.queue.put([alarm])
    assert feed.queue.queued == 11
    first = feed.queue.take()
    assert first == [alarm]
    assert feed.queue.take() == ordinary
    assert feed.queue.queued == 0


def test_a_full_queue_refuses_and_keeps_nothing_half(db):
    feed = ProbeFeed(db, queue_max=3)
    feed.queue.put([pending((4, t, 1.0)) for t in range(3)])
    with pytest.raises(Overloaded) as refused:
        feed.queue.put([pending((4, 9, 1.0))])
    assert refused.value.status == 503
    assert feed.queue.queued == 3


def test_a_record_the_store_refuses_is_refused_alone(db):
    feed = ProbeFeed(db)
    feed.queue.start(thread=False)
    items = [pending((5, 0, 1.0)), pending((5, 1, None)), pending((5, 2, 1.0))]
    feed.queue.put(items)
    while feed.queue.write_queued():
        pass
    assert items[0].future.result(0) == "stored"
    assert items[2].future.result(0) == "stored"
    assert isinstance(items[1].future.exception(0), Exception)
    assert feed.stored() == {(5, 0), (5, 2)}
    feed.queue.stop()


def test_a_columnar_batch_is_answered_row_by_row_in_one_outcome(db):
    feed = ProbeFeed(db)
    feed.queue.start()
    try:
        cols = Columns(
            {
                "sensor": np.array([6, 6, 6], dtype=np.int64),
                "at": np.array([10, 11, 10], dtype=np.int64),
                "value": np.array([1.0, 2.0, 3.0]),
            }
        )
        item = Pending(cols, size=cols.n)
        item.future = Future()
        feed.queue.put([item])
        outcome = item.future.result(10)
        assert outcome.status.tolist() == [STORED, STORED, DUPLICATE]
        assert (outcome.stored, outcome.duplicates, outcome.errors) == (2, 1, {})
        assert feed.stored() == {(6, 10), (6, 11)}
        # A batch the store refuses as a whole is refused row by row, with the reason.
        broken = Columns({"sensor": np.array([6, 6]), "at": np.array([12, 13]), "value": np.array([1.0, np.nan])})
        item = Pending(broken, size=2)
        item.future = Future()
        feed.queue.put([item])
        outcome = item.future.result(10)
        assert outcome.status.tolist() == [REFUSED, REFUSED] and sorted(outcome.errors) == [0, 1]
        assert (6, 12) not in feed.stored()
    finally:
        feed.queue.stop()


def test_an_outcome_takes_the_outcome_of_its_rows():
    whole = BatchOutcome(np.zeros(4, dtype=np.int8), {0: ValueError("decoding")})
    part = BatchOutcome(np.array([STORED, DUPLICATE, REFUSED], dtype=np.int8), {2: KeyError("device")})
    whole.merge(np.array([1, 2, 3]), part)
    assert whole.status.tolist() == [REFUSED, STORED, DUPLICATE, REFUSED]
    assert sorted(whole.errors) == [0, 3] and isinstance(whole.errors[3], KeyError)


def test_a_unit_awaited_in_an_event_loop(db):
    feed = ProbeFeed(db)
    feed.queue.start()

    async def submit():
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        items = [Pending((7, t, 1.0)) for t in range(3)]
        for i, item in enumerate(items):
            item.index = i
        feed.queue.unit(items, [None] * 3, future, loop)
        return await future

    try:
        assert run_async(submit()) == ["stored"] * 3
    finally:
        feed.queue.stop()


def test_columns_select_join_and_give_plain_rows():
    cols = Columns.empty({"id": np.int64, "x": np.float64, "on": np.bool_, "name": object}, 3)
    assert cols["id"].tolist() == [-1, -1, -1]
    assert all(math.isnan(v) for v in cols["x"])
    cols["id"] = np.array([1, 2, 3])
    cols["x"] = np.array([0.5, np.nan, 2.5])
    cols["name"] = np.array(["a", None, "c"], dtype=object)
    assert cols.rows(["id", "x", "name"]) == [(1, 0.5, "a"), (2, None, None), (3, 2.5, "c")]
    picked = cols.take(np.array([True, False, True]))
    assert len(picked) == 2 and picked["id"].tolist() == [1, 3]
    assert cols.take([2, 0])["name"].tolist() == ["c", "a"]
    joined = Columns.concat([picked, cols.take([1])])
    assert joined["id"].tolist() == [1, 3, 2] and joined.n == 3
    with pytest.raises(ValueError):
        cols["id"] = np.array([1, 2])
    with pytest.raises(ValueError):
        Columns({"a": np.zeros(2), "b": np.zeros(3)})


def test_checkpoints_write_the_dirty_keys_about_once_a_second(db):
    meta.create_all(db.engine)
    written: list[list[int]] = []

    def flush(keys: np.ndarray) -> None:
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO intake_probe_latest (sensor, at) VALUES (:s, :a) "
                    "ON CONFLICT (sensor) DO UPDATE SET at = excluded.at"
                ),
                [{"s": int(k), "a": 1} for k in keys],
            )
        written.append(sorted(keys.tolist()))

    checkpoint = Checkpointer(flush, every_s=60)
    checkpoint.mark([3, 1, 3])
    assert checkpoint() is False  # not due yet
    assert checkpoint(force=True) is True
    assert written == [[1, 3]] and checkpoint.dirty == 0
    checkpoint.mark([4, 5])
    checkpoint.forget([5])  # written with its batch instead
    checkpoint(force=True)
    assert written[-1] == [4]
    with db.engine.connect() as conn:
        assert {r[0] for r in conn.execute(select(latest.c.sensor))} == {1, 3, 4}


def test_a_failed_checkpoint_keeps_its_keys_dirty():
    calls = []

    def flush(keys):
        calls.append(keys.tolist())
        raise RuntimeError("store away")

    checkpoint = Checkpointer(flush)
    checkpoint.mark([8])
    assert checkpoint(force=True) is False
    assert checkpoint.dirty == 1 and calls == [[8]]


def test_after_commit_handlers_all_run_even_when_one_fails():
    seen = []
    after = AfterCommit()
    after.register(lambda r: seen.append(("first", r)))
    after.register(lambda r: 1 / 0)
    after.register(lambda r: seen.append(("last", r)))
    after("batch")
    assert seen == [("first", "batch"), ("last", "batch")]


def test_the_engines_are_intake_sinks(db, settings):
    from smartcity.safety.engine import SafetyEngine
    from smartcity.safety.writer import WriterProcess

    assert isinstance(SafetyEngine(db, settings), IntakeSink)
    assert isinstance(WriterProcess(db, settings), IntakeSink)


def test_the_writer_thread_answers_records_queued_from_many_threads(db):
    feed = ProbeFeed(db, batch_size=50)
    feed.queue.start()
    items = [[pending((9, t * 100 + k, 1.0)) for k in range(40)] for t in range(4)]
    try:
        threads = [threading.Thread(target=feed.queue.put, args=(chunk,)) for chunk in items]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [i.future.result(10) for chunk in items for i in chunk] == ["stored"] * 160
        assert feed.queue.batches >= 4  # 160 records in batches of at most 50
    finally:
        feed.queue.stop()


def test_a_checkpoint_round_writes_at_most_its_share_and_the_rest_next():
    written: list[list[int]] = []
    checkpoint = Checkpointer(lambda keys: written.append(sorted(keys.tolist())), every_s=60, most=2)
    checkpoint.mark([1, 2, 3, 4, 5])
    assert checkpoint(force=True) and len(written[-1]) == 2
    assert checkpoint() and len(written[-1]) == 2  # not due, but what is left waits for no clock
    assert checkpoint() and written[-1] in ([1], [2], [3], [4], [5])
    assert checkpoint() is False  # now it waits for its clock again
    assert sorted(k for w in written for k in w) == [1, 2, 3, 4, 5]


# --- records gathered in an event loop (RowBatcher) --------------------------------------------------------

PROBE_FIELDS = {"sensor": np.int64, "at": np.int64, "value": np.float64}


def columns_sender(feed: ProbeFeed):
    """The feed as a RowBatcher's sink: a batch is queued as one Columns record, answered in the loop."""
    import asyncio

    def send(cols: Columns):
        item = Pending(cols, size=cols.n)
        item.waiter = asyncio.get_running_loop().create_future()
        feed.queue.put([item])
        return item.waiter

    return send


async def _gather(batcher: RowBatcher, rows: list[tuple]) -> list[int]:
    """Each row in a request of its own (a coroutine), all started in one turn; the status each gets."""
    import asyncio

    async def one(row):
        batch, index = batcher.add(row)
        await batch.done
        return batch.status[index]

    return await asyncio.gather(*(one(r) for r in rows))


def test_records_of_one_loop_turn_share_one_batch_and_each_gets_its_outcome(db):
    feed = ProbeFeed(db)
    feed.queue.start()
    counted = []
    batcher = RowBatcher(PROBE_FIELDS, columns_sender(feed), settled=lambda o: counted.append(o.stored))
    try:
        first = run_async(_gather(batcher, [(7, t, 0.5) for t in range(30)]))
        assert first == [STORED] * 30 and batcher.batches == 1 and feed.queue.batches == 1
        assert feed.stored() == {(7, t) for t in range(30)}
        again = run_async(_gather(batcher, [(7, 3, 0.5), (7, 99, 0.5)]))
        assert again == [DUPLICATE, STORED] and batcher.batches == 2
        assert counted == [30, 1]  # counted once per batch
    finally:
        feed.queue.stop()


def test_while_the_sink_is_busy_later_turns_gather_into_one_batch(db):
    import asyncio

    feed = ProbeFeed(db)  # its writer starts later: the first batch waits with the sink
    batcher = RowBatcher(PROBE_FIELDS, columns_sender(feed), in_flight=1)

    async def scenario():
        first = asyncio.ensure_future(_gather(batcher, [(8, 0, 1.0)]))
        later = []
        for turn in range(1, 4):
            await asyncio.sleep(0.01)
            later.append(asyncio.ensure_future(_gather(batcher, [(8, turn, 1.0), (8, 10 + turn, 1.0)])))
        await asyncio.sleep(0.05)
        sent_while_busy = batcher.batches
        feed.queue.start()
        return sent_while_busy, await first, await asyncio.gather(*later)

    try:
        sent_while_busy, first, later = run_async(scenario())
    finally:
        feed.queue.stop()
    assert sent_while_busy == 1  # the others waited for the first to be answered
    assert first == [STORED] and later == [[STORED, STORED]] * 3
    assert batcher.batches == 2 and batcher.rows == 7


def test_a_request_that_goes_away_leaves_its_batch_to_the_others(db):
    import asyncio

    feed = ProbeFeed(db)
    batcher = RowBatcher(PROBE_FIELDS, columns_sender(feed))

    async def scenario():
        async def one(row):
            batch, index = batcher.add(row)
            await batch.done
            return batch.status[index]

        tasks = [asyncio.ensure_future(one((9, t, 1.0))) for t in range(3)]
        await asyncio.sleep(0.02)
        tasks[0].cancel()  # its client went away
        await asyncio.sleep(0.02)
        feed.queue.start()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = run_async(scenario())
    finally:
        feed.queue.stop()
    assert isinstance(results[0], BaseException) and results[1:] == [STORED, STORED]
    assert feed.stored() == {(9, 0), (9, 1), (9, 2)}  # its record was stored all the same


def test_a_batch_the_sink_refuses_is_refused_row_by_row(db):
    feed = ProbeFeed(db, queue_max=3)
    batcher = RowBatcher(PROBE_FIELDS, columns_sender(feed))
    statuses = run_async(_gather(batcher, [(10, t, 1.0) for t in range(5)]))
    assert statuses == [REFUSED] * 5 and feed.stored() == set()
