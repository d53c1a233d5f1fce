"""Participatory budgets' tables: a budget, its money per area (a district, or the whole city), citizens'
projects, supports, and the vote kept as two tables with no link between them — the voter roll (who has
voted) and the ballot box (what was chosen), as CONSUL and Decidim keep them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow

PROPOSING, REVIEWING, SELECTING, VOTING, RESULTS = "proposing", "reviewing", "selecting", "voting", "results"
PHASES = (PROPOSING, REVIEWING, SELECTING, VOTING, RESULTS)
CITY = "city"  # the area of a city-wide budget's money (else a district's code)
KNAPSACK, APPROVAL = "knapsack", "approval"


class Budget(Base):
    """A participatory budget. `phase` moves only forward: by the job when the next phase's start has come,
    or by staff. `forward` is how many of an area's most supported feasible projects go to the vote."""

    __tablename__ = "participation_budgets"
    id: Mapped[int] = mapped_column(primary_key=True)
    title_ko: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    total: Mapped[int] = mapped_column(BigInteger)  # won; the sum of the areas' money
    ballot: Mapped[str] = mapped_column(String(20), default=KNAPSACK)
    approvals: Mapped[int | None] = mapped_column(Integer, nullable=True)  # N of an approval ballot
    forward: Mapped[int] = mapped_column(Integer, default=10)
    phase: Mapped[str] = mapped_column(String(20), default=PROPOSING)
    reviewing_at: Mapped[datetime] = mapped_column(UTCDateTime)
    selecting_at: Mapped[datetime] = mapped_column(UTCDateTime)
    voting_at: Mapped[datetime] = mapped_column(UTCDateTime)
    results_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (Index("ix_participation_budgets_phase", "phase"),)


class BudgetArea(Base):
    """The money one area of a budget has: a district's, or the whole city's (`area` = CITY)."""

    __tablename__ = "participation_budget_areas"
    id: Mapped[int] = mapped_column(primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("participation_budgets.id"))
    area: Mapped[str] = mapped_column(String(20))
    money: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("budget_id", "area", name="uq_participation_budget_areas_budget_area"),)


class BudgetProject(Base):
    """A citizen's project for a budget's area. `supports` and `votes` are counters kept in the transaction
    that adds what they count. `status`: proposed → feasible/unfeasible (review) → selected (went to the
    vote) → winner (results)."""

    __tablename__ = "participation_budget_projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("participation_budgets.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    area: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    cost: Mapped[int] = mapped_column(BigInteger)  # the author's; the review's estimate replaces it
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    review_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    estimated_cost: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    supports: Mapped[int] = mapped_column(Integer, default=0)
    votes: Mapped[int] = mapped_column(Integer, default=0)
    winner: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (Index("ix_participation_budget_projects_budget", "budget_id", "area", "status"),)


class BudgetSupport(Base):
    __tablename__ = "participation_budget_supports"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("participation_budget_projects.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    __table_args__ = (UniqueConstraint("project_id", "user_id", name="uq_participation_budget_supports_project_user"),)


class BudgetVoter(Base):
    """The voter roll: who has voted in a budget (`voter` is the verified person's key, not an account), and in
    which area — never what they chose. Keyed by (budget, voter) without a row id, so its order tells nothing."""

    __tablename__ = "participation_budget_voters"
    budget_id: Mapped[int] = mapped_column(ForeignKey("participation_budgets.id"), primary_key=True)
    voter: Mapped[str] = mapped_column(String(100), primary_key=True)
    area: Mapped[str] = mapped_column(String(20))
    __table_args__ = ({"sqlite_with_rowid": False},)


class BudgetBallot(Base):
    """The ballot box: one row per chosen project of a ballot. `ballot` is a random token and the table has no
    row id, no time and no voter, so a row cannot be matched to the roll (on SQLite the rows are kept in the
    tokens' order, not the order they came in)."""

    __tablename__ = "participation_budget_ballots"
    ballot: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("participation_budget_projects.id"), primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("participation_budgets.id"))
    __table_args__ = (Index("ix_participation_budget_ballots_budget", "budget_id"), {"sqlite_with_rowid": False})
