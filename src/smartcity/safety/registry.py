"""The safety registry: protected persons and their devices (with the secrets devices authenticate by)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.errors import Conflict, InvalidInput, NotFound
from smartcity.core.geo import geo_index
from smartcity.core.i18n import N_
from smartcity.safety.access import check_guardian
from smartcity.safety.common import PERSON_KINDS, _changed, _db
from smartcity.safety.engine import new_device_secret, parse_protocols
from smartcity.safety.models import Device, DeviceState, Person, PositionRow, RecentPositionRow


def add_person(session: Session, kind: str, name: str, notes: str = "", actor="cli") -> Person:
    """Register a protected person (child, elderly, dementia)."""
    if kind not in PERSON_KINDS:
        raise InvalidInput(f"a person's kind is one of {', '.join(PERSON_KINDS)}", code="invalid_kind")
    if not name.strip():
        raise InvalidInput(N_("a person needs a name"), code="invalid_name")
    person = Person(kind=kind, name=name.strip()[:200], notes=notes)
    session.add(person)
    session.flush()
    audit.record(session, actor, "create", "safety_person", person.id, {"kind": kind})
    return person


def get_person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(N_("no protected person {person_id}"), params={"person_id": person_id})
    return person


def add_device(
    session: Session,
    person_id: int,
    identifier: str,
    protocol: str = "osmand",
    name: str = "",
    actor="cli",
    secret: bool = False,
) -> Device:
    """Register a device by the identifier it sends (Traccar Client's device id, OwnTracks' user/device).

    `protocol`: the protocols it may report through, comma-separated (osmand, owntracks) or any. A device
    that may use OwnTracks (or with `secret`) gets a secret, its HTTP Basic password: the hash is stored, the
    secret itself is on the returned device as `issued_secret`, to be shown once."""
    get_person(session, person_id)
    identifier = (identifier or "").strip()
    if not identifier or len(identifier) > 100 or any(c.isspace() for c in identifier):
        raise InvalidInput(N_("a device identifier has 1 to 100 characters and no spaces"), code="invalid_identifier")
    protocols = parse_protocols(protocol)
    if session.scalar(select(Device.id).where(Device.identifier == identifier)):
        raise Conflict(
            N_("a device {identifier!r} is already registered"),
            params={"identifier": identifier},
            code="duplicate_device",
        )
    device = Device(identifier=identifier, protocol=",".join(sorted(protocols)), name=name, person_id=person_id)
    issued = None
    if secret or "owntracks" in protocols:
        issued, device.secret_hash = new_device_secret()
    session.add(device)
    session.flush()
    session.add(DeviceState(device_id=device.id, person_id=person_id, version=0, zones={}, flags={}))
    audit.record(
        session,
        actor,
        "create",
        "safety_device",
        device.id,
        {"identifier": identifier, "protocols": device.protocol, "secret": issued is not None},
    )
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    device.issued_secret = issued
    return device


def reset_device_secret(session: Session, device_id: int, actor="cli") -> str:
    """Give a device a new secret (the old one stops working); returns it, to be shown once."""
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(N_("no device {device_id}"), params={"device_id": device_id})
    issued, device.secret_hash = new_device_secret()
    audit.record(session, actor, "reset_secret", "safety_device", device_id)
    _changed(session, "safety.registry.changed", {"person_id": device.person_id})
    return issued


def ward_devices(session: Session, identity: Identity, person_id: int) -> list[dict]:
    """A ward's devices as their guardian sees them: identifier, protocols, whether a secret is set (never
    the secret: only its hash is kept)."""
    check_guardian(session, identity, person_id)
    q = select(Device).where(Device.person_id == person_id, Device.active).order_by(Device.id)
    return [
        {
            "id": d.id,
            "identifier": d.identifier,
            "name": d.name,
            "protocols": d.protocol.split(","),
            "has_secret": d.secret_hash is not None,
        }
        for d in session.scalars(q)
    ]


def renew_ward_device_secret(session: Session, identity: Identity, person_id: int, device_id: int) -> str:
    """A guardian gives their ward's OwnTracks device a new secret (to set up the app); returned once."""
    check_guardian(session, identity, person_id)
    device = session.get(Device, device_id)
    if device is None or device.person_id != person_id or not device.active:
        raise NotFound(N_("no device {device_id} of this person"), params={"device_id": device_id})
    if "owntracks" not in parse_protocols(device.protocol):
        raise InvalidInput(N_("only a device that reports through OwnTracks uses a secret"), code="no_secret_needed")
    return reset_device_secret(session, device_id, actor=identity)


def find_device(session: Session, ref: str | int) -> Device:
    """A device by its id or by the identifier it sends."""
    device = session.scalar(select(Device).where(Device.identifier == str(ref)))
    if device is None and str(ref).isdigit():
        device = session.get(Device, int(ref))
    if device is None:
        raise NotFound(N_("no device {ref}"), params={"ref": ref})
    return device


def remove_device(session: Session, device_id: int, actor="cli") -> None:
    """Remove a device: what it sends is refused from now on (in every process, within a second or so on
    SQLite); the positions it sent stay with the person until their history is deleted."""
    device = session.get(Device, device_id)
    if device is None or not device.active:
        raise NotFound(N_("no device {device_id}"), params={"device_id": device_id})
    device.active = False
    audit.record(session, actor, "deactivate", "safety_device", device_id, {"identifier": device.identifier})
    _changed(session, "safety.registry.changed", {"person_id": device.person_id})


def devices(session: Session) -> list[tuple[Device, Person, DeviceState | None]]:
    q = (
        select(Device, Person, DeviceState)
        .join(Person, Person.id == Device.person_id)
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .order_by(Device.id)
    )
    return [tuple(r) for r in session.execute(q).all()]


def persons(session: Session) -> list[Person]:
    return list(session.scalars(select(Person).order_by(Person.id)))


@dataclass
class LiveState:
    """A device's live state as readers see it: its state row, with the live fields of its newest stored position
    where that is newer (the writer writes a row's live fields only with a zone or flag change, else every
    SAFETY_STATE_CHECKPOINT_S)."""

    device_id: int
    person_id: int
    fix_time: datetime | None
    received_at: datetime | None
    lat: float | None
    lon: float | None
    speed: float | None
    accuracy: float | None
    battery: float | None
    district_code: str | None
    flags: dict
    zones: dict


FEW_DEVICES = 500  # newest_fixes: up to this many devices are named in its query of the staging table


def newest_fixes(session: Session, device_ids: list[int], after: datetime | None = None) -> dict[int, Any]:
    """Each device's newest stored valid fix, staged or not (only staged ones newer than `after`, when given:
    the oldest of the devices' checkpointed states). The positions table: one look-up through the (device, fix
    time) key per device. The staging table (keyed by time first, `RecentPositionRow`): one read of its time
    range from `after` on, for all the devices (a scan of what is staged in that range: the staging table is
    small, see `RecentPositionRow`)."""
    found: dict[int, Any] = {}
    columns = ("fix_time", "received_at", "lat", "lon", "speed", "accuracy", "battery")
    c = PositionRow.__table__.c
    for device_id in device_ids:
        row = session.execute(
            select(*(c[name] for name in columns))
            .where(c.device_id == device_id, c.valid)
            .order_by(c.fix_time.desc())
            .limit(1)
        ).first()
        if row is not None:
            found[device_id] = row
    if not device_ids:
        return found
    # Each device's newest staged valid fix: the newest time per device, then its row through the staging key.
    # A few devices (a person's): named in the query. Many (the silent-device job): all staged devices, kept
    # here, since a list of every device would pass SQLite's limit on bound parameters (32,766).
    recent = RecentPositionRow.__table__
    r = recent.c
    newest = select(r.device_id, func.max(r.fix_time).label("fix_time")).where(r.valid)
    if after is not None:
        newest = newest.where(r.fix_time > after)
    if len(device_ids) <= FEW_DEVICES:
        newest = newest.where(r.device_id.in_(device_ids))
    newest = newest.group_by(r.device_id).subquery()
    staged = select(r.device_id, *(r[name] for name in columns)).select_from(
        recent.join(newest, (r.device_id == newest.c.device_id) & (r.fix_time == newest.c.fix_time))
    )
    wanted = set(device_ids)
    for row in session.execute(staged):
        if row.device_id in wanted and (row.device_id not in found or row.fix_time > found[row.device_id].fix_time):
            found[row.device_id] = row
    return found


def _person_states(session: Session, person_id: int) -> list[LiveState]:
    """The person's active devices' live states, newest first."""
    rows = list(
        session.scalars(
            select(DeviceState)
            .join(Device, Device.id == DeviceState.device_id)
            .where(DeviceState.person_id == person_id, Device.active)
        )
    )
    known = [st.fix_time for st in rows]
    after = min(known) if known and None not in known else None  # staged fixes older than a state are not newer
    newer = newest_fixes(session, [st.device_id for st in rows], after)
    out = []
    for st in rows:
        state = LiveState(
            st.device_id, st.person_id, st.fix_time, st.received_at, st.lat, st.lon, st.speed, st.accuracy,
            st.battery, st.district_code, dict(st.flags or {}), dict(st.zones or {}),
        )  # fmt: skip
        fix = newer.get(st.device_id)
        if fix is not None and (state.fix_time is None or fix.fix_time > state.fix_time):
            geo = geo_index(_db(session))
            district = int(geo.district_indexes([fix.lat], [fix.lon])[0])
            state.fix_time, state.received_at, state.lat, state.lon = fix.fix_time, fix.received_at, fix.lat, fix.lon
            state.speed, state.accuracy = fix.speed, fix.accuracy
            state.battery = state.battery if fix.battery is None else fix.battery
            state.district_code = geo.districts[district].code if district >= 0 else None
        if state.fix_time is not None:
            out.append(state)
    return sorted(out, key=lambda state: state.fix_time, reverse=True)
