"""What a guardian decides and sees about their own link to a ward: which alerts come, by which channel, quiet
hours and the cool-down (applied by `alerts.raise_event`), the progress of the ward's emergencies, and adding
a device to the ward; and the consent register the service's managers keep on the web (as the CLI does)."""

from __future__ import annotations

import re
from datetime import datetime, time, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit, push
from smartcity.core.auth import Identity
from smartcity.core.context import context_of
from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import N_
from smartcity.core.models import User
from smartcity.safety.access import check_guardian
from smartcity.safety.common import EVENT_KINDS, INCIDENT_KINDS, _db
from smartcity.safety.consent import record_consent, withdraw_consent
from smartcity.safety.models import Device, GuardianLink, Incident, Person
from smartcity.safety.registry import add_device
from smartcity.safety.settings import SafetySettings

ALWAYS_ON = ("sos",)  # an emergency always reaches every guardian
NEVER_HELD = INCIDENT_KINDS  # SOS and danger go at once, quiet hours or not
CHANNELS = ("sms", "email", "push")
MAX_COOLDOWN = 24 * 60
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _own_link(session: Session, identity: Identity, person_id: int) -> GuardianLink:
    check_guardian(session, identity, person_id)
    return session.scalar(
        select(GuardianLink).where(GuardianLink.person_id == person_id, GuardianLink.user_id == identity.user_id)
    )


def default_cooldown(session: Session) -> int:
    return context_of(_db(session)).settings_of(SafetySettings).alert_cooldown_minutes


def wants(link: GuardianLink, kind: str) -> bool:
    """Whether the guardian asked for alerts of this kind (SOS: always)."""
    return kind in ALWAYS_ON or kind not in (link.alerts_off or [])


def in_quiet_hours(link: GuardianLink, at: datetime, tz: tzinfo) -> bool:
    """Whether `at` falls in the guardian's quiet hours (city time; a window may run past midnight)."""
    if not link.quiet_start or not link.quiet_end or link.quiet_start == link.quiet_end:
        return False
    clock = at.astimezone(tz).strftime("%H:%M")
    if link.quiet_start < link.quiet_end:
        return link.quiet_start <= clock < link.quiet_end
    return clock >= link.quiet_start or clock < link.quiet_end


def contact(user: User, channel: str | None) -> tuple[str, str]:
    """(channel, address) for a message to the guardian: the chosen channel when the account has its
    address, else SMS to the phone, else email, else the log."""
    if channel == "email" and user.email:
        return "email", user.email
    if channel == "sms" and user.phone:
        return "sms", user.phone
    return ("sms", user.phone) if user.phone else ("email", user.email) if user.email else ("log", user.username)


def alert_preferences(session: Session, identity: Identity, person_id: int) -> dict:
    """The calling guardian's alert preferences for one ward (refused, audited, for anyone else)."""
    link = _own_link(session, identity, person_id)
    user = session.get(User, identity.user_id)
    pushed = push.has_subscription(session, user.id)
    channel = "push" if link.alert_channel == "push" and pushed else contact(user, link.alert_channel)[0]
    return {
        "kinds": list(EVENT_KINDS),
        "always_on": list(ALWAYS_ON),
        "never_held": list(NEVER_HELD),
        "off": [k for k in (link.alerts_off or []) if k not in ALWAYS_ON],
        "channel": link.alert_channel,
        "channel_used": channel,
        "channels": {"sms": bool(user.phone), "email": bool(user.email), "push": pushed},
        "quiet_start": link.quiet_start,
        "quiet_end": link.quiet_end,
        "cooldown_minutes": link.cooldown_minutes,
        "default_cooldown": default_cooldown(session),
    }


def _clock(value: str | None, field: str) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if not _CLOCK.match(value):
        raise InvalidInput(N_("{field} is a time of day as HH:MM"), params={"field": field}, code="invalid_quiet_hours")
    return time.fromisoformat(value).strftime("%H:%M")


def set_alert_preferences(
    session: Session,
    identity: Identity,
    person_id: int,
    *,
    off: list[str],
    channel: str | None,
    quiet_start: str | None,
    quiet_end: str | None,
    cooldown_minutes: int | None,
) -> dict:
    """Store the calling guardian's alert preferences for one ward; all or nothing (a bad value changes
    nothing). SOS cannot be turned off. Audited."""
    link = _own_link(session, identity, person_id)
    unknown = sorted(set(off) - set(EVENT_KINDS))
    if unknown:
        raise InvalidInput(f"unknown alert kinds: {', '.join(unknown)}", code="invalid_kind")
    if set(off) & set(ALWAYS_ON):
        raise InvalidInput(N_("SOS alerts cannot be turned off"), code="sos_always_on")
    channel = channel or None
    user = session.get(User, identity.user_id)
    if channel is not None and channel not in CHANNELS:
        raise InvalidInput(f"a channel is one of {', '.join(CHANNELS)}", code="invalid_channel")
    if channel == "sms" and not user.phone or channel == "email" and not user.email:
        raise InvalidInput(
            N_("your account has no address for {channel}"), params={"channel": channel}, code="no_address"
        )
    if channel == "push" and not push.has_subscription(session, user.id):
        raise InvalidInput(N_("no phone of yours has notifications turned on yet"), code="no_push_subscription")
    start, end = _clock(quiet_start, "quiet_start"), _clock(quiet_end, "quiet_end")
    if (start is None) != (end is None):
        raise InvalidInput(N_("quiet hours need a start and an end"), code="invalid_quiet_hours")
    if cooldown_minutes is not None and not 0 <= cooldown_minutes <= MAX_COOLDOWN:
        raise InvalidInput(
            N_("the cool-down is 0 to {most} minutes"), params={"most": MAX_COOLDOWN}, code="invalid_cooldown"
        )
    link.alerts_off = sorted(set(off), key=EVENT_KINDS.index) or None
    link.alert_channel, link.quiet_start, link.quiet_end = channel, start, end
    link.cooldown_minutes = cooldown_minutes
    detail = {
        "person_id": person_id,
        "off": link.alerts_off or [],
        "channel": channel,
        "quiet": [start, end] if start else None,
        "cooldown_minutes": cooldown_minutes,
    }
    audit.record(session, identity, "alert_preferences", "safety_guardian", link.id, detail)
    return alert_preferences(session, identity, person_id)


def ward_incidents(session: Session, identity: Identity, person_id: int, limit: int = 5) -> list[dict]:
    """The ward's latest emergencies (SOS, danger) and how far the control room has taken each: open,
    acknowledged, dispatched, resolved, with times — for their guardian. No coordinates. Audited."""
    check_guardian(session, identity, person_id)
    rows = list(
        session.scalars(
            select(Incident).where(Incident.person_id == person_id).order_by(Incident.id.desc()).limit(limit)
        )
    )
    audit.record(
        session, identity, "read_incidents", "safety_person", person_id, {"as": "guardian", "count": len(rows)}
    )
    return [
        {
            "id": inc.id,
            "kind": inc.kind,
            "status": inc.status,
            "active": inc.status != "resolved",
            "steps": [
                {"step": "open", "at": inc.opened_at.isoformat()},
                *(
                    {"step": step, "at": at.isoformat()}
                    for step, at in (
                        ("acknowledged", inc.acknowledged_at),
                        ("dispatched", inc.dispatched_at),
                        ("resolved", inc.resolved_at),
                    )
                    if at is not None
                ),
            ],
            "agency": inc.dispatch_agency,
        }
        for inc in rows
    ]


def add_ward_device(
    session: Session, identity: Identity, person_id: int, identifier: str, protocol: str, name: str = ""
) -> Device:
    """A consented guardian registers a device for their ward (the registry's rules: a unique identifier,
    known protocols). An OwnTracks device's secret is on the result (`issued_secret`), to be shown once."""
    check_guardian(session, identity, person_id)
    if protocol not in ("osmand", "owntracks"):
        raise InvalidInput(N_("a device reports through osmand or owntracks"), code="invalid_protocol")
    return add_device(session, person_id, identifier, protocol, name.strip()[:200], actor=identity)


def consent_register(session: Session, identity: Identity) -> list[dict]:
    """Every person with their guardian links and the consent behind each (no locations, no contact
    details): the registry managers' view. Audited, as a read of personal data."""
    users = {u.id: u for u in session.scalars(select(User).where(User.role == "guardian").order_by(User.username))}
    links: dict[int, list[dict]] = {}
    for link in session.scalars(select(GuardianLink).order_by(GuardianLink.id)):
        user = users.get(link.user_id) or session.get(User, link.user_id)
        links.setdefault(link.person_id, []).append(
            {
                "user_id": link.user_id,
                "username": user.username if user else str(link.user_id),
                "relation": link.relation,
                "consented": link.consented,
                "given_by": link.consent_by,
                "basis": link.consent_basis,
                "at": link.consent_at.isoformat() if link.consent_at else None,
                "revoked_at": link.revoked_at.isoformat() if link.revoked_at else None,
            }
        )
    persons = [
        {"id": p.id, "name": p.name, "kind": p.kind, "links": links.get(p.id, [])}
        for p in session.scalars(select(Person).where(Person.active).order_by(Person.id))
    ]
    audit.record(session, identity, "read_consents", "safety_person", None, {"persons": len(persons)})
    return persons


def guardian_usernames(session: Session) -> list[str]:
    return list(session.scalars(select(User.username).where(User.role == "guardian").order_by(User.username)))


def record_consent_as(
    session: Session, identity: Identity, person_id: int, username: str, given_by: str, basis: str
) -> GuardianLink:
    """A registry manager records a consent for a guardian (by user name), as `smartcity safety consent`."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise InvalidInput(f"no user {username.strip()!r}", code="unknown_user")
    return record_consent(session, person_id, user.id, given_by=given_by, basis=basis, actor=identity)


def withdraw_consent_as(session: Session, identity: Identity, person_id: int, user_id: int) -> list[GuardianLink]:
    """A registry manager withdraws the consent behind a guardian's link (and the links resting on it)."""
    return withdraw_consent(session, person_id, user_id, actor=identity)
