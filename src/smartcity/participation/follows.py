"""Following: a citizen follows any proposal, debate, vote or hearing and hears of its changes through the
notification layer — web push to every browser they subscribed, email where they gave an address, and SMS
where they asked for it when following (texts cost the city money, so never by default).

One table for every kind: (kind, object id, person), one row per person by a unique key, so following twice
changes nothing. A kind is followable once it is in FOLLOWABLE (its table, its page and the column that names
it in a message); the owner of a kind adds its line there. Who follows what is no contact detail, but every
change of it is audited like any other change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from smartcity.core import audit, notify
from smartcity.core.auth import Identity, check
from smartcity.core.context import context_of
from smartcity.core.db import Base, UTCDateTime, utcnow
from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied
from smartcity.core.i18n import N_, translate
from smartcity.core.models import User


class Follow(Base):
    """A person following one object of the module; `sms`: they also want a text message of each change."""

    __tablename__ = "participation_follows"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    object_id: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    sms: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("kind", "object_id", "user_id", name="uq_participation_follows_kind_object_user"),
        Index("ix_participation_follows_object", "kind", "object_id"),
    )


@dataclass(frozen=True)
class Followable:
    """A kind of object people follow: its table (rows by `id`; a `hidden` column, when it has one, hides a row
    from all but moderators), its page ("{id}" filled in) and the column naming an object in a message."""

    table: str
    url: str
    name_column: str


FOLLOWABLE: dict[str, Followable] = {
    "proposal": Followable("participation_proposals", "/participation/proposals/{id}", "title"),
    "hearing": Followable("participation_hearings", "/participation/hearings/{id}", "topic_ko"),
    "budget": Followable("participation_budgets", "/participation/budgets/{id}", "title_ko"),
    "vote": Followable("participation_votes", "/participation/votes/{id}", "title"),
    # A proposal's public debate, for those who follow the talk rather than the proposal's steps.
    "debate": Followable("participation_proposals", "/participation/proposals/{id}#debate", "title"),
    # A debate of its own (debates.py), not attached to a proposal.
    "standalone_debate": Followable("participation_debates", "/participation/debates/{id}", "title"),
}


def _kind(kind: str) -> Followable:
    found = FOLLOWABLE.get(kind)
    if found is None:
        raise InvalidInput(
            N_("nothing of kind {kind} can be followed; kinds are: {known}"),
            params={"kind": kind, "known": ", ".join(FOLLOWABLE)},
            code="unknown_kind",
        )
    return found


def _row(session: Session, identity: Identity, kind: str, object_id: int) -> Mapping[str, Any]:
    """The followed object's row, as its own pages would show it: a hidden one only to moderators."""
    table = Base.metadata.tables[_kind(kind).table]
    row = None
    if 0 < object_id < 2**31:  # PostgreSQL's integer: a larger id is no row, not a database error
        row = session.execute(select(table).where(table.c.id == object_id)).mappings().first()
    hidden = row is not None and "hidden" in row and row["hidden"]
    if row is None or (hidden and not identity.can("participation.moderate")):
        raise NotFound(N_("there is nothing to follow at {kind} {id}"), params={"kind": kind, "id": object_id})
    return row


def _person(identity: Identity) -> int:
    check(identity, "participation.take_part")
    if identity.user_id is None:
        raise PermissionDenied(N_("only a person's account can take part"), code="person_only")
    return identity.user_id


def follow(
    session: Session, identity: Identity, kind: str, object_id: int, on: bool = True, *, sms: bool = False
) -> bool:
    """Follow an object (or stop). Following again keeps one row and takes the new `sms` choice. True when
    the person follows it afterwards."""
    person = _person(identity)
    _row(session, identity, kind, object_id)
    mine = (Follow.kind == kind, Follow.object_id == object_id, Follow.user_id == person)
    if not on:
        gone = session.execute(delete(Follow).where(*mine)).rowcount
        if gone:
            audit.record(session, identity, "unfollow", f"participation.{kind}", object_id)
        return False
    found = session.scalar(select(Follow.sms).where(*mine))
    if found is not None and found == sms:
        return True  # nothing changes: nothing to write or audit (asking a second question follows again)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = dict(kind=kind, object_id=object_id, user_id=person, sms=sms, created_at=utcnow())
    statement = dialect.insert(Follow).values(**values)
    statement = statement.on_conflict_do_update(index_elements=["kind", "object_id", "user_id"], set_={"sms": sms})
    session.execute(statement)
    audit.record(session, identity, "follow", f"participation.{kind}", object_id, {"sms": sms})
    return True


def following(session: Session, identity: Identity, kind: str, object_id: int) -> Follow | None:
    """The caller's follow of an object, if any."""
    if identity.user_id is None:
        return None
    return session.scalar(
        select(Follow).where(Follow.kind == kind, Follow.object_id == object_id, Follow.user_id == identity.user_id)
    )


def followers(session: Session, kind: str, object_id: int) -> list[int]:
    """The accounts following an object, in the order they began."""
    _kind(kind)
    rows = select(Follow.user_id).where(Follow.kind == kind, Follow.object_id == object_id).order_by(Follow.id)
    return list(session.scalars(rows))


@dataclass(frozen=True)
class Followed:
    kind: str
    object_id: int
    name: str
    url: str
    sms: bool
    since: datetime


def mine(session: Session, identity: Identity) -> list[Followed]:
    """What the caller follows, newest first (objects gone or hidden since are left out)."""
    person = _person(identity)
    found = []
    for row in session.scalars(select(Follow).where(Follow.user_id == person).order_by(Follow.id.desc())):
        if row.kind not in FOLLOWABLE:
            continue
        try:
            obj = _row(session, identity, row.kind, row.object_id)
        except NotFound:
            continue
        kind = FOLLOWABLE[row.kind]
        name = str(obj[kind.name_column])
        found.append(
            Followed(row.kind, row.object_id, name, kind.url.format(id=row.object_id), row.sms, row.created_at)
        )
    return found


Params = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]


def notify_followers(
    session: Session,
    kind: str,
    object_id: int,
    message: str,
    *,
    subject: str,
    params: Params | None = None,
    skip: int | None = None,
) -> int:
    """Queue, in the caller's transaction, the news `message` (a catalogue msgid) to every active follower in
    their language: web push to each browser they subscribed, email where they have an address, SMS where
    they asked for it and have a number. `params` fills the message's placeholders (a function of the
    language for values kept per language); `skip`: the person who made the change. Returns how many
    messages were queued."""
    followable = _kind(kind)
    profile = context_of(session.info["db"]).profile
    url = followable.url.format(id=object_id)
    ref = f"{kind}:{object_id}"
    topic = f"participation.{kind}"
    people = session.execute(
        select(User, Follow.sms)
        .join(Follow, Follow.user_id == User.id)
        .where(Follow.kind == kind, Follow.object_id == object_id, User.active.is_(True))
        .order_by(Follow.id)
    )
    queued = 0
    for person, sms in people:
        if person.id == skip:
            continue
        language = person.language or profile.language
        values = (params(language) if callable(params) else params) or {}
        text = translate(language, message, **values)
        title = translate(language, subject, **values)
        queued += notify.queue_push(session, person.id, title, text, url=url, topic=topic, ref=ref)
        if person.email:
            notify.queue(
                session, "email", person.email, text, subject=title, topic=topic, ref=ref, user_id=person.id, url=url
            )
            queued += 1
        if sms and person.phone:
            notify.queue(session, "sms", person.phone, text, topic=topic, ref=ref, user_id=person.id, url=url)
            queued += 1
    return queued
