"""What the safety service's modules share: the kinds and steps, the store of a session, and the change
events that keep every process's intake engine in step with the registry."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from smartcity.core.city import CityProfile
from smartcity.core.context import Slot, context_of
from smartcity.core.events import publish

PERSON_KINDS = ("child", "elderly", "dementia")
EVENT_KINDS = ("arrival", "departure", "absence", "danger", "sos", "low_battery", "silent", "outside_city")
INCIDENT_KINDS = ("sos", "danger")  # events that go to the district control room
INCIDENT_FLOW = ("open", "acknowledged", "dispatched", "resolved")
AGENCIES = {"112": "police", "119": "fire and rescue"}
OPERATOR_LOOKBACK = timedelta(hours=1)  # how far before an incident an operator may see the track


def _db(session: Session):
    return session.info["db"]


def _engine_of(context):
    from smartcity.safety.engine import get_engine

    return get_engine(context.db, start=False)


# The process's intake for a store (engine.get_engine makes it, with the settings it is given).
ENGINE: Slot = Slot("safety.engine", _engine_of)


def current_engine(db):
    """The process's intake for `db` if one was made; None otherwise (never makes one)."""
    return context_of(db).slots.get(ENGINE)


def _changed(session: Session, topic: str, data: dict) -> None:
    """Tell every process's engine (through the bus) and this process's engine."""
    publish(session, topic, data, audience="safety.manage")
    _tell_this_engine(session, topic, data)


def _tell_this_engine(session: Session, topic: str, data: dict) -> None:
    """Hand an event to this process's engine right after commit: on PostgreSQL events come back through
    LISTEN, which a CLI or test process may not run."""
    db = _db(session)
    engine = current_engine(db)
    if engine is not None and db.is_postgres:
        sa_event.listen(session, "after_commit", lambda _s: engine.handle(topic, data), once=True)


def _profile(session: Session) -> CityProfile:
    """The city profile of the store the session belongs to (read once per app, not per event)."""
    return context_of(_db(session)).profile
