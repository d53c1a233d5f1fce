"""Two engines (two app processes) on one PostgreSQL database: a crossing gives exactly one arrival and
one departure, whichever engine receives which fix."""

import threading

import pytest
from sqlalchemy import func, select

from smartcity.core.db import Database
from smartcity.safety.engine import SafetyEngine
from smartcity.safety.models import Incident, PositionRow, SafetyEvent
from tests.conftest import make_settings
from tests.safety.helpers import HOME, fix, make_world, walk_across

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_engines(postgres_url, tmp_path):
    db_a, db_b = Database(postgres_url), Database(postgres_url)
    world = make_world(db_a)
    settings = make_settings(postgres_url, tmp_path)
    a, b = SafetyEngine(db_a, settings).start(), SafetyEngine(db_b, settings).start()
    yield world, a, b, db_a
    a.stop()
    b.stop()
    db_a.dispose()
    db_b.dispose()


def _events(db, person_id):
    with db.session() as s:
        return [
            (e.kind, e.zone_id)
            for e in s.scalars(select(SafetyEvent).where(SafetyEvent.person_id == person_id).order_by(SafetyEvent.at))
        ]


def test_alternating_engines_agree_on_one_arrival_and_one_departure(two_engines):
    w, a, b, db = two_engines
    fixes = walk_across(w.device)
    for i, p in enumerate(fixes):
        (a if i % 2 else b).intake_sync(p)
    assert _events(db, w.person_id) == [("arrival", w.school_zone), ("departure", w.school_zone)]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PositionRow)) == len(fixes)


def test_both_engines_fed_the_same_fixes_concurrently(two_engines):
    w, a, b, db = two_engines
    fixes = walk_across(w.device, step_m=10)
    acks = {}

    def feed(engine, name):
        acks[name] = [engine.intake_sync(fix(w.device, p.fix_time, (p.lat, p.lon))) for p in fixes]

    threads = [threading.Thread(target=feed, args=(e, n)) for e, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert _events(db, w.person_id) == [("arrival", w.school_zone), ("departure", w.school_zone)]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PositionRow)) == len(fixes)
    # Each fix was stored by exactly one engine; the other acknowledged it as a replay.
    for i in range(len(fixes)):
        assert acks["a"][i].duplicate != acks["b"][i].duplicate


def test_sos_reaching_two_engines_opens_one_incident(two_engines):
    from smartcity.core.db import utcnow

    w, a, b, db = two_engines
    at = utcnow()
    a.intake_sync(fix(w.device, at, HOME, alarm="sos"))
    b.intake_sync(fix(w.device, at, HOME, alarm="sos"))  # a replay through the other process
    b.intake_sync(fix(w.device, utcnow(), HOME, alarm="sos"))  # pressed again
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 1
