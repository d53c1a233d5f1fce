"""The audit log: every read of sensitive data and every change is recorded with who, what and when."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.i18n import N_, gettext, localized, translate
from smartcity.core.models import AuditEntry, Department, District


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


# --- how each module's entries are told -----------------------------------------------------------------

Describe = Callable[[str, Any], "str | None"]  # (language, raw value) → the value in words, None if unknown
# (session, language, the codes on the page) → their names: codes of rows (a unit, a district), one query a page
Lookup = Callable[[Session, str, set[str]], Mapping[str, str]]


@dataclass(frozen=True)
class AuditWords:
    """How a module's audit entries read on the audit page (Module.audit): English msgids, translated there.

    subjects  object type → its noun (a msgid)
    actions   action → the sentence telling it, with {actor} and {subject}
    actors    a system actor's name → who it is ("job:…" actors are told as a scheduled job)
    keys      detail key → its label
    values    detail key, or "<object type>:<key>" for one type's, → fn(language, value): a known enumeration
              (a status, a kind) in words; None leaves the value as recorded
    lookups   detail key (or "<object type>:<key>") → fn(session, language, codes) → {code: name}: codes of
              rows, named from the store once for the whole page
    The raw codes stay in the log itself (the page keeps them in title attributes, exports as they are).
    """

    subjects: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)
    actors: Mapping[str, str] = field(default_factory=dict)
    keys: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Describe] = field(default_factory=dict)
    lookups: Mapping[str, Lookup] = field(default_factory=dict)


def _rows_named(model):
    def lookup(session: Session, language: str, codes: set[str]) -> dict[str, str]:
        rows = session.scalars(select(model).where(model.code.in_(codes)))
        return {row.code: localized(row, "name", language) for row in rows}

    return lookup


def _role(language: str, value: Any) -> str | None:
    from smartcity.core import accounts

    def name(code: str) -> str | None:
        described = accounts.ROLES.get(code)
        return gettext(language, described).split(":")[0].strip() if described else None

    if isinstance(value, str) and " → " in value:  # a change of role, as accounts records it
        before, after = (name(v) or v for v in value.split(" → ", 1))
        return f"{before} → {after}"
    return name(str(value))


CORE_WORDS = AuditWords(
    subjects=SUBJECTS,
    actions=SENTENCES,
    actors={
        "anonymous": N_("someone not signed in"),
        "demo": N_("the demo loader"),
        "cli": N_("the command line"),
        "job:notifications": N_("the notification job"),
    },
    keys={
        "username": N_("user name"),
        "role": N_("role"),
        "name": N_("name"),
        "scope": N_("scope"),
        "reason": N_("reason"),
        "count": N_("count"),
        "kind": N_("kind"),
        "status": N_("status"),
        "device": N_("device"),
        "purpose": N_("purpose"),
        "present": N_("found"),
        "source": N_("source"),
        "category": N_("category"),
        "permission": N_("permission"),
        "path": N_("address"),
        "method": N_("method"),
    },
    values={"role": _role},
    lookups={"unit": _rows_named(Department), "department": _rows_named(Department), "district": _rows_named(District)},
)
SCHEDULED_JOB = N_("a scheduled job ({name})")
NUMBERED = N_("{kind} {number}")
NAMED = N_("{kind} ‘{name}’")
YES, NO = N_("yes"), N_("no")


def words(language: str) -> AuditWords:
    """Core's words and every declared module's, merged (a module's own words win for its codes)."""
    from smartcity.core.module import declared, resolve

    tables = ("subjects", "actions", "actors", "keys", "values", "lookups")
    merged = {name: dict(getattr(CORE_WORDS, name)) for name in tables}
    for m in declared():
        own = resolve(m.audit) if getattr(m, "audit", None) else None
        if isinstance(own, AuditWords):
            for name, table in merged.items():
                table.update(getattr(own, name))
    return AuditWords(**merged)


def actor_name(entry: AuditEntry, language: str, told: AuditWords | None = None) -> str:
    told = told or words(language)
    if entry.actor in told.actors:
        return gettext(language, told.actors[entry.actor])
    if entry.actor.startswith("job:"):
        return translate(language, SCHEDULED_JOB, name=entry.actor[4:])
    return entry.actor


def subject_of(entry: AuditEntry, language: str, told: AuditWords | None = None) -> str:
    """What the entry is about in words: "12번 신고" / "report 12"; a named object with its name quoted."""
    told = told or words(language)
    kind = entry.object_type
    kind = gettext(language, told.subjects[kind]) if kind in told.subjects else readable(kind)
    if not entry.object_id:
        return kind
    if entry.object_id.isdigit():
        return translate(language, NUMBERED, kind=kind, number=entry.object_id)
    return translate(language, NAMED, kind=kind, name=entry.object_id)


def sentence(entry: AuditEntry, language: str, told: AuditWords | None = None) -> str:
    """`entry` told in one sentence in `language`."""
    told = told or words(language)
    actor, subject = actor_name(entry, language, told), subject_of(entry, language, told)
    if entry.action in told.actions:
        return translate(language, told.actions[entry.action], actor=actor, subject=subject)
    return translate(language, FALLBACK, actor=actor, action=readable(entry.action), subject=subject)


def names_on(session: Session, entries: list[AuditEntry], language: str, told: AuditWords) -> dict[str, dict]:
    """The names of the row codes these entries' details hold (AuditWords.lookups), by lookup key."""
    wanted: dict[str, set[str]] = {}
    for entry in entries:
        for key, value in (entry.detail or {}).items():
            for name in (f"{entry.object_type}:{key}", str(key)):
                if name in told.lookups and isinstance(value, str | int) and not isinstance(value, bool):
                    wanted.setdefault(name, set()).add(str(value))
                    break
    return {name: dict(told.lookups[name](session, language, codes)) for name, codes in wanted.items()}


def detail_items(
    entry: AuditEntry, language: str = "en", told: AuditWords | None = None, names: dict[str, dict] | None = None
) -> list[tuple[str, str, str]]:
    """The entry's details as (term, description, raw) triples for a definition list: labels and known
    values in `language` (`names`: from names_on), nested values as words; `raw` is the value as recorded."""
    told = told or words(language)
    names = names or {}

    def label(key: Any) -> str:
        key = str(key)
        return gettext(language, told.keys[key]) if key in told.keys else readable(key)

    def said(key: str, value: Any) -> str:
        if isinstance(value, bool):
            return gettext(language, YES if value else NO)
        if isinstance(value, dict):
            return "; ".join(f"{label(k)}: {said(str(k), v)}" for k, v in value.items())
        if isinstance(value, list | tuple):
            return ", ".join(said(key, v) for v in value)
        if value is None:
            return "—"
        for name in (f"{entry.object_type}:{key}", key):
            if str(value) in names.get(name, {}):
                return names[name][str(value)]
        describe = told.values.get(f"{entry.object_type}:{key}") or told.values.get(key)
        found = describe(language, value) if describe else None
        return found if found else str(value)

    return [
        (label(k), said(str(k), v), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str))
        for k, v in (entry.detail or {}).items()
    ]
