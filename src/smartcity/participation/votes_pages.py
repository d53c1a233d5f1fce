"""Pages of votes, in Korean and English, for the phone: the list, a vote (verification step, then the ballot),
the receipt and the chain check, the results with their breakdown, and the staff's set-up form. Thin: the
rules are in votes_service.py and verification.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.errors import InvalidInput, SmartCityError
from smartcity.core.i18n import N_
from smartcity.core.models import District
from smartcity.core.web import error_text, language_of, render
from smartcity.participation import verification, votes_chain
from smartcity.participation import votes_service as service

router = APIRouter(include_in_schema=False)
P = "/participation/votes"
BAD_TIME = N_("write the times as date and time")


def _labels(request: Request) -> dict:
    tz = request.app.state.profile.tz

    def when(value: datetime | None) -> str:
        return service.as_utc(value).astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""

    return {
        "statuses": service.STATUSES,
        "kinds": service.KINDS,
        "age_bands": service.AGE_BANDS,
        "refusals": service.REFUSALS,
        "when": when,
        "status_of": service.status_of,
    }


def _districts(request: Request) -> dict[str, District]:
    with request.app.state.db.session() as s:
        return {d.code: d for d in s.scalars(select(District).order_by(District.code))}


@router.get(P, response_class=HTMLResponse)
def list_page(request: Request, identity: CurrentIdentity):
    with request.app.state.db.session() as s:
        votes = service.listing(s)
    return render(request, "participation/votes_list.html", votes=votes, **_labels(request))


def _vote_page(request: Request, vote_id: int, identity: Identity, status_code: int = 200, error: str | None = None):
    db = request.app.state.db
    with db.session() as s:
        vote = service.get(s, vote_id)
        person = verification.verified(s, identity.user_id)
        voted = service.has_voted(s, vote_id, identity.user_id)
    verifier = verification.verifier_of(db)
    return render(
        request,
        "participation/votes_vote.html",
        status_code=status_code,
        vote=vote,
        state=service.status_of(vote),
        person=person,
        refusal=service.ineligible(vote, person),
        voted=voted,
        verifier=verifier,
        code_sent=request.query_params.get("sent") == "1",
        districts=_districts(request),
        error=error,
        **_labels(request),
    )


@router.get(P + "/{vote_id:int}", response_class=HTMLResponse)
def vote_page(request: Request, vote_id: int, identity: CurrentIdentity):
    return _vote_page(request, vote_id, identity)


def _answers(vote, form) -> list[list[int]]:
    """The ballot form's fields: q<i> (one choice), q<i> repeated (several), q<i>_rank<r> (a ranking)."""
    answers: list[list[int]] = []
    for i, q in enumerate(vote.questions):
        if q["kind"] == "ranking":
            picked = [form.get(f"q{i}_rank{r}") for r in range(q["max_choices"])]
        else:
            picked = form.getlist(f"q{i}")
        try:
            answers.append([int(p) for p in picked if p not in (None, "")])
        except ValueError:
            raise InvalidInput(N_("an answer names an option the question does not have"), code="bad_answers") from None
    return answers


@router.get(P + "/{vote_id:int}/receipts/{code}", response_class=HTMLResponse)
@router.get(P + "/{vote_id:int}/check", response_class=HTMLResponse)
def check_page(request: Request, vote_id: int, code: str = ""):
    """Anyone: is a receipt's ballot counted, and does the vote's whole chain hold."""
    code = (code or request.query_params.get("code", ""))[:40]
    with request.app.state.db.session() as s:
        vote = service.get(s, vote_id)
        receipt = service.check_receipt(s, vote_id, code) if code else None
        chain = votes_chain.verify_chain(s, vote_id)
    fresh = request.query_params.get("new") == "1"
    return render(
        request,
        "participation/votes_check.html",
        vote=vote,
        code=code,
        receipt=receipt,
        chain=chain,
        fresh=fresh,
        **_labels(request),
    )


@router.get(P + "/{vote_id:int}/results", response_class=HTMLResponse)
def results_page(request: Request, vote_id: int):
    db = request.app.state.db
    with db.session() as s:
        vote = service.get(s, vote_id)
    try:
        results, error = service.results(db, vote_id), None
    except SmartCityError as exc:
        results, error = None, error_text(exc, language_of(request))
    return render(
        request,
        "participation/votes_results.html",
        vote=vote,
        results=results,
        error=error,
        districts=_districts(request),
        **_labels(request),
    )


# --- staff: setting a vote up -----------------------------------------------------------------------

QUESTION_SLOTS = 3


def _edit_page(request: Request, vote=None, status_code: int = 200, error: str | None = None, form=None):
    values = form
    if values is None and vote is not None:
        tz = request.app.state.profile.tz
        values = {
            "title": vote.title,
            "description": vote.description,
            "opens_at": service.as_utc(vote.opens_at).astimezone(tz).strftime("%Y-%m-%dT%H:%M"),
            "closes_at": service.as_utc(vote.closes_at).astimezone(tz).strftime("%Y-%m-%dT%H:%M"),
            "results_hidden": "on" if vote.results_hidden else "",
            "min_count": str(vote.min_count or ""),
            "districts": vote.target.get("districts") or [],
            "age_bands": [str(b) for b in vote.target.get("age_bands") or []],
            "neighbourhoods": ", ".join(vote.target.get("neighbourhoods") or []),
        }
        point = vote.target.get("point") or {}
        values |= {k: str(point.get(k, "")) for k in ("lat", "lon", "radius_m")}
        for i, q in enumerate(vote.questions):
            values |= {f"q{i}_text": q["text"], f"q{i}_kind": q["kind"], f"q{i}_max": str(q["max_choices"])}
            values[f"q{i}_options"] = "\n".join(q["options"])
    return render(
        request,
        "participation/votes_edit.html",
        status_code=status_code,
        vote=vote,
        form=values or {"results_hidden": "on", "districts": [], "age_bands": []},
        slots=range(QUESTION_SLOTS),
        districts=_districts(request),
        error=error,
        **_labels(request),
    )


def _local_time(request: Request, value: str) -> datetime:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=request.app.state.profile.tz)
    except ValueError:
        raise InvalidInput(BAD_TIME, code="bad_times") from None


def _new_vote(request: Request, form) -> service.NewVote:
    questions = []
    for i in range(QUESTION_SLOTS):
        text = str(form.get(f"q{i}_text") or "").strip()
        if not text:
            continue
        options = [line.strip() for line in str(form.get(f"q{i}_options") or "").splitlines() if line.strip()]
        most = str(form.get(f"q{i}_max") or "").strip()
        questions.append(
            {"text": text, "kind": form.get(f"q{i}_kind"), "options": options, "max_choices": int(most or 0) or None}
        )
    target: dict[str, Any] = {
        "districts": form.getlist("districts"),
        "age_bands": [int(b) for b in form.getlist("age_bands")],
        "neighbourhoods": [c.strip() for c in str(form.get("neighbourhoods") or "").split(",") if c.strip()],
    }
    if form.get("lat") or form.get("lon"):
        target["point"] = {"lat": form.get("lat"), "lon": form.get("lon"), "radius_m": form.get("radius_m") or 0}
    minimum = str(form.get("min_count") or "").strip()
    return service.NewVote(
        title=str(form.get("title") or ""),
        description=str(form.get("description") or ""),
        questions=questions,
        opens_at=_local_time(request, str(form.get("opens_at") or "")),
        closes_at=_local_time(request, str(form.get("closes_at") or "")),
        target=target,
        results_hidden=form.get("results_hidden") == "on",
        min_count=int(minimum) if minimum.isdigit() else None,
    )


def _form_values(form) -> dict:
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    values["districts"], values["age_bands"] = form.getlist("districts"), form.getlist("age_bands")
    return values


@router.get(P + "/new", response_class=HTMLResponse)
def new_page(request: Request, identity: Identity = Depends(Require("participation.run_votes"))):
    return _edit_page(request)


@router.post(P + "/new", response_class=HTMLResponse)
async def create(request: Request, identity: Identity = Depends(Require("participation.run_votes"))):
    form = await request.form()
    try:
        with request.app.state.db.session() as s:
            vote = service.create(s, identity, _new_vote(request, form))
    except (SmartCityError, ValueError) as exc:
        problem = exc if isinstance(exc, SmartCityError) else InvalidInput(N_("a number is not written as a number"))
        return _edit_page(request, None, problem.status, error_text(problem, language_of(request)), _form_values(form))
    return RedirectResponse(f"{P}/{vote.id}", status_code=303)


@router.get(P + "/{vote_id:int}/edit", response_class=HTMLResponse)
def edit_page(request: Request, vote_id: int, identity: Identity = Depends(Require("participation.run_votes"))):
    with request.app.state.db.session() as s:
        vote = service.get(s, vote_id)
    return _edit_page(request, vote)


@router.post(P + "/{vote_id:int}/edit", response_class=HTMLResponse)
async def edit(request: Request, vote_id: int, identity: Identity = Depends(Require("participation.run_votes"))):
    form = await request.form()
    try:
        with request.app.state.db.session() as s:
            service.edit(s, identity, vote_id, _new_vote(request, form))
    except (SmartCityError, ValueError) as exc:
        problem = exc if isinstance(exc, SmartCityError) else InvalidInput(N_("a number is not written as a number"))
        with request.app.state.db.session() as s:
            vote = service.get(s, vote_id)
        return _edit_page(request, vote, problem.status, error_text(problem, language_of(request)), _form_values(form))
    return RedirectResponse(f"{P}/{vote_id}", status_code=303)


# After the staff's routes: `{action}` would otherwise take their /edit.
@router.post(P + "/{vote_id:int}/{action}", response_class=HTMLResponse)
async def act(request: Request, vote_id: int, action: str, identity: CurrentIdentity):
    """The vote page's forms: verify (ask for the code, or the one-step check), confirm (the code), cast."""
    form = await request.form()
    db = request.app.state.db
    data: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    try:
        if action == "verify":
            verifier = verification.verifier_of(db)
            if verifier.two_steps:
                verification.begin(db, identity, data)
                return RedirectResponse(f"{P}/{vote_id}?sent=1", status_code=303)
            verification.finish(db, identity, data)
        elif action == "confirm":
            verification.finish(db, identity, data)
        elif action == "cast":
            with db.session() as s:
                vote = service.get(s, vote_id)
            receipt = await service.acast(db, identity, vote_id, _answers(vote, form))
            return RedirectResponse(f"{P}/{vote_id}/receipts/{quote(receipt.code)}?new=1", status_code=303)
        else:
            raise service.NotFound(N_("no such page"))
    except SmartCityError as exc:
        return _vote_page(request, vote_id, identity, exc.status, error_text(exc, language_of(request)))
    return RedirectResponse(f"{P}/{vote_id}", status_code=303)
