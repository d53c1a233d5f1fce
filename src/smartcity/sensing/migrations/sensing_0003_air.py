"""sensing: air-quality alert subscriptions, districts' alert state, maintenance issues

Revision ID: sensing_0003_air
Revises: sensing_0001
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "sensing_0003_air"
down_revision = "sensing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensing_air_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("district_code", sa.String(length=20), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sensing_air_subscriptions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensing_air_subscriptions")),
        sa.UniqueConstraint("token", name=op.f("uq_sensing_air_subscriptions_token")),
        sa.UniqueConstraint("user_id", "district_code", name=op.f("uq_sensing_air_subscriptions_user_id")),
    )
    op.create_index("ix_sensing_air_subscriptions_user_id", "sensing_air_subscriptions", ["user_id"])
    op.create_index("ix_sensing_air_subscriptions_district_code", "sensing_air_subscriptions", ["district_code"])
    op.create_table(
        "sensing_air_district_state",
        sa.Column("district_code", sa.String(length=20), nullable=False),
        sa.Column("alerting", sa.Boolean(), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("district_code", name=op.f("pk_sensing_air_district_state")),
    )
    op.create_table(
        "sensing_maintenance_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("found_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensing_maintenance_issues")),
    )
    op.create_index("ix_sensing_maintenance_issues_sensor_id", "sensing_maintenance_issues", ["sensor_id"])


def downgrade() -> None:
    op.drop_index("ix_sensing_maintenance_issues_sensor_id", table_name="sensing_maintenance_issues")
    op.drop_table("sensing_maintenance_issues")
    op.drop_table("sensing_air_district_state")
    op.drop_index("ix_sensing_air_subscriptions_district_code", table_name="sensing_air_subscriptions")
    op.drop_index("ix_sensing_air_subscriptions_user_id", table_name="sensing_air_subscriptions")
    op.drop_table("sensing_air_subscriptions")
