"""The safety service on both stores: registry and consent, zones, privacy rules (with audit), the
incident workflow, retention and the periodic checks, the CLI and the demo."""

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from smartcity.core import audit
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound, OutsideCity, PermissionDenied
from smartcity.core.models import AuditEntry
from smartcity.safety import service
from smartcity.safety.models import DeviceState, GuardianLink, Incident, PositionRow, SafetyEvent
from smartcity.safety.settings import SafetySettings
from tests.conftest import make_user
from tests.safety.helpers import GANGNAM, HOME, SCHOOL, fix, make_world


def _audits(db, action):
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# --- registry ---------------------------------------------------------------------------------------


def test_registry_rules(db):
    w = make_world(db)
    citizen = make_user(db, "kim", "citizen")
    with db.session() as s:
        with pytest.raises(InvalidInput):
            service.add_person(s, "dog", "Rex")
        with pytest.raises(Conflict):
            service.add_device(s, w.person_id, w.device)
        with pytest.raises(InvalidInput):
            service.add_device(s, w.person_id, "has space")
        with pytest.raises(NotFound):
            service.add_device(s, 999, "x1")
        with pytest.raises(InvalidInput) as e:
            service.link_guardian(s, w.person_id, citizen)
        assert e.value.code == "not_a_guardian"
        with pytest.raises(InvalidInput):
            service.record_consent(s, w.person_id, w.guardian_id, given_by="", basis="form")
    with db.session() as s:
        link = s.scalars(select(GuardianLink).where(GuardianLink.user_id == w.guardian_id)).one()
        assert link.consented and link.consent_by == "Kim Minji (mother)" and link.consent_basis == "form 17"
        assert link.consent_recorded_by == "test"
        assert service.guardian_ids(s, w.person_id) == [w.guardian_id]
        # A second guardian, linked but without consent, does not count until consent is recorded.
        service.link_guardian(s, w.person_id, w.other_guardian_id)
        assert service.guardian_ids(s, w.person_id) == [w.guardian_id]
        assert s.get(DeviceState, w.device_id) is not None
        assert service.control_room_code(GANGNAM) == "11230-control"
        consent_audit = audit.entries(s, object_type="safety_guardian", object_id=link.id)
        assert "consent" in [a.action for a in consent_audit]


def test_zone_validation(db):
    w = make_world(db)
    square = {
        "type": "Polygon",
        "coordinates": [
            [[127.056, 37.501], [127.058, 37.501], [127.058, 37.4995], [127.056, 37.4995], [127.056, 37.501]]
        ],
    }
    with db.session() as s:
        z = service.add_zone(
            s,
            service.ZoneIn(
                "Yard", polygon=square, schedule=[{"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "15:00"}]
            ),
            person_id=w.person_id,
        )
        assert service.zone_to_dict(z)["polygon"]["type"] == "Polygon"
        for bad in (
            service.ZoneIn("x", 37.5, 127.05, 5),
            service.ZoneIn("", 37.5, 127.05, 100),
            service.ZoneIn("x", polygon={"type": "Point", "coordinates": [127, 37.5]}),
            service.ZoneIn(
                "bow",
                polygon={
                    "type": "Polygon",
                    "coordinates": [[[127.05, 37.5], [127.06, 37.51], [127.06, 37.5], [127.05, 37.51], [127.05, 37.5]]],
                },
            ),
            service.ZoneIn("x", 37.5, 127.05, 100, schedule=[{"days": [9]}]),
        ):
            with pytest.raises(InvalidInput):
                service.add_zone(s, bad, person_id=w.person_id)
        with pytest.raises(OutsideCity):
            service.add_zone(s, service.ZoneIn("Busan", 35.18, 129.07, 100), person_id=w.person_id)
        with pytest.raises(InvalidInput):
            service.add_zone(s, service.ZoneIn("x", 37.5, 127.05, 100), person_id=None, kind="safe")


def test_guardians_edit_their_wards_zones_only(db):
    w = make_world(db)
    mother, stranger = w.identity(db, w.guardian_id), w.identity(db, w.other_guardian_id)
    with db.session() as s:
        z = service.save_zone(s, mother, w.person_id, service.ZoneIn("Home", HOME[0], HOME[1], 80))
        zone_id = z.id
    with pytest.raises(PermissionDenied), db.session() as s:
        service.save_zone(s, stranger, w.person_id, service.ZoneIn("Mine", HOME[0], HOME[1], 80))
    assert _audits(db, "guardian_denied")
    with db.session() as s:
        service.remove_zone(s, mother, w.person_id, zone_id)
        assert zone_id not in [z.id for z in service.zones(s, w.person_id)]


# --- privacy ----------------------------------------------------------------------------------------


def test_guardians_read_their_ward_and_every_read_is_audited(db, engine):
    w = make_world(db)
    engine.intake_sync(fix(w.device, utcnow() - timedelta(minutes=2), SCHOOL))
    engine.intake_sync(fix(w.device, utcnow() - timedelta(minutes=1), HOME))
    mother = w.identity(db, w.guardian_id)
    with db.session() as s:
        here = service.current_position(s, mother, w.person_id, ip="10.0.0.1")
        assert (here["lat"], here["lon"]) == HOME
        path = service.track(s, mother, w.person_id)
        assert [(p["lat"], p["lon"]) for p in path] == [SCHOOL, HOME]
        assert service.wards(s, mother) == [{"id": w.person_id, "kind": "child", "name": "Kim Haneul"}]
    reads = _audits(db, "read_location")
    assert len(reads) == 1 and reads[0].actor_id == w.guardian_id and reads[0].ip == "10.0.0.1"
    assert reads[0].object_id == str(w.person_id)
    assert _audits(db, "read_track")[0].detail["points"] == 2


def test_a_guardian_asking_for_someone_elses_ward_is_refused_and_audited(db, engine):
    w = make_world(db)
    engine.intake_sync(fix(w.device, utcnow(), HOME))
    stranger = w.identity(db, w.other_guardian_id)
    for read in (service.current_position, service.track, service.alerts):
        with pytest.raises(PermissionDenied), db.session() as s:
            read(s, stranger, w.person_id)
    denied = _audits(db, "location_denied") + _audits(db, "guardian_denied")
    assert len(denied) == 3 and {d.actor_id for d in denied} == {w.other_guardian_id}
    assert not _audits(db, "read_location")
    # Linked but without consent: still refused.
    with db.session() as s:
        service.link_guardian(s, w.person_id, w.other_guardian_id)
    with pytest.raises(PermissionDenied), db.session() as s:
        service.current_position(s, stranger, w.person_id)


def test_operators_see_a_person_only_while_an_incident_is_open(db, engine):
    w = make_world(db)
    op, other_op = w.identity(db, w.operator_id), w.identity(db, w.other_operator_id)
    admin = w.identity(db, w.admin_id)
    engine.intake_sync(fix(w.device, utcnow() - timedelta(hours=3), SCHOOL))  # long before the incident
    engine.intake_sync(fix(w.device, utcnow() - timedelta(minutes=30), SCHOOL))
    for who in (op, admin):
        with pytest.raises(PermissionDenied), db.session() as s:
            service.current_position(s, who, w.person_id)
    engine.intake_sync(fix(w.device, utcnow(), HOME, alarm="sos"))
    with db.session() as s:
        incident_id = s.scalar(select(Incident.id))
        assert service.current_position(s, op, w.person_id)["lat"] == HOME[0]
        # The track starts an hour before the incident: not the fix of three hours ago.
        assert len(service.track(s, op, w.person_id, since=utcnow() - timedelta(days=1))) == 2
    for who in (other_op, admin):
        with pytest.raises(PermissionDenied), db.session() as s:
            service.current_position(s, who, w.person_id)
    with db.session() as s:
        service.resolve(s, op, incident_id, "found at home")
    with pytest.raises(PermissionDenied), db.session() as s:
        service.current_position(s, op, w.person_id)
    with db.session() as s:
        view = service.incident_view(s, op, incident_id)
        assert view["status"] == "resolved" and view["position"] is None and view["lat"] is None


# --- incidents --------------------------------------------------------------------------------------


def test_incident_workflow_is_timestamped_audited_and_published(db, engine):
    w = make_world(db)
    seen = []
    db.events.on("safety.incident.", lambda ev: seen.append((ev.topic, ev.district, ev.audience, ev.users)))
    engine.intake_sync(fix(w.device, utcnow(), HOME, alarm="sos"))
    op, other_op = w.identity(db, w.operator_id), w.identity(db, w.other_operator_id)
    mother = w.identity(db, w.guardian_id)
    with db.session() as s:
        queue = service.list_incidents(s, op)
        assert [(i["kind"], i["status"], i["person_name"]) for i in queue] == [("sos", "open", "Kim Haneul")]
        incident_id = queue[0]["id"]
        assert service.list_incidents(s, other_op) == []
    for who, step in ((other_op, service.acknowledge), (mother, service.acknowledge)):
        with pytest.raises(PermissionDenied), db.session() as s:
            step(s, who, incident_id)
    with db.session() as s:
        service.acknowledge(s, op, incident_id)
    with pytest.raises(Conflict), db.session() as s:
        service.acknowledge(s, op, incident_id)
    with pytest.raises(InvalidInput), db.session() as s:
        service.dispatch(s, op, incident_id, "911")
    with db.session() as s:
        service.dispatch(s, op, incident_id, "112", reference="SEOUL-PD-2026-0042", notes="patrol car 7 sent")
        service.resolve(s, op, incident_id, "child found safe")
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc.status == "resolved"
        assert inc.acknowledged_by == inc.dispatched_by == inc.resolved_by == w.operator_id
        assert inc.opened_at <= inc.acknowledged_at <= inc.dispatched_at <= inc.resolved_at
        assert (inc.dispatch_agency, inc.dispatch_reference) == ("112", "SEOUL-PD-2026-0042")
        actions = [a.action for a in audit.entries(s, object_type="safety_incident", object_id=incident_id)]
        assert set(actions) >= {"open", "acknowledged", "dispatched", "resolved"}
    with pytest.raises(Conflict), db.session() as s:
        service.resolve(s, op, incident_id)
    if not db.is_postgres:  # on PostgreSQL events come back through LISTEN, which this test does not run
        topics = [t for t, district, audience, _ in seen if audience == "safety.operate"]
        assert topics == [
            "safety.incident.opened",
            "safety.incident.acknowledged",
            "safety.incident.dispatched",
            "safety.incident.resolved",
        ]
        assert {d for _, d, a, _ in seen if a} == {GANGNAM}
        assert any(users == [w.guardian_id] for *_, users in seen)
    assert not engine.open_incidents.get(w.person_id)


def test_incident_view_shows_position_track_and_nearest_cameras(db, engine):
    from smartcity.assets import service as assets

    w = make_world(db)
    with db.session() as s:
        near = assets.create_asset(s, "cctv", HOME[0] + 0.0002, HOME[1], name="corner camera", actor="test").id
        assets.create_asset(s, "cctv", HOME[0] + 0.01, HOME[1], name="far camera", actor="test")
    engine.intake_sync(fix(w.device, utcnow() - timedelta(minutes=5), SCHOOL))
    engine.intake_sync(fix(w.device, utcnow(), HOME, alarm="sos"))
    op = w.identity(db, w.operator_id)
    with db.session() as s:
        incident_id = s.scalar(select(Incident.id))
        view = service.incident_view(s, op, incident_id)
    assert view["person"]["name"] == "Kim Haneul"
    assert (view["position"]["lat"], view["position"]["lon"]) == HOME
    assert len(view["track"]) == 2
    assert view["cameras"][0]["id"] == near and 15 < view["cameras"][0]["distance_m"] < 30
    assert [c["distance_m"] for c in view["cameras"]] == sorted(c["distance_m"] for c in view["cameras"])
    assert _audits(db, "read_incident")


# --- alerts, jobs, retention ------------------------------------------------------------------------


def test_alert_history_for_guardians(db, engine):
    w = make_world(db)
    engine.intake_sync(fix(w.device, utcnow(), HOME, battery=5))
    with db.session() as s:
        history = service.alerts(s, w.identity(db, w.guardian_id), w.person_id)
    assert [a["kind"] for a in history] == ["low_battery"]
    assert _audits(db, "read_alerts")


def test_silent_devices_are_reported_once(db, engine, settings):
    w = make_world(db)
    engine.intake_sync(fix(w.device, utcnow() - timedelta(minutes=1), HOME))
    later = utcnow() + timedelta(minutes=settings.of(SafetySettings).silent_minutes + 1)
    assert service.check_silent(db, settings, now=later) == 1
    assert service.check_silent(db, settings, now=later) == 0
    with db.session() as s:
        ev = s.scalars(select(SafetyEvent).where(SafetyEvent.kind == "silent")).one()
        assert ev.data["minutes"] >= settings.of(SafetySettings).silent_minutes
    # A new fix clears the flag (the engine notices the job moved the row's version).
    engine.intake_sync(fix(w.device, utcnow(), HOME))
    with db.session() as s:
        assert "silent" not in (s.get(DeviceState, w.device_id).flags or {})


def test_absence_from_a_scheduled_zone(db, engine, settings):
    from smartcity.core.context import context_of

    w = make_world(db)
    with db.session() as s:
        service.update_zone(
            s,
            w.school_zone,
            service.ZoneIn(
                "School",
                SCHOOL[0],
                SCHOOL[1],
                100,
                schedule=[{"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "15:00"}],
            ),
        )
    kst = context_of(db).profile.tz
    wednesday = datetime.now(kst).date() - timedelta(days=(datetime.now(kst).weekday() - 2) % 7)

    def at(hh, mm, day=wednesday):
        return datetime(day.year, day.month, day.day, hh, mm, tzinfo=kst).astimezone(UTC)

    assert service.check_absence(db, settings, now=at(8, 50)) == 0  # within the grace period
    assert service.check_absence(db, settings, now=at(9, 1)) == 1  # not at school by 09:00
    assert service.check_absence(db, settings, now=at(9, 2)) == 0  # once per day
    assert service.check_absence(db, settings, now=at(9, 1, wednesday - timedelta(days=3))) == 0  # Sunday
    # Another day, the child is at school: no alert.
    thursday = wednesday + timedelta(days=1)
    with db.session() as s:
        st = s.get(DeviceState, w.device_id)
        st.zones = {str(w.school_zone): {"s": "in", "c": None, "n": 0, "t": None}}
        st.fix_time, st.lat, st.lon, st.version = utcnow(), SCHOOL[0], SCHOOL[1], st.version + 1
    assert service.check_absence(db, settings, now=at(9, 1, thursday)) == 0
    with db.session() as s:
        ev = s.scalars(select(SafetyEvent).where(SafetyEvent.kind == "absence")).one()
        assert ev.zone_id == w.school_zone and ev.data == {"expected_from": "08:30"}


def test_retention_purges_old_history(db, settings):
    w = make_world(db)
    now = utcnow()
    with db.session() as s:
        for days in (40, 31, 29, 1):
            s.add(
                PositionRow(
                    device_id=w.device_id,
                    person_id=w.person_id,
                    fix_time=now - timedelta(days=days),
                    received_at=now,
                    lat=HOME[0],
                    lon=HOME[1],
                    protocol="test",
                    outside_city=False,
                )
            )
            s.add(SafetyEvent(kind="arrival", person_id=w.person_id, at=now - timedelta(days=days)))
    assert service.purge_history(db, settings, now=now) == 2
    with db.session() as s:
        left = sorted((now - t).days for t in s.scalars(select(PositionRow.fix_time)))
        assert left == [1, 29]
        assert s.scalar(select(func.count()).select_from(SafetyEvent)) == 2
        purge = audit.entries(s, object_type="safety_positions")[0]
        assert purge.action == "purge" and purge.detail["positions"] == 2
    assert service.purge_history(db, settings, now=now) == 0


@pytest.mark.postgres
def test_retention_drops_whole_day_partitions_on_postgresql(postgres_url, tmp_path):
    """Days wholly before the cutoff go with their partition; the cutoff's own day and the default partition
    are deleted row by row up to the cutoff; newer days stay; the coming days' partitions are made."""
    from smartcity.core.batchstore import PostgresBatchStore
    from smartcity.core.db import Database
    from tests.conftest import make_settings

    db = Database(postgres_url)
    try:
        settings = make_settings(postgres_url, tmp_path)
        w = make_world(db)
        now = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)  # retention 30 days: the cutoff is 1 March, 12:00
        store = PostgresBatchStore()
        with db.engine.begin() as conn:
            store.ensure_daily_partitions(conn, "safety_positions", datetime(2026, 2, 27).date(), now.date())
        ages = {
            "feb27": now - timedelta(days=32),
            "feb28": now - timedelta(days=31),
            "mar1_early": now - timedelta(days=30, hours=3),
        }
        ages |= {"mar1_late": now - timedelta(days=29, hours=21), "mar30": now - timedelta(days=1)}
        ages["default_old"] = now - timedelta(days=400)  # before any daily partition: in the default one
        with db.session() as s:
            for at in ages.values():
                s.add(
                    PositionRow(
                        device_id=w.device_id,
                        person_id=w.person_id,
                        fix_time=at,
                        received_at=at,
                        lat=HOME[0],
                        lon=HOME[1],
                        protocol="test",
                        outside_city=False,
                    )
                )
        assert service.purge_history(db, settings, now=now) == 4
        with db.session() as s:
            assert sorted(s.scalars(select(PositionRow.fix_time))) == [ages["mar1_late"], ages["mar30"]]
            purge = audit.entries(s, object_type="safety_positions")[0]
            assert purge.detail["partitions_dropped"] == ["safety_positions_20260227", "safety_positions_20260228"]
        with db.engine.connect() as conn:
            days = {d for d in store.partitions(conn, "safety_positions").values() if d is not None}
        assert min(days) == datetime(2026, 3, 1).date()  # the cutoff's own day is kept: it holds newer rows
        assert {datetime(2026, 4, d).date() for d in (1, 2, 3)} <= days  # made ahead
    finally:
        db.dispose()


def test_retention_runs_as_a_scheduled_job(db, settings):
    from smartcity.core.jobs import Scheduler
    from smartcity.core.module import declared, jobs

    assert {"safety.retention", "safety.silent", "safety.absence"} <= {j.name for j in jobs(declared())}
    w = make_world(db)
    old = utcnow() - timedelta(days=45)
    with db.session() as s:
        s.add(
            PositionRow(
                device_id=w.device_id,
                person_id=w.person_id,
                fix_time=old,
                received_at=old,
                lat=HOME[0],
                lon=HOME[1],
                protocol="test",
                outside_city=False,
            )
        )
    Scheduler(db, settings).run_due()  # a new scheduler: every job is due
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PositionRow)) == 0


# --- CLI and demo -------------------------------------------------------------------------------------


def test_cli_and_demo(sqlite_url, monkeypatch, tmp_path):
    from smartcity.cli import main
    from smartcity.core.city import load_profile
    from smartcity.core.db import Database
    from smartcity.core.demo import load_demo
    from smartcity.settings import get_settings

    monkeypatch.setenv("SMARTCITY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    db = Database(sqlite_url)
    try:
        lines = list(load_demo(db, load_profile("seoul")))
        assert any(line.startswith("safety: 2 protected persons") for line in lines)
        assert any("already registered" in line for line in service.demo(db, load_profile("seoul")))
        runner = CliRunner()
        out = runner.invoke(main, ["safety", "devices"])
        assert out.exit_code == 0 and "demo-child-1" in out.output and "demo-elder-1" in out.output
        assert runner.invoke(main, ["safety", "person-add", "Lee Oksun", "--kind", "elderly"]).exit_code == 0
        person = runner.invoke(main, ["safety", "persons"]).output.strip().splitlines()[-1].split("\t")[0]
        added = runner.invoke(main, ["safety", "device-add", "oksun-tag", "--person", person])
        assert added.exit_code == 0, added.output
        again = runner.invoke(main, ["safety", "device-add", "oksun-tag", "--person", person])
        assert again.exit_code == 2 and "already registered" in again.output
        consent = runner.invoke(
            main,
            [
                "safety",
                "consent",
                "--person",
                person,
                "--guardian",
                "guardian",
                "--given-by",
                "Lee Oksun herself",
                "--basis",
                "signed form",
            ],
        )
        assert consent.exit_code == 0, consent.output
        listed = runner.invoke(main, ["safety", "devices", "--json"]).output
        assert '"identifier": "oksun-tag"' in listed
        with db.session() as s:
            guardian = s.scalar(select(GuardianLink.user_id).where(GuardianLink.person_id == int(person)))
            mother = service.wards(s, service_identity(s, guardian))
            assert {p["name"] for p in mother} == {"박하늘", "박순자", "Lee Oksun"}
    finally:
        get_settings.cache_clear()
        db.dispose()


def service_identity(s, user_id):
    from smartcity.core.auth import identity_of_user
    from smartcity.core.models import User

    return identity_of_user(s.get(User, user_id), "session")


def test_walk_helper_moves_at_the_given_speed():
    from smartcity.core.geo import haversine_m

    points = list(service.walk([HOME, SCHOOL], speed_m_s=2, interval_s=5, start=datetime(2026, 3, 4, tzinfo=UTC)))
    steps = [haversine_m(a[1], a[2], b[1], b[2]) for a, b in zip(points, points[1:], strict=False)]
    assert all(abs(d - 10) < 0.5 for d in steps)
    assert points[1][0] - points[0][0] == timedelta(seconds=5)


def _writer_under_load(db, settings):
    """An engine whose writer is the caller, one position a batch: while a batch is written the next one is
    queued, so the writer leaves a moved device's state row for its checkpoint (SAFETY_STATE_CHECKPOINT_S)."""
    from smartcity.safety.engine import SafetyEngine

    eng = SafetyEngine(db, settings)
    eng.start(writer_thread=False)
    eng.queue.batch_size = 1
    return eng


def test_the_current_position_is_the_newest_stored_one_when_the_state_row_waits_for_its_checkpoint(db, settings):
    w = make_world(db)
    eng = _writer_under_load(db, settings)
    start = utcnow() - timedelta(minutes=5)
    try:
        eng.submit(fix(w.device, start, HOME, battery=70.0))
        eng.write_queued()  # idle: the state row is written with the batch
        moved = eng.submit(fix(w.device, start + timedelta(seconds=30), SCHOOL, speed=1.5))
        eng.submit(fix(w.device, start + timedelta(seconds=40), SCHOOL))
        eng.write_queued()  # the next position queued: the state row is left as it was
        stored = moved.result(timeout=0).fix_time
        guardian = w.identity(db, w.guardian_id)
        with db.session() as s:
            assert s.get(DeviceState, w.device_id).fix_time < stored
            position = service.current_position(s, guardian, w.person_id)
        assert position["fix_time"] == stored.isoformat()
        assert (position["lat"], position["lon"], position["district"]) == (SCHOOL[0], SCHOOL[1], GANGNAM)
        assert position["speed"] == 1.5
        assert position["battery"] == 70.0  # not sent with the newer fix: the last known
    finally:
        eng.stop()


def test_a_device_is_not_silent_when_its_newest_stored_position_is_recent(db, settings):
    w = make_world(db)
    eng = _writer_under_load(db, settings)
    minutes = settings.of(SafetySettings).silent_minutes
    start = utcnow() - timedelta(minutes=minutes + 5)
    try:
        eng.submit(fix(w.device, start, HOME))
        eng.write_queued()
        eng.submit(fix(w.device, utcnow() - timedelta(seconds=20), HOME))
        eng.submit(fix(w.device, utcnow() - timedelta(seconds=10), HOME))
        eng.write_queued()  # stored now, the state row left for its checkpoint
    finally:
        eng.stop()
    with db.session() as s:  # the row as a checkpoint behind its positions leaves it (the stop wrote it)
        s.get(DeviceState, w.device_id).received_at = start
    assert service.check_silent(db, settings) == 0
    with db.session() as s:
        assert not s.scalars(select(SafetyEvent).where(SafetyEvent.kind == "silent")).all()
