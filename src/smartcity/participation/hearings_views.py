"""A public hearing as read: its documents, questions and comments as each reader may see them, and the
rows the open data catalogue publishes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.auth import Identity
from smartcity.core.db import as_utc
from smartcity.core.errors import SmartCityError
from smartcity.participation import follows
from smartcity.participation.hearings import (
    AFTER,
    BEFORE,
    KIND,
    CommentView,
    _official,
    comments,
    documents,
    get,
    next_change,
    phase,
)
from smartcity.participation.hearings_models import Hearing, HearingComment, HearingDocument, HearingQuestion
from smartcity.participation.hearings_questions import QuestionView, questions


@dataclass
class DocumentView:
    id: int
    filename: str
    media_type: str
    size: int
    sha256: str
    url: str
    kind: str = "document"


@dataclass
class HearingView:
    """A hearing as the pages and the API show it (times in UTC, ISO 8601)."""

    id: int
    topic_ko: str
    topic_en: str
    summary_ko: str
    summary_en: str
    phase: str
    department_code: str | None
    comments_open_at: datetime
    starts_at: datetime
    ends_at: datetime
    comments_close_at: datetime
    answering: int | None = None
    minutes: str | None = None
    minutes_at: datetime | None = None
    documents: list[DocumentView] = field(default_factory=list)
    questions: list[QuestionView] = field(default_factory=list)
    comments: list[CommentView] = field(default_factory=list)
    following: bool = False
    runs_it: bool = False
    next_change: datetime | None = None  # when the schedule moves it to its next phase (None: no more)


def document_view(d: HearingDocument) -> DocumentView:
    url = f"/participation/hearings/{d.hearing_id}/documents/{d.id}"
    return DocumentView(d.id, d.filename, d.media_type, d.size, d.sha256, url, d.kind)


def runs(identity: Identity, hearing: Hearing) -> bool:
    """Whether the caller may run this hearing (its officials' controls)."""
    try:
        _official(identity, hearing)
    except SmartCityError:  # PermissionDenied, and NotAuthenticated: the anonymous run nothing
        return False
    return True


def view(session: Session, identity: Identity, hearing_id: int, full: bool = True) -> HearingView:
    hearing = get(session, hearing_id)
    shown = HearingView(
        id=hearing.id,
        topic_ko=hearing.topic_ko,
        topic_en=hearing.topic_en,
        summary_ko=hearing.summary_ko,
        summary_en=hearing.summary_en,
        phase=phase(hearing),
        department_code=hearing.department_code,
        comments_open_at=as_utc(hearing.comments_open_at),
        starts_at=as_utc(hearing.starts_at),
        ends_at=as_utc(hearing.ends_at),
        comments_close_at=as_utc(hearing.comments_close_at),
        answering=hearing.answering_id,
        minutes=hearing.minutes,
        minutes_at=as_utc(hearing.minutes_at) if hearing.minutes_at else None,
        next_change=next_change(hearing),
    )
    if full:
        shown.documents = [document_view(d) for d in documents(session, hearing.id)]
        shown.questions = questions(session, identity, hearing)
        shown.comments = comments(session, identity, hearing.id)
        shown.following = follows.following(session, identity, KIND, hearing.id) is not None
        shown.runs_it = runs(identity, hearing)
    return shown


def open_rows(session: Session):
    """Each hearing in numbers, for the open data catalogue: its schedule, phase, the shown questions, how many
    were answered, their upvotes, the comments of each period and the documents; no person, no text but the
    topic."""
    from sqlalchemy import func

    def counted(query) -> dict:
        return {hid: tuple(rest) for hid, *rest in session.execute(query)}

    shown_q = HearingQuestion.hidden.is_(False)
    asked = counted(
        select(
            HearingQuestion.hearing_id,
            func.count(),
            func.count(HearingQuestion.answered_at),
            func.coalesce(func.sum(HearingQuestion.votes), 0),
        )
        .where(shown_q)
        .group_by(HearingQuestion.hearing_id)
    )
    said = {
        (hid, period): n
        for hid, period, n in session.execute(
            select(HearingComment.hearing_id, HearingComment.period, func.count())
            .where(HearingComment.hidden.is_(False))
            .group_by(HearingComment.hearing_id, HearingComment.period)
        )
    }
    files = counted(
        select(HearingDocument.hearing_id, func.count())
        .where(HearingDocument.kind == "document")
        .group_by(HearingDocument.hearing_id)
    )
    for hearing in session.scalars(select(Hearing).order_by(Hearing.id)):
        questions_, answered, upvotes = asked.get(hearing.id, (0, 0, 0))
        yield {
            "id": hearing.id,
            "topic_ko": hearing.topic_ko,
            "topic_en": hearing.topic_en,
            "department": hearing.department_code or "",
            "comments_open_at": as_utc(hearing.comments_open_at).isoformat(),
            "starts_at": as_utc(hearing.starts_at).isoformat(),
            "ends_at": as_utc(hearing.ends_at).isoformat(),
            "comments_close_at": as_utc(hearing.comments_close_at).isoformat(),
            "phase": phase(hearing),
            "questions": questions_,
            "answered": answered,
            "upvotes": int(upvotes),
            "comments_before": said.get((hearing.id, BEFORE), 0),
            "comments_after": said.get((hearing.id, AFTER), 0),
            "documents": files.get(hearing.id, (0,))[0],
            "minutes_at": as_utc(hearing.minutes_at).isoformat() if hearing.minutes_at else "",
        }
