"""JSON API of standalone debates and of reports of single comments (/api/participation/…), in the platform's
error shape. Thin: the rules are in debates.py and comment_reports.py; votes and hiding of an argument are the
comments' routes in api.py (/comments/{id}/vote, /comments/{id}/hide)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from smartcity.core.auth import CurrentIdentity, Identity
from smartcity.participation import comment_reports, debates, follows
from smartcity.participation.api import CommentOut, HideBody, said_out
from smartcity.participation.common import BODY_MAX, REASON_MAX, TEXT_MAX, TITLE_MAX
from smartcity.participation.models import Debate

router = APIRouter(prefix="/api/participation", tags=["participation"])
ID = Annotated[int, Field(ge=1, le=2**31 - 1)]


def _db(request: Request):
    return request.app.state.db


def _when(value) -> str | None:
    return value.isoformat() if value else None


class DebateBody(BaseModel):
    title: Annotated[str, Field(max_length=TITLE_MAX)]
    description: Annotated[str, Field(max_length=BODY_MAX)]
    district_code: Annotated[str | None, Field(max_length=20, description="none: the whole city")] = None
    tags: Annotated[list[Annotated[str, Field(max_length=debates.TAG_MAX)]], Field(max_length=debates.MAX_TAGS)] = []
    closes_at: datetime | None = Field(None, description="when it stops taking arguments (none: open)")


class DebateOut(BaseModel):
    id: int
    title: str
    description: str
    district_code: str | None
    tags: list[str]
    created_at: str
    closes_at: str | None
    open: bool
    arguments: int
    participants: int = Field(description="distinct people who argued: each counts once")
    following: bool = False


class DebateList(BaseModel):
    debates: list[DebateOut]


class ArgumentsOut(BaseModel):
    debate_id: int
    open: bool
    participants: int
    sort: str
    arguments: list[CommentOut] = Field(description="top arguments (the debate's author's pinned) with replies")


class ArgumentBody(BaseModel):
    body: Annotated[str, Field(max_length=TEXT_MAX)]
    stance: Literal["for", "against"] | None = Field(
        None, description="a top argument's side (a reply takes its parent's)"
    )
    parent_id: ID | None = Field(None, description="the comment this one replies to")


class ReportBody(BaseModel):
    reason: Literal["spam", "abuse", "personal_data", "off_topic", "other"]
    text: Annotated[str, Field(max_length=REASON_MAX, description="the reporter's own words; needed for 'other'")] = ""


class ReportOut(BaseModel):
    comment_id: int
    reported: bool
    new: bool = Field(description="false when this person had reported it already")


class ReportedOut(BaseModel):
    comment_id: int
    body: str
    proposal_id: int | None
    debate_id: int | None
    count: int
    reasons: dict[str, int]
    texts: list[str]


class ReportQueue(BaseModel):
    reported: list[ReportedOut]


class Dismissed(BaseModel):
    comment_id: int
    dismissed: int = Field(description="how many open reports were settled")


def _out(row: Debate, arguments: int, participants: int, following: bool = False) -> DebateOut:
    return DebateOut(
        id=row.id,
        title=row.title,
        description=row.description,
        district_code=row.district_code,
        tags=debates.tags_of(row),
        created_at=_when(row.created_at),
        closes_at=_when(row.closes_at),
        open=debates.is_open(row),
        arguments=arguments,
        participants=participants,
        following=following,
    )


@router.get("/debates")
def list_debates(
    request: Request,
    identity: CurrentIdentity,
    q: Annotated[str, Query(max_length=200, description="words the title, description or tags hold")] = "",
    district: Annotated[str | None, Query(max_length=20)] = None,
    tag: Annotated[str | None, Query(max_length=debates.TAG_MAX)] = None,
    open_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DebateList:
    """Standalone debates, newest first, searched by words, district (the whole city's included) or tag."""
    with _db(request).session() as s:
        found = debates.search(s, identity, q, district, tag, open_only, limit, offset)
        return DebateList(debates=[_out(one.debate, one.arguments, one.participants) for one in found])


def _show(request: Request, debate_id: int, identity: Identity) -> DebateOut:
    with _db(request).session() as s:
        row = debates.get(s, identity, debate_id)
        listed = debates.search_one(s, row)
        following = follows.following(s, identity, debates.KIND, row.id) is not None
        return _out(row, listed.arguments, listed.participants, following)


@router.post("/debates", status_code=201)
def create_debate(request: Request, body: DebateBody, identity: CurrentIdentity) -> DebateOut:
    """Open a debate on a question (staff or any signed-in citizen); its author follows it."""
    with _db(request).session() as s:
        row = debates.create(s, identity, debates.NewDebate(**body.model_dump()))
        created = row.id
    return _show(request, created, identity)


@router.get("/debates/{debate_id}")
def show_debate(request: Request, debate_id: int, identity: CurrentIdentity) -> DebateOut:
    return _show(request, debate_id, identity)


@router.get("/debates/{debate_id}/arguments")
def arguments(
    request: Request,
    debate_id: int,
    identity: CurrentIdentity,
    sort: Literal["oldest", "newest", "supported"] = "oldest",
) -> ArgumentsOut:
    """The arguments for and against as a tree of replies, oldest, newest or most supported first."""
    with _db(request).session() as s:
        said = debates.arguments(s, identity, debate_id, sort)
        row = debates.get(s, identity, debate_id)
        return ArgumentsOut(
            debate_id=row.id,
            open=debates.is_open(row),
            participants=debates.participants(s, row.id),
            sort=sort,
            arguments=[said_out(one) for one in said],
        )


@router.post("/debates/{debate_id}/arguments", status_code=201)
def argue(request: Request, debate_id: int, body: ArgumentBody, identity: CurrentIdentity) -> dict:
    """Argue for or against, or reply to an argument; 409 not_open after the closing date."""
    said = debates.argue(_db(request), identity, debate_id, body.body, body.stance, body.parent_id)
    return {"debate_id": debate_id, "comment_id": said}


class DebateHidden(BaseModel):
    id: int
    hidden: bool
    hidden_reason: str | None


@router.post("/debates/{debate_id}/hide")
def hide_debate(request: Request, debate_id: int, body: HideBody, identity: CurrentIdentity) -> DebateHidden:
    """Moderation: hide a whole debate (or show it again, hidden=false) with a reason; audited, its author told.
    Hidden, the debate and its arguments are gone (404) for all but moderators."""
    with _db(request).session() as s:
        row = debates.hide(s, identity, debate_id, body.reason, body.hidden)
        return DebateHidden(id=row.id, hidden=row.hidden, hidden_reason=row.hidden_reason)


@router.post("/comments/{comment_id}/reports", status_code=201)
def report_comment(request: Request, comment_id: int, body: ReportBody, identity: CurrentIdentity) -> ReportOut:
    """Report one comment or argument (once per person; 429 too_many_reports past the hourly limit)."""
    with _db(request).session() as s:
        added = comment_reports.report(s, identity, comment_id, body.reason, body.text)
    return ReportOut(comment_id=comment_id, reported=True, new=added)


@router.get("/comment-reports")
def reported_comments(request: Request, identity: CurrentIdentity) -> ReportQueue:
    """Moderators: shown comments with open reports, most reported first (reasons counted, never who)."""
    with _db(request).session() as s:
        found = comment_reports.queue(s, identity)
        return ReportQueue(
            reported=[
                ReportedOut(
                    comment_id=r.comment.id,
                    body=r.comment.body,
                    proposal_id=r.comment.proposal_id,
                    debate_id=r.comment.debate_id,
                    count=r.count,
                    reasons=r.reasons,
                    texts=r.words,
                )
                for r in found
            ]
        )


@router.post("/comments/{comment_id}/reports/dismiss")
def dismiss_reports(request: Request, comment_id: int, identity: CurrentIdentity) -> Dismissed:
    """Moderators: keep the comment and settle its open reports as dismissed."""
    with _db(request).session() as s:
        return Dismissed(comment_id=comment_id, dismissed=comment_reports.dismiss(s, identity, comment_id))
