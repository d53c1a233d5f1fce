"""analytics: saved analyses, their runs and per-cell results

Revision ID: analytics_0001
Revises: 0002_notifications
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "analytics_0001"
down_revision = "0002_notifications"
branch_labels = ("analytics",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kinds", sa.String(length=100), nullable=False),
        sa.Column("hours", sa.String(length=100), nullable=False),
        sa.Column("day_type", sa.String(length=10), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("rerun_hours", sa.Integer(), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_analytics_analyses_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_analyses")),
    )
    op.create_table(
        "analytics_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("cells", sa.Integer(), nullable=False),
        sa.Column("started_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["analysis_id"],
            ["analytics_analyses.id"],
            name=op.f("fk_analytics_runs_analysis_id_analytics_analyses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_runs")),
    )
    op.create_index("ix_analytics_runs_analysis_id", "analytics_runs", ["analysis_id", "id"])
    op.create_table(
        "analytics_cell_results",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("z", sa.Float(), nullable=False),
        sa.Column("p", sa.Float(), nullable=False),
        sa.Column("significance", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["analytics_runs.id"],
            name=op.f("fk_analytics_cell_results_run_id_analytics_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "cell", name=op.f("pk_analytics_cell_results")),
    )


def downgrade() -> None:
    op.drop_table("analytics_cell_results")
    op.drop_index("ix_analytics_runs_analysis_id", table_name="analytics_runs")
    op.drop_table("analytics_runs")
    op.drop_table("analytics_analyses")
