"""participation: proposals' followers live in participation_follows only (the old table goes); debate comments
can be hidden one by one with a reason

Revision ID: participation_0006_followers
Revises: participation_0002_debates, participation_0005_hearings
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "participation_0006_followers"
down_revision = ("participation_0002_debates", "participation_0005_hearings")
branch_labels = None
depends_on = None

WHEN = smartcity.core.db.UTCDateTime(timezone=True)
OLD = sa.table("participation_followers", sa.column("proposal_id", sa.Integer), sa.column("user_id", sa.Integer))
NEW = sa.table(
    "participation_follows",
    sa.column("kind", sa.String),
    sa.column("object_id", sa.Integer),
    sa.column("user_id", sa.Integer),
    sa.column("sms", sa.Boolean),
    sa.column("created_at", WHEN),
)


def upgrade() -> None:
    # participation_0005 copied the followers once; the code that ran between it and this one still wrote the
    # old table, so what it added moves too before the table goes.
    bind = op.get_bind()
    known = sa.select(NEW.c.object_id, NEW.c.user_id).where(NEW.c.kind == "proposal")
    have = {tuple(r) for r in bind.execute(known)}
    rows = bind.execute(sa.select(OLD.c.proposal_id, OLD.c.user_id)).all()
    now = datetime.now(UTC)
    late = [
        dict(kind="proposal", object_id=p, user_id=u, sms=False, created_at=now) for p, u in rows if (p, u) not in have
    ]
    if late:
        op.bulk_insert(NEW, late)
    op.drop_table("participation_followers")
    with op.batch_alter_table("participation_comments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("hidden_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participation_comments", schema=None) as batch_op:
        batch_op.drop_column("hidden_reason")
        batch_op.drop_column("hidden")
    name = "participation_followers"
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["participation_proposals.id"], name=op.f(f"fk_{name}_proposal_id_participation_proposals")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{name}_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("proposal_id", "user_id", name="uq_participation_followers_proposal_user"),
    )
    back = sa.select(NEW.c.object_id, NEW.c.user_id).where(NEW.c.kind == "proposal")
    rows = [dict(proposal_id=p, user_id=u) for p, u in op.get_bind().execute(back)]
    if rows:
        op.bulk_insert(OLD, rows)
