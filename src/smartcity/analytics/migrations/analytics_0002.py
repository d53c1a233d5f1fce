"""analytics: an analysis's optional period (first and last local day of the demand it reads)

Revision ID: analytics_0002
Revises: analytics_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "analytics_0002"
down_revision = "analytics_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analytics_analyses") as batch:
        batch.add_column(sa.Column("start_day", sa.Date(), nullable=True))
        batch.add_column(sa.Column("end_day", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analytics_analyses") as batch:
        batch.drop_column("end_day")
        batch.drop_column("start_day")
