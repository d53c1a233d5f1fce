"""Safe zones (a person's home, school) and danger zones: checked shapes, and the guardians' editing of
their wards' zones."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from shapely.geometry import mapping, shape
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.geo import area_m2, check_coordinates, geo_index
from smartcity.core.i18n import N_
from smartcity.safety.access import check_guardian
from smartcity.safety.common import _changed, _db
from smartcity.safety.engine import parse_schedule
from smartcity.safety.models import Zone
from smartcity.safety.registry import get_person


@dataclass
class ZoneIn:
    """A zone as an editor submits it: a circle (lat, lon, radius_m) or a GeoJSON polygon."""

    name: str
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    polygon: dict | None = None  # GeoJSON Polygon geometry
    schedule: list | None = None  # [{"days": [0..4], "start": "08:30", "end": "15:00"}]


def _check_zone(session: Session, z: ZoneIn) -> dict:
    if not (z.name or "").strip():
        raise InvalidInput(N_("a zone needs a name"), code="invalid_zone")
    parse_schedule(z.schedule)
    index = geo_index(_db(session))
    if z.polygon is None:
        if z.lat is None or z.lon is None or z.radius_m is None:
            raise InvalidInput(N_("a zone is a circle (lat, lon, radius_m) or a polygon"), code="invalid_zone")
        lat, lon = check_coordinates(z.lat, z.lon)
        if not (isinstance(z.radius_m, (int, float)) and math.isfinite(z.radius_m) and 20 <= z.radius_m <= 5000):
            raise InvalidInput(N_("a circle's radius is between 20 m and 5 km"), code="invalid_zone")
        index.locate(lat, lon)
        return {"lat": lat, "lon": lon, "radius_m": float(z.radius_m), "geometry": None}
    try:
        geom = shape(z.polygon)
    except Exception as exc:  # shapely raises several types for malformed input
        raise InvalidInput(N_("the polygon is malformed: {exc}"), params={"exc": exc}, code="invalid_zone") from None
    if geom.geom_type != "Polygon" or geom.is_empty:
        raise InvalidInput(N_("a zone's shape must be one Polygon"), code="invalid_zone")
    if not geom.is_valid:
        raise InvalidInput(f"the polygon is not valid: {explain_validity(geom)}", code="invalid_zone")
    c = geom.representative_point()
    index.locate(c.y, c.x)
    if not 100 <= area_m2(geom) <= 25_000_000:
        raise InvalidInput(N_("a zone's area is between 100 m² and 25 km²"), code="invalid_zone")
    return {"lat": c.y, "lon": c.x, "radius_m": None, "geometry": json.dumps(mapping(geom))}


def add_zone(session: Session, z: ZoneIn, *, person_id: int | None, kind: str = "safe", actor="cli") -> Zone:
    """A safe zone of a person, or (person_id None, kind "danger") a danger zone for everyone."""
    if kind not in ("safe", "danger") or (kind == "safe") != (person_id is not None):
        raise InvalidInput(N_("safe zones belong to a person; danger zones to no one"), code="invalid_zone")
    if person_id is not None:
        get_person(session, person_id)
    shape_values = _check_zone(session, z)
    zone = Zone(kind=kind, person_id=person_id, name=z.name.strip()[:200], schedule=z.schedule or None, **shape_values)
    session.add(zone)
    session.flush()
    audit.record(session, actor, "create", "safety_zone", zone.id, {"kind": kind, "person_id": person_id})
    _changed(session, "safety.zones.changed", {"person_id": person_id, "zone_id": zone.id})
    return zone


def update_zone(session: Session, zone_id: int, z: ZoneIn, actor="cli") -> Zone:
    zone = session.get(Zone, zone_id)
    if zone is None or not zone.active:
        raise NotFound(N_("no zone {zone_id}"), params={"zone_id": zone_id})
    values = _check_zone(session, z)
    for k, v in values.items():
        setattr(zone, k, v)
    zone.name, zone.schedule = z.name.strip()[:200], z.schedule or None
    audit.record(session, actor, "update", "safety_zone", zone.id)
    _changed(session, "safety.zones.changed", {"person_id": zone.person_id, "zone_id": zone.id})
    return zone


def delete_zone(session: Session, zone_id: int, actor="cli") -> None:
    zone = session.get(Zone, zone_id)
    if zone is None or not zone.active:
        raise NotFound(N_("no zone {zone_id}"), params={"zone_id": zone_id})
    zone.active = False
    audit.record(session, actor, "delete", "safety_zone", zone.id)
    _changed(session, "safety.zones.changed", {"person_id": zone.person_id, "zone_id": zone.id})


def zones(session: Session, person_id: int | None = None, danger: bool = True) -> list[Zone]:
    q = select(Zone).where(Zone.active).order_by(Zone.id)
    if person_id is not None:
        q = q.where((Zone.person_id == person_id) | (Zone.kind == "danger") if danger else Zone.person_id == person_id)
    return list(session.scalars(q))


def zone_to_dict(zone: Zone) -> dict:
    geometry = json.loads(zone.geometry) if zone.geometry else None
    return {
        "id": zone.id,
        "kind": zone.kind,
        "person_id": zone.person_id,
        "name": zone.name,
        "lat": zone.lat,
        "lon": zone.lon,
        "radius_m": zone.radius_m,
        "polygon": geometry,
        "schedule": zone.schedule or [],
    }


def save_zone(session: Session, identity: Identity, person_id: int, z: ZoneIn, zone_id: int | None = None) -> Zone:
    """A guardian adds or changes one of their ward's safe zones (administrators may too)."""
    if not identity.can("safety.manage"):
        check_guardian(session, identity, person_id)
    if zone_id is None:
        return add_zone(session, z, person_id=person_id, actor=identity)
    zone = session.get(Zone, zone_id)
    if zone is None or zone.person_id != person_id:
        raise NotFound(N_("no zone {zone_id} for this person"), params={"zone_id": zone_id})
    return update_zone(session, zone_id, z, actor=identity)


def remove_zone(session: Session, identity: Identity, person_id: int, zone_id: int) -> None:
    if not identity.can("safety.manage"):
        check_guardian(session, identity, person_id)
    zone = session.get(Zone, zone_id)
    if zone is None or zone.person_id != person_id:
        raise NotFound(N_("no zone {zone_id} for this person"), params={"zone_id": zone_id})
    delete_zone(session, zone_id, actor=identity)
