"""A refusal beside the caller's own writes (SQLite): the refusal is audited in a transaction of its own,
since the caller's rolls back with the exception. When the caller has already written in this request (an
audited read of another ward), its connection holds the store's write lock; a second connection of the same
thread writing at once would wait for it until the busy timeout and fail with "database is locked"."""

import time

import pytest
from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.core.errors import PermissionDenied
from smartcity.core.models import AuditEntry
from smartcity.safety import service
from tests.safety.helpers import HOME, fix, make_world


def _audited(db, action: str, user_id: int) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action, AuditEntry.actor_id == user_id)))


def test_a_refusal_after_an_audited_read_in_the_same_transaction(db, engine):
    w = make_world(db)
    engine.intake_sync(fix(w.device, utcnow(), HOME))
    with db.session() as s:
        other = service.add_person(s, "child", "Lee Dana", actor="test")
    mother = w.identity(db, w.guardian_id)

    started = time.monotonic()
    with db.session() as s:
        seen = service.current_position(s, mother, w.person_id)  # audited: a write in this transaction
        assert seen is not None and seen["lat"] == pytest.approx(HOME[0])
        with pytest.raises(PermissionDenied):
            service.current_position(s, mother, other.id)  # not her ward: refused, and the refusal audited
    took = time.monotonic() - started
    assert took < 5, f"the refusal waited {took:.1f} s for the caller's own write lock"
    [refused] = _audited(db, "location_denied", w.guardian_id)
    assert refused.object_id == str(other.id)
    assert _audited(db, "read_location", w.guardian_id)  # the caller's own read is kept: its block committed
