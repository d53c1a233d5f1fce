"""Checking a participatory budget's ballot by its receipt, as votes' receipts are checked: whether the ballot
is in the box and counted in the published results, and whether the box and the voter roll agree (as many
ballots as people who voted), never what a ballot chose."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smartcity.participation.budgets import get_budget
from smartcity.participation.budgets_models import RESULTS, BudgetBallot, BudgetVoter

RECEIPT = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class ReceiptCheck:
    """`counted`: a ballot of this budget has the receipt; `published`: the results that count it are out."""

    code: str
    counted: bool
    published: bool


@dataclass(frozen=True)
class BoxCheck:
    """The ballot box against the roll: `ok` when every person who voted has exactly one ballot in the box."""

    ballots: int
    voters: int

    @property
    def ok(self) -> bool:
        return self.ballots == self.voters


def normal(code: str) -> str:
    """A receipt as typed: spaces and dashes dropped, any case."""
    return re.sub(r"[\s-]", "", code or "").lower()[:64]


def check_receipt(session: Session, budget_id: int, code: str) -> ReceiptCheck:
    """Whether a receipt's ballot is in this budget's box (a malformed code is simply not found)."""
    budget = get_budget(session, budget_id)
    wanted = normal(code)
    found = RECEIPT.fullmatch(wanted) is not None and (
        session.scalar(
            select(BudgetBallot.ballot)
            .where(BudgetBallot.budget_id == budget_id, BudgetBallot.ballot == wanted)
            .limit(1)
        )
        is not None
    )
    return ReceiptCheck(wanted, found, budget.phase == RESULTS)


def check_box(session: Session, budget_id: int) -> BoxCheck:
    get_budget(session, budget_id)
    ballots = session.scalar(
        select(func.count(func.distinct(BudgetBallot.ballot))).where(BudgetBallot.budget_id == budget_id)
    )
    voters = session.scalar(select(func.count()).select_from(BudgetVoter).where(BudgetVoter.budget_id == budget_id))
    return BoxCheck(ballots or 0, voters or 0)
