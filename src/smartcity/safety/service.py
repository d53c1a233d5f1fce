"""The safety service's domain: the registry (persons, devices, guardians with consent, zones), alerts,
the control-room incident workflow, privacy-checked location reads, retention and the periodic checks.

No HTTP here. Pages, the JSON API, the protocol adapters and the CLI all call these functions.
The intake of positions itself is the hot path in `engine.py`.

Location privacy, enforced by `location_access` (every read function goes through it):
  * a guardian of the person whose link carries a recorded (not revoked) consent may read;
  * an operator of the control room of the district where an open (not yet resolved) incident for the
    person was raised may read, from the hour before the incident was opened, until it is resolved;
  * nobody else — administrators included (they manage the registry, they do not follow people).
The same rule (`location_rule`) decides the REST reads, the zone reads (a child's home and school are
locations) and the live events (`live_admission`, which core's event stream asks for every
`safety.position`, `safety.alert` and `safety.incident.*` event, whatever else the subscriber may do).
Every read is audited (`read_location`, `read_track`, `read_incident`, `read_alerts`, `read_zones`,
`read_live`); every refusal is audited too (`location_denied`, in its own transaction, since the
caller's is rolled back).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from shapely.geometry import mapping, shape
from shapely.validation import explain_validity
from sqlalchemy import delete, func, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smartcity.core import audit, notify
from smartcity.core.auth import Identity
from smartcity.core.city import CityProfile
from smartcity.core.context import context_of
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from smartcity.core.events import Admission, publish
from smartcity.core.geo import area_m2, check_coordinates, geo_index, haversine_m
from smartcity.core.models import User
from smartcity.safety.engine import Position, Raised, ZoneShape, new_device_secret, parse_protocols, parse_schedule
from smartcity.safety.models import (
    AlertCooldown,
    Device,
    DeviceState,
    GuardianLink,
    Incident,
    Person,
    PositionRow,
    SafetyEvent,
    Zone,
)

log = logging.getLogger(__name__)

PERSON_KINDS = ("child", "elderly", "dementia")
EVENT_KINDS = ("arrival", "departure", "absence", "danger", "sos", "low_battery", "silent", "outside_city")
INCIDENT_KINDS = ("sos", "danger")  # events that go to the district control room
INCIDENT_FLOW = ("open", "acknowledged", "dispatched", "resolved")
AGENCIES = {"112": "police", "119": "fire and rescue"}
OPERATOR_LOOKBACK = timedelta(hours=1)  # how far before an incident an operator may see the track


def _db(session: Session):
    return session.info["db"]


def _changed(session: Session, topic: str, data: dict) -> None:
    """Tell every process's engine (through the bus) and this process's engine (right after commit:
    PostgreSQL events come back through LISTEN, which a CLI or test process may not run)."""
    publish(session, topic, data, audience="safety.manage")
    db = _db(session)
    engine = db.cache.get("safety.engine")
    if engine is not None and db.is_postgres:
        sa_event.listen(session, "after_commit", lambda _s: engine.handle(topic, data), once=True)


# --- registry -------------------------------------------------------------------------------------


def add_person(session: Session, kind: str, name: str, notes: str = "", actor="cli") -> Person:
    """Register a protected person (child, elderly, dementia)."""
    if kind not in PERSON_KINDS:
        raise InvalidInput(f"a person's kind is one of {', '.join(PERSON_KINDS)}", code="invalid_kind")
    if not name.strip():
        raise InvalidInput("a person needs a name", code="invalid_name")
    person = Person(kind=kind, name=name.strip()[:200], notes=notes)
    session.add(person)
    session.flush()
    audit.record(session, actor, "create", "safety_person", person.id, {"kind": kind})
    return person


def get_person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no protected person {person_id}")
    return person


def add_device(session: Session, person_id: int, identifier: str, protocol: str = "osmand", name: str = "",
               actor="cli", secret: bool = False) -> Device:
    """Register a device by the identifier it sends (Traccar Client's device id, OwnTracks' user/device).

    `protocol`: the protocols it may report through, comma-separated (osmand, owntracks) or any. A device
    that may use OwnTracks (or with `secret`) gets a secret, its HTTP Basic password: the hash is stored, the
    secret itself is on the returned device as `issued_secret`, to be shown once."""
    get_person(session, person_id)
    identifier = (identifier or "").strip()
    if not identifier or len(identifier) > 100 or any(c.isspace() for c in identifier):
        raise InvalidInput("a device identifier has 1 to 100 characters and no spaces", code="invalid_identifier")
    protocols = parse_protocols(protocol)
    if session.scalar(select(Device.id).where(Device.identifier == identifier)):
        raise Conflict(f"a device {identifier!r} is already registered", code="duplicate_device")
    device = Device(identifier=identifier, protocol=",".join(sorted(protocols)), name=name, person_id=person_id)
    issued = None
    if secret or "owntracks" in protocols:
        issued, device.secret_hash = new_device_secret()
    session.add(device)
    session.flush()
    session.add(DeviceState(device_id=device.id, person_id=person_id, version=0, zones={}, flags={}))
    audit.record(session, actor, "create", "safety_device", device.id,
                 {"identifier": identifier, "protocols": device.protocol, "secret": issued is not None})
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    device.issued_secret = issued
    return device


def reset_device_secret(session: Session, device_id: int, actor="cli") -> str:
    """Give a device a new secret (the old one stops working); returns it, to be shown once."""
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id}")
    issued, device.secret_hash = new_device_secret()
    audit.record(session, actor, "reset_secret", "safety_device", device_id)
    _changed(session, "safety.registry.changed", {"person_id": device.person_id})
    return issued


def ward_devices(session: Session, identity: Identity, person_id: int) -> list[dict]:
    """A ward's devices as their guardian sees them: identifier, protocols, whether a secret is set (never
    the secret: only its hash is kept)."""
    check_guardian(session, identity, person_id)
    q = select(Device).where(Device.person_id == person_id, Device.active).order_by(Device.id)
    return [{"id": d.id, "identifier": d.identifier, "name": d.name, "protocols": d.protocol.split(","),
             "has_secret": d.secret_hash is not None} for d in session.scalars(q)]


def renew_ward_device_secret(session: Session, identity: Identity, person_id: int, device_id: int) -> str:
    """A guardian gives their ward's OwnTracks device a new secret (to set up the app); returned once."""
    check_guardian(session, identity, person_id)
    device = session.get(Device, device_id)
    if device is None or device.person_id != person_id or not device.active:
        raise NotFound(f"no device {device_id} of this person")
    if "owntracks" not in parse_protocols(device.protocol):
        raise InvalidInput("only a device that reports through OwnTracks uses a secret", code="no_secret_needed")
    return reset_device_secret(session, device_id, actor=identity)


def find_device(session: Session, ref: str | int) -> Device:
    """A device by its id or by the identifier it sends."""
    device = session.scalar(select(Device).where(Device.identifier == str(ref)))
    if device is None and str(ref).isdigit():
        device = session.get(Device, int(ref))
    if device is None:
        raise NotFound(f"no device {ref}")
    return device


def remove_device(session: Session, device_id: int, actor="cli") -> None:
    """Remove a device: what it sends is refused from now on (in every process, within a second or so on
    SQLite); the positions it sent stay with the person until their history is deleted."""
    device = session.get(Device, device_id)
    if device is None or not device.active:
        raise NotFound(f"no device {device_id}")
    device.active = False
    audit.record(session, actor, "deactivate", "safety_device", device_id, {"identifier": device.identifier})
    _changed(session, "safety.registry.changed", {"person_id": device.person_id})


def devices(session: Session) -> list[tuple[Device, Person, DeviceState | None]]:
    q = (select(Device, Person, DeviceState).join(Person, Person.id == Device.person_id)
         .outerjoin(DeviceState, DeviceState.device_id == Device.id).order_by(Device.id))
    return [tuple(r) for r in session.execute(q).all()]


def persons(session: Session) -> list[Person]:
    return list(session.scalars(select(Person).order_by(Person.id)))


def _guardian_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    if user.role != "guardian":
        raise InvalidInput(f"{user.username} is not a guardian (role {user.role})", code="not_a_guardian")
    return user


def link_guardian(session: Session, person_id: int, user_id: int, relation: str = "", actor="cli") -> GuardianLink:
    """Make a guardian user a guardian of the person. Tracking needs a consent (`record_consent`) as well."""
    get_person(session, person_id)
    _guardian_user(session, user_id)
    link = session.scalar(select(GuardianLink).where(GuardianLink.person_id == person_id,
                                                     GuardianLink.user_id == user_id))
    if link is None:
        link = GuardianLink(person_id=person_id, user_id=user_id, relation=relation)
        session.add(link)
        session.flush()
        audit.record(session, actor, "create", "safety_guardian", link.id, {"person_id": person_id,
                                                                            "user_id": user_id})
    return link


def record_consent(session: Session, person_id: int, user_id: int, *, given_by: str, basis: str,
                   at: datetime | None = None, actor="cli") -> GuardianLink:
    """Record the consent to track a person for one guardian link: who gave it (the person, a parent, a
    legal representative), on what basis, and when. Links the guardian if not linked yet."""
    if not given_by.strip() or not basis.strip():
        raise InvalidInput("a consent records who gave it and on what basis", code="invalid_consent")
    at = at or utcnow()
    if at.tzinfo is None or at > utcnow() + timedelta(minutes=5):
        raise InvalidInput("a consent's time must be timezone-aware and not in the future", code="invalid_consent")
    link = link_guardian(session, person_id, user_id, actor=actor)
    link.consent_by, link.consent_basis, link.consent_at = given_by.strip()[:200], basis.strip()[:300], at
    link.consent_recorded_by = getattr(actor, "label", None) or str(actor)
    link.revoked_at = None
    audit.record(session, actor, "consent", "safety_guardian", link.id,
                 {"person_id": person_id, "user_id": user_id, "given_by": link.consent_by, "basis": link.consent_basis})
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    return link


def revoke_consent(session: Session, person_id: int, user_id: int, actor="cli") -> GuardianLink:
    link = session.scalar(select(GuardianLink).where(GuardianLink.person_id == person_id,
                                                     GuardianLink.user_id == user_id))
    if link is None:
        raise NotFound("no such guardian link")
    link.revoked_at = utcnow()
    audit.record(session, actor, "revoke_consent", "safety_guardian", link.id)
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    return link


def withdraw_consent(session: Session, person_id: int, user_id: int | None = None, actor="cli") -> list[GuardianLink]:
    """Withdraw a consent to track the person: with `user_id`, the consent behind that guardian's link;
    without, every consent in force for the person. Each guardian link resting on the withdrawn consent
    (the same giver and basis) is closed; intake stops at once when no consent is left. Returns the closed
    links. The person's history stays until `delete_history` (offered next, audited)."""
    get_person(session, person_id)
    links = list(session.scalars(select(GuardianLink).where(
        GuardianLink.person_id == person_id, GuardianLink.consent_at.is_not(None),
        GuardianLink.revoked_at.is_(None)).order_by(GuardianLink.id)))
    if user_id is not None:
        mine = next((link for link in links if link.user_id == user_id), None)
        if mine is None:
            raise NotFound("this guardian has no consent in force for this person", code="no_consent")
        links = [link for link in links if (link.consent_by, link.consent_basis) ==
                 (mine.consent_by, mine.consent_basis)]
    if not links:
        raise NotFound("no consent in force for this person", code="no_consent")
    now = utcnow()
    for link in links:
        link.revoked_at = now
        audit.record(session, actor, "withdraw_consent", "safety_guardian", link.id,
                     {"person_id": person_id, "user_id": link.user_id, "given_by": link.consent_by,
                      "basis": link.consent_basis})
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    return links


def withdraw_as_guardian(session: Session, identity: Identity, person_id: int, with_history: bool = False) -> dict:
    """A guardian withdraws the consent behind their own link (the guardian page's action); `with_history`
    deletes the person's history too — refused (and nothing withdrawn) while another consent keeps other
    guardians following the person."""
    check_guardian(session, identity, person_id)
    links = withdraw_consent(session, person_id, identity.user_id, actor=identity)
    left = guardian_ids(session, person_id)
    if with_history and left:
        raise Conflict("other guardians still follow this person under another consent; the history stays",
                       code="history_in_use")
    deleted = delete_history(session, person_id, actor=identity) if with_history else None
    return {"person_id": person_id, "closed": [link.user_id for link in links], "consent_left": bool(left),
            "history_deleted": deleted}


def delete_history(session: Session, person_id: int, actor="cli") -> dict:
    """Delete everything recorded about where the person was: positions, alerts, the devices' last fixes.
    Incidents stay (the record of a 112/119 hand-over) without their coordinates once resolved. Audited."""
    get_person(session, person_id)
    counts = {
        "positions": session.execute(delete(PositionRow).where(PositionRow.person_id == person_id)).rowcount,
        "alerts": session.execute(delete(SafetyEvent).where(SafetyEvent.person_id == person_id)).rowcount,
    }
    session.execute(delete(AlertCooldown).where(AlertCooldown.person_id == person_id))
    session.execute(update(DeviceState).where(DeviceState.person_id == person_id).values(
        fix_time=None, received_at=None, lat=None, lon=None, speed=None, accuracy=None, battery=None,
        district_code=None, zones={}, flags={}, version=DeviceState.version + 1))
    counts["incidents"] = session.execute(update(Incident).where(
        Incident.person_id == person_id, Incident.status == "resolved", Incident.lat.is_not(None))
        .values(lat=None, lon=None)).rowcount
    audit.record(session, actor, "delete_history", "safety_person", person_id, counts)
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    return counts


def guardian_ids(session: Session, person_id: int) -> list[int]:
    """Users whose guardian link to the person carries a consent in force."""
    return list(session.scalars(select(GuardianLink.user_id).where(
        GuardianLink.person_id == person_id, GuardianLink.consent_at.is_not(None),
        GuardianLink.revoked_at.is_(None)).order_by(GuardianLink.user_id)))


def control_room_code(district_code: str) -> str:
    """A district's CCTV control room is the core unit "{district}-control" (kind control_room)."""
    return f"{district_code}-control"


# --- zones ----------------------------------------------------------------------------------------


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
        raise InvalidInput("a zone needs a name", code="invalid_zone")
    parse_schedule(z.schedule)
    index = geo_index(_db(session))
    if z.polygon is None:
        if z.lat is None or z.lon is None or z.radius_m is None:
            raise InvalidInput("a zone is a circle (lat, lon, radius_m) or a polygon", code="invalid_zone")
        lat, lon = check_coordinates(z.lat, z.lon)
        if not (isinstance(z.radius_m, (int, float)) and math.isfinite(z.radius_m) and 20 <= z.radius_m <= 5000):
            raise InvalidInput("a circle's radius is between 20 m and 5 km", code="invalid_zone")
        index.locate(lat, lon)
        return {"lat": lat, "lon": lon, "radius_m": float(z.radius_m), "geometry": None}
    try:
        geom = shape(z.polygon)
    except Exception as exc:  # shapely raises several types for malformed input
        raise InvalidInput(f"the polygon is malformed: {exc}", code="invalid_zone") from None
    if geom.geom_type != "Polygon" or geom.is_empty:
        raise InvalidInput("a zone's shape must be one Polygon", code="invalid_zone")
    if not geom.is_valid:
        raise InvalidInput(f"the polygon is not valid: {explain_validity(geom)}", code="invalid_zone")
    c = geom.representative_point()
    index.locate(c.y, c.x)
    if not 100 <= area_m2(geom) <= 25_000_000:
        raise InvalidInput("a zone's area is between 100 m² and 25 km²", code="invalid_zone")
    return {"lat": c.y, "lon": c.x, "radius_m": None, "geometry": json.dumps(mapping(geom))}


def add_zone(session: Session, z: ZoneIn, *, person_id: int | None, kind: str = "safe", actor="cli") -> Zone:
    """A safe zone of a person, or (person_id None, kind "danger") a danger zone for everyone."""
    if kind not in ("safe", "danger") or (kind == "safe") != (person_id is not None):
        raise InvalidInput("safe zones belong to a person; danger zones to no one", code="invalid_zone")
    if person_id is not None:
        get_person(session, person_id)
    shape_values = _check_zone(session, z)
    zone = Zone(kind=kind, person_id=person_id, name=z.name.strip()[:200], schedule=z.schedule or None,
                **shape_values)
    session.add(zone)
    session.flush()
    audit.record(session, actor, "create", "safety_zone", zone.id, {"kind": kind, "person_id": person_id})
    _changed(session, "safety.zones.changed", {"person_id": person_id, "zone_id": zone.id})
    return zone


def update_zone(session: Session, zone_id: int, z: ZoneIn, actor="cli") -> Zone:
    zone = session.get(Zone, zone_id)
    if zone is None or not zone.active:
        raise NotFound(f"no zone {zone_id}")
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
        raise NotFound(f"no zone {zone_id}")
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
    return {"id": zone.id, "kind": zone.kind, "person_id": zone.person_id, "name": zone.name, "lat": zone.lat,
            "lon": zone.lon, "radius_m": zone.radius_m, "polygon": geometry, "schedule": zone.schedule or []}


# --- guardians' zone editing (identity-checked) ---------------------------------------------------


def check_guardian(session: Session, identity: Identity, person_id: int) -> None:
    """Raise PermissionDenied (audited) unless the caller is a consented guardian of the person."""
    if identity.can("safety.guard") and identity.user_id in guardian_ids(session, person_id):
        return
    _refuse(session, identity, "guardian_denied", person_id)


def save_zone(session: Session, identity: Identity, person_id: int, z: ZoneIn, zone_id: int | None = None) -> Zone:
    """A guardian adds or changes one of their ward's safe zones (administrators may too)."""
    if not identity.can("safety.manage"):
        check_guardian(session, identity, person_id)
    if zone_id is None:
        return add_zone(session, z, person_id=person_id, actor=identity)
    zone = session.get(Zone, zone_id)
    if zone is None or zone.person_id != person_id:
        raise NotFound(f"no zone {zone_id} for this person")
    return update_zone(session, zone_id, z, actor=identity)


def remove_zone(session: Session, identity: Identity, person_id: int, zone_id: int) -> None:
    if not identity.can("safety.manage"):
        check_guardian(session, identity, person_id)
    zone = session.get(Zone, zone_id)
    if zone is None or zone.person_id != person_id:
        raise NotFound(f"no zone {zone_id} for this person")
    delete_zone(session, zone_id, actor=identity)


# --- alerts ---------------------------------------------------------------------------------------

MESSAGES = {
    "arrival": "{person} arrived at {zone}.",
    "departure": "{person} left {zone}.",
    "absence": "{person} is not at {zone} as scheduled.",
    "danger": "{person} entered a danger zone: {zone}.",
    "sos": "{person} pressed the emergency button. The control room has been alerted.",
    "low_battery": "The device of {person} has a low battery ({battery}%).",
    "silent": "The device of {person} has not reported for {minutes} minutes.",
    "outside_city": "{person} is outside the city.",
}


def _message(kind: str, language: str, **values) -> str:
    from smartcity.core.web import gettext

    return gettext(language, MESSAGES[kind]).format(**values)


def raise_event(session: Session, ev: Raised, dedupe: str | None = None,
                cooldown_minutes: int | None = None) -> SafetyEvent | None:
    """Store an event, alert the person's guardians (outbox + live event), and for SOS and danger open an
    incident for the control room of the district the person is in. Returns None when `dedupe` says the
    same event was already raised (e.g. today's absence check, run by two processes).

    Arrivals and departures are alerted at most once per person, zone and direction within
    `cooldown_minutes` (default: SAFETY_ALERT_COOLDOWN_MINUTES): a later one is stored, marked folded, and
    counted for a digest, sent with the next alert or by `send_alert_digests` when the period ends."""
    cooldown, send = _cooldown(session, ev, cooldown_minutes)
    data = dict(ev.data or {})
    if not send:
        data["folded"] = True
    row = SafetyEvent(kind=ev.kind, person_id=ev.person_id, device_id=ev.device_id,
                      zone_id=ev.zone.id if ev.zone else None, at=ev.at, lat=ev.lat, lon=ev.lon,
                      data=data or None, dedupe=dedupe)
    if dedupe is not None:
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            return None
    else:
        session.add(row)
        session.flush()
    if cooldown is not None:
        cooldown.last_event_id = row.id
    if not send:
        return row  # folded: counted for the digest, no message now
    person = session.get(Person, ev.person_id)
    guardians = [session.get(User, uid) for uid in guardian_ids(session, ev.person_id)]
    profile = _profile(session)
    default_language = profile.language
    values = {"person": person.name, "zone": ev.zone.name if ev.zone else "", **{k: v for k, v in ev.data.items()}}
    values.setdefault("battery", "")
    values.setdefault("minutes", "")
    for user in guardians:
        language = user.language or default_language
        text = _message(ev.kind, language, **values)
        if cooldown is not None and cooldown.folded:
            text += " " + _digest_text(language, cooldown, ev.zone.name, profile.tz)
        _notify_guardian(session, user, text, ev.kind, row.id)
    if cooldown is not None and cooldown.folded:
        cooldown.folded, cooldown.folded_since = 0, None
    payload = event_to_dict(row) | {"person_name": person.name, "zone_name": ev.zone.name if ev.zone else None}
    if guardians:
        publish(session, "safety.alert", payload, users=[u.id for u in guardians])
    if ev.kind in INCIDENT_KINDS:
        open_incident(session, ev, row)
    return row


def _notify_guardian(session: Session, user: User, text: str, kind: str, event_id: int) -> None:
    channel, to = ("sms", user.phone) if user.phone else ("email", user.email) if user.email else ("log",
                                                                                                  user.username)
    notify.queue(session, channel, to, text, subject=text[:100], topic=f"safety.{kind}",
                 ref=f"safety_event:{event_id}", user_id=user.id)


COOLDOWN_KINDS = ("arrival", "departure")
DIGEST = "({folded} more {kind} alerts for {zone} since {since}.)"


def _digest_text(language: str, cd: AlertCooldown, zone_name: str, tz: tzinfo) -> str:
    from smartcity.core.web import gettext

    since = cd.folded_since.astimezone(tz).strftime("%H:%M") if cd.folded_since else ""
    return gettext(language, DIGEST).format(folded=cd.folded, kind=gettext(language, cd.kind), zone=zone_name,
                                            since=since)


def _cooldown(session: Session, ev: Raised, minutes: int | None) -> tuple[AlertCooldown | None, bool]:
    """(the cool-down row of this person, zone and direction — locked on PostgreSQL —, whether to alert now).
    No row when no cool-down applies; not alerting now means the alert is folded into the row's count."""
    if minutes is None:
        minutes = context_of(_db(session)).settings.safety_alert_cooldown_minutes
    if minutes <= 0 or ev.kind not in COOLDOWN_KINDS or ev.zone is None:
        return None, True
    now = utcnow()
    key = {"person_id": ev.person_id, "zone_id": ev.zone.id, "kind": ev.kind}
    q = select(AlertCooldown).filter_by(**key)
    if _db(session).is_postgres:
        session.execute(postgresql.insert(AlertCooldown).values(**key, sent_at=now, folded=-1)
                        .on_conflict_do_nothing())
        q = q.with_for_update()
    cd = session.scalar(q)
    if cd is None:  # SQLite: one writer, no race
        cd = AlertCooldown(**key, sent_at=now, folded=0)
        session.add(cd)
        return cd, True
    if cd.folded < 0:  # just inserted above: the first alert of this kind
        cd.folded = 0
        return cd, True
    if now - cd.sent_at < timedelta(minutes=minutes):
        cd.folded += 1
        cd.folded_since = cd.folded_since or now
        return cd, False
    cd.sent_at = now
    return cd, True


def send_alert_digests(db, settings, now: datetime | None = None) -> int:
    """Send the digest of each person's folded arrival/departure alerts whose cool-down period has ended;
    returns how many digests went out. Several processes may run it: a compare-and-set on the folded count
    lets exactly one send each."""
    now = now or utcnow()
    period = timedelta(minutes=settings.safety_alert_cooldown_minutes)
    sent = 0
    with db.session() as s:
        due = list(s.scalars(select(AlertCooldown).where(AlertCooldown.folded > 0,
                                                         AlertCooldown.sent_at <= now - period)))
        profile = _profile(s)
        default_language = profile.language
        for cd in due:
            won = s.execute(update(AlertCooldown).filter_by(person_id=cd.person_id, zone_id=cd.zone_id, kind=cd.kind,
                                                            folded=cd.folded)
                            .values(folded=0, folded_since=None, sent_at=now)
                            .execution_options(synchronize_session=False)).rowcount
            if not won:
                continue
            person = s.get(Person, cd.person_id)
            zone = s.get(Zone, cd.zone_id)
            latest = s.get(SafetyEvent, cd.last_event_id) if cd.last_event_id else None
            for uid in guardian_ids(s, cd.person_id):
                user = s.get(User, uid)
                language = user.language or default_language
                text = f"{person.name}: " + _digest_text(language, cd, zone.name if zone else "", profile.tz)
                _notify_guardian(s, user, text, "digest", latest.id if latest else 0)
            audit.record(s, "job:safety.alert_digests", "digest", "safety_person", cd.person_id,
                         {"zone_id": cd.zone_id, "kind": cd.kind, "folded": cd.folded})
            sent += 1
    return sent


def _profile(session: Session) -> CityProfile:
    """The city profile of the store the session belongs to (read once per app, not per event)."""
    return context_of(_db(session)).profile


def event_to_dict(ev: SafetyEvent) -> dict:
    return {"id": ev.id, "kind": ev.kind, "person_id": ev.person_id, "device_id": ev.device_id, "zone_id": ev.zone_id,
            "at": ev.at.isoformat(), "lat": ev.lat, "lon": ev.lon, "data": ev.data or {}}


def publish_live(session: Session, st, device, incident_districts: list[str | None]) -> None:
    """The newest position of a device as a live event: to its person's guardians, and to the control
    room of each open incident for the person (called by the engine once per device and batch)."""
    if device is None:
        return
    data = {"person_id": st.person_id, "device_id": st.device_id, "lat": st.lat, "lon": st.lon,
            "fix_time": st.fix_time.isoformat() if st.fix_time else None, "speed": st.speed,
            "accuracy": st.accuracy, "battery": st.battery}
    # Transient: superseded by the device's next fix (on SQLite they stay in this process: no log row each).
    if device.guardians:
        publish(session, "safety.position", data, users=list(device.guardians), transient=True)
    for district in dict.fromkeys(incident_districts):
        publish(session, "safety.position", data, audience="safety.operate", district=district, transient=True)


# --- incidents ------------------------------------------------------------------------------------


def incident_to_dict(inc: Incident, with_location: bool = True) -> dict:
    def t(v):
        return v.isoformat() if v else None

    out = {"id": inc.id, "kind": inc.kind, "status": inc.status, "person_id": inc.person_id,
           "device_id": inc.device_id, "event_id": inc.event_id, "zone_id": inc.zone_id,
           "district": inc.district_code, "opened_at": t(inc.opened_at), "acknowledged_at": t(inc.acknowledged_at),
           "acknowledged_by": inc.acknowledged_by, "dispatched_at": t(inc.dispatched_at),
           "dispatched_by": inc.dispatched_by, "dispatch_agency": inc.dispatch_agency,
           "dispatch_reference": inc.dispatch_reference, "dispatch_notes": inc.dispatch_notes,
           "resolved_at": t(inc.resolved_at), "resolved_by": inc.resolved_by, "resolution": inc.resolution}
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
    db = _db(session)
    engine = db.cache.get("safety.engine")
    if engine is not None and db.is_postgres:
        sa_event.listen(session, "after_commit", lambda _s: engine.handle(topic, data), once=True)


def open_incident(session: Session, ev: Raised, event_row: SafetyEvent | None = None) -> Incident:
    """Open an incident for the control room of the district the person is in — unless one of the same
    kind is already open for the person (a second SOS press joins it)."""
    existing = session.scalar(select(Incident).where(Incident.person_id == ev.person_id, Incident.kind == ev.kind,
                                                     Incident.status != "resolved"))
    if existing is not None:
        return existing
    district = ev.district_code
    if district is None and ev.lat is not None:
        area = geo_index(_db(session)).district_at(ev.lat, ev.lon)
        district = area.code if area else None
    inc = Incident(kind=ev.kind, status="open", person_id=ev.person_id, device_id=ev.device_id,
                   event_id=event_row.id if event_row else None, zone_id=ev.zone.id if ev.zone else None,
                   district_code=district, lat=ev.lat, lon=ev.lon, opened_at=utcnow())
    session.add(inc)
    session.flush()
    audit.record(session, "safety", "open", "safety_incident", inc.id, {"kind": ev.kind, "district": district})
    session.info.setdefault("safety.opened_incidents", []).append(
        {"id": inc.id, "person_id": inc.person_id, "kind": inc.kind, "district": district})
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


def _step(session: Session, identity: Identity, incident_id: int, to: str, allowed_from: tuple[str, ...],
          **fields) -> Incident:
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


def dispatch(session: Session, identity: Identity, incident_id: int, agency: str, reference: str = "",
             notes: str = "") -> Incident:
    """Hand over to police (112) or fire and rescue (119), recording their reference and notes."""
    if agency not in AGENCIES:
        raise InvalidInput("the agency is 112 (police) or 119 (fire and rescue)", code="invalid_agency")
    return _step(session, identity, incident_id, "dispatched", ("open", "acknowledged"), dispatch_agency=agency,
                 dispatch_reference=reference.strip()[:100] or None, dispatch_notes=notes.strip() or None)


def resolve(session: Session, identity: Identity, incident_id: int, resolution: str = "") -> Incident:
    """Close the incident; from now on its operators no longer see the person's location."""
    return _step(session, identity, incident_id, "resolved", ("open", "acknowledged", "dispatched"),
                 resolution=resolution.strip() or None)


def list_incidents(session: Session, identity: Identity, active: bool = True, limit: int = 200) -> list[dict]:
    """The control room's queue: its district's incidents (active ones with their location; audited)."""
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
        out.append(d)
    with_location = [d["id"] for d in out if d["lat"] is not None]
    if with_location:
        audit.record(session, identity, "read_location", "safety_incidents", identity.district_code,
                     {"incidents": with_location})
    return out


# --- privacy-checked reads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """Why the caller may read a person's location."""

    reason: str  # guardian | operator
    since: datetime | None = None  # operators: not before this time
    incident_id: int | None = None


def _refuse(session: Session, identity: Identity, action: str, person_id: int, detail: dict | None = None):
    # The refusal is audited in its own transaction: the caller's rolls back with the exception.
    with _db(session).session() as s:
        audit.record(s, identity, action, "safety_person", person_id, detail)
    raise PermissionDenied("you may not see this person's location")


@dataclass(frozen=True)
class LocationFacts:
    """What the privacy rule looks at for one person."""

    guardians: frozenset[int]  # users whose link carries a consent in force
    incidents: tuple[tuple[str | None, datetime, int], ...]  # open incidents (district, opened at, id), oldest first


def location_facts(session: Session, person_id: int) -> LocationFacts:
    incidents = session.execute(select(Incident.district_code, Incident.opened_at, Incident.id).where(
        Incident.person_id == person_id, Incident.status != "resolved").order_by(Incident.opened_at, Incident.id))
    return LocationFacts(frozenset(guardian_ids(session, person_id)), tuple(tuple(r) for r in incidents))


def location_rule(identity: Identity, facts: LocationFacts) -> Access | None:
    """The privacy rule (see the module docstring): why the caller may see the person's location, or None."""
    if identity.user_id is None:
        return None
    if identity.can("safety.guard") and identity.role != "admin" and identity.user_id in facts.guardians:
        return Access("guardian")
    if identity.can("safety.operate") and identity.district_code:
        for district, opened_at, incident_id in facts.incidents:
            if district == identity.district_code:
                return Access("operator", opened_at - OPERATOR_LOOKBACK, incident_id)
    return None


def location_access(session: Session, identity: Identity, person_id: int) -> Access:
    """The privacy rule applied to a read; raises PermissionDenied and audits the refusal."""
    access = location_rule(identity, location_facts(session, person_id))
    if access is None:
        return _refuse(session, identity, "location_denied", person_id)
    return access


LIVE_FACTS_TTL_S = 5.0  # a bound on staleness should a change event go astray


class _LiveFacts:
    """This process's location facts per person for the event stream (one look-up per person, not per
    event), dropped when the person's registry or incidents change."""

    def __init__(self, db):
        self.db = db
        self.entries: dict[int, tuple[float, LocationFacts]] = {}
        self.generation = 0
        self.lock = threading.Lock()
        db.events.on("safety.registry.changed", self._drop)
        db.events.on("safety.incident.", self._drop)

    def _drop(self, ev) -> None:
        person_id = ev.data.get("person_id")
        with self.lock:
            self.generation += 1  # a look-up in flight must not store what it read before this change
            if person_id is None:
                self.entries.clear()
            else:
                self.entries.pop(person_id, None)

    def get(self, person_id: int) -> LocationFacts:
        now = time.monotonic()
        with self.lock:
            hit, generation = self.entries.get(person_id), self.generation
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.db.session() as s:
            facts = location_facts(s, person_id)
        with self.lock:
            if self.generation == generation:
                self.entries[person_id] = (now + LIVE_FACTS_TTL_S, facts)
        return facts


def live_admission(db, identity: Identity, event) -> Admission:
    """Whether a live safety event about a person goes to this subscriber: the rule of the REST reads.
    An event without coordinates (a resolved incident) is left to its scope, which the bus has checked."""
    person_id = event.data.get("person_id")
    if not isinstance(person_id, int):
        return Admission(False, "location_denied", "safety_person", person_id)
    if event.data.get("lat") is None:
        return Admission(True, "read_live", "safety_person", person_id, {"as": "addressee"})
    access = location_rule(identity, db.derived("safety.live_facts", lambda: _LiveFacts(db)).get(person_id))
    if access is None:
        return Admission(False, "location_denied", "safety_person", person_id)
    return Admission(True, "read_live", "safety_person", person_id, {"as": access.reason})


def zone_view(session: Session, identity: Identity, person_id: int, ip: str | None = None) -> list[dict]:
    """The person's safe zones and the danger zones, for whoever may see the person's location. Audited."""
    access = location_access(session, identity, person_id)
    get_person(session, person_id)
    out = [zone_to_dict(z) for z in zones(session, person_id)]
    audit.record(session, identity, "read_zones", "safety_person", person_id,
                 {"as": access.reason, "zones": len(out)}, ip=ip)
    return out


def _person_states(session: Session, person_id: int) -> list[DeviceState]:
    return list(session.scalars(select(DeviceState).join(Device, Device.id == DeviceState.device_id).where(
        DeviceState.person_id == person_id, Device.active, DeviceState.fix_time.is_not(None))
        .order_by(DeviceState.fix_time.desc())))


def current_position(session: Session, identity: Identity, person_id: int, ip: str | None = None) -> dict | None:
    """The person's newest position (over their devices), or None if none yet. Audited."""
    access = location_access(session, identity, person_id)
    get_person(session, person_id)
    states = _person_states(session, person_id)
    audit.record(session, identity, "read_location", "safety_person", person_id, {"as": access.reason}, ip=ip)
    if not states:
        return None
    st = states[0]
    return {"person_id": person_id, "device_id": st.device_id, "lat": st.lat, "lon": st.lon,
            "fix_time": st.fix_time.isoformat(), "received_at": st.received_at.isoformat() if st.received_at else None,
            "speed": st.speed, "accuracy": st.accuracy, "battery": st.battery, "district": st.district_code,
            "flags": st.flags or {}, "zones": st.zones or {}}


def track(session: Session, identity: Identity, person_id: int, since: datetime | None = None,
          until: datetime | None = None, limit: int = 5000, ip: str | None = None) -> list[dict]:
    """The person's positions between `since` (default: the start of today in the city) and `until`,
    oldest first. Operators see no further back than an hour before their incident opened. Audited."""
    access = location_access(session, identity, person_id)
    if since is None:
        local_midnight = datetime.now(_profile(session).tz).replace(hour=0, minute=0, second=0, microsecond=0)
        since = local_midnight.astimezone(UTC)
    if access.since is not None and since < access.since:
        since = access.since
    # Through the (device, fix time) index of each of the person's devices, past ones included.
    devices = select(Device.id).where(Device.person_id == person_id).scalar_subquery()
    q = (select(PositionRow).where(PositionRow.device_id.in_(devices), PositionRow.fix_time >= since,
                                     PositionRow.person_id == person_id, PositionRow.valid)
         .order_by(PositionRow.fix_time).limit(max(1, min(limit, 50_000))))
    if until is not None:
        q = q.where(PositionRow.fix_time <= until)
    rows = list(session.scalars(q))
    audit.record(session, identity, "read_track", "safety_person", person_id,
                 {"as": access.reason, "since": since.isoformat(), "points": len(rows)}, ip=ip)
    return [{"lat": r.lat, "lon": r.lon, "fix_time": r.fix_time.isoformat(), "speed": r.speed,
             "accuracy": r.accuracy, "device_id": r.device_id} for r in rows]


def incident_view(session: Session, identity: Identity, incident_id: int, cameras: int = 5,
                  ip: str | None = None) -> dict:
    """What the console shows for one incident: the incident, the person, and — while it is not resolved —
    the current position, the track since an hour before it opened, and the nearest cameras. Audited."""
    inc = _operator_incident(session, identity, incident_id)
    person = get_person(session, inc.person_id)
    view = incident_to_dict(inc, with_location=inc.status != "resolved")
    view["person"] = {"id": person.id, "kind": person.kind, "name": person.name, "notes": person.notes}
    view["position"], view["track"], view["cameras"] = None, [], []
    if inc.status == "resolved":
        return view
    view["position"] = current_position(session, identity, person.id, ip=ip)
    view["track"] = track(session, identity, person.id, since=inc.opened_at - OPERATOR_LOOKBACK, ip=ip)
    # The cameras that saw the emergency: those nearest where it was raised (the SOS fix), not wherever the
    # person's newest fix from any device is.
    where = {"lat": inc.lat, "lon": inc.lon} if inc.lat is not None else view["position"] or {}
    if where.get("lat") is not None:
        view["cameras"] = nearest_cameras(_db(session), where["lat"], where["lon"], cameras)
    audit.record(session, identity, "read_incident", "safety_incident", inc.id, ip=ip)
    return view


def nearest_cameras(db, lat: float, lon: float, k: int = 5) -> list[dict]:
    """The cameras nearest a point with distances, from the asset registry's exported `nearest`."""
    try:
        from smartcity.assets.service import nearest
    except ImportError:  # the asset registry is not installed
        return []
    return [ref.to_dict() | {"distance_m": round(d, 1)} for ref, d in nearest(db, "cctv", lat, lon, k)]


def wards(session: Session, identity: Identity) -> list[dict]:
    """The persons the caller is a consented guardian of (no locations)."""
    if identity.user_id is None:
        return []
    q = (select(Person).join(GuardianLink, GuardianLink.person_id == Person.id)
         .where(GuardianLink.user_id == identity.user_id, GuardianLink.consent_at.is_not(None),
                GuardianLink.revoked_at.is_(None), Person.active).order_by(Person.id))
    return [{"id": p.id, "kind": p.kind, "name": p.name} for p in session.scalars(q)]


def alerts(session: Session, identity: Identity, person_id: int, limit: int = 100) -> list[dict]:
    """The person's alert history (newest first) for a guardian. Events carry locations: audited."""
    check_guardian(session, identity, person_id)
    q = (select(SafetyEvent).where(SafetyEvent.person_id == person_id).order_by(SafetyEvent.at.desc())
         .limit(max(1, min(limit, 1000))))
    rows = list(session.scalars(q))
    audit.record(session, identity, "read_alerts", "safety_person", person_id, {"count": len(rows)})
    names = {z.id: z.name for z in session.scalars(select(Zone).where(Zone.id.in_({r.zone_id for r in rows})))}
    return [event_to_dict(r) | {"zone_name": names.get(r.zone_id)} for r in rows]


# --- periodic checks (jobs) -----------------------------------------------------------------------


def purge_history(db, settings, now: datetime | None = None) -> int:
    """Delete positions and alert events older than the retention period; returns how many positions."""
    cutoff = (now or utcnow()) - timedelta(days=settings.safety_retention_days)
    with db.session() as s:
        n = s.execute(delete(PositionRow).where(PositionRow.fix_time < cutoff)).rowcount
        e = s.execute(delete(SafetyEvent).where(SafetyEvent.at < cutoff)).rowcount
        if n or e:
            audit.record(s, "job:safety.retention", "purge", "safety_positions", None,
                         {"before": cutoff.isoformat(), "positions": n, "events": e})
    return n


def check_silent(db, settings, now: datetime | None = None) -> int:
    """Alert once for each consented device that has not reported for `safety_silent_minutes` (looking
    back one day at most, so devices long switched off are not re-read every minute)."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.safety_silent_minutes)
    raised = 0
    with db.session() as s:
        q = (select(DeviceState).join(Device, Device.id == DeviceState.device_id)
             .where(Device.active, DeviceState.received_at < cutoff,
                    DeviceState.received_at >= cutoff - timedelta(days=1)))
        for st in s.scalars(q):
            flags = dict(st.flags or {})
            if flags.get("silent") or not guardian_ids(s, st.person_id):
                continue
            flags["silent"] = True
            # Compare-and-set on the version: of several processes, exactly one raises the alert.
            won = s.execute(update(DeviceState).where(DeviceState.device_id == st.device_id,
                                                      DeviceState.version == st.version)
                            .values(flags=flags, version=st.version + 1)).rowcount
            if won:
                minutes = int((now - st.received_at).total_seconds() // 60)
                raise_event(s, Raised("silent", st.person_id, st.device_id, now, st.lat, st.lon,
                                      data={"minutes": minutes}))
                raised += 1
    return raised


def check_absence(db, settings, now: datetime | None = None) -> int:
    """Alert once per window and day when a person is not inside a scheduled safe zone by the window's
    start plus the grace period (school 08:30 → not there by 09:00)."""
    now = now or utcnow()
    tz = context_of(db).profile.tz
    local = now.astimezone(tz)
    grace = timedelta(minutes=settings.safety_absence_grace_minutes)
    raised = 0
    with db.session() as s:
        for zone in s.scalars(select(Zone).where(Zone.active, Zone.kind == "safe", Zone.schedule.is_not(None))):
            for w in parse_schedule(zone.schedule):
                start = datetime.combine(local.date(), w.start, tz)
                end = datetime.combine(local.date(), w.end, tz)
                if local.weekday() not in w.days or not start + grace <= local < end:
                    continue
                states = _person_states(s, zone.person_id)
                if not guardian_ids(s, zone.person_id):
                    continue
                if any((st.zones or {}).get(str(zone.id), {}).get("s") == "in" for st in states):
                    continue
                latest = states[0] if states else None
                ev = Raised("absence", zone.person_id, latest.device_id if latest else None, now,
                            latest.lat if latest else None, latest.lon if latest else None,
                            ZoneShape(zone.id, zone.kind, zone.person_id, zone.name),
                            {"expected_from": w.start.strftime("%H:%M")})
                if raise_event(s, ev, dedupe=f"{zone.id}:{local.date().isoformat()}:{w.start:%H%M}"):
                    raised += 1
    return raised


# --- demo and simulation helpers ------------------------------------------------------------------


def walk(route: list[tuple[float, float]], *, speed_m_s: float = 1.4, interval_s: float = 10,
         start: datetime | None = None) -> Iterator[tuple[datetime, float, float]]:
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
        child = add_person(s, "child", "Park Haneul", "Grade 3, Daechi Elementary", actor="demo")
        elder = add_person(s, "dementia", "Park Sunja", "Early-stage dementia; walks daily", actor="demo")
        add_device(s, child.id, "demo-child-1", "osmand", "Haneul's phone", actor="demo")
        add_device(s, elder.id, "demo-elder-1", "owntracks", "Sunja's tag", actor="demo")
        if guardian is not None:
            for person in (child, elder):
                link_guardian(s, person.id, guardian.id, "parent" if person is child else "child", actor="demo")
                record_consent(s, person.id, guardian.id, given_by="Park Seoyeon (guardian)",
                               basis="guardian's written consent, demo", actor="demo")
        for person in (child, elder):
            add_zone(s, ZoneIn("Home", DEMO_HOME[0], DEMO_HOME[1], 80), person_id=person.id, actor="demo")
        school = {"type": "Polygon", "coordinates": [[(lon, lat) for lat, lon in DEMO_SCHOOL + DEMO_SCHOOL[:1]]]}
        add_zone(s, ZoneIn("School", polygon=school, schedule=[{"days": [0, 1, 2, 3, 4], "start": "08:30",
                                                                 "end": "15:00"}]), person_id=child.id, actor="demo")
        add_zone(s, ZoneIn("Construction site", DEMO_DANGER[0], DEMO_DANGER[1], 60), person_id=None, kind="danger",
                 actor="demo")
    yield "safety: 2 protected persons, devices demo-child-1 and demo-elder-1, zones Home, School, a danger zone"
