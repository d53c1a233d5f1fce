"""reports: covering indexes for status + area + time (Open311 GET requests at a million reports);
drop the unused feedback_token_hash column

Revision ID: reports_0002
Revises: reports_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "reports_0002"
down_revision = "reports_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reports_status_lat")
        batch_op.drop_index("ix_reports_lat_lon")
        batch_op.create_index("ix_reports_status_area", ["status", "lat", "lon", "created_at", "id"], unique=False)
        batch_op.create_index("ix_reports_area", ["lat", "lon", "created_at", "id"], unique=False)
        batch_op.drop_column("feedback_token_hash")  # tokens are derived now, never stored


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feedback_token_hash", sa.String(length=64), nullable=True))
        batch_op.drop_index("ix_reports_area")
        batch_op.drop_index("ix_reports_status_area")
        batch_op.create_index("ix_reports_lat_lon", ["lat", "lon"], unique=False)
        batch_op.create_index("ix_reports_status_lat", ["status", "lat", "lon"], unique=False)
