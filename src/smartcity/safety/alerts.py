"""Alerts: an event stored, its guardians notified (with the arrival/departure cool-down and its digest),
the control room's incident opened for SOS and danger; the live position events."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smartcity.core import audit, notify
from smartcity.core.context import context_of
from smartcity.core.db import utcnow
from smartcity.core.events import publish
from smartcity.core.models import User
from smartcity.safety.access import guardian_ids
from smartcity.safety.common import INCIDENT_KINDS, _db, _profile
from smartcity.safety.engine import Raised
from smartcity.safety.incidents import open_incident
from smartcity.safety.models import AlertCooldown, Person, SafetyEvent, Zone
from smartcity.safety.settings import SafetySettings

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


def raise_event(
    session: Session, ev: Raised, dedupe: str | None = None, cooldown_minutes: int | None = None
) -> SafetyEvent | None:
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
    row = SafetyEvent(
        kind=ev.kind,
        person_id=ev.person_id,
        device_id=ev.device_id,
        zone_id=ev.zone.id if ev.zone else None,
        at=ev.at,
        lat=ev.lat,
        lon=ev.lon,
        data=data or None,
        dedupe=dedupe,
    )
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
    channel, to = ("sms", user.phone) if user.phone else ("email", user.email) if user.email else ("log", user.username)
    notify.queue(
        session,
        channel,
        to,
        text,
        subject=text[:100],
        topic=f"safety.{kind}",
        ref=f"safety_event:{event_id}",
        user_id=user.id,
    )


COOLDOWN_KINDS = ("arrival", "departure")
DIGEST = "({folded} more {kind} alerts for {zone} since {since}.)"


def _digest_text(language: str, cd: AlertCooldown, zone_name: str, tz: tzinfo) -> str:
    from smartcity.core.web import gettext

    since = cd.folded_since.astimezone(tz).strftime("%H:%M") if cd.folded_since else ""
    return gettext(language, DIGEST).format(
        folded=cd.folded, kind=gettext(language, cd.kind), zone=zone_name, since=since
    )


def _cooldown(session: Session, ev: Raised, minutes: int | None) -> tuple[AlertCooldown | None, bool]:
    """(the cool-down row of this person, zone and direction — locked on PostgreSQL —, whether to alert now).
    No row when no cool-down applies; not alerting now means the alert is folded into the row's count."""
    if minutes is None:
        minutes = context_of(_db(session)).settings_of(SafetySettings).alert_cooldown_minutes
    if minutes <= 0 or ev.kind not in COOLDOWN_KINDS or ev.zone is None:
        return None, True
    now = utcnow()
    key = {"person_id": ev.person_id, "zone_id": ev.zone.id, "kind": ev.kind}
    q = select(AlertCooldown).filter_by(**key)
    if _db(session).is_postgres:
        session.execute(postgresql.insert(AlertCooldown).values(**key, sent_at=now, folded=-1).on_conflict_do_nothing())
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
    period = timedelta(minutes=settings.of(SafetySettings).alert_cooldown_minutes)
    sent = 0
    with db.session() as s:
        due = list(
            s.scalars(select(AlertCooldown).where(AlertCooldown.folded > 0, AlertCooldown.sent_at <= now - period))
        )
        profile = _profile(s)
        default_language = profile.language
        for cd in due:
            won = s.execute(
                update(AlertCooldown)
                .filter_by(person_id=cd.person_id, zone_id=cd.zone_id, kind=cd.kind, folded=cd.folded)
                .values(folded=0, folded_since=None, sent_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
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
            audit.record(
                s,
                "job:safety.alert_digests",
                "digest",
                "safety_person",
                cd.person_id,
                {"zone_id": cd.zone_id, "kind": cd.kind, "folded": cd.folded},
            )
            sent += 1
    return sent


def event_to_dict(ev: SafetyEvent) -> dict:
    return {
        "id": ev.id,
        "kind": ev.kind,
        "person_id": ev.person_id,
        "device_id": ev.device_id,
        "zone_id": ev.zone_id,
        "at": ev.at.isoformat(),
        "lat": ev.lat,
        "lon": ev.lon,
        "data": ev.data or {},
    }


def publish_live(session: Session, st, device, incident_districts: list[str | None]) -> None:
    """The newest position of a device as a live event: to its person's guardians, and to the control
    room of each open incident for the person (called by the engine once per device and batch)."""
    if device is None:
        return
    data = {
        "person_id": st.person_id,
        "device_id": st.device_id,
        "lat": st.lat,
        "lon": st.lon,
        "fix_time": st.fix_time.isoformat() if st.fix_time else None,
        "speed": st.speed,
        "accuracy": st.accuracy,
        "battery": st.battery,
    }
    # Transient: superseded by the device's next fix (on SQLite they stay in this process: no log row each).
    if device.guardians:
        publish(session, "safety.position", data, users=list(device.guardians), transient=True)
    for district in dict.fromkeys(incident_districts):
        publish(session, "safety.position", data, audience="safety.operate", district=district, transient=True)
