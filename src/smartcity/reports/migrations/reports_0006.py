"""reports: a photo's stage, "before" (the reporter's, as filed) or "after" (staff's, when marking fixed)

Revision ID: reports_0006
Revises: reports_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "reports_0006"
down_revision = "reports_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("report_photos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stage", sa.String(length=10), nullable=False, server_default="before"))


def downgrade() -> None:
    with op.batch_alter_table("report_photos", schema=None) as batch_op:
        batch_op.drop_column("stage")
