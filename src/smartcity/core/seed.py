"""Putting a city profile into the store: its units (departments, control rooms) and, until official
boundaries are imported, approximate districts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import geo
from smartcity.core.city import CityProfile
from smartcity.core.events import publish
from smartcity.core.models import Department


def seed_profile(session: Session, profile: CityProfile) -> dict[str, int]:
    """Idempotent: adds the profile's missing units and approximate districts; changes nothing else."""
    have = set(session.scalars(select(Department.code)))
    added_units = 0
    for unit in profile.units:
        if unit.code not in have:
            session.add(
                Department(
                    code=unit.code,
                    kind=unit.kind,
                    name_ko=unit.name_ko,
                    name_en=unit.name_en,
                    district_code=unit.district_code,
                )
            )
            added_units += 1
    added_districts = geo.seed_approximate_districts(session, profile)
    if added_districts:
        publish(session, "geo.changed", {"districts": added_districts})
    return {"units": added_units, "districts": added_districts}


def seed_city(session: Session, profile: CityProfile) -> dict[str, object]:
    """The profile, then every module's own seed hook (`seed(session, profile)`, idempotent)."""
    from smartcity.core.module import call, declared

    added: dict[str, object] = dict(seed_profile(session, profile))
    for module in declared():
        if module.seed is not None:
            added[module.name] = call(module.seed, session, profile)
    return added
