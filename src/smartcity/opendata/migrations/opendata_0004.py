"""opendata: loads of large files and how far each is (opendata_loads)

Revision ID: opendata_0004
Revises: opendata_0003
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "opendata_0004"
down_revision = "opendata_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "opendata_loads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("resource", sa.String(length=200), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=80), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_params", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("started_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_loads")),
        sa.UniqueConstraint("uid", name=op.f("uq_opendata_loads_uid")),
    )


def downgrade() -> None:
    op.drop_table("opendata_loads")
