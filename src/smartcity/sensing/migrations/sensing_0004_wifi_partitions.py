"""sensing: Wi-Fi access points' status history; on PostgreSQL readings partitioned by month

`sensing_wifi_status` (access point, epoch seconds; up, clients), keyed like readings. On PostgreSQL
`sensing_readings` becomes partitioned by RANGE of `observed_at` into calendar months (UTC), with a default
partition; existing rows are copied over. SQLite keeps one table.

Revision ID: sensing_0004_wifi_partitions
Revises: sensing_0001
"""

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision = "sensing_0004_wifi_partitions"
down_revision = "sensing_0001"
branch_labels = None
depends_on = None

MONTHS_AHEAD = 2
COLUMNS = "sensor_id, quantity, observed_at, value"


def _readings(partitioned: bool) -> None:
    op.create_table(
        "sensing_readings",
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.SmallInteger(), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "quantity", "observed_at", name=op.f("pk_sensing_readings")),
        postgresql_partition_by="RANGE (observed_at)" if partitioned else None,
    )
    op.create_index("ix_sensing_readings_observed_at", "sensing_readings", ["observed_at"])


def _month(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def upgrade() -> None:
    op.create_table(
        "sensing_wifi_status",
        sa.Column("access_point_id", sa.Integer(), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=False),
        sa.Column("up", sa.Boolean(), nullable=False),
        sa.Column("clients", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("access_point_id", "observed_at", name=op.f("pk_sensing_wifi_status")),
        sqlite_with_rowid=False,
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE sensing_readings RENAME TO sensing_readings_old")
    op.execute("ALTER TABLE sensing_readings_old RENAME CONSTRAINT pk_sensing_readings TO pk_sensing_readings_old")
    op.execute("ALTER INDEX ix_sensing_readings_observed_at RENAME TO ix_sensing_readings_old_observed_at")
    _readings(partitioned=True)
    op.execute("CREATE TABLE sensing_readings_default PARTITION OF sensing_readings DEFAULT")
    oldest = bind.exec_driver_sql("SELECT min(observed_at) FROM sensing_readings_old").scalar()
    today = datetime.now(UTC).date()
    first = today if oldest is None else min(today, datetime.fromtimestamp(oldest, UTC).date())
    year, month = first.year, first.month
    last = date(today.year, today.month, 1)
    for _ in range(MONTHS_AHEAD):
        last = date(*_next(last.year, last.month), 1)
    while (year, month) <= (last.year, last.month):
        lo, hi = _month(year, month), _month(*_next(year, month))
        op.execute(
            f"CREATE TABLE sensing_readings_{year:04d}_{month:02d} PARTITION OF sensing_readings "
            f"FOR VALUES FROM ({lo}) TO ({hi})"
        )
        year, month = _next(year, month)
    op.execute(f"INSERT INTO sensing_readings ({COLUMNS}) SELECT {COLUMNS} FROM sensing_readings_old")
    op.drop_table("sensing_readings_old")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE sensing_readings RENAME TO sensing_readings_parts")
        op.execute(
            "ALTER TABLE sensing_readings_parts RENAME CONSTRAINT pk_sensing_readings TO pk_sensing_readings_parts"
        )
        op.execute("ALTER INDEX ix_sensing_readings_observed_at RENAME TO ix_sensing_readings_parts_observed_at")
        _readings(partitioned=False)
        op.execute(f"INSERT INTO sensing_readings ({COLUMNS}) SELECT {COLUMNS} FROM sensing_readings_parts")
        op.execute("DROP TABLE sensing_readings_parts CASCADE")
    op.drop_table("sensing_wifi_status")
