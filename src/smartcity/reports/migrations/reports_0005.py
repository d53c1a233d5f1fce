"""reports: what a report's idempotency key was first sent with (a fingerprint of the submission), so that
the key reused with a different submission is refused (409) rather than answered with the first report

Revision ID: reports_0005
Revises: reports_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "reports_0005"
down_revision = "reports_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("idempotency_fingerprint")
