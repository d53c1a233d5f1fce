"""reports: what a partner sends beside the report is kept — the media_url links as given (and whether a
background fetch is still due), and the media_url of a partner's update

Revision ID: reports_0004
Revises: reports_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "reports_0004"
down_revision = "reports_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_urls", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("media_fetch", sa.String(length=20), nullable=True))
    with op.batch_alter_table("report_updates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_url", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("report_updates", schema=None) as batch_op:
        batch_op.drop_column("media_url")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("media_fetch")
        batch_op.drop_column("media_urls")
