"""Who may see a person's location (see the rule in `smartcity.safety.service`'s docstring): the rule, its
facts, the guardian check, audited refusals, and the admission of live events to the event stream."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.context import Slot
from smartcity.core.errors import PermissionDenied
from smartcity.core.events import Admission
from smartcity.core.i18n import N_
from smartcity.safety.common import OPERATOR_LOOKBACK, _db
from smartcity.safety.models import GuardianLink, Incident

log = logging.getLogger(__name__)


def guardian_ids(session: Session, person_id: int) -> list[int]:
    """Users whose guardian link to the person carries a consent in force."""
    return list(
        session.scalars(
            select(GuardianLink.user_id)
            .where(
                GuardianLink.person_id == person_id,
                GuardianLink.consent_at.is_not(None),
                GuardianLink.revoked_at.is_(None),
            )
            .order_by(GuardianLink.user_id)
        )
    )


def check_guardian(session: Session, identity: Identity, person_id: int) -> None:
    """Raise PermissionDenied (audited) unless the caller is a consented guardian of the person."""
    if identity.can("safety.guard") and identity.user_id in guardian_ids(session, person_id):
        return
    _refuse(session, identity, "guardian_denied", person_id)


@dataclass(frozen=True)
class Access:
    """Why the caller may read a person's location."""

    reason: str  # guardian | operator
    since: datetime | None = None  # operators: not before this time
    incident_id: int | None = None


def _refuse(session: Session, identity: Identity, action: str, person_id: int, detail: dict | None = None):
    # The refusal is audited in its own transaction: the caller's rolls back with the exception.
    audit_apart(session, lambda s: audit.record(s, identity, action, "safety_person", person_id, detail))
    raise PermissionDenied(N_("you may not see this person's location"))


def audit_apart(session: Session, write: Callable[[Session], object]) -> None:
    """Run `write` (an audit entry) in a transaction of its own: at once, or — on SQLite, when the caller's
    transaction has already written and so holds the store's write lock — as soon as the caller's ends. A
    second connection of the same thread cannot get that lock: it would wait out the busy timeout and fail
    with "database is locked"."""
    db = _db(session)
    if db.is_postgres or not _holds_write_lock(session):
        with db.session() as s:
            write(s)
        return
    if "safety.audit_apart" not in session.info:
        session.info["safety.audit_apart"] = []
        sa_event.listen(session, "after_transaction_end", _write_apart)
    session.info["safety.audit_apart"].append(write)


def _holds_write_lock(session: Session) -> bool:
    if not session.in_transaction():
        return False
    # pysqlite begins a transaction only before the first write (INSERT/UPDATE/DELETE).
    return bool(session.connection().connection.driver_connection.in_transaction)


def _write_apart(session: Session, transaction) -> None:
    writes = session.info.get("safety.audit_apart")
    if transaction.parent is not None or not writes:  # a savepoint: the caller's transaction goes on
        return
    session.info["safety.audit_apart"] = []
    try:
        with _db(session).session() as s:
            for write in writes:
                write(s)
    except Exception:  # noqa: BLE001 - the caller's transaction has ended; the failure is logged
        log.exception("auditing a refusal failed")


@dataclass(frozen=True)
class LocationFacts:
    """What the privacy rule looks at for one person."""

    guardians: frozenset[int]  # users whose link carries a consent in force
    incidents: tuple[tuple[str | None, datetime, int], ...]  # open incidents (district, opened at, id), oldest first


def location_facts(session: Session, person_id: int) -> LocationFacts:
    incidents = session.execute(
        select(Incident.district_code, Incident.opened_at, Incident.id)
        .where(Incident.person_id == person_id, Incident.status != "resolved")
        .order_by(Incident.opened_at, Incident.id)
    )
    return LocationFacts(frozenset(guardian_ids(session, person_id)), tuple(tuple(r) for r in incidents))


def location_rule(identity: Identity, facts: LocationFacts) -> Access | None:
    """The privacy rule (see the module docstring): why the caller may see the person's location, or None."""
    if identity.user_id is None:
        return None
    if identity.can("safety.ward") and identity.user_id in facts.guardians:
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
        with self.lock:
            hit = self.entries.get(person_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return self.fresh(person_id)

    def fresh(self, person_id: int) -> LocationFacts:
        """The person's facts read from the store now (and kept unless a change came meanwhile)."""
        now = time.monotonic()
        with self.lock:
            generation = self.generation
        with self.db.session() as s:
            facts = location_facts(s, person_id)
        with self.lock:
            if self.generation == generation:
                self.entries[person_id] = (now + LIVE_FACTS_TTL_S, facts)
        return facts


LIVE_FACTS: Slot[_LiveFacts] = Slot("safety.live_facts", lambda context: _LiveFacts(context.db))


def live_admission(db, identity: Identity, event) -> Admission:
    """Whether a live safety event about a person goes to this subscriber: the rule of the REST reads.
    An event without coordinates (a resolved incident) is left to its scope, which the bus has checked."""
    person_id = event.data.get("person_id")
    if not isinstance(person_id, int):
        return Admission(False, "location_denied", "safety_person", person_id)
    if event.data.get("lat") is None:
        return Admission(True, "read_live", "safety_person", person_id, {"as": "addressee"})
    facts = LIVE_FACTS.get(db)
    access = location_rule(identity, facts.get(person_id))
    if access is None:
        # A refusal is never taken from the cache: an incident just opened may not have reached it yet.
        access = location_rule(identity, facts.fresh(person_id))
    if access is None:
        return Admission(False, "location_denied", "safety_person", person_id)
    return Admission(True, "read_live", "safety_person", person_id, {"as": access.reason})
