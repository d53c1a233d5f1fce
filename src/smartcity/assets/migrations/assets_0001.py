"""assets: the general city asset registry (cameras, Wi-Fi, sensors)

Revision ID: assets_0001
Revises: 0002_notifications
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "assets_0001"
down_revision = "0002_notifications"
branch_labels = ("assets",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("district_code", sa.String(length=20), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("kind", "source", "key", name="uq_assets_kind_source_key"),
    )
    op.create_index("ix_assets_district_code", "assets", ["district_code"])
    op.create_index("ix_assets_kind_lat_lon", "assets", ["kind", "lat", "lon"])


def downgrade() -> None:
    op.drop_index("ix_assets_kind_lat_lon", table_name="assets")
    op.drop_index("ix_assets_district_code", table_name="assets")
    op.drop_table("assets")
