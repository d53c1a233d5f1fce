"""JSON API of participatory budgets (/api/participation/budgets…), for the phone app, in the platform's error
shape. Thin: the rules, permissions and audit are in budgets.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smartcity.core.auth import CurrentIdentity, Identity
from smartcity.core.errors import NotFound
from smartcity.core.i18n import N_
from smartcity.core.render import Table, csv_text
from smartcity.participation import budgets as B
from smartcity.participation import budgets_receipts, budgets_results
from smartcity.participation.budgets_models import Budget, BudgetProject

router = APIRouter(prefix="/api/participation/budgets", tags=["participation"])
Money = Annotated[int, Field(gt=0, le=B.MONEY_MAX)]
AreaCode = Annotated[str, Field(min_length=1, max_length=20)]


def _db(request: Request):
    return request.app.state.db


class AreaOut(BaseModel):
    area: str
    money: int


class BudgetOut(BaseModel):
    id: int
    title_ko: str
    title_en: str
    description: str
    total: int
    ballot: Literal["knapsack", "approval"]
    approvals: int | None
    forward: int
    phase: Literal["proposing", "reviewing", "selecting", "voting", "results"]
    phases: dict[str, datetime]
    areas: list[AreaOut]
    voted_area: str | None = Field(None, description="where the caller voted; what they chose is not kept")


class BudgetList(BaseModel):
    budgets: list[BudgetOut]


class ProjectOut(BaseModel):
    id: int
    budget_id: int
    area: str
    title: str
    description: str
    cost: int = Field(description="what the project costs a ballot: the review's estimate, else the author's")
    lat: float | None
    lon: float | None
    status: Literal["proposed", "feasible", "unfeasible", "selected", "winner"]
    review_reason: str | None
    supports: int
    supported: bool
    votes: int | None = Field(None, description="shown with the results only")


class ProjectList(BaseModel):
    projects: list[ProjectOut]


class ResultLineOut(BaseModel):
    project_id: int
    title: str
    cost: int
    votes: int | None
    winner: bool


class AreaResultOut(BaseModel):
    area: str
    money: int
    spent: int
    ballots: int | None
    suppressed: bool
    lines: list[ResultLineOut]


class ResultsOut(BaseModel):
    budget_id: int
    title_ko: str
    title_en: str
    ballot: str
    min_count: int
    areas: list[AreaResultOut]


class BallotReceipt(BaseModel):
    budget_id: int
    area: str
    voted: bool
    receipt: str = Field(
        description="the ballot's receipt: checks that it is counted (/api/participation/budgets/{id}/receipts/"
        "{receipt}, or the page /participation/budgets/{id}/check) without showing what was chosen"
    )


class BudgetBody(BaseModel):
    title_ko: Annotated[str, Field(max_length=B.TITLE_MAX)]
    title_en: Annotated[str, Field(max_length=B.TITLE_MAX)] = ""
    description: Annotated[str, Field(max_length=B.TEXT_MAX)] = ""
    areas: Annotated[dict[AreaCode, Money], Field(description='money per district code, or {"city": money}')]
    reviewing_at: datetime
    selecting_at: datetime
    voting_at: datetime
    results_at: datetime
    ballot: Literal["knapsack", "approval"] = "knapsack"
    approvals: Annotated[int | None, Field(ge=1, le=100)] = None
    forward: Annotated[int, Field(ge=1, le=1000)] = 10


class PhaseBody(BaseModel):
    phase: Literal["reviewing", "selecting", "voting", "results"]


class ProjectBody(BaseModel):
    title: Annotated[str, Field(max_length=B.TITLE_MAX)]
    description: Annotated[str, Field(max_length=B.TEXT_MAX)]
    cost: Money
    area: AreaCode
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None


class ReviewBody(BaseModel):
    feasible: bool
    reason: Annotated[str, Field(max_length=B.REASON_MAX)] = ""
    estimated_cost: Money | None = None


class BallotBody(BaseModel):
    area: AreaCode
    projects: Annotated[list[Annotated[int, Field(ge=1, le=2**31 - 1)]], Field(min_length=1, max_length=1000)]


def budget_out(session, budget: Budget, identity: Identity) -> BudgetOut:
    return BudgetOut(
        id=budget.id,
        title_ko=budget.title_ko,
        title_en=budget.title_en,
        description=budget.description,
        total=budget.total,
        ballot=budget.ballot,
        approvals=budget.approvals,
        forward=budget.forward,
        phase=budget.phase,
        phases=B.phase_starts(budget),
        areas=[AreaOut(area=a, money=m) for a, m in B.areas(session, budget.id).items()],
        voted_area=B.voted_area(session, identity, budget.id),
    )


def project_out(project: BudgetProject, supported: set[int], phase: str) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        budget_id=project.budget_id,
        area=project.area,
        title=project.title,
        description=project.description,
        cost=B.price(project),
        lat=project.lat,
        lon=project.lon,
        status=project.status,
        review_reason=project.review_reason,
        supports=project.supports,
        supported=project.id in supported,
        votes=project.votes if phase == "results" else None,
    )


@router.get("", response_model=BudgetList)
def list_budgets(request: Request, identity: CurrentIdentity) -> BudgetList:
    """Every participatory budget, the newest first."""
    with _db(request).session() as s:
        return BudgetList(budgets=[budget_out(s, b, identity) for b in B.budgets(s)])


@router.post("", status_code=201, response_model=BudgetOut)
def create_budget(request: Request, body: BudgetBody, identity: CurrentIdentity) -> BudgetOut:
    """Staff: a budget, proposing from now, with its money per area and its phases' start times."""
    with _db(request).session() as s:
        budget = B.create_budget(s, identity, B.NewBudget(**body.model_dump()))
        return budget_out(s, budget, identity)


@router.get("/{budget_id}", response_model=BudgetOut)
def show_budget(request: Request, budget_id: int, identity: CurrentIdentity) -> BudgetOut:
    with _db(request).session() as s:
        return budget_out(s, B.get_budget(s, budget_id), identity)


@router.post("/{budget_id}/phase", response_model=BudgetOut)
def move_budget(request: Request, budget_id: int, body: PhaseBody, identity: CurrentIdentity) -> BudgetOut:
    """Staff: move the budget to a later phase now (entering voting selects the projects, results the winners)."""
    with _db(request).session() as s:
        return budget_out(s, B.move(s, identity, budget_id, body.phase), identity)


@router.get("/{budget_id}/projects", response_model=ProjectList)
def list_projects(request: Request, budget_id: int, identity: CurrentIdentity, area: AreaCode | None = None):
    """A budget's projects (of one area), the most supported first."""
    with _db(request).session() as s:
        budget = B.get_budget(s, budget_id)
        mine = B.supported(s, identity, budget_id)
        found = B.projects(s, budget_id, area)
        return ProjectList(projects=[project_out(p, mine, budget.phase) for p in found])


@router.post("/{budget_id}/projects", status_code=201, response_model=ProjectOut)
def propose(request: Request, budget_id: int, body: ProjectBody, identity: CurrentIdentity) -> ProjectOut:
    """A citizen's project for one of the budget's areas, while it takes proposals."""
    with _db(request).session() as s:
        project = B.propose(s, identity, budget_id, B.NewProject(**body.model_dump()))
        return project_out(project, set(), "proposing")


@router.post("/{budget_id}/projects/{project_id}/review", response_model=ProjectOut)
def review(request: Request, budget_id: int, project_id: int, body: ReviewBody, identity: CurrentIdentity):
    """Staff: feasible (with the estimated cost) or not (with the reason), while the budget reviews."""
    with _db(request).session() as s:
        _of(s, budget_id, project_id)
        project = B.review(s, identity, project_id, body.feasible, body.reason, body.estimated_cost)
        return project_out(project, set(), "reviewing")


def _of(session, budget_id: int, project_id: int) -> BudgetProject:
    project = B.get_project(session, project_id)
    if project.budget_id != budget_id:
        raise NotFound(N_("no project {id}"), params={"id": project_id})
    return project


@router.put("/{budget_id}/projects/{project_id}/support", response_model=ProjectOut)
def support(request: Request, budget_id: int, project_id: int, identity: CurrentIdentity) -> ProjectOut:
    """Support a feasible project while the budget selects (once per person; again changes nothing)."""
    with _db(request).session() as s:
        _of(s, budget_id, project_id)
    project = B.support(_db(request), identity, project_id)
    return project_out(project, {project_id}, "selecting")


@router.post("/{budget_id}/ballot", status_code=201, response_model=BallotReceipt)
def cast(request: Request, budget_id: int, body: BallotBody, identity: CurrentIdentity) -> BallotReceipt:
    """One ballot per verified person: an area's projects in the vote, within its money (knapsack) or at most N
    (approval). Final: a ballot is not changed."""
    receipt = B.cast_ballot(_db(request), identity, budget_id, body.area, body.projects)
    return BallotReceipt(budget_id=budget_id, area=body.area, voted=True, receipt=receipt)


@router.get("/{budget_id}/results", response_model=ResultsOut)
def results(request: Request, budget_id: int) -> ResultsOut:
    """Each area's projects in the vote, by votes, and its winners (in the results phase)."""
    with _db(request).session() as s:
        found = budgets_results.results(s, budget_id)
    return ResultsOut.model_validate(found, from_attributes=True)


@router.get(
    "/{budget_id}/results.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def results_csv(request: Request, budget_id: int) -> Response:
    """The results as CSV: one line per project in the vote (UTF-8)."""
    with _db(request).session() as s:
        rows = budgets_results.results(s, budget_id).rows()
    return Response(
        csv_text(Table(f"budget-{budget_id}-results", rows, RESULT_COLUMNS)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="budget-{budget_id}-results.csv"'},
    )


RESULT_COLUMNS = (
    "budget_id",
    "budget",
    "area",
    "area_money",
    "project_id",
    "project",
    "cost",
    "votes",
    "suppressed",
    "winner",
)


class ReceiptOut(BaseModel):
    budget_id: int
    counted: bool = Field(description="a ballot of this budget has this receipt (what it chose is never shown)")
    published: bool = Field(description="the results that count it are published")
    ballots: int = Field(description="ballots in the box")
    voters: int = Field(description="people on the voter roll")
    box_ok: bool = Field(description="the box and the roll agree: one ballot per person who voted")


@router.get("/{budget_id}/receipts/{code}")
def check_receipt(request: Request, budget_id: int, code: Annotated[str, Path(max_length=64)]) -> ReceiptOut:
    """Anyone: whether a receipt's ballot is counted, and whether the ballot box agrees with the voter roll."""
    with _db(request).session() as s:
        found = budgets_receipts.check_receipt(s, budget_id, code)
        box = budgets_receipts.check_box(s, budget_id)
    return ReceiptOut(
        budget_id=budget_id,
        counted=found.counted,
        published=found.published,
        ballots=box.ballots,
        voters=box.voters,
        box_ok=box.ok,
    )
