"""A public hearing's live session: citizens' questions, one upvote per person, the question being answered
and the officials' answers; every change published under `participation.hearing.<id>.`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.db import Database, utcnow
from smartcity.core.errors import NotFound
from smartcity.core.i18n import N_
from smartcity.core.models import User
from smartcity.participation import follows
from smartcity.participation.hearings import (
    AFTER,
    BEFORE,
    CLOSED,
    KIND,
    LIVE,
    MAX_ID,
    TEXT_MAX,
    _official,
    _open_for,
    _person,
    _publish,
    _tell,
    _text,
    get,
)
from smartcity.participation.hearings_models import Hearing, HearingQuestion, HearingVote

# --- the live session: questions ------------------------------------------------------------------


def ask(session: Session, identity: Identity, hearing_id: int, body: str) -> HearingQuestion:
    """A citizen's question, from the first comment period until the session ends; they follow the hearing
    from then on (so they hear when it is answered)."""
    person = _person(identity)
    hearing = get(session, hearing_id)
    _open_for(
        hearing, (BEFORE, LIVE), N_("questions are taken before and during the live session only"), "questions_closed"
    )
    question = HearingQuestion(
        hearing_id=hearing.id,
        user_id=person,
        body=_text(body, "question", 5, TEXT_MAX),
        votes=0,
        hidden=False,
        created_at=utcnow(),
    )
    session.add(question)
    session.flush()
    follows.follow(session, identity, KIND, hearing.id)
    _publish(session, hearing.id, "question", question=question.id)
    return question


def _question(session: Session, identity: Identity, hearing_id: int, question_id: int) -> HearingQuestion:
    question = session.get(HearingQuestion, question_id) if 0 < question_id <= MAX_ID else None
    if (
        question is None
        or question.hearing_id != hearing_id
        or (question.hidden and not identity.can("participation.moderate"))
    ):
        raise NotFound(N_("no question {id}"), params={"id": question_id})
    return question


def upvote(db: Database, identity: Identity, hearing_id: int, question_id: int, on: bool = True) -> int:
    """Upvote a question (once per person: again changes nothing) or withdraw the upvote, while questions are
    taken. One INSERT … ON CONFLICT DO NOTHING on (question, person), then the counter moves by what that
    changed, in the same transaction: two upvotes at once from one person count once. Returns the votes."""
    person = _person(identity)
    with db.session() as s:
        hearing = get(s, hearing_id)
        _open_for(
            hearing,
            (BEFORE, LIVE),
            N_("questions are taken before and during the live session only"),
            "questions_closed",
        )
        question = _question(s, identity, hearing_id, question_id)
        if on:
            dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
            added = dialect.insert(HearingVote).values(question_id=question.id, user_id=person)
            changed = s.execute(added.on_conflict_do_nothing().returning(HearingVote.id)).first() is not None
            by = 1
        else:
            mine = (HearingVote.question_id == question.id, HearingVote.user_id == person)
            changed = bool(s.execute(delete(HearingVote).where(*mine)).rowcount)
            by = -1
        if changed:
            s.execute(
                update(HearingQuestion)
                .where(HearingQuestion.id == question.id)
                .values(votes=HearingQuestion.votes + by)
            )
            s.refresh(question)
            _publish(s, hearing.id, "vote", question=question.id, votes=question.votes)
        return question.votes


def mark_answering(session: Session, identity: Identity, hearing_id: int, question_id: int | None) -> Hearing:
    """The official marks the question they are answering now (None: none), in the live session; audited."""
    hearing = get(session, hearing_id)
    _official(identity, hearing)
    _open_for(hearing, (LIVE,), N_("only a live session has a question being answered"), "not_live")
    if question_id is not None:
        _question(session, identity, hearing_id, question_id)
    hearing.answering_id = question_id
    audit.record(session, identity, "answering", "participation.hearing", hearing.id, {"question": question_id})
    _publish(session, hearing.id, "answering", question=question_id)
    return hearing


def answer(session: Session, identity: Identity, hearing_id: int, question_id: int, text: str) -> HearingQuestion:
    """The official's answer to a question, in the session or after it until the minutes; audited. The
    asker (a follower since asking) and every follower hear of it."""
    hearing = get(session, hearing_id)
    _official(identity, hearing)
    _open_for(
        hearing, (LIVE, AFTER, CLOSED), N_("questions are answered from the live session until the minutes"), "not_live"
    )
    question = _question(session, identity, hearing_id, question_id)
    question.answer = _text(text, "answer", 2, TEXT_MAX)
    question.answered_by, question.answered_at = identity.user_id, utcnow()
    if hearing.answering_id == question.id:
        hearing.answering_id = None
    session.flush()
    audit.record(session, identity, "answer", "participation.hearing", hearing.id, {"question": question.id})
    _publish(session, hearing.id, "answered", question=question.id)
    _tell(session, hearing, N_("A question in the hearing “{topic}” was answered."), skip=identity.user_id)
    return question


@dataclass
class QuestionView:
    """A question as the live page and the API show it (`voted`: by the caller)."""

    id: int
    body: str
    votes: int
    asked_by: str
    asked_at: datetime
    answering: bool = False
    answer: str | None = None
    answered_at: datetime | None = None
    voted: bool = False
    mine: bool = False
    hidden: bool | None = None  # told to moderators only
    hidden_reason: str | None = None


def questions(session: Session, identity: Identity, hearing: Hearing) -> list[QuestionView]:
    """The hearing's questions: the one being answered first, then the unanswered by upvotes (the earlier
    first among equals), then the answered. Hidden ones only for moderators, marked."""
    moderator = identity.can("participation.moderate")
    query = (
        select(HearingQuestion, User.display_name, User.username)
        .join(User, User.id == HearingQuestion.user_id)
        .where(HearingQuestion.hearing_id == hearing.id)
    )
    if not moderator:
        query = query.where(HearingQuestion.hidden.is_(False))
    voted: set[int] = set()
    if identity.user_id is not None:
        mine = (
            select(HearingVote.question_id)
            .join(HearingQuestion, HearingQuestion.id == HearingVote.question_id)
            .where(HearingQuestion.hearing_id == hearing.id, HearingVote.user_id == identity.user_id)
        )
        voted = set(session.scalars(mine))
    found = [
        QuestionView(
            id=q.id,
            body=q.body,
            votes=q.votes,
            asked_by=shown or name,
            asked_at=q.created_at,
            answering=q.id == hearing.answering_id,
            answer=q.answer,
            answered_at=q.answered_at,
            voted=q.id in voted,
            mine=q.user_id == identity.user_id,
            hidden=q.hidden if moderator else None,
            hidden_reason=q.hidden_reason if moderator else None,
        )
        for q, shown, name in session.execute(query)
    ]
    return sorted(found, key=lambda q: (not q.answering, q.answer is not None, -q.votes, q.id))
