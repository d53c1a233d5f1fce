"""sensing: readings, roll-ups, pending hours, rejections

Revision ID: sensing_0001
Revises: 0002_notifications
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "sensing_0001"
down_revision = "0002_notifications"
branch_labels = ("sensing",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensing_readings",
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.SmallInteger(), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "quantity", "observed_at", name=op.f("pk_sensing_readings")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_sensing_readings_observed_at", "sensing_readings", ["observed_at"])
    op.create_table(
        "sensing_rollups",
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.SmallInteger(), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "quantity", "resolution", "start", name=op.f("pk_sensing_rollups")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "sensing_pending_hours",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_sensing_pending_hours")),
    )
    op.create_table(
        "sensing_rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("sensor", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.String(length=40), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensing_rejections")),
    )
    op.create_index("ix_sensing_rejections_received_at", "sensing_rejections", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_sensing_rejections_received_at", table_name="sensing_rejections")
    op.drop_table("sensing_rejections")
    op.drop_table("sensing_pending_hours")
    op.drop_table("sensing_rollups")
    op.drop_index("ix_sensing_readings_observed_at", table_name="sensing_readings")
    op.drop_table("sensing_readings")
