"""participation: public hearings (documents, questions and their upvotes, comments) and follows of any kind

Revision ID: participation_0005_hearings
Revises: participation_0001
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "participation_0005_hearings"
down_revision = "participation_0001"
branch_labels = None
depends_on = None

WHEN = smartcity.core.db.UTCDateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"))


def upgrade() -> None:
    op.create_table(
        "participation_follows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sms", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        _fk("participation_follows", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_follows")),
        sa.UniqueConstraint("kind", "object_id", "user_id", name="uq_participation_follows_kind_object_user"),
    )
    op.create_index("ix_participation_follows_object", "participation_follows", ["kind", "object_id"])
    op.create_index(op.f("ix_participation_follows_user_id"), "participation_follows", ["user_id"])
    _copy_proposal_followers()

    t = "participation_hearings"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic_ko", sa.String(length=200), nullable=False),
        sa.Column("topic_en", sa.String(length=200), nullable=False),
        sa.Column("summary_ko", sa.Text(), nullable=False),
        sa.Column("summary_en", sa.Text(), nullable=False),
        sa.Column("department_code", sa.String(length=50), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("comments_open_at", WHEN, nullable=False),
        sa.Column("starts_at", WHEN, nullable=False),
        sa.Column("ends_at", WHEN, nullable=False),
        sa.Column("comments_close_at", WHEN, nullable=False),
        sa.Column("answering_id", sa.Integer(), nullable=True),
        sa.Column("live_announced", sa.Boolean(), nullable=False),
        sa.Column("minutes", sa.Text(), nullable=True),
        sa.Column("minutes_at", WHEN, nullable=True),
        _fk(t, "created_by", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_participation_hearings_starts", t, ["starts_at"])

    t = "participation_hearing_documents"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hearing_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        _fk(t, "hearing_id", "participation_hearings"),
        _fk(t, "uploaded_by", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index(op.f(f"ix_{t}_hearing_id"), t, ["hearing_id"])

    t = "participation_hearing_questions"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hearing_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.Integer(), nullable=True),
        sa.Column("answered_at", WHEN, nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("hidden_reason", sa.String(length=500), nullable=True),
        _fk(t, "hearing_id", "participation_hearings"),
        _fk(t, "user_id", "users"),
        _fk(t, "answered_by", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_participation_hearing_questions_hearing", t, ["hearing_id", "votes"])

    t = "participation_hearing_votes"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _fk(t, "question_id", "participation_hearing_questions"),
        _fk(t, "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint("question_id", "user_id", name="uq_participation_hearing_votes_question_user"),
    )

    t = "participation_hearing_comments"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hearing_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("hidden_reason", sa.String(length=500), nullable=True),
        _fk(t, "hearing_id", "participation_hearings"),
        _fk(t, "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index(op.f(f"ix_{t}_hearing_id"), t, ["hearing_id"])


def _copy_proposal_followers() -> None:
    """Proposals' followers so far (participation_followers) follow them in the one table from now on."""
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("participation_followers"):
        return
    old = sa.table(
        "participation_followers", *(sa.column(name, sa.Integer) for name in ("id", "proposal_id", "user_id"))
    )
    rows = bind.execute(sa.select(old.c.proposal_id, old.c.user_id).order_by(old.c.id)).all()
    new = sa.table(
        "participation_follows",
        sa.column("kind", sa.String),
        sa.column("object_id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("sms", sa.Boolean),
        sa.column("created_at", WHEN),
    )
    now = datetime.now(UTC)
    op.bulk_insert(new, [dict(kind="proposal", object_id=p, user_id=u, sms=False, created_at=now) for p, u in rows])


def downgrade() -> None:
    op.drop_table("participation_hearing_comments")
    op.drop_table("participation_hearing_votes")
    op.drop_index("ix_participation_hearing_questions_hearing", table_name="participation_hearing_questions")
    op.drop_table("participation_hearing_questions")
    op.drop_table("participation_hearing_documents")
    op.drop_index("ix_participation_hearings_starts", table_name="participation_hearings")
    op.drop_table("participation_hearings")
    op.drop_index("ix_participation_follows_object", table_name="participation_follows")
    op.drop_table("participation_follows")
