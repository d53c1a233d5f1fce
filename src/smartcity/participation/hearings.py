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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.context import context_of
from smartcity.core.db import Database, as_utc, utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TooLarge
from smartcity.core.events import publish
from smartcity.core.i18n import N_
from smartcity.core.models import User
from smartcity.participation import follows
from smartcity.participation.hearings_models import (
    Hearing,
    HearingComment,
    HearingDocument,
    HearingQuestion,
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


# The live session's questions and the hearing's read models live in modules of their own; they stay
# reachable here, as hearings.<name>, the one surface pages, the API and the jobs use.
_MOVED = {
    "hearings_questions": ("ask", "upvote", "mark_answering", "answer", "QuestionView", "questions"),
    "hearings_views": ("DocumentView", "HearingView", "document_view", "runs", "view", "open_rows"),
}


def __getattr__(name: str):
    for module, names in _MOVED.items():
        if name in names:
            from importlib import import_module

            return getattr(import_module(f"smartcity.participation.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
