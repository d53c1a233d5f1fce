"""participation: participatory budgets — areas' money, projects, supports, the voter roll and the ballot box

Revision ID: participation_0004_budgets
Revises: participation_0001
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "participation_0004_budgets"
down_revision = "participation_0001"
branch_labels = None
depends_on = None

WHEN = smartcity.core.db.UTCDateTime(timezone=True)
BUDGETS = "participation_budgets.id"
PROJECTS = "participation_budget_projects.id"


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], name=op.f(f"fk_{table}_{column}_{target.split('.')[0]}"))


def upgrade() -> None:
    op.create_table(
        "participation_budgets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title_ko", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("ballot", sa.String(length=20), nullable=False),
        sa.Column("approvals", sa.Integer(), nullable=True),
        sa.Column("forward", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("reviewing_at", WHEN, nullable=False),
        sa.Column("selecting_at", WHEN, nullable=False),
        sa.Column("voting_at", WHEN, nullable=False),
        sa.Column("results_at", WHEN, nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        _fk("participation_budgets", "created_by", "users.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_budgets")),
    )
    op.create_index("ix_participation_budgets_phase", "participation_budgets", ["phase"])
    op.create_table(
        "participation_budget_areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("area", sa.String(length=20), nullable=False),
        sa.Column("money", sa.BigInteger(), nullable=False),
        _fk("participation_budget_areas", "budget_id", BUDGETS),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_budget_areas")),
        sa.UniqueConstraint("budget_id", "area", name="uq_participation_budget_areas_budget_area"),
    )
    op.create_table(
        "participation_budget_projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("area", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("estimated_cost", sa.BigInteger(), nullable=True),
        sa.Column("reviewed_at", WHEN, nullable=True),
        sa.Column("supports", sa.Integer(), nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("winner", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        _fk("participation_budget_projects", "budget_id", BUDGETS),
        _fk("participation_budget_projects", "author_id", "users.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_budget_projects")),
    )
    op.create_index(
        "ix_participation_budget_projects_budget", "participation_budget_projects", ["budget_id", "area", "status"]
    )
    op.create_table(
        "participation_budget_supports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _fk("participation_budget_supports", "project_id", PROJECTS),
        _fk("participation_budget_supports", "user_id", "users.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_budget_supports")),
        sa.UniqueConstraint("project_id", "user_id", name="uq_participation_budget_supports_project_user"),
    )
    op.create_table(
        "participation_budget_voters",
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("voter", sa.String(length=100), nullable=False),
        sa.Column("area", sa.String(length=20), nullable=False),
        _fk("participation_budget_voters", "budget_id", BUDGETS),
        sa.PrimaryKeyConstraint("budget_id", "voter", name=op.f("pk_participation_budget_voters")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "participation_budget_ballots",
        sa.Column("ballot", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        _fk("participation_budget_ballots", "project_id", PROJECTS),
        _fk("participation_budget_ballots", "budget_id", BUDGETS),
        sa.PrimaryKeyConstraint("ballot", "project_id", name=op.f("pk_participation_budget_ballots")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_participation_budget_ballots_budget", "participation_budget_ballots", ["budget_id"])


def downgrade() -> None:
    op.drop_index("ix_participation_budget_ballots_budget", table_name="participation_budget_ballots")
    for name in (
        "participation_budget_ballots",
        "participation_budget_voters",
        "participation_budget_supports",
    ):
        op.drop_table(name)
    op.drop_index("ix_participation_budget_projects_budget", table_name="participation_budget_projects")
    op.drop_table("participation_budget_projects")
    op.drop_table("participation_budget_areas")
    op.drop_index("ix_participation_budgets_phase", table_name="participation_budgets")
    op.drop_table("participation_budgets")
