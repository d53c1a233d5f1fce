"""The control room's incident workflow: open, acknowledge, dispatch (112/119), resolve; the district's
queue, and the cameras nearest an incident."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.context import context_of
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound
from smartcity.core.events import publish
from smartcity.core.geo import geo_index
from smartcity.core.models import User
from smartcity.safety.access import _refuse, audit_apart, guardian_ids
from smartcity.safety.common import AGENCIES, _db, _tell_this_engine
from smartcity.safety.engine import Raised
from smartcity.safety.models import GuardianLink, Incident, Person, SafetyEvent, Zone
from smartcity.safety.zones import zone_to_dict

# The control room's priority: an SOS (someone pressed for help) before a danger zone entered.
KIND_RANK = {"sos": 0, "danger": 1}


def control_room_code(district_code: str) -> str:
    """A district's CCTV control room is the core unit "{district}-control" (kind control_room)."""
    return f"{district_code}-control"


def incident_to_dict(inc: Incident, with_location: bool = True) -> dict:
    def t(v):
        return v.isoformat() if v else None

    out = {
        "id": inc.id,
        "kind": inc.kind,
        "status": inc.status,
        "person_id": inc.person_id,
        "device_id": inc.device_id,
        "event_id": inc.event_id,
        "zone_id": inc.zone_id,
        "district": inc.district_code,
        "opened_at": t(inc.opened_at),
        "acknowledged_at": t(inc.acknowledged_at),
        "acknowledged_by": inc.acknowledged_by,
        "dispatched_at": t(inc.dispatched_at),
        "dispatched_by": inc.dispatched_by,
        "dispatch_agency": inc.dispatch_agency,
        "dispatch_reference": inc.dispatch_reference,
        "dispatch_notes": inc.dispatch_notes,
        "resolved_at": t(inc.resolved_at),
        "resolved_by": inc.resolved_by,
        "resolution": inc.resolution,
    }
    out["lat"], out["lon"] = (inc.lat, inc.lon) if with_location else (None, None)
    return out


def _publish_incident(session: Session, inc: Incident) -> None:
    data = incident_to_dict(inc, with_location=inc.status != "resolved")
    person = session.get(Person, inc.person_id)
    data["person_name"] = person.name if person else None
    topic = f"safety.incident.{inc.status if inc.status != 'open' else 'opened'}"
    publish(session, topic, data, audience="safety.operate", district=inc.district_code)
    guardians = guardian_ids(session, inc.person_id)
    if guardians:
        publish(session, topic, data, users=guardians)
    _tell_this_engine(session, topic, data)


def open_incident(session: Session, ev: Raised, event_row: SafetyEvent | None = None) -> Incident:
    """Open an incident for the control room of the district the person is in — unless one of the same
    kind is already open for the person (a second SOS press joins it)."""
    existing = session.scalar(
        select(Incident).where(
            Incident.person_id == ev.person_id, Incident.kind == ev.kind, Incident.status != "resolved"
        )
    )
    if existing is not None:
        return existing
    district = ev.district_code
    if district is None and ev.lat is not None:
        area = geo_index(_db(session)).district_at(ev.lat, ev.lon)
        district = area.code if area else None
    inc = Incident(
        kind=ev.kind,
        status="open",
        person_id=ev.person_id,
        device_id=ev.device_id,
        event_id=event_row.id if event_row else None,
        zone_id=ev.zone.id if ev.zone else None,
        district_code=district,
        lat=ev.lat,
        lon=ev.lon,
        opened_at=utcnow(),
    )
    session.add(inc)
    session.flush()
    audit.record(session, "safety", "open", "safety_incident", inc.id, {"kind": ev.kind, "district": district})
    session.info.setdefault("safety.opened_incidents", []).append(
        {"id": inc.id, "person_id": inc.person_id, "kind": inc.kind, "district": district}
    )
    _publish_incident(session, inc)
    return inc


def _operator_incident(session: Session, identity: Identity, incident_id: int, lock: bool = False) -> Incident:
    from smartcity.core.auth import check

    check(identity, "safety.operate")
    q = select(Incident).where(Incident.id == incident_id)
    if lock and _db(session).is_postgres:
        q = q.with_for_update()
    inc = session.scalar(q)
    if inc is None:
        raise NotFound(f"no incident {incident_id}")
    if identity.district_code is None or identity.district_code != inc.district_code:
        _refuse(session, identity, "incident_denied", inc.person_id, {"incident_id": incident_id})
    return inc


def _step(
    session: Session, identity: Identity, incident_id: int, to: str, allowed_from: tuple[str, ...], **fields
) -> Incident:
    inc = _operator_incident(session, identity, incident_id, lock=True)
    if inc.status not in allowed_from:
        raise Conflict(f"the incident is {inc.status}; it cannot become {to}", code="invalid_transition")
    now = utcnow()
    inc.status = to
    stamp = {"acknowledged": "acknowledged", "dispatched": "dispatched", "resolved": "resolved"}[to]
    setattr(inc, f"{stamp}_at", now)
    setattr(inc, f"{stamp}_by", identity.user_id)
    for k, v in fields.items():
        setattr(inc, k, v)
    audit.record(session, identity, to, "safety_incident", inc.id, {k: v for k, v in fields.items() if v})
    _publish_incident(session, inc)
    return inc


def acknowledge(session: Session, identity: Identity, incident_id: int) -> Incident:
    """An operator of the incident's district takes it (open → acknowledged)."""
    return _step(session, identity, incident_id, "acknowledged", ("open",))


def dispatch(
    session: Session, identity: Identity, incident_id: int, agency: str, reference: str = "", notes: str = ""
) -> Incident:
    """Hand over to police (112) or fire and rescue (119), recording their reference and notes."""
    if agency not in AGENCIES:
        raise InvalidInput("the agency is 112 (police) or 119 (fire and rescue)", code="invalid_agency")
    return _step(
        session,
        identity,
        incident_id,
        "dispatched",
        ("open", "acknowledged"),
        dispatch_agency=agency,
        dispatch_reference=reference.strip()[:100] or None,
        dispatch_notes=notes.strip() or None,
    )


def resolve(session: Session, identity: Identity, incident_id: int, resolution: str = "") -> Incident:
    """Close the incident; from now on its operators no longer see the person's location. Steps go in order:
    an incident nobody has acknowledged closes only with a reason written down (a false alarm, a duplicate)."""
    reason = resolution.strip()
    inc = _operator_incident(session, identity, incident_id, lock=True)
    if inc.status == "open" and not reason:
        # The refusal is audited in its own transaction: the caller's rolls back with the exception.
        refused_id = inc.id  # read now: the caller's rollback expires `inc`
        audit_apart(
            session,
            lambda s: audit.record(
                s, identity, "resolve_refused", "safety_incident", refused_id, {"reason": "not_acknowledged"}
            ),
        )
        raise InvalidInput(
            "acknowledge the incident first, or give the reason for closing it unacknowledged",
            code="resolution_required",
            details=[{"field": "resolution", "code": "required", "problem": "is required before acknowledgment"}],
        )
    return _step(
        session,
        identity,
        incident_id,
        "resolved",
        ("open", "acknowledged", "dispatched"),
        resolution=reason or None,
    )


def queue_order(incident: dict) -> tuple:
    """The sort key of the control room's queue: SOS before danger, then whoever has waited longest."""
    return KIND_RANK.get(incident["kind"], len(KIND_RANK)), incident["opened_at"] or "", incident["id"]


def guardian_contacts(session: Session, identity: Identity, inc: Incident, ip: str | None = None) -> list[dict]:
    """The consenting guardians' names and phone numbers, for the incident's operators to call while it is not
    resolved (the caller has checked the district). A read of contact details: audited."""
    if inc.status == "resolved":
        return []
    ids = guardian_ids(session, inc.person_id)
    if not ids:
        return []
    q = (
        select(User, GuardianLink.relation)
        .join(GuardianLink, GuardianLink.user_id == User.id)
        .where(GuardianLink.person_id == inc.person_id, User.id.in_(ids), User.phone.is_not(None))
        .order_by(GuardianLink.id)
    )
    out = [
        {"user_id": u.id, "name": u.display_name or u.username, "relation": relation, "phone": u.phone}
        for u, relation in session.execute(q)
        if u.phone and u.phone.strip()
    ]
    if out:
        detail = {"guardians": [c["user_id"] for c in out]}
        audit.record(session, identity, "read_contacts", "safety_incident", inc.id, detail, ip=ip)
    return out


def list_incidents(session: Session, identity: Identity, active: bool = True, limit: int = 200) -> list[dict]:
    """The control room's queue: its district's incidents (active ones with their location and, for a danger
    zone entered, the zone's shape; audited)."""
    from smartcity.core.auth import check

    check(identity, "safety.operate")
    if identity.district_code is None:
        return []
    q = select(Incident).where(Incident.district_code == identity.district_code).order_by(Incident.id.desc())
    q = q.where(Incident.status != "resolved") if active else q
    incidents = list(session.scalars(q.limit(limit)))
    out = []
    for inc in incidents:
        d = incident_to_dict(inc, with_location=inc.status != "resolved")
        person = session.get(Person, inc.person_id)
        d["person_name"], d["person_kind"] = person.name, person.kind
        d["zone"] = None
        out.append(d)
    zone_ids = {d["zone_id"] for d in out if d["zone_id"] is not None and d["lat"] is not None}
    if zone_ids:
        # Only danger zones, which concern everyone: a person's safe zones (their home, their school) stay theirs.
        danger = {z.id: zone_to_dict(z) for z in session.scalars(select(Zone).where(Zone.id.in_(zone_ids)))}
        for d in out:
            z = danger.get(d["zone_id"]) if d["lat"] is not None else None
            d["zone"] = z if z and z["kind"] == "danger" else None
    with_location = [d["id"] for d in out if d["lat"] is not None]
    if with_location:
        audit.record(
            session, identity, "read_location", "safety_incidents", identity.district_code, {"incidents": with_location}
        )
    return out


def nearest_cameras(db, lat: float, lon: float, k: int = 5) -> list[dict]:
    """The cameras nearest a point with distances, from the asset registry's exported `nearest`."""
    try:
        from smartcity.assets.service import nearest
    except ImportError:  # the asset registry is not installed
        return []
    return [ref.to_dict() | {"distance_m": round(d, 1)} for ref, d in nearest(db, "cctv", lat, lon, k)]


def incident_counts(session: Session, start: datetime | None = None, end: datetime | None = None) -> list[dict]:
    """Incidents opened per local day, district and kind — counts only, for the city's statistics (analytics'
    trends): no person, device, position or handling reaches the caller, so no location rule applies.
    [start, end) bounds the opening time (UTC); an incident outside every district counts under "".
    """
    tz = context_of(_db(session)).profile.tz
    q = select(Incident.opened_at, Incident.district_code, Incident.kind)
    if start is not None:
        q = q.where(Incident.opened_at >= start)
    if end is not None:
        q = q.where(Incident.opened_at < end)
    counts: Counter[tuple[str, str, str]] = Counter()
    for opened_at, district, kind in session.execute(q):
        counts[(opened_at.astimezone(tz).date().isoformat(), district or "", kind)] += 1
    return [
        {"day": day, "district": district, "kind": kind, "count": n}
        for (day, district, kind), n in sorted(counts.items())
    ]
