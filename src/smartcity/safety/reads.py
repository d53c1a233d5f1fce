"""The privacy-checked, audited reads of a person's whereabouts: position, track, zones, alerts, the
console's incident view, and a guardian's wards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.safety.access import check_guardian, location_access
from smartcity.safety.alerts import event_to_dict
from smartcity.safety.common import OPERATOR_LOOKBACK, _db, _profile
from smartcity.safety.incidents import _operator_incident, guardian_contacts, incident_to_dict, nearest_cameras
from smartcity.safety.models import Device, GuardianLink, Person, SafetyEvent, Zone, all_positions
from smartcity.safety.registry import _person_states, get_person
from smartcity.safety.zones import zone_to_dict, zones

# "Today's path" reaches at least this far back, so that just after midnight the evening still shows.
TODAY_REACHES_BACK = timedelta(hours=3)


def zone_view(session: Session, identity: Identity, person_id: int, ip: str | None = None) -> list[dict]:
    """The person's safe zones and the danger zones, for whoever may see the person's location. Audited."""
    access = location_access(session, identity, person_id)
    get_person(session, person_id)
    out = [zone_to_dict(z) for z in zones(session, person_id)]
    audit.record(
        session, identity, "read_zones", "safety_person", person_id, {"as": access.reason, "zones": len(out)}, ip=ip
    )
    return out


def current_position(session: Session, identity: Identity, person_id: int, ip: str | None = None) -> dict | None:
    """The person's newest position (over their devices), or None if none yet. Audited."""
    access = location_access(session, identity, person_id)
    get_person(session, person_id)
    states = _person_states(session, person_id)
    audit.record(session, identity, "read_location", "safety_person", person_id, {"as": access.reason}, ip=ip)
    if not states:
        return None
    st = states[0]
    return {
        "person_id": person_id,
        "device_id": st.device_id,
        "lat": st.lat,
        "lon": st.lon,
        "fix_time": st.fix_time.isoformat(),
        "received_at": st.received_at.isoformat() if st.received_at else None,
        "speed": st.speed,
        "accuracy": st.accuracy,
        "battery": st.battery,
        "district": st.district_code,
        "flags": st.flags or {},
        "zones": st.zones or {},
    }


def track(
    session: Session,
    identity: Identity,
    person_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 5000,
    ip: str | None = None,
) -> list[dict]:
    """The person's positions between `since` (default: the start of today in the city, or three hours ago
    when that is earlier: just after midnight the evening's path still shows) and `until`,
    oldest first. Operators see no further back than an hour before their incident opened. Audited."""
    access = location_access(session, identity, person_id)
    if since is None:
        local_midnight = datetime.now(_profile(session).tz).replace(hour=0, minute=0, second=0, microsecond=0)
        since = min(local_midnight.astimezone(UTC), utcnow() - TODAY_REACHES_BACK)
    if access.since is not None and since < access.since:
        since = access.since
    # Through the (device, fix time) key of each of the person's devices, past ones included; staged fixes too.
    devices = select(Device.id).where(Device.person_id == person_id).scalar_subquery()
    positions = all_positions()
    q = (
        select(positions)
        .where(
            positions.c.device_id.in_(devices),
            positions.c.fix_time >= since,
            positions.c.person_id == person_id,
            positions.c.valid,
        )
        .order_by(positions.c.fix_time)
        .limit(max(1, min(limit, 50_000)))
    )
    if until is not None:
        q = q.where(positions.c.fix_time <= until)
    rows = list(session.execute(q))
    audit.record(
        session,
        identity,
        "read_track",
        "safety_person",
        person_id,
        {"as": access.reason, "since": since.isoformat(), "points": len(rows)},
        ip=ip,
    )
    return [
        {
            "lat": r.lat,
            "lon": r.lon,
            "fix_time": r.fix_time.isoformat(),
            "speed": r.speed,
            "accuracy": r.accuracy,
            "device_id": r.device_id,
        }
        for r in rows
    ]


def incident_view(
    session: Session, identity: Identity, incident_id: int, cameras: int = 5, ip: str | None = None
) -> dict:
    """What the console shows for one incident: the incident, the person, and — while it is not resolved —
    the current position, the track since an hour before it opened, and the nearest cameras. Audited."""
    inc = _operator_incident(session, identity, incident_id)
    person = get_person(session, inc.person_id)
    view = incident_to_dict(inc, with_location=inc.status != "resolved")
    # The description helps find the person: while the incident is open only, like their location.
    notes = person.notes if inc.status != "resolved" else None
    view["person"] = {"id": person.id, "kind": person.kind, "name": person.name, "notes": notes}
    view["position"], view["track"], view["cameras"], view["guardians"] = None, [], [], []
    if inc.status == "resolved":
        return view
    view["guardians"] = guardian_contacts(session, identity, inc, ip=ip)
    view["position"] = current_position(session, identity, person.id, ip=ip)
    view["track"] = track(session, identity, person.id, since=inc.opened_at - OPERATOR_LOOKBACK, ip=ip)
    # The cameras that saw the emergency: those nearest where it was raised (the SOS fix), not wherever the
    # person's newest fix from any device is.
    where = {"lat": inc.lat, "lon": inc.lon} if inc.lat is not None else view["position"] or {}
    if where.get("lat") is not None:
        view["cameras"] = nearest_cameras(_db(session), where["lat"], where["lon"], cameras)
    audit.record(session, identity, "read_incident", "safety_incident", inc.id, ip=ip)
    return view


def wards(session: Session, identity: Identity) -> list[dict]:
    """The persons the caller is a consented guardian of (no locations)."""
    if identity.user_id is None:
        return []
    q = (
        select(Person)
        .join(GuardianLink, GuardianLink.person_id == Person.id)
        .where(
            GuardianLink.user_id == identity.user_id,
            GuardianLink.consent_at.is_not(None),
            GuardianLink.revoked_at.is_(None),
            Person.active,
        )
        .order_by(Person.id)
    )
    return [{"id": p.id, "kind": p.kind, "name": p.name} for p in session.scalars(q)]


def alerts(session: Session, identity: Identity, person_id: int, limit: int = 100) -> list[dict]:
    """The person's alert history (newest first) for a guardian. Events carry locations: audited."""
    check_guardian(session, identity, person_id)
    q = (
        select(SafetyEvent)
        .where(SafetyEvent.person_id == person_id)
        .order_by(SafetyEvent.at.desc())
        .limit(max(1, min(limit, 1000)))
    )
    rows = list(session.scalars(q))
    audit.record(session, identity, "read_alerts", "safety_person", person_id, {"count": len(rows)})
    names = {z.id: z.name for z in session.scalars(select(Zone).where(Zone.id.in_({r.zone_id for r in rows})))}
    return [event_to_dict(r) | {"zone_name": names.get(r.zone_id)} for r in rows]
