"""The single writer (core.writer) on both stores: jobs run in order, grouped in one transaction, a failing job
rolls back alone and only its caller hears of it, callers are answered only after the commit, and a group
whose commit fails runs again job by job."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from sqlalchemy import event, select

from smartcity.core.db import Database
from smartcity.core.events import EventLogRow, publish
from smartcity.core.models import Department
from smartcity.core.writer import Writer
from tests.helpers import run_async


@pytest.fixture
def writer(db):
    w = Writer(db, idle_s=2.0)
    yield w
    w.close()


def add_unit(code: str):
    def job(session):
        unit = Department(code=code, name_ko=code, name_en=code)
        session.add(unit)
        session.flush()
        return unit.id

    return job


def codes(db) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Department.code).where(Department.code.like("w-%")).order_by(Department.id)))


def hold(writer: Writer) -> threading.Event:
    """Keep the writer busy with one job until the returned event is set: what is queued meanwhile forms
    the next group."""
    release, started = threading.Event(), threading.Event()

    def job(_session):
        started.set()
        release.wait(10)

    writer.submit(job)
    assert started.wait(10)
    return release


def test_jobs_queued_together_commit_as_one_group_in_submission_order(db, writer):
    release = hold(writer)
    futures = [writer.submit(add_unit(f"w-{i:02d}")) for i in range(20)]
    release.set()
    ids = [f.result(10) for f in futures]
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert codes(db) == [f"w-{i:02d}" for i in range(20)]
    assert writer.stats.largest_group == 20 and writer.stats.groups == 2


def test_a_failing_job_rolls_back_alone_and_only_its_caller_hears_of_it(db, writer):
    def half_then_fail(session):
        session.add(Department(code="w-half", name_ko="x", name_en="x"))
        session.flush()
        raise ValueError("this job changed its mind")

    release = hold(writer)
    before = writer.submit(add_unit("w-before"))
    failing = writer.submit(half_then_fail)
    duplicate = writer.submit(add_unit("w-before"))  # the store refuses it (unique code)
    after = writer.submit(add_unit("w-after"))
    release.set()
    assert isinstance(before.result(10), int) and isinstance(after.result(10), int)
    with pytest.raises(ValueError, match="changed its mind"):
        failing.result(10)
    assert duplicate.exception(10) is not None
    assert codes(db) == ["w-before", "w-after"]
    assert writer.stats.groups == 2 and writer.stats.failed == 2


def test_events_come_after_the_group_commits_and_a_failed_jobs_never(db, writer):
    seen: list[str] = []
    seen_inside_group: list[list[str]] = []
    db.events.on("writer.test", lambda ev: seen.append(ev.data["code"]))

    def job(code: str, fail: bool):
        def run(session):
            add_unit(code)(session)
            publish(session, "writer.test", {"code": code})
            time.sleep(0.1)
            seen_inside_group.append(list(seen))  # earlier jobs of the group are done, not committed
            if fail:
                raise RuntimeError("no")

        return run

    async def scenario():
        await db.events.start()
        if db.is_postgres:
            await asyncio.to_thread(db.events.listening.wait, 10)
        try:
            release = hold(writer)
            futures = [writer.submit(job(c, c == "w-b")) for c in ("w-a", "w-b", "w-c")]
            release.set()
            await asyncio.wrap_future(futures[0])
            with pytest.raises(RuntimeError):
                await asyncio.wrap_future(futures[1])
            await asyncio.wrap_future(futures[2])
            for _ in range(100):
                if len(seen) >= 2:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # time for a wrongly delivered event to arrive
        finally:
            await db.events.stop()

    run_async(scenario())
    assert seen_inside_group == [[], [], []]
    assert sorted(seen) == ["w-a", "w-c"]
    if not db.is_postgres:  # what other processes read: the event log, written in each job's savepoint
        with db.session() as s:
            logged = [
                json.loads(p)["data"]["code"]
                for p in s.scalars(select(EventLogRow.payload))
                if json.loads(p)["topic"] == "writer.test"
            ]
        assert sorted(logged) == ["w-a", "w-c"]


def test_no_caller_is_answered_before_its_group_has_committed(db, db_url, writer):
    other = Database(db_url)  # another connection: it sees only what is committed
    try:
        seen_by_first: list[bool] = []
        release = hold(writer)
        first = writer.submit(add_unit("w-first"))

        def slow_second(session):
            add_unit("w-second")(session)
            time.sleep(0.3)
            seen_by_first.append(first.done())  # the first job ran already, but its group has not committed

        second = writer.submit(slow_second)
        release.set()
        unit_id = first.result(10)
        with other.session() as s:  # answered: so it is in the store for everyone
            assert s.get(Department, unit_id).code == "w-first"
        second.result(10)
        assert seen_by_first == [False]
    finally:
        other.dispose()


def test_a_group_whose_commit_fails_runs_again_job_by_job(db, writer):
    state = {"armed": False, "fired": False}

    def fail_once(conn):  # the engine's "commit" is a real commit (releasing a savepoint is another event)
        if state["armed"] and not state["fired"]:
            state["fired"] = True
            raise RuntimeError("the commit failed")

    def arm_then_add(session):
        state["armed"] = True  # this job's group is the one whose commit fails
        return add_unit("w-r0")(session)

    event.listen(db.engine, "commit", fail_once)
    try:
        release = hold(writer)
        futures = [writer.submit(arm_then_add)] + [writer.submit(add_unit(f"w-r{i}")) for i in range(1, 5)]
        release.set()
        assert all(isinstance(f.result(10), int) for f in futures)
    finally:
        event.remove(db.engine, "commit", fail_once)
    assert state["fired"]
    assert codes(db) == [f"w-r{i}" for i in range(5)]
    assert writer.stats.retried_groups == 1


def test_many_threads_at_once_all_get_their_own_answer(db, writer):
    results: dict[int, int] = {}

    def client(n: int):
        results[n] = writer.run(add_unit(f"w-t{n:02d}"), timeout=20)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == list(range(16)) and len(set(results.values())) == 16
    with db.session() as s:
        stored = dict(s.execute(select(Department.code, Department.id).where(Department.code.like("w-t%"))).all())
    assert {f"w-t{n:02d}": results[n] for n in range(16)} == stored


def test_the_thread_ends_when_idle_and_starts_again(db):
    w = Writer(db, idle_s=0.1)
    try:
        assert isinstance(w.run(add_unit("w-idle1"), timeout=10), int)
        time.sleep(0.5)  # past idle_s: the thread has ended; the next job starts another
        assert isinstance(w.run(add_unit("w-idle2"), timeout=10), int)
    finally:
        w.close()
    assert codes(db) == ["w-idle1", "w-idle2"]
