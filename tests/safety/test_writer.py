"""The intake writer in a process of its own (SMARTCITY_SAFETY_WRITER=process, the production default), end to
end through the app on both stores: OsmAnd answers and what is stored, the gateway batch, events crossing
from the writer to the serving process's live subscribers, zone changes reaching the writer, a killed
writer replaced on demand, and a clean stop. No test leaves a writer process behind."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartcity.core import accounts
from smartcity.core.db import Database, utcnow
from smartcity.core.errors import Unavailable
from smartcity.safety import service
from smartcity.safety.common import current_engine
from smartcity.safety.engine import Ack, get_engine
from smartcity.safety.intake_api import GATEWAY_SCOPE
from smartcity.safety.models import Incident, PositionRow, RecentPositionRow, SafetyEvent, all_positions
from smartcity.safety.writer import WriterProcess
from tests.conftest import LiveServer, eventually, make_key, make_settings, signin
from tests.helpers import SSEReader
from tests.safety.helpers import HOME, csrf, east_of, fix, make_world, rows, traccar_query, walk_across

SOS_POINT = (37.4995, 127.0585)  # Daechi-dong, Gangnam: the district whose control room gets the incident


# --- the writer's processes -------------------------------------------------------------------------


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0]


def writer_children() -> list[int]:
    """This process's live children running the writer."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        info = _ppid_and_state(int(entry))
        if info and info[0] == os.getpid() and b"smartcity.safety.writer" in cmdline:
            found.append(int(entry))
    return found


def left_behind(pids) -> list[tuple[int, str]]:
    """Of the writer pids seen, those still our children (running, or exited and never reaped)."""
    out = []
    for pid in pids:
        info = _ppid_and_state(pid)
        if info and info[0] == os.getpid():
            out.append((pid, info[1]))
    return out


def writer_of(ctx) -> WriterProcess:
    """The app's engine: a WriterProcess with a live child (remembered, to check it has ended at teardown)."""
    engine = get_engine(ctx.db, ctx.settings, ctx.app.state.profile)
    assert isinstance(engine, WriterProcess)
    assert engine.running and engine.process.pid != os.getpid()
    ctx.pids.add(engine.process.pid)
    return engine


def _check_nothing_left(pids) -> None:
    leftovers = writer_children()
    for pid in leftovers:  # never leave one running, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert leftovers == [], "writer processes still running after the app stopped"
    assert left_behind(pids) == [], "writer processes never reaped"


@contextmanager
def _process_app(db_url, tmp_path):
    """An app in process mode with make_world's registry; checks at the end that no writer is left."""
    from smartcity.app import create_app

    db = Database(db_url)
    world = make_world(db)
    settings = make_settings(db_url, tmp_path, safety_writer="process")
    app = create_app(settings, db)
    ctx = SimpleNamespace(db=db, w=world, app=app, settings=settings, pids=set())
    try:
        yield ctx
        _check_nothing_left(ctx.pids)
    finally:
        db.dispose()


def _listening(db) -> None:
    if db.is_postgres:
        assert db.events.listening.wait(10), "the serving process is not listening for NOTIFY"


@pytest.fixture
def intake(db_url, tmp_path):
    """The app under TestClient (startup and shutdown hooks run)."""
    with _process_app(db_url, tmp_path) as ctx, TestClient(ctx.app) as client:
        _listening(ctx.db)
        ctx.client = client
        writer_of(ctx)  # started by the app's startup hook
        yield ctx


@pytest.fixture
def live(db_url, tmp_path):
    """The same app served by uvicorn on a port, for the event stream."""
    with _process_app(db_url, tmp_path) as ctx:
        db = ctx.db
        with LiveServer(ctx.app) as server:
            _listening(db)
            ctx.url = server.url
            eventually(lambda: current_engine(db) is not None and current_engine(db).running)
            writer_of(ctx)
            yield ctx
            # End the event streams from the server's side (as its bus does at shutdown), or uvicorn would
            # wait for their next heartbeat before running the shutdown hooks.
            db.events.end_streams()
        assert not server.thread.is_alive(), "the live server did not shut down"


def ago(**delta):
    return (utcnow() - timedelta(**delta)).replace(microsecond=0)


def count_rows(db) -> int:
    """Stored positions, staged (the SQLite writer's staging table) or not."""
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(all_positions()))


def count_in(db, table) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(table))


def stored_at(db, device_id: int, at) -> int:
    p = all_positions()
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(p).where(p.c.device_id == device_id, p.c.fix_time == at))


# --- 1. OsmAnd through the writer process ---------------------------------------------------------


def test_osmand_answers_come_from_the_writer_process(intake):
    c, db, w = intake.client, intake.db, intake.w
    engine = writer_of(intake)
    pid = engine.process.pid
    assert get_engine(db) is engine  # one per store: every adapter uses this one

    at = ago(minutes=2)
    r = c.get(f"/osmand?{traccar_query(w.device, at)}")
    assert (r.status_code, r.content) == (200, b"")
    [row] = rows(db)  # committed by the writer before the 200 was sent
    assert (row.device_id, row.fix_time, row.lat, row.lon, row.battery, row.protocol) == (
        w.device_id,
        at,
        HOME[0],
        HOME[1],
        87,
        "osmand",
    )

    for _ in range(2):  # Traccar Client resends when it missed the answer
        r = c.get(f"/osmand?{traccar_query(w.device, at)}")
        assert (r.status_code, r.content) == (200, b"")
    assert len(rows(db)) == 1

    r = c.get(f"/osmand?{traccar_query('no-such-phone', at)}")
    assert r.status_code == 400 and r.text  # Traccar answers an unknown device so

    # A person registered after the writer started, whose guardian gave no consent: the writer finds the
    # device in the store (403, not 404) and stores nothing.
    with db.session() as s:
        person = service.add_person(s, "elderly", "Park Sunja", actor="test")
        service.link_guardian(s, person.id, w.guardian_id, "son", actor="test")
        other = service.add_device(s, person.id, "phone-without-consent", actor="test").id
    r = c.get(f"/osmand?{traccar_query('phone-without-consent', at)}")
    assert r.status_code == 403 and "consent" in r.text
    assert rows(db, device_id=other) == []

    now = utcnow().replace(microsecond=0)
    for query in (
        traccar_query(w.device, now, lat="91.0"),  # out of range: refused by the writer's engine
        traccar_query(w.device, now, lon="abc"),  # not a number: refused by the decoder
        traccar_query(w.device, now, batt="150"),
        traccar_query(w.device, now + timedelta(hours=2)),  # in the future
        "id=&lat=37.5&lon=127",
    ):
        r = c.get(f"/osmand?{query}")
        assert r.status_code == 400, (query, r.text)
        assert r.text
    assert len(rows(db)) == 1
    assert engine.running and engine.process.pid == pid  # refusals do not cost the writer its life


# --- 2. the gateway batch -------------------------------------------------------------------------


def test_a_gateway_batch_gets_results_in_order_and_the_good_ones_are_stored(intake):
    c, db, w = intake.client, intake.db, intake.w
    with db.session() as s:
        _, key = accounts.create_api_key(s, "tag vendor gateway", scope=GATEWAY_SCOPE)
    start = ago(minutes=30)
    good = [
        {
            "device": w.device,
            "time": (start + timedelta(seconds=i)).isoformat(),
            "lat": p[0],
            "lon": p[1],
            "accuracy": 8,
            "battery": 80,
            "attributes": {"rssi": -71},
        }
        for i, p in enumerate(east_of(HOME, 10 * i) for i in range(4))
    ]
    items = [
        good[0],
        {**good[1], "device": "no-such-tag"},
        good[1],
        {**good[2], "lat": "north"},  # refused by the decoder, in the serving process
        {**good[2], "lon": 181},  # refused by the writer's engine
        {**good[2], "time": (utcnow() + timedelta(days=1)).isoformat()},
        good[0],  # a replay inside the batch
        {**good[3], "alarm": "sos"},
        "not an object",
    ]
    r = c.post("/api/safety/positions", json={"positions": items}, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [(x["status"], x.get("code")) for x in doc["results"]] == [
        ("ok", None),
        ("error", "unknown_device"),
        ("ok", None),
        ("error", "invalid_position"),
        ("error", "invalid_position"),
        ("error", "future_fix"),
        ("duplicate", None),
        ("ok", None),
        ("error", "invalid_position"),
    ]
    assert doc["results"][1]["http_status"] == 404 and doc["results"][3]["details"][0]["field"] == "lat"
    assert (doc["stored"], doc["duplicates"], doc["errors"]) == (3, 1, 5)
    got = rows(db)
    assert len(got) == [x["status"] for x in doc["results"]].count("ok")
    assert [(r.fix_time.isoformat(), r.alarm, r.attributes) for r in got] == [
        (good[0]["time"], None, {"rssi": -71}),
        (good[1]["time"], None, {"rssi": -71}),
        (good[3]["time"], "sos", {"rssi": -71}),
    ]
    with db.session() as s:
        assert s.scalars(select(Incident.kind)).all() == ["sos"]
    # The whole batch again: the stored ones are duplicates, nothing doubles.
    again = c.post("/api/safety/positions", json={"positions": items}, headers={"X-API-Key": key}).json()
    assert (again["stored"], again["duplicates"], again["errors"]) == (0, 4, 5)
    assert count_rows(db) == 3


# --- 3. events from the writer reach the serving process's subscribers ----------------------------


def test_an_sos_in_the_writer_reaches_the_control_room_and_the_guardian_live(live):
    db, w = live.db, live.w
    url = f"{live.url}/api/events/stream?topics=safety."
    operator, guardian = make_key(db, "op-gangnam"), make_key(db, "mother")
    with (
        SSEReader(url, {"X-API-Key": operator}) as room,
        SSEReader(url, {"X-API-Key": guardian}) as mother,
        httpx.Client(timeout=30) as http,
    ):
        at = ago(seconds=20)
        r = http.get(f"{live.url}/osmand?{traccar_query(w.device, at, point=SOS_POINT, alarm='sos')}")
        assert r.status_code == 200, r.text
        with db.session() as s:
            incident = s.scalars(select(Incident)).one()
        for stream in (room, mother):  # the operator by district, the guardian by user: both crossed
            [opened] = eventually(lambda stream=stream: stream.of("safety.incident.opened"), timeout=10)
            assert (opened["id"], opened["person_id"], opened["kind"], opened["district"]) == (
                incident.id,
                w.person_id,
                "sos",
                "11230",
            )
        # A later fix: its live position comes after the incident on the same path; by then the incident
        # event has arrived exactly once.
        later = at + timedelta(seconds=10)
        assert http.get(f"{live.url}/osmand?{traccar_query(w.device, later, point=SOS_POINT)}").status_code == 200
        eventually(lambda: [p for p in mother.of("safety.position") if p["fix_time"] == later.isoformat()], timeout=10)
        eventually(lambda: [p for p in room.of("safety.position") if p["fix_time"] == later.isoformat()], timeout=10)
        assert len(mother.of("safety.incident.opened")) == 1 and len(room.of("safety.incident.opened")) == 1


# --- 4. changes in the serving process reach the writer -------------------------------------------


def _events(db, person_id):
    with db.session() as s:
        return [
            (e.kind, e.zone_id)
            for e in s.scalars(
                select(SafetyEvent).where(SafetyEvent.person_id == person_id).order_by(SafetyEvent.at, SafetyEvent.id)
            )
        ]


def test_a_zone_added_in_the_serving_process_is_used_by_the_running_writer(intake):
    c, db, w = intake.client, intake.db, intake.w
    engine = writer_of(intake)
    pid = engine.process.pid
    start = ago(minutes=30)
    west = east_of(HOME, -300)
    walk = [east_of(west, 20 * i) for i in range(31)]  # 300 m west of home, through it, to 300 m east
    # A first fix far from home, before the zone exists: no event.
    assert c.get(f"/osmand?{traccar_query(w.device, start, point=walk[0])}").status_code == 200

    signin(c, "mother")
    r = c.post(
        f"/api/safety/wards/{w.person_id}/zones",
        headers=csrf(c),
        json={"name": "Home", "lat": HOME[0], "lon": HOME[1], "radius_m": 100},
    )
    assert r.status_code == 201, r.text
    home_zone = r.json()["id"]
    assert engine.process.pid == pid  # the same writer: it reloaded, it was not restarted

    for i, point in enumerate(walk[1:], start=1):
        r = c.get(f"/osmand?{traccar_query(w.device, start + timedelta(seconds=10 * i), point=point)}")
        assert r.status_code == 200, r.text
    assert count_rows(db) == len(walk)
    assert _events(db, w.person_id) == [("arrival", home_zone), ("departure", home_zone)]
    alerts = c.get(f"/api/safety/wards/{w.person_id}/alerts").json()["alerts"]
    assert {(a["kind"], a["zone_id"]) for a in alerts} == {("arrival", home_zone), ("departure", home_zone)}


# --- 5. a killed writer is replaced on demand -----------------------------------------------------


def test_a_killed_writer_is_replaced_and_nothing_is_stored_twice(intake):
    c, db, w = intake.client, intake.db, intake.w
    engine = writer_of(intake)
    first = engine.process
    start = ago(minutes=20)
    assert c.get(f"/osmand?{traccar_query(w.device, start)}").status_code == 200

    os.kill(first.pid, signal.SIGKILL)
    eventually(lambda: first.poll() is not None)
    at = start + timedelta(seconds=10)
    r = c.get(f"/osmand?{traccar_query(w.device, at)}")
    assert r.status_code in (200, 503), r.text  # a new writer starts; this one may be told to retry
    # Traccar Client retries until it gets 200.
    eventually(lambda: c.get(f"/osmand?{traccar_query(w.device, at)}").status_code == 200, timeout=30, interval=0.2)
    second = writer_of(intake)
    assert second is engine and engine.process.pid != first.pid
    assert stored_at(db, w.device_id, at) == 1

    # The new writer serves as the first did.
    later = at + timedelta(seconds=10)
    assert c.get(f"/osmand?{traccar_query(w.device, later)}").status_code == 200
    assert count_rows(db) == 3


def test_positions_in_flight_when_the_writer_dies_are_acknowledged_or_refused_never_lost(intake):
    db, w = intake.db, intake.w
    engine = writer_of(intake)
    first = engine.process
    start = ago(minutes=40)
    fixes = [fix(w.device, start + timedelta(seconds=i), east_of(HOME, i)) for i in range(600)]
    futures = [engine.submit(p) for p in fixes[:300]]
    os.kill(first.pid, signal.SIGKILL)
    futures += [engine.submit(p) for p in fixes[300:]]  # some go to the dead writer, some start a new one
    acked, refused = [], []
    for p, future in zip(fixes, futures, strict=True):
        try:
            outcome = future.result(60)  # every one is answered
        except Unavailable:  # 503: the device retries
            refused.append(p)
        else:
            assert isinstance(outcome, Ack)
            acked.append(p)
    eventually(lambda: first.poll() is not None)
    with db.session() as s:
        stored = set(s.scalars(select(all_positions().c.fix_time)))
    assert all(p.fix_time in stored for p in acked)  # acknowledged means committed
    for p in refused:  # the retry: stored now, or found stored already (a duplicate)
        assert isinstance(eventually(lambda p=p: _retry(engine, p), timeout=30), Ack)
    assert writer_of(intake).process.pid != first.pid
    assert count_rows(db) == len(fixes)


def _retry(engine, p):
    try:
        return engine.intake_sync(p, timeout=30)
    except Unavailable:
        return None


# --- 6. a clean stop ------------------------------------------------------------------------------


def test_the_sqlite_writer_stages_positions_and_moves_them_into_the_keyed_table_at_start_and_stop(intake):
    c, db, w = intake.client, intake.db, intake.w
    engine = writer_of(intake)
    start = ago(minutes=55)
    for i in range(5):
        assert c.get(f"/osmand?{traccar_query(w.device, start + timedelta(seconds=i))}").status_code == 200
    staged_when_acked = count_in(db, RecentPositionRow)
    # A crash leaves staged rows behind; the next writer moves them at its start, before recovery reads.
    first = engine.process
    os.kill(first.pid, signal.SIGKILL)
    eventually(lambda: first.poll() is not None)
    later = start + timedelta(seconds=30)
    eventually(lambda: c.get(f"/osmand?{traccar_query(w.device, later)}").status_code == 200, timeout=30, interval=0.2)
    writer_of(intake)
    moved_at_start = count_in(db, PositionRow)
    engine.stop()
    if db.is_postgres:  # COPY straight into the partitions: nothing is staged
        assert staged_when_acked == 0
    else:
        assert staged_when_acked == 5
        assert moved_at_start >= 5
    assert count_in(db, RecentPositionRow) == 0
    assert count_in(db, PositionRow) == 6


def test_stop_stores_everything_it_was_given_and_the_child_exits(intake):
    c, db, w = intake.client, intake.db, intake.w
    engine = writer_of(intake)
    proc = engine.process
    start = ago(minutes=50)
    for i in range(3):
        assert c.get(f"/osmand?{traccar_query(w.device, start + timedelta(seconds=i))}").status_code == 200
    # And a burst not yet answered when the stop comes: the writer flushes what it holds before it ends.
    fixes = [fix(w.device, start + timedelta(seconds=10 + i), east_of(HOME, i)) for i in range(300)]
    futures = [engine.submit(p) for p in fixes]
    engine.stop()
    assert proc.poll() == 0  # it ended by itself, cleanly
    assert not engine.running
    assert all(isinstance(f.result(0), Ack) for f in futures)
    assert count_rows(db) == 3 + len(fixes)
    assert writer_children() == []


def test_owntracks_secrets_are_checked_and_refusals_audited_in_the_writer_process(intake):
    """The secret crosses to the writer process with the position and is checked there; its refusal comes
    back as the protocol's 401, and the writer process records it in the audit log."""
    import base64

    from smartcity.core.models import AuditEntry

    c, db, w = intake.client, intake.db, intake.w
    with db.session() as s:
        secret = service.add_device(s, w.person_id, "haneul/phone", "owntracks", actor="test").issued_secret
    at = ago(minutes=3)

    def post(password: str, when):
        auth = "Basic " + base64.b64encode(f"haneul:{password}".encode()).decode()
        return c.post(
            "/owntracks",
            headers={"X-Limit-U": "haneul", "X-Limit-D": "phone", "Authorization": auth},
            json={"_type": "location", "lat": HOME[0], "lon": HOME[1], "tst": int(when.timestamp()), "tid": "hn"},
        )

    assert post(secret, at).status_code == 200
    r = post("guess", at + timedelta(seconds=10))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "bad_credentials")
    assert c.get(f"/osmand?{traccar_query('haneul/phone', at + timedelta(seconds=20))}").status_code == 403
    assert len(rows(db)) == 1

    def refused():
        with db.session() as s:
            return sorted(
                e.detail["reason"] for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "device_refused"))
            )

    eventually(lambda: refused() == ["bad_secret", "protocol_not_allowed"])


# --- several writer processes, devices split between them -------------------------------------------


def test_two_writers_split_the_devices_and_answer_a_batch_in_order(db_url, tmp_path):
    """SMARTCITY_SAFETY_WRITERS=2: each device belongs to one writer (a stable hash of its identifier); a gateway
    batch spanning both is answered in its own order, a crossing of one device gives one arrival and one
    departure, and both processes end with the app."""
    from smartcity.app import create_app
    from smartcity.safety.writer import WriterPool, owner_of

    db = Database(db_url)
    w = make_world(db)
    idents = {}
    for i in range(40):  # identifiers until each writer owns two
        ident = f"tag-{i}"
        if sum(owner_of(x, 2) == owner_of(ident, 2) for x in idents) < 2:
            idents[ident] = None
        if len(idents) == 4:
            break
    assert {owner_of(x, 2) for x in idents} == {0, 1}
    with db.session() as s:
        for ident in idents:
            idents[ident] = service.add_device(s, w.person_id, ident, "osmand", actor="test").id
        _, key = accounts.create_api_key(s, "tag vendor gateway", scope=GATEWAY_SCOPE)
    settings = make_settings(db_url, tmp_path, safety_writer="process", safety_writers=2)
    ctx = SimpleNamespace(pids=set())
    try:
        with TestClient(create_app(settings, db)) as c:
            _listening(db)
            engine = get_engine(db)
            assert isinstance(engine, WriterPool) and engine.running
            ctx.pids = {p.pid for p in engine.processes}
            assert len(ctx.pids) == 2 and os.getpid() not in ctx.pids
            start = ago(minutes=20)
            items = [
                {"device": ident, "time": (start + timedelta(seconds=k)).isoformat(), "lat": HOME[0], "lon": HOME[1]}
                for k in range(3)
                for ident in idents
            ]
            items.insert(5, {**items[0], "device": "no-such-tag"})
            items.append(items[2])  # a replay, answered by its device's writer
            doc = c.post("/api/safety/positions", json={"positions": items}, headers={"X-API-Key": key}).json()
            assert [x["status"] for x in doc["results"]] == ["ok"] * 5 + ["error"] + ["ok"] * 7 + ["duplicate"]
            assert doc["results"][5]["code"] == "unknown_device"
            for ident, device_id in idents.items():
                assert len(rows(db, device_id=device_id)) == 3, ident
            for p in walk_across(w.device, start=ago(minutes=10)):  # OsmAnd through the device's own writer
                q = traccar_query(w.device, p.fix_time, (p.lat, p.lon))
                assert c.get(f"/osmand?{q}").status_code == 200
            with db.session() as s:
                kinds = [e.kind for e in s.scalars(select(SafetyEvent).where(SafetyEvent.person_id == w.person_id))]
            assert kinds == ["arrival", "departure"]
        _check_nothing_left(ctx.pids)
    finally:
        db.dispose()
