"""core: extra mail headers of a notification (RFC 8058 one-click List-Unsubscribe)

Revision ID: 0004_notification_headers
Revises: 0003_event_log
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_notification_headers"
down_revision = "0003_event_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("headers")
