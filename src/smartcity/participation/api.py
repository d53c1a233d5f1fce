"""JSON API of citizen proposals (/api/participation/…), in the platform's error shape. Thin: the rules,
permissions and audit are in service.py."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from smartcity.core.auth import CurrentIdentity, Identity
from smartcity.participation import service
from smartcity.participation.models import Proposal

router = APIRouter(prefix="/api/participation", tags=["participation"])


def _db(request: Request):
    return request.app.state.db


def _when(value) -> str | None:
    return value.isoformat() if value else None


def image_view(image) -> dict:
    return {
        "id": image.id,
        "url": f"/api/participation/images/{image.id}.jpg",
        "thumb_url": f"/api/participation/images/{image.id}/thumb.jpg",
        "width": image.width,
        "height": image.height,
    }


def proposal_view(session, proposal: Proposal, identity: Identity) -> dict:
    rules = service.settings_of(session.info["db"])
    view = {
        "id": proposal.id,
        "title": proposal.title,
        "body": proposal.body,
        "category": proposal.category,
        "district_code": proposal.district_code,
        "lat": proposal.lat,
        "lon": proposal.lon,
        "status": proposal.status,
        "likes": proposal.likes,
        "participants": proposal.participants,
        "thresholds": {"debate_likes": rules.debate_likes, "answer_participants": rules.answer_participants},
        "created_at": _when(proposal.created_at),
        "closes_at": _when(proposal.closes_at),
        "debate_at": _when(proposal.debate_at),
        "answer_due_at": _when(proposal.answer_due_at),
        "department_code": proposal.department_code,
        "answer": None,
        "liked": service.liked(session, identity, proposal.id),
        "edited_at": _when(proposal.edited_at),
        "images": [image_view(i) for i in service.images_of(session, proposal.id)],
    }
    if proposal.answer_status:
        view["answer"] = {
            "status": proposal.answer_status,
            "reasons": proposal.answer,
            "answered_at": _when(proposal.answered_at),
            "follow_ups": [
                {"body": f.body, "at": _when(f.created_at)} for f in service.follow_ups(session, proposal.id)
            ],
        }
    if identity.can("participation.moderate"):
        view["hidden"], view["hidden_reason"] = proposal.hidden, proposal.hidden_reason
    return view


class ProposalBody(BaseModel):
    title: Annotated[str, Field(max_length=service.TITLE_MAX)]
    body: Annotated[str, Field(max_length=service.BODY_MAX)]
    category: Annotated[str, Field(max_length=40)]
    district_code: Annotated[str | None, Field(max_length=20)] = None
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None


class TextBody(BaseModel):
    body: Annotated[str, Field(max_length=service.TEXT_MAX)]


class CommentBody(BaseModel):
    body: Annotated[str, Field(max_length=service.TEXT_MAX)]
    parent_id: Annotated[int | None, Field(ge=1, le=2**31 - 1, description="the comment this one replies to")] = None


class EditBody(BaseModel):
    title: Annotated[str, Field(max_length=service.TITLE_MAX)]
    body: Annotated[str, Field(max_length=service.BODY_MAX)]


class VoteBody(BaseModel):
    value: Literal[1, -1]


class CommentOut(BaseModel):
    id: int
    parent_id: int | None
    depth: int
    body: str | None = Field(description="None when a moderator hid it (moderators still read it)")
    hidden: bool = Field(description="hidden by a moderator: show a notice in its place")
    hidden_reason: str | None = Field(None, description="moderators only: why it was hidden")
    name: str
    by_author: bool = Field(description="said by the proposal's (or debate's) author (pinned on top)")
    stance: str | None = Field(None, description="a standalone debate's argument: for or against")
    up: int
    down: int
    my_vote: int = Field(description="the caller's vote: 1, -1, or 0 for none")
    created_at: str
    replies: list[CommentOut] = []


CommentOut.model_rebuild()


class AnswerOut(BaseModel):
    status: str
    reasons: str | None
    answered_at: str | None


class DebateOut(BaseModel):
    proposal_id: int
    status: str
    opens_at: str | None = Field(description="when the debate opened (the likes' threshold)")
    closes_at: str | None = Field(description="when it closes, unless the participants' threshold comes first")
    open: bool
    participants: int
    sort: str
    answer: AnswerOut | None = Field(description="the official answer, pinned above the comments")
    comments: list[CommentOut]


class VoteOut(BaseModel):
    id: int
    up: int
    down: int
    my_vote: int


class VersionOut(BaseModel):
    title: str
    body: str
    written_at: str
    diff: list[str] = Field(description="staff only: a unified diff from the version before")


class HistoryOut(BaseModel):
    proposal_id: int
    versions: list[VersionOut]


class AnswerBody(BaseModel):
    status: Literal["accepted", "partly", "under_review", "rejected"]
    reasons: Annotated[str, Field(max_length=service.TEXT_MAX)]


class HideBody(BaseModel):
    reason: Annotated[str, Field(max_length=service.REASON_MAX)]
    hidden: bool = True


class AbuseBody(BaseModel):
    reason: Annotated[str, Field(max_length=service.REASON_MAX)]


@router.get("/proposals")
def list_proposals(
    request: Request,
    identity: CurrentIdentity,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict:
    """Proposals, newest first; optionally in one phase (open, debate, answer_due, answered, expired)."""
    with _db(request).session() as s:
        found = service.listing(s, identity, status, limit, offset)
        return {"proposals": [proposal_view(s, p, identity) for p in found]}


@router.post("/proposals", status_code=201)
def create_proposal(request: Request, body: ProposalBody, identity: CurrentIdentity) -> dict:
    """Propose: title, body, category, a district (none: the whole city) and an optional map point. Refused
    (and audited) past the daily limit per person (429 too_many_proposals) or with a shown proposal's title
    (409 duplicate)."""
    service.screen(_db(request), identity, body.title)
    with _db(request).session() as s:
        proposal = service.create(s, identity, service.NewProposal(**body.model_dump()))
        return proposal_view(s, proposal, identity)


@router.get("/proposals/{proposal_id}")
def show_proposal(request: Request, proposal_id: int, identity: CurrentIdentity) -> dict:
    with _db(request).session() as s:
        return proposal_view(s, service.get(s, identity, proposal_id), identity)


def _again(request: Request, proposal_id: int, identity: Identity) -> dict:
    with _db(request).session() as s:
        return proposal_view(s, service.get(s, identity, proposal_id), identity)


@router.put("/proposals/{proposal_id}/like")
def like(request: Request, proposal_id: int, identity: CurrentIdentity) -> dict:
    """Like (once per person; again changes nothing). The like that reaches the threshold opens the debate."""
    service.like(_db(request), identity, proposal_id)
    return _again(request, proposal_id, identity)


@router.delete("/proposals/{proposal_id}/like")
def unlike(request: Request, proposal_id: int, identity: CurrentIdentity) -> dict:
    """Withdraw a like while the proposal still collects likes."""
    service.unlike(_db(request), identity, proposal_id)
    return _again(request, proposal_id, identity)


@router.post("/proposals/{proposal_id}/comments", status_code=201)
def comment(request: Request, proposal_id: int, body: CommentBody, identity: CurrentIdentity) -> dict:
    """Speak in the public debate, or reply to a comment (parent_id); each person counts once towards the
    answer threshold. The proposal as it is after, with the new comment's id."""
    said = service.comment(_db(request), identity, proposal_id, body.body, body.parent_id)
    return {**_again(request, proposal_id, identity), "comment_id": said}


def said_out(one: service.Said) -> CommentOut:
    c = one.comment
    return CommentOut(
        id=c.id,
        parent_id=c.parent_id,
        depth=c.depth,
        body=one.body,
        hidden=c.hidden,
        hidden_reason=c.hidden_reason if one.body is not None else None,
        name=one.name,
        by_author=one.by_author,
        up=c.up,
        down=c.down,
        my_vote=one.my_vote,
        created_at=_when(c.created_at),
        stance=c.stance,
        replies=[said_out(r) for r in one.replies],
    )


class CommentHidden(BaseModel):
    id: int
    proposal_id: int | None = Field(description="the proposal whose debate it is in (None: a standalone debate)")
    debate_id: int | None = Field(None, description="the standalone debate it is in")
    hidden: bool
    hidden_reason: str | None


@router.post("/comments/{comment_id}/hide")
def hide_comment(request: Request, comment_id: int, body: HideBody, identity: CurrentIdentity) -> CommentHidden:
    """Moderation: hide one debate comment (or show it again, hidden=false) with a reason; audited. The public
    reads a notice in its place."""
    with _db(request).session() as s:
        row = service.hide_comment(s, identity, comment_id, body.reason, body.hidden)
        return CommentHidden(
            id=row.id,
            proposal_id=row.proposal_id,
            debate_id=row.debate_id,
            hidden=row.hidden,
            hidden_reason=row.hidden_reason,
        )


@router.get("/proposals/{proposal_id}/comments")
def debate(
    request: Request,
    proposal_id: int,
    identity: CurrentIdentity,
    sort: Literal["oldest", "newest", "supported"] = "oldest",
) -> DebateOut:
    """The debate: the official answer and the author's comments pinned on top, then the others as a tree of
    replies, oldest, newest or most supported (ups less downs) first."""
    with _db(request).session() as s:
        proposal = service.get(s, identity, proposal_id)
        said = service.debate(s, identity, proposal_id, sort)
        answer = None
        if proposal.answer_status:
            answer = AnswerOut(
                status=proposal.answer_status, reasons=proposal.answer, answered_at=_when(proposal.answered_at)
            )
        return DebateOut(
            proposal_id=proposal.id,
            status=proposal.status,
            opens_at=_when(proposal.debate_at),
            closes_at=_when(proposal.closes_at) if proposal.status == "debate" else None,
            open=service.debate_open(proposal),
            participants=proposal.participants,
            sort=sort,
            answer=answer,
            comments=[said_out(one) for one in said],
        )


def _vote(request: Request, comment_id: int, identity: Identity, value: int | None) -> VoteOut:
    row = service.vote_comment(_db(request), identity, comment_id, value)
    return VoteOut(id=row.id, up=row.up, down=row.down, my_vote=value or 0)


@router.put("/comments/{comment_id}/vote")
def vote_comment(request: Request, comment_id: int, body: VoteBody, identity: CurrentIdentity) -> VoteOut:
    """Vote a debate comment up (1) or down (-1); one vote per person, a second one replaces the first."""
    return _vote(request, comment_id, identity, body.value)


@router.delete("/comments/{comment_id}/vote")
def withdraw_comment_vote(request: Request, comment_id: int, identity: CurrentIdentity) -> VoteOut:
    """Withdraw one's vote on a debate comment."""
    return _vote(request, comment_id, identity, None)


@router.patch("/proposals/{proposal_id}")
def edit_proposal(request: Request, proposal_id: int, body: EditBody, identity: CurrentIdentity) -> dict:
    """The author's edit (title and body) while the proposal collects likes; the old text stays in its history."""
    with _db(request).session() as s:
        proposal = service.edit(s, identity, proposal_id, body.title, body.body)
        return proposal_view(s, proposal, identity)


@router.post("/proposals/{proposal_id}/images", status_code=201)
async def add_images(
    request: Request, proposal_id: int, identity: CurrentIdentity, images: Annotated[list[UploadFile], File()]
) -> dict:
    """The author's pictures (JPEG, PNG or WebP; multipart field `images`, one or more) while the proposal
    collects likes; stored re-encoded without metadata. The proposal as it is after."""
    files = [(f.filename or "image", await f.read()) for f in images]
    with _db(request).session() as s:
        service.add_images(s, identity, proposal_id, files)
    return _again(request, proposal_id, identity)


def _image(request: Request, image_id: int, identity: Identity, thumb: bool) -> FileResponse:
    with _db(request).session() as s:
        path = service.image_file(s, identity, image_id, thumb)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/images/{image_id}.jpg", response_class=FileResponse)
def image(request: Request, image_id: int, identity: CurrentIdentity):
    """A proposal's picture (as public as the proposal)."""
    return _image(request, image_id, identity, False)


@router.get("/images/{image_id}/thumb.jpg", response_class=FileResponse)
def image_thumb(request: Request, image_id: int, identity: CurrentIdentity):
    return _image(request, image_id, identity, True)


@router.get("/proposals/{proposal_id}/history")
def proposal_history(request: Request, proposal_id: int, identity: CurrentIdentity) -> HistoryOut:
    """Every version of the proposal's text, the first first; staff also get what each edit changed."""
    with _db(request).session() as s:
        versions = service.history(s, identity, proposal_id)
    return HistoryOut(
        proposal_id=proposal_id,
        versions=[
            VersionOut(title=v.title, body=v.body, written_at=_when(v.written_at), diff=v.diff) for v in versions
        ],
    )


@router.put("/proposals/{proposal_id}/follow")
def follow(request: Request, proposal_id: int, identity: CurrentIdentity) -> dict:
    """Follow the proposal's news (the same as PUT /api/participation/follows/proposal/{id})."""
    with _db(request).session() as s:
        service.follow(s, identity, proposal_id, True)
    return {"id": proposal_id, "following": True}


@router.delete("/proposals/{proposal_id}/follow")
def unfollow(request: Request, proposal_id: int, identity: CurrentIdentity) -> dict:
    with _db(request).session() as s:
        service.follow(s, identity, proposal_id, False)
    return {"id": proposal_id, "following": False}


@router.post("/proposals/{proposal_id}/answer")
def answer(request: Request, proposal_id: int, body: AnswerBody, identity: CurrentIdentity) -> dict:
    """The responsible department's official answer (staff of that department, or an administrator)."""
    with _db(request).session() as s:
        proposal = service.answer(s, identity, proposal_id, body.status, body.reasons)
        return proposal_view(s, proposal, identity)


@router.post("/proposals/{proposal_id}/follow-ups", status_code=201)
def follow_up(request: Request, proposal_id: int, body: TextBody, identity: CurrentIdentity) -> dict:
    """What was done after the answer."""
    with _db(request).session() as s:
        service.follow_up(s, identity, proposal_id, body.body)
    return _again(request, proposal_id, identity)


@router.post("/proposals/{proposal_id}/hide")
def hide(request: Request, proposal_id: int, body: HideBody, identity: CurrentIdentity) -> dict:
    """Moderation: hide (or show again) with a reason; audited."""
    with _db(request).session() as s:
        proposal = service.hide(s, identity, proposal_id, body.reason, body.hidden)
        return proposal_view(s, proposal, identity)


@router.post("/proposals/{proposal_id}/abuse")
def report_abuse(request: Request, proposal_id: int, body: AbuseBody, identity: CurrentIdentity) -> dict:
    """Report a proposal as abusive (once per person)."""
    with _db(request).session() as s:
        added = service.report_abuse(s, identity, proposal_id, body.reason)
    return {"id": proposal_id, "reported": True, "new": added}


@router.get("/abuse")
def abuse_reports(request: Request, identity: CurrentIdentity) -> dict:
    """Moderators: the shown proposals reported as abusive, most reported first."""
    with _db(request).session() as s:
        found = service.abuse_reports(s, identity)
    return {"reports": [{"proposal_id": p, "count": n, "reasons": r} for p, n, r in found]}


@router.get("/queue")
def department_queue(request: Request, identity: CurrentIdentity) -> dict:
    """Staff: the proposals the caller's department owes a debate's answer, soonest due first."""
    with _db(request).session() as s:
        return {"proposals": [proposal_view(s, p, identity) for p in service.queue(s, identity)]}
