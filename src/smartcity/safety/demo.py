"""The demo registry and the simulation helpers (a walk along a route, a simulated Traccar Client fix)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import func, select

from smartcity.core.db import utcnow
from smartcity.core.geo import haversine_m
from smartcity.core.models import User
from smartcity.safety.consent import link_guardian, record_consent
from smartcity.safety.engine import Position
from smartcity.safety.models import Device
from smartcity.safety.registry import add_device, add_person
from smartcity.safety.zones import ZoneIn, add_zone


def walk(
    route: list[tuple[float, float]], *, speed_m_s: float = 1.4, interval_s: float = 10, start: datetime | None = None
) -> Iterator[tuple[datetime, float, float]]:
    """Points along a polyline (lat, lon) at walking speed, one every `interval_s` seconds: what a
    simulated device reports. For the demo simulation and tests."""
    t = start or utcnow()
    step = speed_m_s * interval_s
    carry = 0.0
    yield t, route[0][0], route[0][1]
    for (lat1, lon1), (lat2, lon2) in zip(route, route[1:], strict=False):
        length = haversine_m(lat1, lon1, lat2, lon2)
        pos = step - carry
        while pos <= length:
            f = pos / length if length else 1
            t += timedelta(seconds=interval_s)
            yield t, lat1 + (lat2 - lat1) * f, lon1 + (lon2 - lon1) * f
            pos += step
        carry = length - (pos - step)


def simulated_position(identifier: str, at: datetime, lat: float, lon: float, **extra) -> Position:
    """A Position as a Traccar Client would send it (for the demo simulation)."""
    extra.setdefault("accuracy", 8.0)
    extra.setdefault("battery", 80.0)
    return Position(identifier, at, lat, lon, protocol="simulation", **extra)


# Demo places in Gangnam (near Daechi-dong): a home, a school, and a construction site.
DEMO_HOME = (37.4985, 127.0630)


DEMO_SCHOOL = [(37.5010, 127.0560), (37.5010, 127.0580), (37.4995, 127.0580), (37.4995, 127.0560)]
DEMO_DANGER = (37.5035, 127.0605)
DEMO_ROUTES = {
    "demo-child-1": [DEMO_HOME, (37.4995, 127.0600), (37.5002, 127.0570), (37.5008, 127.0590), DEMO_HOME],
    "demo-elder-1": [(37.4925, 127.0560), (37.4960, 127.0600), (37.5030, 127.0605), (37.4960, 127.0560)],
}


def demo(db, profile) -> Iterator[str]:
    """Demo registry: a child and an elderly person with dementia, their devices, the demo guardian (with
    consent), a home and a school zone (weekdays 08:30–15:00) and a danger zone. Idempotent."""
    with db.session() as s:
        guardian = s.scalar(select(User).where(User.username == "guardian"))
        if s.scalar(select(func.count()).select_from(Device).where(Device.identifier.in_(DEMO_ROUTES))):
            yield "safety: demo persons already registered"
            return
        child = add_person(s, "child", "박하늘", "대치초등학교 3학년", actor="demo")
        elder = add_person(s, "dementia", "박순자", "초기 치매, 매일 산책", actor="demo")
        add_device(s, child.id, "demo-child-1", "osmand", "하늘이 휴대폰", actor="demo")
        add_device(s, elder.id, "demo-elder-1", "owntracks", "순자 할머니 위치 태그", actor="demo")
        if guardian is not None:
            for person in (child, elder):
                # The relation is what an operator reads beside the guardian's number: words, not a code.
                link_guardian(s, person.id, guardian.id, "어머니" if person is child else "딸", actor="demo")
                record_consent(
                    s,
                    person.id,
                    guardian.id,
                    given_by="박서연 (보호자)",
                    basis="보호자 서면 동의 (데모)",
                    actor="demo",
                )
        for person in (child, elder):
            add_zone(s, ZoneIn("집", DEMO_HOME[0], DEMO_HOME[1], 80), person_id=person.id, actor="demo")
        school = {"type": "Polygon", "coordinates": [[(lon, lat) for lat, lon in DEMO_SCHOOL + DEMO_SCHOOL[:1]]]}
        add_zone(
            s,
            ZoneIn(
                "대치초등학교", polygon=school, schedule=[{"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "15:00"}]
            ),
            person_id=child.id,
            actor="demo",
        )
        add_zone(
            s,
            ZoneIn("공사 현장", DEMO_DANGER[0], DEMO_DANGER[1], 60),
            person_id=None,
            kind="danger",
            actor="demo",
        )
    yield "safety: 2 protected persons, devices demo-child-1 and demo-elder-1, zones 집, 대치초등학교, a danger zone"
