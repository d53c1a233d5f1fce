"""Alerts: an event stored, its guardians notified (with the arrival/departure cool-down and its digest),
the control room's incident opened for SOS and danger; the live position events."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smartcity.core import audit, notify
from smartcity.core.db import utcnow
from smartcity.core.events import publish
from smartcity.core.i18n import N_
from smartcity.core.models import User
from smartcity.safety.common import INCIDENT_KINDS, _db, _profile
from smartcity.safety.consent import consented_links
from smartcity.safety.engine import Raised
from smartcity.safety.guardian import (
    NEVER_HELD,
    contact,
    default_cooldown,
    in_quiet_hours,
    wants,
)
from smartcity.safety.incidents import open_incident
from smartcity.safety.models import AlertCooldown, GuardianLink, HeldAlert, Person, SafetyEvent, Zone
from smartcity.safety.settings import SafetySettings

MESSAGES = {
    "arrival": N_("{person} arrived at {zone}."),
    "departure": N_("{person} left {zone}."),
    "absence": N_("{person} is not at {zone} as scheduled."),
    "danger": N_("{person} entered a danger zone: {zone}."),
    "sos": N_("{person} pressed the emergency button. The control room has been alerted."),
    "low_battery": N_("The device of {person} has a low battery ({battery}%)."),
    "silent": N_("The device of {person} has not reported for {minutes} minutes."),
    "outside_city": N_("{person} is outside the city."),
}


def _message(kind: str, language: str, **values) -> str:
    from smartcity.core.i18n import translate

    # translate(), not gettext().format(): the zone's name decides the particle ("학교를", "공원을").
    return translate(language, MESSAGES[kind], **values)


def raise_event(
    session: Session, ev: Raised, dedupe: str | None = None, cooldown_minutes: int | None = None
) -> SafetyEvent | None:
    """Store an event, alert the person's guardians (outbox + live event), and for SOS and danger open an
    incident for the control room of the district the person is in. Returns None when `dedupe` says the
    same event was already raised (e.g. today's absence check, run by two processes).

    Each guardian's preferences apply (`safety.guardian`): kinds they turned off are not sent to them (SOS
    always is), their channel, and their quiet hours, which hold what is not urgent (all but SOS and danger)
    until they end (`send_alert_digests` sends the held ones in one message). Arrivals and departures are
    alerted to a guardian at most once per zone and direction within their cool-down (theirs, else
    `cooldown_minutes`, else SAFETY_ALERT_COOLDOWN_MINUTES): a later one is counted for a digest, sent with
    the next alert or by `send_alert_digests` when the period ends. An event folded for every guardian is
    stored marked folded."""
    if cooldown_minutes is None:
        cooldown_minutes = default_cooldown(session)
    consented = consented_links(session, ev.person_id)  # read once: the same transaction changes no link
    links = [link for link in consented if wants(link, ev.kind)]
    cooling = {link.user_id: _cooldown(session, ev, link, cooldown_minutes) for link in links}
    cooling = {uid: decision for uid, decision in cooling.items() if decision[0] is not None}
    data = dict(ev.data or {})
    if links and all(uid in cooling and not cooling[uid][1] for uid in (link.user_id for link in links)):
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
    for cd, _ in cooling.values():
        cd.last_event_id = row.id
    if data.get("folded"):
        return row  # folded: counted for the digest, no message now
    person = session.get(Person, ev.person_id)
    profile = _profile(session)
    default_language = profile.language
    values = {"person": person.name, "zone": ev.zone.name if ev.zone else "", **{k: v for k, v in ev.data.items()}}
    values.setdefault("battery", "")
    values.setdefault("minutes", "")
    now = utcnow()
    for link in links:
        cooldown, send = cooling.get(link.user_id, (None, True))
        if not send:
            continue
        user = session.get(User, link.user_id)
        language = user.language or default_language
        text = _message(ev.kind, language, **values)
        if cooldown is not None and cooldown.folded:
            text += " " + _digest_text(language, cooldown, ev.zone.name, profile.tz)
            cooldown.folded, cooldown.folded_since = 0, None
        if ev.kind not in NEVER_HELD and in_quiet_hours(link, now, profile.tz):
            session.add(HeldAlert(user_id=user.id, person_id=ev.person_id, event_id=row.id, text=text, created_at=now))
            continue
        _notify_guardian(session, user, text, ev.kind, row.id, link.alert_channel, ev.person_id)
    payload = event_to_dict(row) | {"person_name": person.name, "zone_name": ev.zone.name if ev.zone else None}
    if consented:
        publish(session, "safety.alert", payload, users=[link.user_id for link in consented])
    if ev.kind in INCIDENT_KINDS:
        open_incident(session, ev, row)
    return row


# A push message's title, by kind: an emergency says so before it is opened.
PUSH_TITLES = {"sos": N_("Emergency: SOS"), "danger": N_("Danger zone alert")}
PUSH_TITLE = N_("Safety alert")
# Seconds a push service keeps an alert for a phone that is off: an emergency for a day (the guardian still
# needs to know), a routine alert a few hours (an arrival told the next morning is noise).
URGENT_TTL, ROUTINE_TTL = 24 * 3600, 4 * 3600


def _notify_guardian(
    session: Session,
    user: User,
    text: str,
    kind: str,
    event_id: int,
    chosen: str | None = None,
    person_id: int | None = None,
) -> None:
    """Queue an alert to a guardian by their channel. Push goes to each phone they turned it on in (SOS and
    danger with Urgency high); an emergency by push also goes by SMS or email, since a push service confirms
    no delivery; push with no phone subscribed falls back to SMS or email."""
    topic, ref = f"safety.{kind}", f"safety_event:{event_id}"
    urgent = kind in INCIDENT_KINDS
    if chosen == "push":
        from smartcity.core.web import gettext

        language = user.language or _profile(session).language
        pushed = notify.queue_push(
            session,
            user.id,
            gettext(language, PUSH_TITLES.get(kind, PUSH_TITLE)),
            text,
            url=f"/safety/guardian/{person_id}" if person_id else "/safety/guardian",
            topic=topic,
            ref=ref,
            urgent=urgent,
            ttl=URGENT_TTL if urgent else ROUTINE_TTL,
        )
        if pushed and not urgent:
            return
    channel, to = contact(user, None if chosen == "push" else chosen)
    notify.queue(session, channel, to, text, subject=text[:100], topic=topic, ref=ref, user_id=user.id)


COOLDOWN_KINDS = (N_("arrival"), N_("departure"))
DIGEST = N_("({folded} more {kind} alerts for {zone} since {since}.)")


def _digest_text(language: str, cd: AlertCooldown, zone_name: str, tz: tzinfo) -> str:
    from smartcity.core.web import gettext

    since = cd.folded_since.astimezone(tz).strftime("%H:%M") if cd.folded_since else ""
    return gettext(language, DIGEST).format(
        folded=cd.folded, kind=gettext(language, cd.kind), zone=zone_name, since=since
    )


def _cooldown(session: Session, ev: Raised, link: GuardianLink, default: int) -> tuple[AlertCooldown | None, bool]:
    """(the guardian's cool-down row of this person, zone and direction — locked on PostgreSQL —, whether to
    alert them now). No row when no cool-down applies; not alerting now means the alert is folded into the
    row's count."""
    minutes = default if link.cooldown_minutes is None else link.cooldown_minutes
    if minutes <= 0 or ev.kind not in COOLDOWN_KINDS or ev.zone is None:
        return None, True
    now = utcnow()
    key = {"person_id": ev.person_id, "user_id": link.user_id, "zone_id": ev.zone.id, "kind": ev.kind}
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
    """Send each guardian the digest of a person's folded arrival/departure alerts whose cool-down period
    has ended, and the alerts held in quiet hours once these end; returns how many messages went out.
    Several processes may run it: a compare-and-set on the folded count, and deleting the held alerts
    before sending them, let exactly one send each."""
    now = now or utcnow()
    default = settings.of(SafetySettings).alert_cooldown_minutes
    sent = 0
    with db.session() as s:
        links = {(link.person_id, link.user_id): link for link in _consented(s)}
        profile = _profile(s)
        for cd in list(s.scalars(select(AlertCooldown).where(AlertCooldown.folded > 0))):
            link = links.get((cd.person_id, cd.user_id))
            minutes = default if link is None or link.cooldown_minutes is None else link.cooldown_minutes
            if link is not None and cd.sent_at > now - timedelta(minutes=minutes):
                continue
            won = s.execute(
                update(AlertCooldown)
                .filter_by(person_id=cd.person_id, user_id=cd.user_id, zone_id=cd.zone_id, kind=cd.kind)
                .filter_by(folded=cd.folded)
                .values(folded=0, folded_since=None, sent_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not won or link is None:  # a guardian whose consent ended is told nothing more
                continue
            person = s.get(Person, cd.person_id)
            zone = s.get(Zone, cd.zone_id)
            user = s.get(User, cd.user_id)
            language = user.language or profile.language
            text = f"{person.name}: " + _digest_text(language, cd, zone.name if zone else "", profile.tz)
            _notify_guardian(s, user, text, "digest", cd.last_event_id or 0, link.alert_channel, cd.person_id)
            audit.record(
                s,
                "job:safety.alert_digests",
                "digest",
                "safety_person",
                cd.person_id,
                {"user_id": cd.user_id, "zone_id": cd.zone_id, "kind": cd.kind, "folded": cd.folded},
            )
            sent += 1
        sent += _release_held(s, links, now)
    return sent


HELD = N_("Held during your quiet hours:")


def _consented(session: Session) -> list[GuardianLink]:
    return list(
        session.scalars(
            select(GuardianLink).where(GuardianLink.consent_at.is_not(None), GuardianLink.revoked_at.is_(None))
        )
    )


def _release_held(session: Session, links: dict, now: datetime) -> int:
    """Send each guardian, in one message per ward, the alerts held while their quiet hours lasted."""
    q = select(HeldAlert).order_by(HeldAlert.id)
    if _db(session).is_postgres:
        q = q.with_for_update(skip_locked=True)  # another process sending the same held alerts skips them
    held: dict[tuple[int, int], list[HeldAlert]] = {}
    for h in session.scalars(q):
        held.setdefault((h.person_id, h.user_id), []).append(h)
    profile = _profile(session)
    sent = 0
    for key, items in held.items():
        link = links.get(key)
        if link is not None and in_quiet_hours(link, now, profile.tz):
            continue
        for h in items:
            session.delete(h)
        if link is None:  # the consent ended meanwhile: the held alerts go unsent
            continue
        user = session.get(User, link.user_id)
        from smartcity.core.web import gettext

        lines = [f"{h.created_at.astimezone(profile.tz):%H:%M} {h.text}" for h in items]
        text = gettext(user.language or profile.language, HELD) + "\n" + "\n".join(lines)
        _notify_guardian(session, user, text, "held", items[-1].event_id, link.alert_channel, key[0])
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
