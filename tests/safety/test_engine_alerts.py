"""Alerts on both stores: the arrival/departure cool-down and its digest, and the cameras an SOS incident
lists (issue 10, items 8 and 9)."""

from datetime import timedelta

from sqlalchemy import select, update

from smartcity.core.db import utcnow
from smartcity.core.notify import Notification
from smartcity.safety import service
from smartcity.safety.engine import get_engine, stop_engine
from smartcity.safety.models import AlertCooldown, Incident, SafetyEvent
from smartcity.safety.settings import SafetySettings
from tests.conftest import make_settings
from tests.safety.helpers import HOME, SCHOOL, east_of, fix, make_world


def jitter(device: str, cycles: int, start):
    """A phone lying near the school's fence: two fixes outside, then `cycles` times two inside and two
    outside — each crossing confirmed (two agreeing fixes), so 2 × `cycles` transitions."""
    outside = east_of(SCHOOL, 400)
    points = [outside] * 2 + ([SCHOOL] * 2 + [outside] * 2) * cycles
    return [fix(device, start + timedelta(seconds=10 * i), p) for i, p in enumerate(points)]


def notifications(db, topic: str) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(select(Notification).where(Notification.topic == topic).order_by(Notification.id)))


def events(db, kind: str) -> list[SafetyEvent]:
    with db.session() as s:
        return list(s.scalars(select(SafetyEvent).where(SafetyEvent.kind == kind).order_by(SafetyEvent.id)))


def test_heavy_jitter_sends_one_alert_per_direction_then_a_digest(db, engine, settings):
    assert settings.of(SafetySettings).alert_cooldown_minutes == 10  # the default under test
    w = make_world(db)
    for p in jitter(w.device, 10, utcnow() - timedelta(minutes=30)):
        engine.intake_sync(p)
    # Every transition is kept in the history; the guardian got one SMS per direction.
    arrivals, departures = events(db, "arrival"), events(db, "departure")
    assert (len(arrivals), len(departures)) == (10, 10)
    assert [bool((e.data or {}).get("folded")) for e in arrivals] == [False] + [True] * 9
    assert len(notifications(db, "safety.arrival")) == 1 and len(notifications(db, "safety.departure")) == 1
    assert notifications(db, "safety.arrival")[0].channel == "sms"

    # Before the period ends nothing more goes out; once it has, one digest per direction, once.
    assert service.send_alert_digests(db, settings, now=utcnow() + timedelta(minutes=5)) == 0
    later = utcnow() + timedelta(minutes=11)
    assert service.send_alert_digests(db, settings, now=later) == 2
    assert service.send_alert_digests(db, settings, now=later) == 0
    digests = notifications(db, "safety.digest")
    # In the guardian's language (Korean): "… School 도착 알림 9건 더 있음."
    assert sorted(d.body.split("School ")[1].split(" 알림")[0] for d in digests) == ["도착", "출발"]
    assert all("9건 더" in d.body and d.body.startswith("Kim Haneul: ") for d in digests)
    assert {d.to for d in digests} == {"010-1111-2222"}


def test_folded_alerts_ride_with_the_next_alert_after_the_period(db, engine, settings):
    w = make_world(db)
    for p in jitter(w.device, 3, utcnow() - timedelta(minutes=30)):
        engine.intake_sync(p)
    assert len(notifications(db, "safety.arrival")) == 1
    # The period has passed (as if ten minutes went by), before the digest job ran: the next arrival says so.
    with db.session() as s:
        s.execute(update(AlertCooldown).values(sent_at=utcnow() - timedelta(minutes=11)))
    start = utcnow() - timedelta(minutes=5)
    for p in [fix(w.device, start + timedelta(seconds=10 * i), SCHOOL) for i in range(2)]:
        engine.intake_sync(p)
    sent = notifications(db, "safety.arrival")
    assert len(sent) == 2 and "School 도착 알림 2건 더 있음.)" in sent[1].body
    with db.session() as s:
        assert s.scalar(select(AlertCooldown.folded).where(AlertCooldown.kind == "arrival")) == 0


def test_without_a_cooldown_every_transition_is_alerted(db, tmp_path):
    w = make_world(db)
    engine = get_engine(db, make_settings(db.url, tmp_path, safety_alert_cooldown_minutes=0))
    try:
        for p in jitter(w.device, 3, utcnow() - timedelta(minutes=30)):
            engine.intake_sync(p)
    finally:
        stop_engine(db)
    assert len(notifications(db, "safety.arrival")) == 3 and len(notifications(db, "safety.departure")) == 3


def test_the_sos_incident_lists_the_cameras_nearest_the_sos_fix(db, engine):
    """The person's second device reports from elsewhere after the SOS: the console still shows the cameras
    where the button was pressed."""
    from smartcity.assets import service as assets

    w = make_world(db)
    with db.session() as s:
        at_home = assets.create_asset(s, "cctv", HOME[0] + 0.0002, HOME[1], name="home corner", actor="test").id
        at_school = assets.create_asset(s, "cctv", SCHOOL[0] + 0.0002, SCHOOL[1], name="school gate", actor="test").id
        service.add_device(s, w.person_id, "watch-1", actor="test")
    now = utcnow()
    engine.intake_sync(fix(w.device, now - timedelta(minutes=2), HOME, alarm="sos"))
    engine.intake_sync(fix("watch-1", now - timedelta(minutes=1), SCHOOL))
    with db.session() as s:
        incident_id = s.scalar(select(Incident.id))
        view = service.incident_view(s, w.identity(db, w.operator_id), incident_id)
    assert (view["position"]["lat"], view["position"]["lon"]) == SCHOOL  # the newest fix is the watch's
    assert view["cameras"][0]["id"] == at_home
    assert view["cameras"][0]["distance_m"] < 30
    assert at_school in [c["id"] for c in view["cameras"]][1:]
