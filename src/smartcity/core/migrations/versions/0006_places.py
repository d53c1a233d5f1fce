"""core: the gazetteer's places (bus stops, stations, landmarks imported from the city's lists)

Revision ID: 0006_places
Revises: 0005_push
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_places"
down_revision = "0005_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "places",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("name_ko", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("district_code", sa.String(length=20), nullable=True),
        sa.Column("neighbourhood_code", sa.String(length=20), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("search_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_places")),
        sa.UniqueConstraint("kind", "ref", name=op.f("uq_places_kind")),
    )
    with op.batch_alter_table("places", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_places_district_code"), ["district_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("places", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_places_district_code"))
    op.drop_table("places")
