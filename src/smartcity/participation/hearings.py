"""Public hearings: a topic and its documents, a schedule — a comment period, the live session, a second
comment period — and, at the end, the minutes, after which the hearing is read-only.

In the live session citizens ask questions and upvote others' (one upvote per person, by a unique key, the
counter kept in the same transaction); an official of the hearing's department marks the question they are
answering now and writes the answer. Every change is published as an event under
`participation.hearing.<id>.`, which the live page follows to refresh itself. Questions are taken from the
first comment period until the session ends; comments only in the two periods. Moderators may hide a
question or a comment at any time, even after the minutes (taking abuse down is no participation).

The phase is read from the clock and the schedule, not stored: nothing has to move the hearing along, and a
request at 19:59:59 and one at 20:00:00 are judged by the same rule. The rules live here; hearings_api.py and
hearings_pages.py are thin."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import delete, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.context import context_of
from smartcity.core.db import Database, as_utc, utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, SmartCityError, TooLarge
from smartcity.core.events import publish
from smartcity.core.i18n import N_
from smartcity.core.models import User
from smartcity.participation import follows
from smartcity.participation.hearings_models import (
    Hearing,
    HearingComment,
    HearingDocument,
    HearingQuestion,
    HearingVote,
)
from smartcity.participation.settings import ParticipationSettings

UPCOMING, BEFORE, LIVE, AFTER, CLOSED, FINISHED = "upcoming", "before", "live", "after", "closed", "finished"
PHASES = {
    UPCOMING: N_("Not open yet"),
    BEFORE: N_("Comments before the session"),
    LIVE: N_("Live session"),
    AFTER: N_("Comments after the session"),
    CLOSED: N_("Minutes to come"),
    FINISHED: N_("Minutes published"),
}
TOPIC_MAX, SUMMARY_MAX, TEXT_MAX, REASON_MAX, MINUTES_MAX = 200, 20_000, 2_000, 500, 200_000
KIND = "hearing"
MAX_ID = 2**31 - 1  # PostgreSQL's integer: a larger id is no row, not a database error
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def rules(db: Database) -> ParticipationSettings:
    return context_of(db).settings_of(ParticipationSettings)


def phase(hearing: Hearing, now: datetime | None = None) -> str:
    """Where a hearing stands at `now`: its minutes end it; before them, its schedule says."""
    if hearing.minutes_at is not None:
        return FINISHED
    now = now or utcnow()
    for limit, before in (
        (hearing.comments_open_at, UPCOMING),
        (hearing.starts_at, BEFORE),
        (hearing.ends_at, LIVE),
        (hearing.comments_close_at, AFTER),
    ):
        if now < as_utc(limit):
            return before
    return CLOSED


def next_change(hearing: Hearing, now: datetime | None = None) -> datetime | None:
    """The next time the schedule moves the hearing on (the live page reloads then); None once it is closed."""
    if hearing.minutes_at is not None:
        return None
    now = now or utcnow()
    times = (hearing.comments_open_at, hearing.starts_at, hearing.ends_at, hearing.comments_close_at)
    return next((as_utc(t) for t in times if now < as_utc(t)), None)


def render_minutes(text: str | None) -> Markup:
    """Minutes written in Markdown as HTML, raw HTML in them shown as text and unsafe links (javascript:,
    data:…) left as text: what an official pasted cannot run in a reader's browser."""
    return Markup(_MARKDOWN.render(text or ""))


def _text(value: str | None, what: str, least: int, most: int) -> str:
    text = (value or "").strip()
    if len(text) < least:
        short = N_("the text is too short: write at least {count} characters")
        raise InvalidInput(short, params={"count": least}, details={"field": what})
    if len(text) > most:
        long = N_("the text is too long: write at most {count} characters")
        raise InvalidInput(long, params={"count": most}, details={"field": what})
    return text


def _person(identity: Identity) -> int:
    check(identity, "participation.take_part")
    if identity.user_id is None:
        raise PermissionDenied(N_("only a person's account can take part"), code="person_only")
    return identity.user_id


def _official(identity: Identity, hearing: Hearing) -> None:
    """Officials run their own department's hearings (one an administrator announced, with no department,
    any official); moderators (administrators) any hearing."""
    check(identity, "participation.hearings")
    mine = hearing.department_code is None or hearing.department_code == identity.department_code
    if not (mine or identity.can("participation.moderate")):
        raise PermissionDenied(N_("this hearing is another department's to run"), code="other_department")


def _publish(session: Session, hearing_id: int, what: str, **data) -> None:
    # One prefix per hearing, ended by a dot, so following hearing 1 does not bring hearing 12's events.
    publish(session, f"participation.hearing.{hearing_id}.{what}", {"hearing": hearing_id, "what": what, **data})


def _open_for(hearing: Hearing, allowed: tuple[str, ...], message: str, code: str) -> str:
    now_phase = phase(hearing)
    if now_phase == FINISHED:
        raise Conflict(READ_ONLY, code="read_only")
    if now_phase not in allowed:
        raise Conflict(message, code=code, details={"phase": now_phase})
    return now_phase


READ_ONLY = N_("the minutes are published: this hearing is read-only")


# --- hearings -------------------------------------------------------------------------------------


@dataclass
class NewHearing:
    """A hearing as an official announces it: the topic in Korean (and English), what it is about, and its
    schedule — comments open, the live session's start and end, comments close (times with their offset)."""

    topic_ko: str
    comments_open_at: datetime
    starts_at: datetime
    ends_at: datetime
    comments_close_at: datetime
    topic_en: str = ""
    summary_ko: str = ""
    summary_en: str = ""


def create(session: Session, identity: Identity, new: NewHearing) -> Hearing:
    """Announce a hearing for the official's department; they follow it from the start."""
    check(identity, "participation.hearings")
    times = [new.comments_open_at, new.starts_at, new.ends_at, new.comments_close_at]
    if any(t.tzinfo is None for t in times):
        raise InvalidInput(N_("give every time with its UTC offset, e.g. 2025-03-01T19:00:00+09:00"), code="naive_time")
    opens, starts, ends, closes = (as_utc(t) for t in times)
    if not (opens <= starts < ends <= closes):
        raise InvalidInput(
            N_("the schedule must run in order: comments open, the session starts, it ends, comments close"),
            code="schedule",
        )
    hearing = Hearing(
        topic_ko=_text(new.topic_ko, "topic_ko", 5, TOPIC_MAX),
        topic_en=_text(new.topic_en, "topic_en", 0, TOPIC_MAX),
        summary_ko=_text(new.summary_ko, "summary_ko", 0, SUMMARY_MAX),
        summary_en=_text(new.summary_en, "summary_en", 0, SUMMARY_MAX),
        department_code=identity.department_code,
        created_by=identity.user_id,
        created_at=utcnow(),
        comments_open_at=opens,
        starts_at=starts,
        ends_at=ends,
        comments_close_at=closes,
        live_announced=False,
    )
    session.add(hearing)
    session.flush()
    audit.record(session, identity, "create", "participation.hearing", hearing.id)
    if identity.user_id is not None and identity.can("participation.take_part"):
        follows.follow(session, identity, KIND, hearing.id)
    _publish(session, hearing.id, "created")  # the open data catalogue lists it at its next pass
    return hearing


def get(session: Session, hearing_id: int) -> Hearing:
    hearing = session.get(Hearing, hearing_id) if 0 < hearing_id <= MAX_ID else None
    if hearing is None:
        raise NotFound(N_("no hearing {id}"), params={"id": hearing_id})
    return hearing


def listing(session: Session, limit: int = 50, offset: int = 0) -> list[Hearing]:
    """Hearings, the latest session first."""
    query = select(Hearing).order_by(Hearing.starts_at.desc(), Hearing.id.desc())
    return list(session.scalars(query.limit(max(1, min(limit, 200))).offset(max(0, offset))))


def end_session(session: Session, identity: Identity, hearing_id: int) -> Hearing:
    """The official closes the live session now (it ran shorter than announced); the comment period after
    it keeps its announced end."""
    hearing = get(session, hearing_id)
    _official(identity, hearing)
    _open_for(hearing, (LIVE,), N_("only a live session can be ended"), "not_live")
    hearing.ends_at, hearing.answering_id = utcnow(), None
    audit.record(session, identity, "end_session", "participation.hearing", hearing.id)
    _publish(session, hearing.id, "ended")
    return hearing


# --- documents ------------------------------------------------------------------------------------


@dataclass
class Upload:
    filename: str
    data: bytes


def _kind_of(upload: Upload, limit: int) -> tuple[str, bytes]:
    """The media type of a document and the bytes to keep: a PDF as it is, text as UTF-8 (read as UTF-8,
    else as CP949, what Korean Windows saves); anything else is refused."""
    if len(upload.data) > limit:
        raise TooLarge(N_("a document may be at most {size} MB"), params={"size": limit // 1_000_000})
    if not upload.data:
        raise InvalidInput(N_("the file is empty"), code="empty_file")
    if upload.data.startswith(b"%PDF-"):
        return "application/pdf", upload.data
    if b"\x00" not in upload.data:
        for encoding in ("utf-8-sig", "cp949"):
            try:
                return "text/plain; charset=utf-8", upload.data.decode(encoding).encode()
            except UnicodeDecodeError:
                continue
    raise InvalidInput(
        N_("documents are PDF or text files, not {name}"), params={"name": upload.filename}, code="file_type"
    )


def _clean_name(filename: str) -> str:
    name = "".join(c for c in Path(filename or "").name if c.isprintable() and c not in '"\\/')[:200].strip()
    return name or "document"


def add_document(session: Session, identity: Identity, hearing_id: int, upload: Upload, kind: str = "document"):
    """Keep a PDF or text file with the hearing, under var/participation/hearings/<id>/ (the file is removed
    again if the transaction rolls back); audited; followers hear of it."""
    hearing = get(session, hearing_id)
    _official(identity, hearing)
    if kind == "document" and phase(hearing) == FINISHED:
        raise Conflict(READ_ONLY, code="read_only")
    media_type, data = _kind_of(upload, rules(session.info["db"]).hearing_document_max_bytes)
    name = _clean_name(upload.filename)
    relative = Path("participation") / "hearings" / str(hearing.id) / f"{uuid.uuid4().hex}{Path(name).suffix[:10]}"
    path = Path(context_of(session.info["db"]).settings.var_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    event.listen(session, "after_rollback", lambda _s: path.unlink(missing_ok=True), once=True)
    document = HearingDocument(
        hearing_id=hearing.id,
        kind=kind,
        filename=name,
        media_type=media_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        path=str(relative),
        uploaded_by=identity.user_id,
        created_at=utcnow(),
    )
    session.add(document)
    session.flush()
    audit.record(session, identity, "add_document", "participation.hearing", hearing.id, {"file": name})
    if kind == "document":
        _publish(session, hearing.id, "document", document=document.id)
        _tell(session, hearing, N_("A document was added to the hearing “{topic}”: {file}."), file=name)
    return document


def documents(session: Session, hearing_id: int) -> list[HearingDocument]:
    rows = select(HearingDocument).where(HearingDocument.hearing_id == hearing_id).order_by(HearingDocument.id)
    return list(session.scalars(rows))


def document_file(session: Session, hearing_id: int, document_id: int) -> tuple[HearingDocument, Path]:
    document = session.get(HearingDocument, document_id) if 0 < document_id <= MAX_ID else None
    if document is None or document.hearing_id != hearing_id:
        raise NotFound(N_("no document {id}"), params={"id": document_id})
    return document, Path(context_of(session.info["db"]).settings.var_dir) / document.path


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


# --- comments before and after the session ----------------------------------------------------------


def comment(session: Session, identity: Identity, hearing_id: int, body: str) -> HearingComment:
    """A comment in the period before the session or the one after it; refused outside them."""
    person = _person(identity)
    hearing = get(session, hearing_id)
    now_phase = _open_for(
        hearing,
        (BEFORE, AFTER),
        N_("comments are taken in the periods before and after the session only"),
        "comments_closed",
    )
    row = HearingComment(
        hearing_id=hearing.id,
        user_id=person,
        period=now_phase,
        body=_text(body, "comment", 2, TEXT_MAX),
        hidden=False,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    _publish(session, hearing.id, "comment", comment=row.id)
    return row


@dataclass
class CommentView:
    id: int
    period: str
    body: str
    written_by: str
    written_at: datetime
    hidden: bool | None = None
    hidden_reason: str | None = None


def comments(session: Session, identity: Identity, hearing_id: int) -> list[CommentView]:
    moderator = identity.can("participation.moderate")
    query = (
        select(HearingComment, User.display_name, User.username)
        .join(User, User.id == HearingComment.user_id)
        .where(HearingComment.hearing_id == hearing_id)
        .order_by(HearingComment.id)
    )
    if not moderator:
        query = query.where(HearingComment.hidden.is_(False))
    return [
        CommentView(
            c.id,
            c.period,
            c.body,
            shown or name,
            c.created_at,
            c.hidden if moderator else None,
            c.hidden_reason if moderator else None,
        )
        for c, shown, name in session.execute(query)
    ]


# --- moderation -----------------------------------------------------------------------------------


def hide(
    session: Session, identity: Identity, hearing_id: int, what: str, item_id: int, reason: str, hidden: bool = True
) -> None:
    """Hide a question or a comment (or show it again) with the reason; audited, and the live page refreshes."""
    check(identity, "participation.moderate")
    get(session, hearing_id)
    model = {"question": HearingQuestion, "comment": HearingComment}.get(what)
    if model is None:
        raise InvalidInput(N_("only questions and comments are hidden"), code="unknown_kind")
    row = session.get(model, item_id) if 0 < item_id <= MAX_ID else None
    if row is None or row.hearing_id != hearing_id:
        missing = N_("no question {id}") if what == "question" else N_("no comment {id}")
        raise NotFound(missing, params={"id": item_id})
    why = _text(reason, "reason", 3, REASON_MAX)
    row.hidden, row.hidden_reason = hidden, why if hidden else None
    if what == "question" and hidden:
        session.execute(
            update(Hearing).where(Hearing.id == hearing_id, Hearing.answering_id == item_id).values(answering_id=None)
        )
    action = "hide" if hidden else "unhide"
    audit.record(session, identity, action, "participation.hearing", hearing_id, {what: item_id, "reason": why})
    _publish(session, hearing_id, "moderated", **{what: item_id})


# --- the end: minutes ------------------------------------------------------------------------------


def publish_minutes(
    session: Session, identity: Identity, hearing_id: int, text: str, upload: Upload | None = None
) -> Hearing:
    """Publish the minutes (Markdown, and a file if given) once the last comment period has closed; from
    then on the hearing is read-only. Audited; followers hear of it."""
    hearing = get(session, hearing_id)
    _official(identity, hearing)
    now_phase = phase(hearing)
    if now_phase == FINISHED:
        raise Conflict(N_("the minutes of this hearing are already published"), code="read_only")
    if now_phase != CLOSED:
        raise Conflict(
            N_("the minutes are published once the comment period after the session has closed"),
            code="not_closed",
            details={"phase": now_phase},
        )
    hearing.minutes = _text(text, "minutes", 10, MINUTES_MAX)
    if upload is not None:
        add_document(session, identity, hearing_id, upload, kind="minutes")
    hearing.minutes_at, hearing.answering_id = utcnow(), None
    session.flush()
    audit.record(session, identity, "publish_minutes", "participation.hearing", hearing.id)
    _publish(session, hearing.id, "minutes")
    _tell(session, hearing, N_("The minutes of the hearing “{topic}” are published."))
    return hearing


# --- news to followers ------------------------------------------------------------------------------


def _tell(session: Session, hearing: Hearing, message: str, skip: int | None = None, **values) -> int:
    def params(language: str) -> dict:
        topic = hearing.topic_en if language == "en" and hearing.topic_en else hearing.topic_ko
        return {"topic": topic, **values}

    subject = N_("News of a hearing you follow")
    return follows.notify_followers(session, KIND, hearing.id, message, subject=subject, params=params, skip=skip)


def announce_live(db: Database, now: datetime | None = None) -> list[int]:
    """Tell the followers of each hearing whose live session has begun (the job; once per hearing, by an
    UPDATE guarded by the flag, so two processes running the job tell them once)."""
    now = now or utcnow()
    told = []
    with db.session() as s:
        due = s.scalars(
            select(Hearing.id).where(
                Hearing.live_announced.is_(False),
                Hearing.minutes_at.is_(None),
                Hearing.starts_at <= now,
                Hearing.ends_at > now,
            )
        ).all()
        for hid in due:
            moved = s.execute(
                update(Hearing).where(Hearing.id == hid, Hearing.live_announced.is_(False)).values(live_announced=True)
            ).rowcount
            if moved:
                hearing = s.get(Hearing, hid)
                _tell(s, hearing, N_("The live session of the hearing “{topic}” has begun: ask your questions now."))
                _publish(s, hid, "live")
                told.append(hid)
    return told


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
