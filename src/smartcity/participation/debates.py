"""Standalone debates: a question opened by staff or a citizen (a description, an optional closing date,
district and tags), not attached to a proposal; listed and searched; argued for and against in threaded
comments voted up and down (the same comments, votes, hiding and reports as a proposal's debate: comments.py).
Searching them is by words (core.words: Korean morphemes, English words any case): 놀이터를 finds 놀이터가.

A participant counts once however often they speak: the count is of distinct speakers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, column, func, or_, select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from smartcity.core import audit, notify
from smartcity.core.auth import Identity, check
from smartcity.core.context import context_of
from smartcity.core.db import Database, as_utc, utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound
from smartcity.core.i18n import N_, translate
from smartcity.core.models import District, User
from smartcity.core.words import tokens
from smartcity.participation import follows
from smartcity.participation.comments import HIDDEN_COMMENT, Said, add_to, thread
from smartcity.participation.common import (
    BODY_MAX,
    REASON_MAX,
    TEXT_MAX,
    TITLE_MAX,
    settings_of,
    signed_in,
    text,
)
from smartcity.participation.models import Comment, Debate

STANCES = {"for": N_("For"), "against": N_("Against")}
MAX_TAGS, TAG_MAX = 8, 30
NO_DEBATE = N_("no debate {id}")
KIND = "standalone_debate"  # as follows.FOLLOWABLE names them
HIDDEN_TITLE = N_("Your debate was hidden")
HIDDEN_NEWS = N_("A moderator has hidden your debate: {reason}")
SHOWN_TITLE = N_("Your debate is shown again")
SHOWN_NEWS = N_("A moderator has shown your debate again.")


@dataclass
class NewDebate:
    title: str
    description: str
    district_code: str | None = None
    tags: str | list[str] = ""
    closes_at: datetime | None = None


@dataclass
class Listed:
    """A debate in a list: its arguments and distinct participants counted."""

    debate: Debate
    arguments: int
    participants: int

    @property
    def tags(self) -> list[str]:
        return tags_of(self.debate)


def tags_of(debate: Debate) -> list[str]:
    return [t for t in (debate.tags or "").split(",") if t]


def _tags(value: str | list[str]) -> str:
    """Tags as stored: lower-cased, without '#', distinct, in the order given, between commas."""
    words = re.split(r"[,\s]+", value) if isinstance(value, str) else list(value)
    kept: list[str] = []
    for word in (w.strip().lstrip("#").casefold() for w in words):
        if word and word not in kept:
            if len(word) > TAG_MAX:
                raise InvalidInput(
                    N_("a tag is at most {count} characters"), params={"count": TAG_MAX}, details={"field": "tags"}
                )
            kept.append(word)
    if len(kept) > MAX_TAGS:
        raise InvalidInput(N_("a debate takes at most {count} tags"), params={"count": MAX_TAGS}, code="too_many_tags")
    return f",{','.join(kept)}," if kept else ""


def search_words(title: str, description: str, tags: str) -> str:
    """A debate's search words as stored: each once, between spaces (" 심야 버스 bus "); a tag is a word too."""
    found = tokens(title) + tokens(description) + [w for tag in tags.split(",") for w in (tag, *tokens(tag)) if w]
    return f" {' '.join(dict.fromkeys(found))} " if found else ""


def _holding(session: Session, words: list[str]) -> ColumnElement[bool]:
    """Debates whose search words hold every one of `words`, through the store's full-text index over them
    (migration participation_0010: FTS5 on SQLite, a GIN 'simple' tsvector on PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        # The index's own expression, so that PostgreSQL uses it.
        return sql_text(
            "to_tsvector('simple'::regconfig, participation_debates.words) @@ plainto_tsquery('simple'::regconfig, :q)"
        ).bindparams(q=" ".join(words))
    matched = sql_text(
        "SELECT rowid FROM participation_debates_fts WHERE participation_debates_fts MATCH :q"
    ).bindparams(q=" AND ".join('"' + w.replace('"', '""') + '"' for w in words))
    return Debate.id.in_(matched.columns(column("rowid", Integer)))


def create(session: Session, identity: Identity, new: NewDebate) -> Debate:
    """Open a debate on a question; its author follows it. Audited."""
    person = signed_in(identity)
    now = utcnow()
    district = new.district_code or None
    if district and session.scalar(select(District.id).where(District.code == district)) is None:
        raise InvalidInput(N_("unknown district {code}"), params={"code": district}, details={"field": "district_code"})
    closes = as_utc(new.closes_at) if new.closes_at else None
    if closes is not None and closes <= now:
        raise InvalidInput(N_("the closing date must be in the future"), details={"field": "closes_at"})
    row = Debate(
        author_id=person,
        title=text(new.title, "title", 5, TITLE_MAX),
        description=text(new.description, "description", 10, BODY_MAX),
        district_code=district,
        tags=_tags(new.tags),
        created_at=now,
        closes_at=closes,
        hidden=False,
    )
    row.words = search_words(row.title, row.description, row.tags)
    session.add(row)
    session.flush()
    follows.follow(session, identity, KIND, row.id)
    audit.record(session, identity, "create", "participation.debate", row.id, {"district": district})
    return row


def get(session: Session, identity: Identity, debate_id: int) -> Debate:
    """A debate; a hidden one only for moderators (to everyone else it does not exist)."""
    row = session.get(Debate, debate_id) if 0 < debate_id < 2**31 else None
    if row is None or (row.hidden and not identity.can("participation.moderate")):
        raise NotFound(NO_DEBATE, params={"id": debate_id})
    return row


def hide(session: Session, identity: Identity, debate_id: int, reason: str, hidden: bool = True) -> Debate:
    """Moderators hide a whole debate (or show it again) with the reason, audited; its author is told, in their
    language, by web push and email. Hidden, it is gone for all but moderators, arguments included."""
    check(identity, "participation.moderate")
    row = get(session, identity, debate_id)
    why = text(reason, "reason", 3, REASON_MAX)
    row.hidden, row.hidden_reason = hidden, why if hidden else None
    session.flush()
    audit.record(session, identity, "hide" if hidden else "unhide", "participation.debate", row.id, {"reason": why})
    _tell_author(session, row, hidden, why)
    return row


def _tell_author(session: Session, row: Debate, hidden: bool, reason: str) -> None:
    author = session.get(User, row.author_id)
    if author is None or not author.active:
        return
    language = author.language or context_of(session.info["db"]).profile.language
    title = translate(language, HIDDEN_TITLE if hidden else SHOWN_TITLE)
    news = translate(language, HIDDEN_NEWS, reason=reason) if hidden else translate(language, SHOWN_NEWS)
    url, ref = f"/participation/debates/{row.id}", f"debate:{row.id}"
    notify.queue_push(session, author.id, title, news, url=url, topic="participation.debate", ref=ref)
    if author.email:
        notify.queue(
            session,
            "email",
            author.email,
            news,
            subject=title,
            topic="participation.debate",
            ref=ref,
            user_id=author.id,
            url=url,
        )


def is_open(debate: Debate, now: datetime | None = None) -> bool:
    """Whether a debate takes arguments now: shown, and before its closing date if it has one."""
    return not debate.hidden and (debate.closes_at is None or as_utc(debate.closes_at) > (now or utcnow()))


def search(
    session: Session,
    identity: Identity,
    q: str = "",
    district: str | None = None,
    tag: str | None = None,
    open_only: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[Listed]:
    """Debates, newest first: those whose title, description or tags hold every word of `q` (search words:
    a Korean word by its stem, whatever its particle or ending; English in any case), in a district (the whole
    city's too) or with a tag."""
    query = select(Debate)
    if not identity.can("participation.moderate"):
        query = query.where(Debate.hidden.is_(False))
    asked = list(dict.fromkeys(tokens(q or "")))[:10]
    if (q or "").strip() and not asked:
        return []  # text with no search word in it (signs, a lone particle) finds nothing rather than everything
    if asked:
        query = query.where(_holding(session, asked))
    if district:
        query = query.where(or_(Debate.district_code == district, Debate.district_code.is_(None)))
    if tag:
        query = query.where(Debate.tags.like(f"%,{tag.strip().lstrip('#').casefold()},%"))
    if open_only:
        query = query.where(Debate.hidden.is_(False), or_(Debate.closes_at.is_(None), Debate.closes_at > utcnow()))
    rows = list(session.scalars(query.order_by(Debate.id.desc()).limit(max(1, min(limit, 200))).offset(max(0, offset))))
    counts = _counts(session, [r.id for r in rows])
    return [Listed(r, *counts.get(r.id, (0, 0))) for r in rows]


def _counts(session: Session, ids: list[int]) -> dict[int, tuple[int, int]]:
    if not ids:
        return {}
    rows = session.execute(
        select(Comment.debate_id, func.count(), func.count(func.distinct(Comment.user_id)))
        .where(Comment.debate_id.in_(ids))
        .group_by(Comment.debate_id)
    )
    return {did: (n, people) for did, n, people in rows}


def search_one(session: Session, debate: Debate) -> Listed:
    """One debate with its counts, as a list shows it."""
    return Listed(debate, *_counts(session, [debate.id]).get(debate.id, (0, 0)))


def participants(session: Session, debate_id: int) -> int:
    return _counts(session, [debate_id]).get(debate_id, (0, 0))[1]


def argue(
    db: Database,
    identity: Identity,
    debate_id: int,
    body: str,
    stance: str | None = None,
    parent_id: int | None = None,
) -> int:
    """Argue in a debate: a top argument takes a stance (for or against); a reply answers a comment (at most
    `reply_depth` deep) and takes the stance of the argument it is under. The new comment's id."""
    person = signed_in(identity)
    said = text(body, "body", 2, TEXT_MAX)
    with db.session() as s:
        debate = (
            s.scalar(select(Debate).where(Debate.id == debate_id).with_for_update()) if 0 < debate_id < 2**31 else None
        )
        if debate is None or (debate.hidden and not identity.can("participation.moderate")):
            raise NotFound(NO_DEBATE, params={"id": debate_id})
        if not is_open(debate):
            raise Conflict(N_("the debate is not open"), code="not_open")
        depth = 0
        if parent_id is not None:
            parent = s.get(Comment, parent_id) if 0 < parent_id < 2**31 else None
            if parent is None or parent.debate_id != debate_id:
                raise NotFound(N_("no comment {id} in this debate"), params={"id": parent_id})
            if parent.hidden:
                raise Conflict(HIDDEN_COMMENT, code="hidden")
            depth = parent.depth + 1
            most = settings_of(db).reply_depth
            if depth > most:
                raise InvalidInput(
                    N_("replies go at most {count} levels deep: reply to a comment higher up"),
                    params={"count": most},
                    code="too_deep",
                )
            stance = parent.stance
        elif stance not in STANCES:
            raise InvalidInput(
                N_("an argument is for or against: say which"), details={"field": "stance"}, code="stance"
            )
        row = Comment(debate_id=debate_id, user_id=person, body=said, parent_id=parent_id, stance=stance)
        row.depth, row.created_at = depth, utcnow()
        return add_to(s, row)


def arguments(session: Session, identity: Identity, debate_id: int, sort: str = "oldest") -> list[Said]:
    """A debate's arguments as a tree, the debate's author's pinned first (comments.thread)."""
    debate = get(session, identity, debate_id)
    return thread(session, identity, Comment.debate_id == debate_id, debate.author_id, sort)


def sides(said: list[Said]) -> dict[str, list[Said]]:
    """Top arguments split by stance, for a page that shows for and against side by side."""
    return {stance: [one for one in said if one.comment.stance == stance] for stance in STANCES}
