"""Pages of citizen proposals, in Korean and English: the list, a proposal (like, debate, answer), a new
proposal, and a department's queue. Thin: the rules are in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.errors import SmartCityError
from smartcity.core.models import District
from smartcity.core.web import error_text, language_of, render
from smartcity.participation import comment_reports, follows, service

router = APIRouter(include_in_schema=False)
P = "/participation"


def _labels() -> dict:
    return {"categories": service.CATEGORIES, "statuses": service.STATUSES, "answers": service.ANSWERS}


@router.get(f"{P}/proposals", response_class=HTMLResponse)
def list_page(request: Request, identity: CurrentIdentity):
    with request.app.state.db.session() as s:
        found = service.listing(s, identity, limit=100)
    rules = service.settings_of(request.app.state.db)
    return render(request, "participation/list.html", proposals=found, rules=rules, **_labels())


def _new_page(request: Request, status_code: int = 200, error: str | None = None, form=None) -> HTMLResponse:
    with request.app.state.db.session() as s:
        districts = list(s.scalars(select(District).order_by(District.code)))
    return render(
        request,
        "participation/new.html",
        status_code=status_code,
        districts=districts,
        error=error,
        form=form or {},
        **_labels(),
    )


@router.get(f"{P}/proposals/new", response_class=HTMLResponse)
def new_page(request: Request, identity: Identity = Depends(Require("participation.take_part"))):
    return _new_page(request)


@router.post(f"{P}/proposals/new", response_class=HTMLResponse)
async def create(request: Request, identity: Identity = Depends(Require("participation.take_part"))):
    sent = await request.form()
    form = {k: str(v) for k, v in sent.items() if k not in ("csrf_token", "images")}
    pictures = [(f.filename or "image", await f.read()) for f in sent.getlist("images") if getattr(f, "filename", None)]
    try:
        point = [float(form[k]) if form.get(k) else None for k in ("lat", "lon")]
        new = service.NewProposal(
            form.get("title", ""), form.get("body", ""), form.get("category", ""), form.get("district_code"), *point
        )
        service.screen(request.app.state.db, identity, new.title)
        with request.app.state.db.session() as s:
            proposal = service.create(s, identity, new)
            service.add_images(s, identity, proposal.id, pictures)
    except ValueError:
        return _new_page(
            request, 400, error_text(service.InvalidInput(service.POINT_MESSAGE), language_of(request)), form
        )
    except SmartCityError as exc:
        return _new_page(request, exc.status, error_text(exc, language_of(request)), form)
    return RedirectResponse(f"{P}/proposals/{proposal.id}", status_code=303)


def _proposal_page(request: Request, proposal_id: int, identity: Identity, status_code=200, error=None):
    sort = request.query_params.get("sort", "oldest")
    if sort not in service.SORTS:
        sort = "oldest"
    with request.app.state.db.session() as s:
        proposal = service.get(s, identity, proposal_id)
        talk = service.debate(s, identity, proposal_id, sort)
        follow_ups = service.follow_ups(s, proposal_id)
        liked = service.liked(s, identity, proposal_id)
        versions = service.history(s, identity, proposal_id)
        pictures = service.images_of(s, proposal_id)
        following = follows.following(s, identity, service.KIND, proposal_id)
    responsible = identity.can("participation.answer") and (
        identity.role == "admin" or identity.department_code == proposal.department_code
    )
    return render(
        request,
        "participation/proposal.html",
        status_code=status_code,
        p=proposal,
        comments=talk,
        sort=sort,
        sorts=service.SORTS,
        debate_open=service.debate_open(proposal),
        reply_depth=service.settings_of(request.app.state.db).reply_depth,
        versions=versions,
        pictures=pictures,
        may_edit=proposal.status == "open" and identity.user_id == proposal.author_id,
        moderator=identity.can("participation.moderate"),
        follow_ups=follow_ups,
        liked=liked,
        following=following,
        responsible=responsible,
        rules=service.settings_of(request.app.state.db),
        error=error,
        reasons=comment_reports.REASONS,
        **_labels(),
    )


@router.get(P + "/proposals/{proposal_id:int}", response_class=HTMLResponse)
def proposal_page(request: Request, proposal_id: int, identity: CurrentIdentity):
    return _proposal_page(request, proposal_id, identity)


@router.post(P + "/proposals/{proposal_id:int}/{action}", response_class=HTMLResponse)
async def act(request: Request, proposal_id: int, action: str, identity: CurrentIdentity):
    """The proposal page's forms: like, unlike, comment (or reply), vote on a comment, edit, follow, answer,
    follow-up, report, and the moderators' hide and show (of the proposal or of one comment)."""
    form = await request.form()
    db = request.app.state.db
    back = f"{P}/proposals/{proposal_id}"
    try:
        if action == "like":
            service.like(db, identity, proposal_id)
        elif action == "unlike":
            service.unlike(db, identity, proposal_id)
        elif action == "comment":
            parent = _number(form.get("parent_id"))
            said = service.comment(db, identity, proposal_id, str(form.get("body") or ""), parent)
            back += f"#comment-{said}"
        elif action == "vote":
            value = {"up": 1, "down": -1}.get(str(form.get("value")))
            comment_id = _number(form.get("comment_id")) or 0
            with db.session() as s:
                if service.get(s, identity, proposal_id).id != service.comment_proposal(s, comment_id):
                    raise service.NotFound(service.NO_PAGE)
            service.vote_comment(db, identity, comment_id, value)
            back += f"#comment-{comment_id}"
        else:
            with db.session() as s:
                if action == "edit":
                    service.edit(s, identity, proposal_id, str(form.get("title") or ""), str(form.get("body") or ""))
                elif action in ("follow", "unfollow"):
                    service.follow(s, identity, proposal_id, action == "follow", sms=form.get("sms") == "on")
                elif action in ("hide-comment", "unhide-comment"):
                    comment_id = _number(form.get("comment_id")) or 0
                    if service.comment_proposal(s, comment_id) != proposal_id:
                        raise service.NotFound(service.NO_PAGE)
                    reason = str(form.get("reason") or "")
                    service.hide_comment(s, identity, comment_id, reason, action == "hide-comment")
                    back = f"{P}/moderation" if form.get("next") == "moderation" else f"{back}#comment-{comment_id}"
                elif action in ("hide", "unhide"):
                    service.hide(s, identity, proposal_id, str(form.get("reason") or ""), action == "hide")
                    if form.get("next") == "moderation":
                        back = f"{P}/moderation"
                elif action == "answer":
                    service.answer(s, identity, proposal_id, str(form.get("status")), str(form.get("reasons") or ""))
                elif action == "follow-up":
                    service.follow_up(s, identity, proposal_id, str(form.get("body") or ""))
                elif action == "abuse":
                    service.report_abuse(s, identity, proposal_id, str(form.get("reason") or ""))
                else:
                    raise service.NotFound(service.NO_PAGE)
    except SmartCityError as exc:
        return _proposal_page(request, proposal_id, identity, exc.status, error_text(exc, language_of(request)))
    return RedirectResponse(back, status_code=303)


def _number(value) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


@router.get(f"{P}/moderation", response_class=HTMLResponse)
def moderation_page(request: Request, identity: Identity = Depends(Require("participation.moderate"))):
    """Moderators: proposals reported as abusive (most reported first) and the hidden ones, each with its
    hide or show form and reason."""
    with request.app.state.db.session() as s:
        reported = [(service.get(s, identity, pid), n, why) for pid, n, why in service.abuse_reports(s, identity)]
        hidden = service.hidden(s, identity)
        comments = service.hidden_comments(s, identity)
        reported_comments = comment_reports.queue(s, identity)
    return render(
        request,
        "participation/moderation.html",
        reported=reported,
        hidden=hidden,
        comments=comments,
        reported_comments=reported_comments,
        report_reasons=comment_reports.REASONS,
        **_labels(),
    )


@router.get(f"{P}/queue", response_class=HTMLResponse)
def queue_page(request: Request, identity: Identity = Depends(Require("participation.answer"))):
    with request.app.state.db.session() as s:
        found = service.queue(s, identity)
    return render(request, "participation/queue.html", proposals=found, **_labels())
