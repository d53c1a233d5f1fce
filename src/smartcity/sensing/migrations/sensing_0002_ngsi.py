"""sensing: the NGSI-LD context broker's entities

Revision ID: sensing_0002_ngsi
Revises: sensing_0001
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "sensing_0002_ngsi"
down_revision = "sensing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensing_ngsi_entities",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("type", sa.String(length=256), nullable=False),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensing_ngsi_entities")),
    )
    op.create_index("ix_sensing_ngsi_entities_type", "sensing_ngsi_entities", ["type"])
    op.create_index("ix_sensing_ngsi_entities_lat_lon", "sensing_ngsi_entities", ["lat", "lon"])
    op.create_table(
        "sensing_ngsi_subscriptions",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("times_sent", sa.Integer(), nullable=False),
        sa.Column("last_queued", sa.Float(), nullable=True),
        sa.Column("last_notification", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensing_ngsi_subscriptions")),
    )
    op.create_table(
        "sensing_ngsi_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensing_ngsi_notifications")),
    )
    op.create_index("ix_sensing_ngsi_notifications_subscription_id", "sensing_ngsi_notifications", ["subscription_id"])
    op.create_index("ix_sensing_ngsi_notifications_due", "sensing_ngsi_notifications", ["due"])


def downgrade() -> None:
    op.drop_table("sensing_ngsi_notifications")
    op.drop_table("sensing_ngsi_subscriptions")
    op.drop_table("sensing_ngsi_entities")
