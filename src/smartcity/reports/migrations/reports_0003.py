"""reports: a coarse grid cell per report (status + cell + time index for Open311 area queries)

The cell is computed in SQL for the existing rows with the same arithmetic as models.grid_cell (IEEE
doubles on both stores; SQLite's CAST truncates, which is floor for these positive numbers).

Revision ID: reports_0003
Revises: reports_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "reports_0003"
down_revision = "reports_0002"
branch_labels = None
depends_on = None

GRID_PER_DEGREE = 200  # models.GRID_PER_DEGREE at the time of this revision
GRID_ROW = 100_000


def upgrade() -> None:
    op.add_column("reports", sa.Column("grid_cell", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        cell = (
            f"floor((lat + 90.0) * {GRID_PER_DEGREE})::bigint * {GRID_ROW} "
            f"+ floor((lon + 180.0) * {GRID_PER_DEGREE})::bigint"
        )
    else:
        cell = (
            f"CAST((lat + 90.0) * {GRID_PER_DEGREE} AS INTEGER) * {GRID_ROW} "
            f"+ CAST((lon + 180.0) * {GRID_PER_DEGREE} AS INTEGER)"
        )
    op.execute(f"UPDATE reports SET grid_cell = {cell}")
    # Covering: the exact area test reads lat/lon from the index, never the table.
    op.create_index(
        "ix_reports_status_cell", "reports", ["status", "grid_cell", "created_at", "id", "lat", "lon"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_reports_status_cell", table_name="reports")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("grid_cell")
