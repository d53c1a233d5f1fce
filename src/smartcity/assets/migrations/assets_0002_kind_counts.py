"""assets: an index by kind, district and external id, so that how many assets of a kind there are, and how many
have a district and an external id, is read from the index alone (the NGSI-LD broker's /types and /attributes)

Revision ID: assets_0002_kind_counts
Revises: assets_0001
"""

from alembic import op

revision = "assets_0002_kind_counts"
down_revision = "assets_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_assets_kind_district_external", "assets", ["kind", "district_code", "external_id"])


def downgrade() -> None:
    op.drop_index("ix_assets_kind_district_external", table_name="assets")
