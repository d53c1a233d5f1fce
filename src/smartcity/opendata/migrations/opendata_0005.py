"""opendata: a feed's title and descriptions as the platform last wrote them (opendata_datasets.feed_wrote)

Revision ID: opendata_0005
Revises: opendata_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "opendata_0005"
down_revision = "opendata_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("opendata_datasets") as batch:
        batch.add_column(sa.Column("feed_wrote", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opendata_datasets") as batch:
        batch.drop_column("feed_wrote")
