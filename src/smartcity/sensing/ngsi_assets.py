"""Entities the broker serves but other modules own: the assets registry's cameras (Camera), public Wi-Fi
access points (AccessPoint, with their newest reported status) and sensors (Device). They are built on each
read through the assets service's and the Wi-Fi service's exported functions, never stored by the broker, so
they are always the registry's current state; a write to one is refused (`refuse_owned` in ngsi_entities). Their
census (/types, /attributes) is counted by the store on each call, not built (`census`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from smartcity.assets import service as assets
from smartcity.core.errors import NotFound
from smartcity.sensing import wifi
from smartcity.sensing.models import WifiStatus
from smartcity.sensing.ngsi_entities import OWNED_TYPES, Census, Entity, Query

MOST = 1_000_000


def entity_id(etype: str, asset_id: int) -> str:
    return f"urn:ngsi-ld:{etype}:{asset_id}"


def _asset_id(eid: str) -> tuple[str, int] | None:
    parts = eid.split(":")
    if len(parts) != 4 or parts[:2] != ["urn", "ngsi-ld"] or parts[2] not in OWNED_TYPES or not parts[3].isdigit():
        return None
    return parts[2], int(parts[3])


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _common(a, etype: str) -> Entity:
    attrs: dict = {
        "name": {"type": "Property", "value": a.name},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [a.lon, a.lat]}},
        "source": {"type": "Property", "value": a.source},
    }
    if a.district_code:
        attrs["areaServed"] = {"type": "Property", "value": a.district_code}
    return Entity(entity_id(etype, a.id), etype, attrs)


def _built(session: Session, etype: str, rows: list) -> list[Entity]:
    if etype == "Camera":
        return [_common(a, etype) for a in rows]
    if etype == "Device":
        out = []
        for a in rows:
            e = _common(a, etype)
            if a.external_id:
                e.attrs["serialNumber"] = {"type": "Property", "value": a.external_id}
            e.attrs["category"] = {"type": "Property", "value": ["sensor"]}
            out.append(e)
        return out
    # Access points: the installation and coverage come from the Wi-Fi service, the status from its reports.
    by_id = {ap.id: ap for ap in wifi.access_points(session)}
    status = wifi.latest_status(session)
    out = []
    for a in rows:
        e = _common(a, etype)
        ap = by_id.get(a.id)
        if ap is not None:
            e.attrs["installation"] = {"type": "Property", "value": ap.installation}
            e.attrs["coverageRadius"] = {"type": "Property", "value": ap.radius_m, "unitCode": "MTR"}
        if (s := status.get(a.id)) is not None:
            when = _iso(s["time"])
            e.attrs["status"] = {"type": "Property", "value": "up" if s["up"] else "down", "observedAt": when}
            e.attrs["connectedClients"] = {"type": "Property", "value": s["clients"], "observedAt": when}
        out.append(e)
    return out


def find(session: Session, eid: str) -> Entity | None:
    """The owned entity with this id, or None (not an owned id, or no such asset of that kind)."""
    key = _asset_id(eid)
    if key is None:
        return None
    etype, asset_id = key
    try:
        a = assets.get_asset(session, asset_id)
    except NotFound:
        return None
    if a.kind != OWNED_TYPES[etype]:
        return None
    return _built(session, etype, [a])[0]


def types_asked(spec: Query) -> list[str]:
    """The owned types a query may match (its types, or every one when it names none) that the caller may read."""
    asked = [t for t in OWNED_TYPES if spec.types is None or t in spec.types]
    if spec.readable_types is not None:
        asked = [t for t in asked if t in spec.readable_types]
    if spec.ids is not None:
        wanted = {key[0] for i in spec.ids if (key := _asset_id(i))}
        asked = [t for t in asked if t in wanted]
    return asked


def query(session: Session, spec: Query) -> list[Entity]:
    """Every owned entity the query matches, by id (the caller pages it together with the stored ones)."""
    out: list[Entity] = []
    box = spec.geo.box() if spec.geo is not None else None
    bbox = (box[1], box[0], box[3], box[2]) if box is not None else None
    ids = set(spec.ids) if spec.ids is not None else None
    for etype in types_asked(spec):
        rows = assets.list_assets(session, kind=OWNED_TYPES[etype], bbox=bbox, limit=MOST)
        if spec.geo is not None:
            rows = [a for a in rows if spec.geo.admits(a.lat, a.lon)]
        if ids is not None:
            rows = [a for a in rows if entity_id(etype, a.id) in ids]
        if spec.id_pattern is not None:
            rows = [a for a in rows if spec.id_pattern.fullmatch(entity_id(etype, a.id))]
        for e in _built(session, etype, rows):
            if spec.q_test(e):
                out.append(e)
    return sorted(out, key=lambda e: e.id)


def _reporting(session: Session, access_points: Select) -> int:
    """How many of these access points have reported a status (one probe of the status key each)."""
    ids = access_points.subquery()
    reported = select(WifiStatus.access_point_id).where(WifiStatus.access_point_id == ids.c.id).exists()
    return session.scalar(select(func.count()).select_from(ids).where(reported)) or 0


def census(
    session: Session, out: Census, readable_types: tuple[str, ...] | None, types: list[str] | None = None
) -> None:
    """Add the owned entities the caller may read to a census of the stored ones, counted by the store: which
    attributes an entity gets depends only on whether its asset has a district and an external id, and whether
    an access point has reported a status, so a few counts answer what building every entity answered
    (`built_census`, the tests' reference). Read on each call, so it is never behind the registry."""
    asked = types_asked(Query(types=types, readable_types=readable_types))
    counts = assets.kind_counts(session, [OWNED_TYPES[t] for t in asked])
    for etype in asked:
        c = counts.get(OWNED_TYPES[etype])
        if c is None:
            continue
        out.entities[etype] = out.entities.get(etype, 0) + c.assets
        held = {"name": c.assets, "location": c.assets, "source": c.assets, "areaServed": c.with_district}
        if etype == "Device":
            held |= {"serialNumber": c.with_external_id, "category": c.assets}
        elif etype == "AccessPoint":
            reporting = _reporting(session, assets.ids_of_kind(OWNED_TYPES[etype]))
            held |= {"installation": c.assets, "coverageRadius": c.assets}
            held |= {"status": reporting, "connectedClients": reporting}
        for name, n in held.items():
            if n:
                out.add(etype, name, "GeoProperty" if name == "location" else "Property", n)


def built_census(
    session: Session, out: Census, readable_types: tuple[str, ...] | None, types: list[str] | None = None
) -> None:
    """The same census counted over every owned entity as a read builds it: what `census` must always equal
    (tests), and what /types and /attributes did before (6 s at 110,000 cameras)."""
    for etype in types_asked(Query(types=types, readable_types=readable_types)):
        rows = assets.list_assets(session, kind=OWNED_TYPES[etype], limit=MOST)
        for e in _built(session, etype, rows):
            out.entities[etype] = out.entities.get(etype, 0) + 1
            for name, attr in e.attrs.items():
                out.add(etype, name, attr.get("type"), 1)
