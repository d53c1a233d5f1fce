"""A participatory budget's results: each area's projects in the vote by votes, its winners and what they
spend; areas with too few ballots show their winners but not their counts (`budget_min_count`); the rows the
CSV export and the open data catalogue publish (no person in them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smartcity.core.errors import Conflict
from smartcity.core.i18n import N_
from smartcity.participation.budgets import areas, get_budget, price, projects
from smartcity.participation.budgets_models import RESULTS, Budget, BudgetVoter
from smartcity.participation.common import settings_of


@dataclass
class ResultLine:
    project_id: int
    title: str
    cost: int
    votes: int | None  # None: suppressed (too few ballots in the area)
    winner: bool


@dataclass
class AreaResult:
    area: str
    money: int
    spent: int
    ballots: int | None  # None: suppressed
    suppressed: bool
    lines: list[ResultLine] = field(default_factory=list)


@dataclass
class BudgetResults:
    budget_id: int
    title_ko: str
    title_en: str
    ballot: str
    min_count: int
    areas: list[AreaResult]

    def rows(self) -> list[dict]:
        """One row per project in the vote: the CSV and open data's shape (no person in it)."""
        return [
            {
                "key": f"{self.budget_id}/{line.project_id}",
                "budget_id": self.budget_id,
                "budget": self.title_ko,
                "area": area.area,
                "area_money": area.money,
                "project_id": line.project_id,
                "project": line.title,
                "cost": line.cost,
                "votes": line.votes,
                "suppressed": area.suppressed,
                "winner": line.winner,
            }
            for area in self.areas
            for line in area.lines
        ]


def results(session: Session, budget_id: int) -> BudgetResults:
    """A budget's results once it is in its results phase. An area where fewer people voted than the module's
    `budget_min_count` shows its winners but neither its ballots nor its projects' votes."""
    budget = get_budget(session, budget_id)
    if budget.phase != RESULTS:
        raise Conflict(N_("the results are published when the vote closes"), code="not_yet")
    least = settings_of(session.info["db"]).budget_min_count
    ballots = dict(
        session.execute(
            select(BudgetVoter.area, func.count()).where(BudgetVoter.budget_id == budget_id).group_by(BudgetVoter.area)
        ).all()
    )
    in_vote = [p for p in projects(session, budget_id) if p.status in ("selected", "winner")]
    out = []
    for area, money in areas(session, budget_id).items():
        count = ballots.get(area, 0)
        hidden = count < least
        mine = sorted((p for p in in_vote if p.area == area), key=lambda p: (-p.votes, price(p), p.id))
        lines = [ResultLine(p.id, p.title, price(p), None if hidden else p.votes, p.winner) for p in mine]
        spent = sum(line.cost for line in lines if line.winner)
        out.append(AreaResult(area, money, spent, None if hidden else count, hidden, lines))
    return BudgetResults(budget.id, budget.title_ko, budget.title_en, budget.ballot, least, out)


def published_results(session: Session) -> list[dict]:
    """Every budget's results rows, for the open data catalogue."""
    done = session.scalars(select(Budget.id).where(Budget.phase == RESULTS).order_by(Budget.id)).all()
    return [row for budget_id in done for row in results(session, budget_id).rows()]


def turnout(session: Session) -> list[dict]:
    """Ballots per budget and area for open data, suppressed below the minimum count."""
    least = settings_of(session.info["db"]).budget_min_count
    out = []
    for budget_id in session.scalars(select(Budget.id).where(Budget.phase == RESULTS).order_by(Budget.id)).all():
        found = results(session, budget_id)
        for area in found.areas:
            out.append(
                {
                    "key": f"{budget_id}/{area.area}",
                    "budget_id": budget_id,
                    "area": area.area,
                    "ballots": area.ballots,
                    "suppressed": area.suppressed,
                    "min_count": least,
                }
            )
    return out
