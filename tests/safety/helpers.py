"""A small world for the safety tests: a child with a phone, a guardian with consent, Gangnam's operator."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import aliased

from smartcity.core.auth import identity_of_user
from smartcity.core.db import utcnow
from smartcity.core.models import User
from smartcity.safety import service
from smartcity.safety.engine import Position
from smartcity.safety.models import PositionRow, all_positions
from tests.conftest import make_user

# A school yard in Daechi-dong, Gangnam (district 11230) and a point 1 km away.
SCHOOL = (37.5003, 127.0570)
HOME = (37.4950, 127.0650)
GANGNAM = "11230"
JONGNO = "11010"


def east_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    lat, lon = point
    return lat, lon + metres / (111_320 * math.cos(math.radians(lat)))


@dataclass
class World:
    person_id: int
    device: str
    device_id: int
    guardian_id: int
    other_guardian_id: int
    operator_id: int
    other_operator_id: int
    admin_id: int
    school_zone: int
    secret: str | None = None  # the device's secret as registration showed it (OwnTracks' password)

    def identity(self, db, user_id: int):
        with db.session() as s:
            return identity_of_user(s.get(User, user_id), "session")


def make_world(db, consent: bool = True, device: str = "phone-1", protocols: str = "osmand") -> World:
    guardian = make_user(db, "mother", "guardian", phone="010-1111-2222", language="ko")
    other = make_user(db, "stranger", "guardian", email="stranger@example.org", language="en")
    operator = make_user(db, "op-gangnam", "operator", department=f"{GANGNAM}-control")
    other_op = make_user(db, "op-jongno", "operator", department=f"{JONGNO}-control")
    admin = make_user(db, "root", "admin")
    with db.session() as s:
        person = service.add_person(s, "child", "Kim Haneul", actor="test")
        dev = service.add_device(s, person.id, device, protocols, actor="test")
        service.link_guardian(s, person.id, guardian, "mother", actor="test")
        if consent:
            service.record_consent(s, person.id, guardian, given_by="Kim Minji (mother)", basis="form 17", actor="test")
        zone = service.add_zone(
            s, service.ZoneIn("School", SCHOOL[0], SCHOOL[1], 100), person_id=person.id, actor="test"
        )
        return World(person.id, device, dev.id, guardian, other, operator, other_op, admin, zone.id, dev.issued_secret)


def fix(device: str, at: datetime, point: tuple[float, float], **extra) -> Position:
    extra.setdefault("accuracy", 8.0)
    return Position(device, at, point[0], point[1], protocol="test", **extra)


def walk_across(device: str, start: datetime | None = None, step_m: float = 20, metres: float = 600):
    """Fixes from 300 m west of the school, through it, to 300 m east: one arrival and one departure."""
    start = start or utcnow() - timedelta(minutes=30)
    west = east_of(SCHOOL, -metres / 2)
    n = int(metres / step_m) + 1
    return [fix(device, start + timedelta(seconds=10 * i), east_of(west, i * step_m)) for i in range(n)]


def rows(db, **where):
    """Stored positions, staged (the SQLite writer process's staging table) or not, as PositionRow objects."""
    stored = aliased(PositionRow, all_positions())
    with db.session() as s:
        q = select(stored).order_by(stored.fix_time)
        for k, v in where.items():
            q = q.where(getattr(stored, k) == v)
        return list(s.scalars(q))


def traccar_query(device: str, at: datetime, point=HOME, **extra) -> str:
    """The query string of the Traccar Client (Android) for one fix, in its parameter order."""
    params = {
        "id": device,
        "timestamp": str(int(at.timestamp())),
        "lat": str(point[0]),
        "lon": str(point[1]),
        "speed": "0.0",
        "bearing": "0.0",
        "altitude": "30.0",
        "accuracy": "12.0",
        "batt": "87.0",
    }
    params.update({k: str(v) for k, v in extra.items()})
    return "&".join(f"{k}={v}" for k, v in params.items())


def feed(engine, position):
    """Intake one position. A registry change is handled twice on PostgreSQL (after commit and through
    LISTEN): the engine must never refuse a registered device while it reloads one (no retry here)."""
    return engine.intake_sync(position)


def csrf(client) -> dict:
    """The CSRF header for a signed-in test client, read from the guardian page."""
    import re

    page = client.get("/safety/guardian", headers={"accept": "text/html"})
    token = re.search(r'data-csrf="([^"]+)"', page.text) or re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    return {"X-CSRF-Token": token.group(1)}
