"""participation: threaded debate comments with votes up and down, proposals' edit history and images

Revision ID: participation_0002_debates
Revises: participation_0001
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "participation_0002_debates"
down_revision = "participation_0001"
branch_labels = None
depends_on = None

WHEN = smartcity.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("participation_proposals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("edited_at", WHEN, nullable=True))
    with op.batch_alter_table("participation_comments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("depth", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("up", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("down", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_foreign_key(
            op.f("fk_participation_comments_parent_id_participation_comments"),
            "participation_comments",
            ["parent_id"],
            ["id"],
        )
    op.create_table(
        "participation_comment_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["participation_comments.id"],
            name=op.f("fk_participation_comment_votes_comment_id_participation_comments"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_participation_comment_votes_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_comment_votes")),
        sa.UniqueConstraint("comment_id", "user_id", name="uq_participation_comment_votes_comment_user"),
    )
    op.create_table(
        "participation_proposal_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=200), nullable=False),
        sa.Column("thumb_path", sa.String(length=200), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["participation_proposals.id"],
            name=op.f("fk_participation_proposal_images_proposal_id_participation_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_proposal_images")),
    )
    op.create_index(
        op.f("ix_participation_proposal_images_proposal_id"), "participation_proposal_images", ["proposal_id"]
    )
    op.create_table(
        "participation_proposal_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("written_at", WHEN, nullable=False),
        sa.Column("replaced_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["participation_proposals.id"],
            name=op.f("fk_participation_proposal_edits_proposal_id_participation_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_proposal_edits")),
    )
    op.create_index(
        op.f("ix_participation_proposal_edits_proposal_id"), "participation_proposal_edits", ["proposal_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_participation_proposal_edits_proposal_id"), table_name="participation_proposal_edits")
    op.drop_table("participation_proposal_edits")
    op.drop_index(op.f("ix_participation_proposal_images_proposal_id"), table_name="participation_proposal_images")
    op.drop_table("participation_proposal_images")
    op.drop_table("participation_comment_votes")
    with op.batch_alter_table("participation_comments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_participation_comments_parent_id_participation_comments"), type_="foreignkey")
        for column in ("down", "up", "depth", "parent_id"):
            batch_op.drop_column(column)
    with op.batch_alter_table("participation_proposals", schema=None) as batch_op:
        batch_op.drop_column("edited_at")
