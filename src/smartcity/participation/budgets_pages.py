"""Pages of participatory budgets, in Korean and English, for the phone: the list, a budget (its phases, its
areas' projects and what its phase lets a citizen or staff do: propose, review, support, vote, move on), a new
budget (staff) and the results. Thin: the rules are in budgets.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.errors import InvalidInput, NotFound, SmartCityError
from smartcity.core.i18n import N_
from smartcity.core.web import error_text, language_of, render
from smartcity.participation import budgets as B
from smartcity.participation import budgets_receipts, budgets_results, follows

router = APIRouter(include_in_schema=False)
P = "/participation/budgets"
NO_NUMBER = N_("write the amount as a whole number of won")
NO_TIME = N_("write each phase's start as a date and time")
NOT_A_NUMBER = N_("a number in the form could not be read")


def _labels() -> dict:
    return {
        "phase_names": B.PHASE_NAMES,
        "phases": list(B.PHASE_NAMES),
        "project_statuses": B.PROJECT_STATUSES,
        "ballots": B.BALLOTS,
    }


def _won(text: str | None) -> int:
    try:
        return int(str(text or "").replace(",", "").strip())
    except ValueError:
        raise InvalidInput(NO_NUMBER) from None


@router.get(P, response_class=HTMLResponse)
def list_page(request: Request, identity: CurrentIdentity):
    with request.app.state.db.session() as s:
        found = B.budgets(s)
    return render(request, "participation/budgets_list.html", budgets=found, **_labels())


def _new_page(request: Request, status_code=200, error=None, form=None):
    with request.app.state.db.session() as s:
        districts = list(B.districts(s).values())
    zone = ZoneInfo(request.app.state.profile.timezone)
    today = datetime.now(zone).replace(hour=9, minute=0, second=0, microsecond=0)
    starts = (t.strftime("%Y-%m-%dT%H:%M") for t in default_starts(today))
    suggested = dict(zip((f"{p}_at" for p in B.PHASES[1:]), starts, strict=True))
    form = {**suggested, **(form or {})}
    return render(
        request,
        "participation/budgets_new.html",
        status_code=status_code,
        districts=districts,
        error=error,
        form=form,
        **_labels(),
    )


@router.get(f"{P}/new", response_class=HTMLResponse)
def new_page(request: Request, identity: Identity = Depends(Require("participation.budgets"))):
    return _new_page(request)


def _local_time(request: Request, text: str) -> datetime:
    """A phase's start from the form's datetime-local field, in the city's time zone."""
    zone = ZoneInfo(request.app.state.profile.timezone)
    try:
        return datetime.fromisoformat(text).replace(tzinfo=zone)
    except ValueError:
        raise InvalidInput(NO_TIME) from None


@router.post(f"{P}/new", response_class=HTMLResponse)
async def create(request: Request, identity: Identity = Depends(Require("participation.budgets"))):
    form = await request.form()
    typed = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    try:
        if typed.get("scope") == "districts":
            money = {k.removeprefix("money_"): _won(v) for k, v in typed.items() if k.startswith("money_") and v}
        else:
            money = {B.CITY: _won(typed.get("city_money"))}
        new = B.NewBudget(
            title_ko=typed.get("title_ko", ""),
            title_en=typed.get("title_en", ""),
            description=typed.get("description", ""),
            areas=money,
            reviewing_at=_local_time(request, typed.get("reviewing_at", "")),
            selecting_at=_local_time(request, typed.get("selecting_at", "")),
            voting_at=_local_time(request, typed.get("voting_at", "")),
            results_at=_local_time(request, typed.get("results_at", "")),
            ballot=typed.get("ballot", B.KNAPSACK),
            approvals=int(typed["approvals"]) if typed.get("approvals", "").isdigit() else None,
            forward=int(typed["forward"]) if typed.get("forward", "").isdigit() else 10,
        )
        with request.app.state.db.session() as s:
            budget = B.create_budget(s, identity, new)
    except SmartCityError as exc:
        return _new_page(request, exc.status, error_text(exc, language_of(request)), typed)
    return RedirectResponse(f"{P}/{budget.id}", status_code=303)


def _budget_page(
    request: Request,
    budget_id: int,
    identity: Identity,
    area: str | None,
    status_code=200,
    error=None,
    ticked: list[int] | None = None,
):
    """The budget page; `ticked`: a refused ballot's projects, ticked again with their total (no script needed)."""
    with request.app.state.db.session() as s:
        budget = B.get_budget(s, budget_id)
        money = B.areas(s, budget_id)
        chosen = area if area in money else next(iter(money))
        found = B.projects(s, budget_id, chosen)
        mine = B.supported(s, identity, budget_id)
        voted = B.voted_area(s, identity, budget_id)
        ready = B.may_vote(s, identity)
        following = follows.following(s, identity, B.KIND, budget_id) is not None
        districts = B.districts(s)
        outcome = budgets_results.results(s, budget_id) if budget.phase == B.RESULTS else None
    zone = ZoneInfo(request.app.state.profile.timezone)
    starts = {p: t.astimezone(zone) for p, t in B.phase_starts(budget).items()}
    later = B.PHASES[B.PHASES.index(budget.phase) + 1 :]
    return render(
        request,
        "participation/budgets_show.html",
        status_code=status_code,
        b=budget,
        money=money,
        area=chosen,
        projects=found,
        supported=mine,
        voted_area=voted,
        may_vote=ready,
        following=following,
        districts=districts,
        starts=starts,
        next_phase=later[0] if later else None,
        outcome=outcome,
        price=B.price,
        ticked=set(ticked or ()),
        spent=sum(B.price(p) for p in found if p.id in set(ticked or ())),
        manager=identity.can("participation.budgets"),
        error=error,
        **_labels(),
    )


@router.get(P + "/{budget_id:int}", response_class=HTMLResponse)
def budget_page(request: Request, budget_id: int, identity: CurrentIdentity, area: str | None = None):
    return _budget_page(request, budget_id, identity, area)


@router.get(P + "/{budget_id:int}/results", response_class=HTMLResponse)
def results_page(request: Request, budget_id: int, identity: CurrentIdentity):
    with request.app.state.db.session() as s:
        budget = B.get_budget(s, budget_id)
        outcome = budgets_results.results(s, budget_id)
        districts = B.districts(s)
    return render(
        request, "participation/budgets_results.html", b=budget, outcome=outcome, districts=districts, **_labels()
    )


@router.get(P + "/{budget_id:int}/receipts/{code}", response_class=HTMLResponse)
@router.get(P + "/{budget_id:int}/check", response_class=HTMLResponse)
def check_page(request: Request, budget_id: int, code: str = ""):
    """Anyone: is a receipt's ballot counted, and does the box agree with the roll; never what it chose."""
    code = budgets_receipts.normal(code or request.query_params.get("code", ""))
    with request.app.state.db.session() as s:
        budget = B.get_budget(s, budget_id)
        receipt = budgets_receipts.check_receipt(s, budget_id, code) if code else None
        box = budgets_receipts.check_box(s, budget_id)
    fresh = request.query_params.get("new") == "1"
    return render(
        request, "participation/budgets_check.html", b=budget, code=code, receipt=receipt, box=box, fresh=fresh
    )


@router.post(P + "/{budget_id:int}/{action}", response_class=HTMLResponse)
async def act(request: Request, budget_id: int, action: str, identity: CurrentIdentity):
    """The budget page's forms: propose, review, support, ballot, phase, follow, unfollow."""
    form = await request.form()
    db = request.app.state.db
    area = str(form.get("area") or "") or None
    try:
        if action == "support":
            project = int(str(form.get("project") or 0))
            with db.session() as s:
                if B.get_project(s, project).budget_id != budget_id:
                    raise NotFound(N_("no project {id}"), params={"id": project})
            B.support(db, identity, project)
        elif action == "ballot":
            chosen = [int(v) for v in form.getlist("project") if str(v).isdigit()]
            receipt = B.cast_ballot(db, identity, budget_id, area or "", chosen)
            return RedirectResponse(f"{P}/{budget_id}/receipts/{receipt}?new=1", status_code=303)
        else:
            with db.session() as s:
                if action == "propose":
                    point = [float(str(form[k])) if form.get(k) else None for k in ("lat", "lon")]
                    new = B.NewProject(
                        str(form.get("title") or ""),
                        str(form.get("description") or ""),
                        _won(str(form.get("cost") or "")),
                        area or "",
                        *point,
                    )
                    B.propose(s, identity, budget_id, new)
                elif action == "review":
                    project = B.get_project(s, int(str(form.get("project") or 0)))
                    if project.budget_id != budget_id:
                        raise NotFound(N_("no project {id}"), params={"id": project.id})
                    estimate = str(form.get("estimated_cost") or "").strip()
                    feasible = form.get("feasible") == "yes"
                    reason = str(form.get("reason") or "")
                    B.review(s, identity, project.id, feasible, reason, _won(estimate) if estimate else None)
                elif action in ("follow", "unfollow"):
                    follows.follow(s, identity, B.KIND, budget_id, action == "follow", sms=form.get("sms") == "on")
                elif action == "phase":
                    B.move(s, identity, budget_id, str(form.get("phase") or ""))
                else:
                    raise NotFound(N_("no such page"))
    except ValueError:
        message = error_text(InvalidInput(NOT_A_NUMBER), language_of(request))
        return _budget_page(request, budget_id, identity, area, 422, message)
    except SmartCityError as exc:
        message = error_text(exc, language_of(request))
        kept = [int(v) for v in form.getlist("project") if str(v).isdigit()] if action == "ballot" else None
        return _budget_page(request, budget_id, identity, area, exc.status, message, kept)
    where = f"?area={area}" if area else ""
    return RedirectResponse(f"{P}/{budget_id}{where}", status_code=303)


def default_starts(now: datetime) -> list[datetime]:
    """The new budget form's suggested phase starts: a fortnight each, from tomorrow morning."""
    return [now + timedelta(days=1 + 14 * i) for i in range(4)]
