"""participation: proposals with likes, debate participants, answers' follow-ups and abuse reports

Revision ID: participation_0001
Revises: 0002_notifications
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "participation_0001"
down_revision = "0002_notifications"
branch_labels = ("participation",)
depends_on = None

WHEN = smartcity.core.db.UTCDateTime(timezone=True)


def _one_per_person(name: str, constraint: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        *([sa.Column("created_at", WHEN, nullable=False)] if name == "participation_likes" else []),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["participation_proposals.id"], name=op.f(f"fk_{name}_proposal_id_participation_proposals")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{name}_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("proposal_id", "user_id", name=constraint),
    )


def upgrade() -> None:
    op.create_table(
        "participation_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("district_code", sa.String(length=20), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.Column("participants", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("closes_at", WHEN, nullable=False),
        sa.Column("debate_at", WHEN, nullable=True),
        sa.Column("answer_due_at", WHEN, nullable=True),
        sa.Column("department_code", sa.String(length=50), nullable=True),
        sa.Column("answer_status", sa.String(length=20), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_at", WHEN, nullable=True),
        sa.Column("hidden_reason", sa.String(length=500), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_participation_proposals_author_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_proposals")),
    )
    op.create_index("ix_participation_proposals_status_closes", "participation_proposals", ["status", "closes_at"])
    op.create_index("ix_participation_proposals_department", "participation_proposals", ["department_code", "status"])
    _one_per_person("participation_likes", "uq_participation_likes_proposal_user")
    _one_per_person("participation_followers", "uq_participation_followers_proposal_user")
    _one_per_person("participation_participants", "uq_participation_participants_proposal_user")
    for name, person in (("participation_comments", "user_id"), ("participation_followups", "author_id")):
        op.create_table(
            name,
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("proposal_id", sa.Integer(), nullable=False),
            sa.Column(person, sa.Integer(), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("created_at", WHEN, nullable=False),
            sa.ForeignKeyConstraint(
                ["proposal_id"],
                ["participation_proposals.id"],
                name=op.f(f"fk_{name}_proposal_id_participation_proposals"),
            ),
            sa.ForeignKeyConstraint([person], ["users.id"], name=op.f(f"fk_{name}_{person}_users")),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        )
        op.create_index(op.f(f"ix_{name}_proposal_id"), name, ["proposal_id"])
    op.create_table(
        "participation_abuse_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["participation_proposals.id"],
            name=op.f("fk_participation_abuse_reports_proposal_id_participation_proposals"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_participation_abuse_reports_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_abuse_reports")),
        sa.UniqueConstraint("proposal_id", "user_id", name="uq_participation_abuse_proposal_user"),
    )


def downgrade() -> None:
    for name in (
        "participation_abuse_reports",
        "participation_followups",
        "participation_comments",
        "participation_participants",
        "participation_followers",
        "participation_likes",
    ):
        op.drop_table(name)
    op.drop_index("ix_participation_proposals_department", table_name="participation_proposals")
    op.drop_index("ix_participation_proposals_status_closes", table_name="participation_proposals")
    op.drop_table("participation_proposals")
