"""The event bus: delivery after commit only, audience filtering, SSE, and crossing processes on PostgreSQL."""

import asyncio

import httpx
import pytest

from smartcity.core.auth import Identity
from smartcity.core.events import Event, publish
from tests import synthetic
from tests.conftest import PASSWORD, eventually, make_key, make_user
from tests.helpers import SSEReader, run_async, run_cli, serve
from tests.servers import free_port, wait_for_port


def test_events_are_delivered_after_commit_and_dropped_on_rollback(db):
    """On both stores: nothing before commit, the committed event once, the rolled-back one never (on
    PostgreSQL through the bus's own LISTEN connection, as in a serving process)."""
    got: list[Event] = []
    db.events.on("test.", got.append)

    async def scenario():
        await db.events.start()
        if db.is_postgres:
            await asyncio.to_thread(db.events.listening.wait, 10)
        try:
            with db.session() as s:
                publish(s, "test.kept", {"n": 1})
                await asyncio.sleep(0.2)
                assert got == []  # never before commit
            with pytest.raises(RuntimeError), db.session() as s:
                publish(s, "test.dropped", {"n": 2})
                raise RuntimeError("roll back")
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # time for a wrongly delivered second event to arrive
        finally:
            await db.events.stop()

    run_async(scenario())
    assert [e.topic for e in got] == ["test.kept"]


def test_audience_rules():
    admin = Identity(user_id=1, role="admin", via="session")
    citizen = Identity(user_id=2, role="citizen", via="session")
    guardian = Identity(user_id=3, role="guardian", via="session")
    operator_a = Identity(user_id=4, role="operator", via="session", district_code="11230")
    assert Event("x", {}).visible_to(citizen)
    assert not Event("x", {}, audience="users.manage").visible_to(citizen)
    assert Event("x", {}, audience="users.manage").visible_to(admin)
    assert Event("x", {}, users=[3]).visible_to(guardian)
    assert not Event("x", {}, users=[3]).visible_to(citizen)
    assert Event("x", {}, district="11230").visible_to(operator_a)
    assert not Event("x", {}, district="11240").visible_to(operator_a)


def test_a_personal_event_is_never_let_through_by_events_all():
    """A module's personal topics keep to their scope whatever else the subscriber may do (an administrator
    holds events.all); ordinary events still reach events.all."""
    from smartcity.core.events import Admission, may_carry_personal, personal, personal_topic

    def admit(db, identity, event):
        return Admission(True, "read", "thing", event.data.get("id"))

    personal("test.personal.", admit, lambda event: ("thing", event.data.get("id")))
    admin = Identity(user_id=1, role="admin", via="session")
    guardian = Identity(user_id=3, role="guardian", via="session")
    mine = Event("test.personal.seen", {"id": 7}, users=[3])
    assert mine.personal and personal_topic("test.personal.seen").admit is admit
    assert not mine.visible_to(admin)
    assert mine.visible_to(guardian)
    assert Event("test.ordinary", {}, users=[3]).visible_to(admin)
    assert may_carry_personal(()) and may_carry_personal(("test.",)) and may_carry_personal(("test.personal.x",))
    assert not may_carry_personal(("report.",))


def test_sse_stream_delivers_only_what_the_subscriber_may_see(live_app):
    db = live_app.db
    make_user(db, "admin1", "admin")
    make_user(db, "minji", "citizen")
    admin_key, citizen_key = make_key(db, "admin1"), make_key(db, "minji")
    url = f"{live_app.url}/api/events/stream?topics=user."
    with (
        SSEReader(url, {"X-API-Key": admin_key}) as admin_stream,
        SSEReader(url, {"X-API-Key": citizen_key}) as citizen_stream,
    ):
        r = httpx.post(
            f"{live_app.url}/api/users",
            headers={"X-API-Key": admin_key},
            json={"username": "seoyeon", "password": PASSWORD, "role": "guardian"},
        )
        assert r.status_code == 201
        created = eventually(lambda: admin_stream.of("user.created"))
        assert created[0]["username"] == "seoyeon"
        assert citizen_stream.of("user.created") == []


@pytest.mark.postgres
def test_an_event_published_in_one_process_reaches_an_sse_client_of_another(postgres_url, tmp_path, synthetic_dir):
    from smartcity.core.db import Database

    db = Database(postgres_url)
    make_user(db, "admin1", "admin")
    key = make_key(db, "admin1")
    db.dispose()
    ports = [free_port(), free_port()]
    procs = [serve(postgres_url, tmp_path / f"var{p}", p) for p in ports]
    try:
        for port in ports:
            wait_for_port(port, proc=procs[ports.index(port)])
            eventually(
                lambda port=port: httpx.get(f"http://127.0.0.1:{port}/healthz").json().get("events") == "listening"
            )
        a, b = (f"http://127.0.0.1:{p}" for p in ports)
        with SSEReader(f"{b}/api/events/stream", {"X-API-Key": key}) as stream:
            r = httpx.post(
                f"{a}/api/users",
                headers={"X-API-Key": key},
                json={"username": "seoyeon", "password": PASSWORD, "role": "guardian"},
            )
            assert r.status_code == 201, r.text
            assert eventually(lambda: stream.of("user.created"))[0]["username"] == "seoyeon"

            # A third process (the CLI) imports boundaries; both servers rebuild their spatial index.
            assert httpx.get(f"{b}/api/geo/locate?lat=37.5116&lon=127.0594").json()["neighbourhood"] is None
            hoods = synthetic_dir / "neighbourhoods.geojson"
            run_cli(postgres_url, "import", "neighbourhoods", str(hoods))
            assert eventually(lambda: stream.of("geo.changed"))
            holding = synthetic.codes_at(hoods, 37.5116, 127.0594)
            for base in (a, b):
                hood = httpx.get(f"{base}/api/geo/locate?lat=37.5116&lon=127.0594").json()["neighbourhood"]
                assert hood and hood["code"] in holding
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def test_transient_events_of_a_transaction_are_delivered_in_order_and_on_postgresql_notified_at_once(db):
    """Live readings (transient) reach the bus after commit, all of them and in order, none after a rollback; on
    PostgreSQL the transaction sends them with one pg_notify statement, however many there are."""
    from sqlalchemy import event as sa_event

    got: list[Event] = []
    db.events.on("test.live", got.append)
    notify_statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if "pg_notify" in statement:
            notify_statements.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", count)

    async def scenario():
        await db.events.start()
        if db.is_postgres:
            await asyncio.to_thread(db.events.listening.wait, 10)
        try:
            with db.session() as s:
                for n in range(50):
                    publish(s, "test.live", {"n": n}, transient=True)
            with pytest.raises(RuntimeError), db.session() as s:
                publish(s, "test.live", {"n": -1}, transient=True)
                raise RuntimeError("roll back")
            for _ in range(100):
                if len(got) >= 50:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
        finally:
            await db.events.stop()

    run_async(scenario())
    sa_event.remove(db.engine, "before_cursor_execute", count)
    assert [e.data["n"] for e in got] == list(range(50))
    if db.is_postgres:
        assert len(notify_statements) == 1


def test_a_released_or_rolled_back_savepoint_neither_delivers_nor_drops_the_transactions_events(db):
    """A savepoint (begin_nested) inside a transaction that publishes: its release delivers nothing yet (the
    enclosing transaction may still roll back, and a subscriber reading the store would not find the change —
    the safety console missed SOS incidents this way), its rollback drops only what it published itself."""
    got: list[Event] = []
    db.events.on("test.", got.append)
    seen_inside: list[list[str]] = []

    async def scenario():
        await db.events.start()
        if db.is_postgres:
            await asyncio.to_thread(db.events.listening.wait, 10)
        try:
            with db.session() as s:
                publish(s, "test.before", {"n": 1})
                publish(s, "test.live", {"n": 2}, transient=True)
                with s.begin_nested():
                    publish(s, "test.in_released", {"n": 3}, transient=True)
                with pytest.raises(RuntimeError), s.begin_nested():
                    publish(s, "test.in_rolled_back", {"n": 4}, transient=True)
                    raise RuntimeError("back to the savepoint")
                await asyncio.sleep(0.3)
                seen_inside.append([e.topic for e in got])
            for _ in range(100):
                if len(got) >= 3:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
        finally:
            await db.events.stop()

    run_async(scenario())
    assert seen_inside == [[]]
    assert sorted(e.topic for e in got) == ["test.before", "test.in_released", "test.live"]
