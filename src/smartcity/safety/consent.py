"""Guardian links and the consent behind them: linking, recording, revoking and withdrawing consent, and
deleting a person's location history."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound
from smartcity.core.i18n import N_
from smartcity.core.models import User
from smartcity.safety.access import check_guardian, guardian_ids
from smartcity.safety.common import _changed
from smartcity.safety.models import (
    AlertCooldown,
    Device,
    DeviceState,
    GuardianLink,
    HeldAlert,
    Incident,
    PositionRow,
    RecentPositionRow,
    SafetyEvent,
)
from smartcity.safety.registry import get_person


def _guardian_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(N_("no user {user_id}"), params={"user_id": user_id})
    # Whoever may follow wards (safety.ward: the guardian's standing, which administrators do not hold).
    if not Identity(role=user.role).can("safety.ward"):
        raise InvalidInput(f"{user.username} is not a guardian (role {user.role})", code="not_a_guardian")
    return user


def link_guardian(session: Session, person_id: int, user_id: int, relation: str = "", actor="cli") -> GuardianLink:
    """Make a guardian user a guardian of the person. Tracking needs a consent (`record_consent`) as well."""
    get_person(session, person_id)
    _guardian_user(session, user_id)
    link = session.scalar(
        select(GuardianLink).where(GuardianLink.person_id == person_id, GuardianLink.user_id == user_id)
    )
    if link is None:
        link = GuardianLink(person_id=person_id, user_id=user_id, relation=relation)
        session.add(link)
        session.flush()
        audit.record(session, actor, "create", "safety_guardian", link.id, {"person_id": person_id, "user_id": user_id})
    return link


def record_consent(
    session: Session,
    person_id: int,
    user_id: int,
    *,
    given_by: str,
    basis: str,
    at: datetime | None = None,
    actor="cli",
) -> GuardianLink:
    """Record the consent to track a person for one guardian link: who gave it (the person, a parent, a
    legal representative), on what basis, and when. Links the guardian if not linked yet."""
    if not given_by.strip() or not basis.strip():
        raise InvalidInput(N_("a consent records who gave it and on what basis"), code="invalid_consent")
    at = at or utcnow()
    if at.tzinfo is None or at > utcnow() + timedelta(minutes=5):
        raise InvalidInput(N_("a consent's time must be timezone-aware and not in the future"), code="invalid_consent")
    link = link_guardian(session, person_id, user_id, actor=actor)
    link.consent_by, link.consent_basis, link.consent_at = given_by.strip()[:200], basis.strip()[:300], at
    link.consent_recorded_by = getattr(actor, "label", None) or str(actor)
    link.revoked_at = None
    audit.record(
        session,
        actor,
        "consent",
        "safety_guardian",
        link.id,
        {"person_id": person_id, "user_id": user_id, "given_by": link.consent_by, "basis": link.consent_basis},
    )
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    return link


def revoke_consent(session: Session, person_id: int, user_id: int, actor="cli") -> GuardianLink:
    link = session.scalar(
        select(GuardianLink).where(GuardianLink.person_id == person_id, GuardianLink.user_id == user_id)
    )
    if link is None:
        raise NotFound(N_("no such guardian link"))
    link.revoked_at = utcnow()
    audit.record(session, actor, "revoke_consent", "safety_guardian", link.id)
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    return link


def consented_links(session: Session, person_id: int) -> list[GuardianLink]:
    """The person's guardian links that carry a consent in force (whoever is alerted), by user."""
    return list(
        session.scalars(
            select(GuardianLink)
            .where(
                GuardianLink.person_id == person_id,
                GuardianLink.consent_at.is_not(None),
                GuardianLink.revoked_at.is_(None),
            )
            .order_by(GuardianLink.user_id)
        )
    )


def withdraw_consent(session: Session, person_id: int, user_id: int | None = None, actor="cli") -> list[GuardianLink]:
    """Withdraw a consent to track the person: with `user_id`, the consent behind that guardian's link;
    without, every consent in force for the person. Each guardian link resting on the withdrawn consent
    (the same giver and basis) is closed; intake stops at once when no consent is left. Returns the closed
    links. The person's history stays until `delete_history` (offered next, audited)."""
    get_person(session, person_id)
    links = consented_links(session, person_id)
    if user_id is not None:
        mine = next((link for link in links if link.user_id == user_id), None)
        if mine is None:
            raise NotFound(N_("this guardian has no consent in force for this person"), code="no_consent")
        links = [
            link for link in links if (link.consent_by, link.consent_basis) == (mine.consent_by, mine.consent_basis)
        ]
    if not links:
        raise NotFound(N_("no consent in force for this person"), code="no_consent")
    now = utcnow()
    for link in links:
        link.revoked_at = now
        audit.record(
            session,
            actor,
            "withdraw_consent",
            "safety_guardian",
            link.id,
            {"person_id": person_id, "user_id": link.user_id, "given_by": link.consent_by, "basis": link.consent_basis},
        )
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
        raise Conflict(
            "other guardians still follow this person under another consent; the history stays", code="history_in_use"
        )
    deleted = delete_history(session, person_id, actor=identity) if with_history else None
    return {
        "person_id": person_id,
        "closed": [link.user_id for link in links],
        "consent_left": bool(left),
        "history_deleted": deleted,
    }


def delete_history(session: Session, person_id: int, actor="cli") -> dict:
    """Delete everything recorded about where the person was: positions, alerts, the devices' last fixes.
    Incidents stay (the record of a 112/119 hand-over) without their coordinates once resolved. Audited."""
    get_person(session, person_id)
    devices = select(Device.id).where(Device.person_id == person_id).scalar_subquery()
    counts = {
        # Through the key ranges of the person's devices (past ones too): positions have no person index. Staged
        # positions too.
        "positions": sum(
            session.execute(delete(table).where(table.device_id.in_(devices), table.person_id == person_id)).rowcount
            for table in (PositionRow, RecentPositionRow)
        ),
        "alerts": session.execute(delete(SafetyEvent).where(SafetyEvent.person_id == person_id)).rowcount,
    }
    session.execute(delete(AlertCooldown).where(AlertCooldown.person_id == person_id))
    session.execute(delete(HeldAlert).where(HeldAlert.person_id == person_id))  # alerts not yet sent
    session.execute(
        update(DeviceState)
        .where(DeviceState.person_id == person_id)
        .values(
            fix_time=None,
            received_at=None,
            lat=None,
            lon=None,
            speed=None,
            accuracy=None,
            battery=None,
            district_code=None,
            zones={},
            flags={},
            version=DeviceState.version + 1,
        )
    )
    counts["incidents"] = session.execute(
        update(Incident)
        .where(Incident.person_id == person_id, Incident.status == "resolved", Incident.lat.is_not(None))
        .values(lat=None, lon=None)
    ).rowcount
    audit.record(session, actor, "delete_history", "safety_person", person_id, counts)
    _changed(session, "safety.registry.changed", {"person_id": person_id})
    return counts
