"""The audit log: every read of sensitive data and every change is recorded with who, what and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.i18n import N_, gettext, translate
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


# --- reading the log: a page of entries, each told as a sentence ---------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    """What an auditor asks for: filters (each optional) and where the page starts. `before` is the id of the
    last entry already shown (keyset paging: a page costs the same however deep, and entries written meanwhile
    do not shift what follows)."""

    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class AuditPage:
    """One page of the log, newest first; `next_before` continues it (None on the last page)."""

    entries: list[AuditEntry]
    next_before: int | None


def page(session: Session, query: AuditQuery) -> AuditPage:
    """A page of the log matching `query`, newest first."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(query.limit + 1)
    if query.actor:
        q = q.where(AuditEntry.actor == query.actor)
    if query.action:
        q = q.where(AuditEntry.action == query.action)
    if query.object_type:
        q = q.where(AuditEntry.object_type == query.object_type)
    if query.object_id:
        q = q.where(AuditEntry.object_id == query.object_id)
    if query.since is not None:
        q = q.where(AuditEntry.at >= query.since)
    if query.until is not None:
        q = q.where(AuditEntry.at < query.until)
    if query.before is not None:
        q = q.where(AuditEntry.id < query.before)
    rows = list(session.scalars(q))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return AuditPage(rows, rows[-1].id if more and rows else None)


# action → the sentence that tells it ({actor} did it to {subject}); English msgids, translated in the
# catalogues. An action not listed is told by the fallback with a readable form of its code.
SENTENCES: dict[str, str] = {
    "create": N_("{actor} created {subject}"),
    "update": N_("{actor} changed {subject}"),
    "delete": N_("{actor} deleted {subject}"),
    "import": N_("{actor} imported {subject}"),
    "export": N_("{actor} exported {subject}"),
    "revoke": N_("{actor} revoked {subject}"),
    "signin": N_("{actor} signed in"),
    "signin_failed": N_("A sign-in failed"),
    "signin_throttled": N_("A sign-in was refused after too many failures"),
    "set_password": N_("{actor} set the password of {subject}"),
    "access_denied": N_("{actor} was refused {subject}"),
    "read_audit": N_("{actor} read the audit log"),
    "change_role": N_("{actor} changed the role of {subject}"),
    "disable": N_("{actor} disabled {subject}"),
    "enable": N_("{actor} enabled {subject}"),
    "read_contact": N_("{actor} read the contact details of {subject}"),
    "read_location": N_("{actor} read the location of {subject}"),
}
FALLBACK = N_("{actor}: {action} ({subject})")
# object types → their names in sentences (msgids); others are told by a readable form of their code.
SUBJECTS: dict[str, str] = {
    "user": N_("account"),
    "api_key": N_("API key"),
    "route": N_("the page"),
    "audit_log": N_("audit log"),
}


def readable(code: str) -> str:
    """A code as words: "read_track" → "read track"."""
    return code.replace("_", " ").replace(".", " ").strip()


def sentence(entry: AuditEntry, language: str) -> str:
    """`entry` told in one sentence in `language`."""
    kind = (
        gettext(language, SUBJECTS[entry.object_type]) if entry.object_type in SUBJECTS else readable(entry.object_type)
    )
    subject = f"{kind} {entry.object_id}" if entry.object_id else kind
    if entry.action in SENTENCES:
        return translate(language, SENTENCES[entry.action], actor=entry.actor, subject=subject)
    return translate(language, FALLBACK, actor=entry.actor, action=readable(entry.action), subject=subject)


def detail_items(entry: AuditEntry) -> list[tuple[str, str]]:
    """The entry's details as (term, description) pairs for a definition list: nested values as words."""

    def words(value: Any) -> str:
        if isinstance(value, dict):
            return "; ".join(f"{readable(str(k))}: {words(v)}" for k, v in value.items())
        if isinstance(value, list | tuple):
            return ", ".join(words(v) for v in value)
        return "—" if value is None else str(value)

    return [(readable(str(k)), words(v)) for k, v in (entry.detail or {}).items()]
