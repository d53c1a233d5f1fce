"""safety: staged positions (safety_positions_recent)

A SQLite intake writer with staging on appends new fixes here, in arrival order (its only index the
(device, fix time) key, small while the table is), and moves them into `safety_positions` in key order from
time to time (core.batchstore): the clustered positions table then takes one page write per device and move
instead of one per fix. Readers read both (`safety.models.all_positions`).

Revision ID: safety_0005
Revises: safety_0004
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "safety_0005"
down_revision = "safety_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_positions_recent",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("fix_time", smartcity.core.db.EpochMillis(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("received_at", smartcity.core.db.EpochMillis(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("speed", sa.Float(), nullable=True),
        sa.Column("bearing", sa.Float(), nullable=True),
        sa.Column("altitude", sa.Float(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("battery", sa.Float(), nullable=True),
        sa.Column("alarm", sa.String(length=30), nullable=True),
        sa.Column("protocol", sa.String(length=20), nullable=False),
        sa.Column("outside_city", sa.Boolean(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.Column("valid", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["safety_devices.id"], name=op.f("fk_safety_positions_recent_device_id_safety_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_positions_recent")),
        sa.UniqueConstraint("device_id", "fix_time", name="uq_safety_positions_recent_device_fix"),
    )


def downgrade() -> None:
    # Staged fixes are positions: they go into the main table before the staging table goes.
    columns = (
        "device_id, fix_time, person_id, received_at, lat, lon, speed, bearing, altitude, accuracy, battery, alarm, "
        "protocol, outside_city, attributes, valid"
    )
    conflict = " ON CONFLICT DO NOTHING"
    op.execute(
        f"INSERT INTO safety_positions ({columns}) SELECT {columns} FROM safety_positions_recent "
        f"ORDER BY device_id, fix_time{conflict}"
    )
    op.drop_table("safety_positions_recent")
