"""safety: drop the positions' (person, fix time) index

Every stored position paid for a third randomly-placed index entry; a person's track is read through the
(device, fix time) index of the person's devices instead (a person has one or two devices).

Revision ID: safety_0002
Revises: safety_0001
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op

revision = "safety_0002"
down_revision = "safety_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_safety_positions_person_fix", table_name="safety_positions")


def downgrade() -> None:
    op.create_index("ix_safety_positions_person_fix", "safety_positions", ["person_id", "fix_time"], unique=False)
