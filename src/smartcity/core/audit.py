"""The audit log: every read of sensitive data and every change is recorded with who, what and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.models import AuditEntry


def record(
    session: Session,
    actor,
    action: str,
    object_type: str,
    object_id: Any = None,
    detail: dict | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Add an audit entry in the caller's transaction, so it stands or falls with the change itself.

    `actor` is a User, an Identity, or a string naming a system actor ("cli", "job:retention").
    """
    if isinstance(actor, str):
        actor_id, label = None, actor
    else:
        actor_id, label = getattr(actor, "user_id", None) or getattr(actor, "id", None), actor.label
    entry = AuditEntry(
        actor_id=actor_id,
        actor=label,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        detail=detail,
        ip=ip,
    )
    session.add(entry)
    return entry


def entries(
    session: Session,
    *,
    object_type: str | None = None,
    object_id: Any = None,
    actor_id: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if object_type:
        q = q.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        q = q.where(AuditEntry.object_id == str(object_id))
    if actor_id is not None:
        q = q.where(AuditEntry.actor_id == actor_id)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    return list(session.scalars(q))
