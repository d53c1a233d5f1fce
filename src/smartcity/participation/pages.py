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
from smartcity.participation import service

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
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    try:
        point = [float(form[k]) if form.get(k) else None for k in ("lat", "lon")]
        new = service.NewProposal(
            form.get("title", ""), form.get("body", ""), form.get("category", ""), form.get("district_code"), *point
        )
        with request.app.state.db.session() as s:
            proposal = service.create(s, identity, new)
    except ValueError:
        return _new_page(
            request, 400, error_text(service.InvalidInput(service.POINT_MESSAGE), language_of(request)), form
        )
    except SmartCityError as exc:
        return _new_page(request, exc.status, error_text(exc, language_of(request)), form)
    return RedirectResponse(f"{P}/proposals/{proposal.id}", status_code=303)


def _proposal_page(request: Request, proposal_id: int, identity: Identity, status_code=200, error=None):
    with request.app.state.db.session() as s:
        proposal = service.get(s, identity, proposal_id)
        talk = service.comments(s, proposal_id)
        follow_ups = service.follow_ups(s, proposal_id)
        liked = service.liked(s, identity, proposal_id)
    responsible = identity.can("participation.answer") and (
        identity.role == "admin" or identity.department_code == proposal.department_code
    )
    return render(
        request,
        "participation/proposal.html",
        status_code=status_code,
        p=proposal,
        comments=talk,
        follow_ups=follow_ups,
        liked=liked,
        responsible=responsible,
        rules=service.settings_of(request.app.state.db),
        error=error,
        **_labels(),
    )


@router.get(P + "/proposals/{proposal_id:int}", response_class=HTMLResponse)
def proposal_page(request: Request, proposal_id: int, identity: CurrentIdentity):
    return _proposal_page(request, proposal_id, identity)


@router.post(P + "/proposals/{proposal_id:int}/{action}", response_class=HTMLResponse)
async def act(request: Request, proposal_id: int, action: str, identity: CurrentIdentity):
    """The proposal page's forms: like, unlike, comment, answer, follow-up, report."""
    form = await request.form()
    db = request.app.state.db
    try:
        if action == "like":
            service.like(db, identity, proposal_id)
        elif action == "unlike":
            service.unlike(db, identity, proposal_id)
        elif action == "comment":
            service.comment(db, identity, proposal_id, str(form.get("body") or ""))
        else:
            with db.session() as s:
                if action == "answer":
                    service.answer(s, identity, proposal_id, str(form.get("status")), str(form.get("reasons") or ""))
                elif action == "follow-up":
                    service.follow_up(s, identity, proposal_id, str(form.get("body") or ""))
                elif action == "abuse":
                    service.report_abuse(s, identity, proposal_id, str(form.get("reason") or ""))
                else:
                    raise service.NotFound(service.NO_PAGE)
    except SmartCityError as exc:
        return _proposal_page(request, proposal_id, identity, exc.status, error_text(exc, language_of(request)))
    return RedirectResponse(f"{P}/proposals/{proposal_id}", status_code=303)


@router.get(f"{P}/queue", response_class=HTMLResponse)
def queue_page(request: Request, identity: Identity = Depends(Require("participation.answer"))):
    with request.app.state.db.session() as s:
        found = service.queue(s, identity)
    return render(request, "participation/queue.html", proposals=found, **_labels())
