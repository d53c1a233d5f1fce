"""JSON API of public hearings and of following (/api/participation/hearings…, /api/participation/follows…),
in the platform's error shape, the read models of hearings.py as response models. Thin: the rules,
permissions and audit are in hearings.py and follows.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from pydantic import BaseModel, Field

from smartcity.core.auth import ANONYMOUS, CurrentIdentity
from smartcity.core.web import ERROR_RESPONSES
from smartcity.participation import follows, hearings

router = APIRouter(prefix="/api/participation", tags=["participation"], responses=ERROR_RESPONSES)
H = "/hearings/{hearing_id}"
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _db(request: Request):
    return request.app.state.db


class HearingBody(BaseModel):
    topic_ko: Annotated[str, Field(max_length=hearings.TOPIC_MAX)]
    topic_en: Annotated[str, Field(max_length=hearings.TOPIC_MAX)] = ""
    summary_ko: Annotated[str, Field(max_length=hearings.SUMMARY_MAX)] = ""
    summary_en: Annotated[str, Field(max_length=hearings.SUMMARY_MAX)] = ""
    comments_open_at: datetime = Field(description="comments open (with the UTC offset)")
    starts_at: datetime = Field(description="the live session starts")
    ends_at: datetime = Field(description="the live session ends")
    comments_close_at: datetime = Field(description="comments after the session close; then the minutes")


class TextBody(BaseModel):
    body: Annotated[str, Field(max_length=hearings.TEXT_MAX)]


class AnswerBody(BaseModel):
    answer: Annotated[str, Field(max_length=hearings.TEXT_MAX)]


class AnsweringBody(BaseModel):
    question: Annotated[int | None, Field(ge=1, le=2**31 - 1, description="the question; null: none")] = None


class HideBody(BaseModel):
    reason: Annotated[str, Field(max_length=hearings.REASON_MAX)]
    hidden: bool = True


class HearingList(BaseModel):
    hearings: list[hearings.HearingView]


class VoteState(BaseModel):
    question: int
    votes: int
    voted: bool


class FollowBody(BaseModel):
    sms: bool = Field(False, description="also a text message of each change (where the account has a number)")


class FollowState(BaseModel):
    kind: str
    id: int
    following: bool
    sms: bool = False


class FollowList(BaseModel):
    follows: list[follows.Followed]


@router.get("/hearings")
def list_hearings(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HearingList:
    """Public hearings, the latest session first (without their questions and comments)."""
    with _db(request).session() as s:
        found = hearings.listing(s, limit, offset)
        return HearingList(hearings=[hearings.view(s, ANONYMOUS, h.id, full=False) for h in found])


@router.post("/hearings", status_code=201)
def create_hearing(request: Request, body: HearingBody, identity: CurrentIdentity) -> hearings.HearingView:
    """Officials: announce a hearing for their department, with its schedule."""
    with _db(request).session() as s:
        hearing = hearings.create(s, identity, hearings.NewHearing(**body.model_dump()))
        return hearings.view(s, identity, hearing.id)


@router.get(H)
def show_hearing(request: Request, hearing_id: Id, identity: CurrentIdentity) -> hearings.HearingView:
    """A hearing with its phase, documents, questions (being answered first, then by upvotes), comments and
    minutes (Markdown)."""
    with _db(request).session() as s:
        return hearings.view(s, identity, hearing_id)


@router.post(H + "/documents", status_code=201)
async def add_document(
    request: Request, hearing_id: Id, identity: CurrentIdentity, file: Annotated[UploadFile, File()]
) -> hearings.DocumentView:
    """Officials: attach a PDF or text file (multipart field `file`)."""
    limit = hearings.rules(_db(request)).hearing_document_max_bytes
    upload = hearings.Upload(file.filename or "", await file.read(limit + 1))
    with _db(request).session() as s:
        return hearings.document_view(hearings.add_document(s, identity, hearing_id, upload))


@router.post(H + "/questions", status_code=201)
def ask(request: Request, hearing_id: Id, body: TextBody, identity: CurrentIdentity) -> hearings.QuestionView:
    """Ask the live session a question (from the first comment period until the session ends)."""
    with _db(request).session() as s:
        question = hearings.ask(s, identity, hearing_id, body.body)
        hearing = hearings.get(s, hearing_id)
        return next(q for q in hearings.questions(s, identity, hearing) if q.id == question.id)


def _vote(request: Request, hearing_id: int, question_id: int, identity, on: bool) -> VoteState:
    votes = hearings.upvote(_db(request), identity, hearing_id, question_id, on)
    return VoteState(question=question_id, votes=votes, voted=on)


@router.put(H + "/questions/{question_id}/vote")
def upvote(request: Request, hearing_id: Id, question_id: Id, identity: CurrentIdentity) -> VoteState:
    """Upvote a question: once per person (again changes nothing)."""
    return _vote(request, hearing_id, question_id, identity, True)


@router.delete(H + "/questions/{question_id}/vote")
def withdraw_upvote(request: Request, hearing_id: Id, question_id: Id, identity: CurrentIdentity) -> VoteState:
    return _vote(request, hearing_id, question_id, identity, False)


@router.put(H + "/answering")
def answering(request: Request, hearing_id: Id, body: AnsweringBody, identity: CurrentIdentity) -> hearings.HearingView:
    """Officials, in the live session: mark the question being answered now (null: none)."""
    with _db(request).session() as s:
        hearings.mark_answering(s, identity, hearing_id, body.question)
    with _db(request).session() as s:
        return hearings.view(s, identity, hearing_id)


@router.post(H + "/questions/{question_id}/answer")
def answer(
    request: Request, hearing_id: Id, question_id: Id, body: AnswerBody, identity: CurrentIdentity
) -> hearings.QuestionView:
    """Officials: answer a question, from the live session until the minutes."""
    with _db(request).session() as s:
        hearings.answer(s, identity, hearing_id, question_id, body.answer)
    with _db(request).session() as s:
        hearing = hearings.get(s, hearing_id)
        return next(q for q in hearings.questions(s, identity, hearing) if q.id == question_id)


@router.post(H + "/comments", status_code=201)
def comment(request: Request, hearing_id: Id, body: TextBody, identity: CurrentIdentity) -> hearings.CommentView:
    """Comment in the period before the session or the one after it."""
    with _db(request).session() as s:
        row = hearings.comment(s, identity, hearing_id, body.body)
        return next(c for c in hearings.comments(s, identity, hearing_id) if c.id == row.id)


@router.post(H + "/{what}/{item_id}/hide")
def hide(
    request: Request,
    hearing_id: Id,
    what: Literal["questions", "comments"],
    item_id: Id,
    body: HideBody,
    identity: CurrentIdentity,
) -> hearings.HearingView:
    """Moderators: hide a question or a comment (or show it again) with the reason; audited."""
    with _db(request).session() as s:
        hearings.hide(s, identity, hearing_id, what.removesuffix("s"), item_id, body.reason, body.hidden)
    with _db(request).session() as s:
        return hearings.view(s, identity, hearing_id)


@router.post(H + "/end")
def end_session(request: Request, hearing_id: Id, identity: CurrentIdentity) -> hearings.HearingView:
    """Officials: end the live session now."""
    with _db(request).session() as s:
        hearings.end_session(s, identity, hearing_id)
    with _db(request).session() as s:
        return hearings.view(s, identity, hearing_id)


@router.post(H + "/minutes")
async def publish_minutes(
    request: Request,
    hearing_id: Id,
    identity: CurrentIdentity,
    text: Annotated[str, Form(max_length=hearings.MINUTES_MAX)],
    file: Annotated[UploadFile | None, File()] = None,
) -> hearings.HearingView:
    """Officials, once the last comment period has closed: publish the minutes (Markdown in `text`, and a
    PDF or text `file` if given); the hearing is read-only from then on."""
    upload = None
    if file is not None and file.filename:
        limit = hearings.rules(_db(request)).hearing_document_max_bytes
        upload = hearings.Upload(file.filename, await file.read(limit + 1))
    with _db(request).session() as s:
        hearings.publish_minutes(s, identity, hearing_id, text, upload)
    with _db(request).session() as s:
        return hearings.view(s, identity, hearing_id)


# --- following ------------------------------------------------------------------------------------

Kind = Annotated[str, Path(max_length=20, description="proposal, hearing, … (follows.FOLLOWABLE)")]


@router.get("/follows")
def my_follows(request: Request, identity: CurrentIdentity) -> FollowList:
    """What the caller follows, newest first."""
    with _db(request).session() as s:
        return FollowList(follows=follows.mine(s, identity))


@router.put("/follows/{kind}/{object_id}")
def follow(
    request: Request, kind: Kind, object_id: Id, identity: CurrentIdentity, body: FollowBody | None = None
) -> FollowState:
    """Follow a proposal, debate, vote or hearing: news of its changes by web push, email and, if asked, SMS."""
    sms = bool(body and body.sms)
    with _db(request).session() as s:
        follows.follow(s, identity, kind, object_id, True, sms=sms)
    return FollowState(kind=kind, id=object_id, following=True, sms=sms)


@router.delete("/follows/{kind}/{object_id}")
def unfollow(request: Request, kind: Kind, object_id: Id, identity: CurrentIdentity) -> FollowState:
    with _db(request).session() as s:
        follows.follow(s, identity, kind, object_id, False)
    return FollowState(kind=kind, id=object_id, following=False)
