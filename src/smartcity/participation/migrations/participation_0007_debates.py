"""participation: debates of their own (not attached to a proposal), whose arguments are debate comments with a
stance; reports of single comments

Revision ID: participation_0007_debates
Revises: participation_0006_followers
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "participation_0007_debates"
down_revision = "participation_0006_followers"
branch_labels = None
depends_on = None

WHEN = smartcity.core.db.UTCDateTime(timezone=True)
COMMENTS = "participation_comments"


def upgrade() -> None:
    op.create_table(
        "participation_debates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("district_code", sa.String(length=20), nullable=True),
        sa.Column("tags", sa.String(length=400), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("closes_at", WHEN, nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("hidden_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_participation_debates_author_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_debates")),
    )
    with op.batch_alter_table(COMMENTS, schema=None) as batch_op:
        batch_op.alter_column("proposal_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("debate_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("stance", sa.String(length=10), nullable=True))
        batch_op.create_index(batch_op.f("ix_participation_comments_debate_id"), ["debate_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_participation_comments_debate_id_participation_debates"),
            "participation_debates",
            ["debate_id"],
            ["id"],
        )
    op.create_table(
        "participation_comment_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("settled", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["participation_comments.id"],
            name=op.f("fk_participation_comment_reports_comment_id_participation_comments"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_participation_comment_reports_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_comment_reports")),
        sa.UniqueConstraint("comment_id", "user_id", name="uq_participation_comment_reports_comment_user"),
    )
    op.create_index(
        op.f("ix_participation_comment_reports_comment_id"), "participation_comment_reports", ["comment_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_participation_comment_reports_comment_id"), table_name="participation_comment_reports")
    op.drop_table("participation_comment_reports")
    # A standalone debate's arguments have no proposal to go back to: they go with their debates.
    standalone = sa.text(f"SELECT id FROM {COMMENTS} WHERE debate_id IS NOT NULL")
    op.execute(f"DELETE FROM participation_comment_votes WHERE comment_id IN ({standalone.text})")
    op.execute(f"UPDATE {COMMENTS} SET parent_id = NULL WHERE debate_id IS NOT NULL")
    op.execute(f"DELETE FROM {COMMENTS} WHERE debate_id IS NOT NULL")
    with op.batch_alter_table(COMMENTS, schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_participation_comments_debate_id_participation_debates"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_participation_comments_debate_id"))
        batch_op.drop_column("stance")
        batch_op.drop_column("debate_id")
        batch_op.alter_column("proposal_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("participation_debates")
