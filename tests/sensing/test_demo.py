"""The demo's sensors: synthetic, inside the city, a day of plausible readings rolled up; loading twice adds
nothing (both stores)."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from smartcity.core.city import load_profile
from smartcity.sensing import service
from smartcity.sensing.demo import load
from smartcity.sensing.models import Reading, Rejection
from smartcity.sensing.quantities import QUANTITIES


def test_the_demo_sensors_report_a_day_of_plausible_readings(db):
    profile = load_profile("seoul")
    first = load(db, profile, sensors=6)
    with db.session() as s:
        sensors = service.sensors(s)
        stored = s.scalar(select(func.count()).select_from(Reading))
        refused = s.scalar(select(func.count()).select_from(Rejection))
    assert len(sensors) == 6 and all(r["district"] for r in sensors)
    assert stored == 6 * 144 * len(QUANTITIES) and refused == 0
    assert f"{stored} readings" in first
    now = int(time.time())
    with db.session() as s:
        day = service.reading_series(s, sensors[0]["serial"], "temperature", now - 2 * 86400, now + 1, "hour")
    assert 24 <= len(day["points"]) <= 25
    assert all(-50 <= p["min"] <= p["mean"] <= p["max"] <= 80 for p in day["points"])
    assert load(db, profile, sensors=6) == "demo sensors: already there"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == stored
