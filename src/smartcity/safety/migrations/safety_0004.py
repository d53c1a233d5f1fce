"""safety: lean positions — keyed by (device, fix time), integer epoch-millisecond times, daily partitions

`safety_positions` loses its `id`: a position is identified by its device and fix time, which become the
primary key (SQLite: WITHOUT ROWID, the rows kept in the key's order; PostgreSQL: partitioned by RANGE of the
fix time into daily partitions, made ahead by the retention job, plus a default partition). The fix-time index
goes: every read goes through a device's key range. Times in `safety_positions` and the live times of
`safety_device_state` become BIGINT milliseconds since 1970 UTC (smartcity.core.db.EpochMillis). Existing rows
are converted (two fixes of a device in the same millisecond keep the first).

Revision ID: safety_0004
Revises: safety_0003
"""

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "safety_0004"
down_revision = "safety_0003"
branch_labels = None
depends_on = None

AHEAD_DAYS = 3  # daily partitions made beyond today (the retention job keeps making them)
BACK_DAYS = 366  # at most this many days of existing history get partitions of their own; older: default

COLUMNS = (
    "device_id, fix_time, person_id, received_at, lat, lon, speed, bearing, altitude, accuracy, battery, alarm, "
    "protocol, outside_city, attributes, valid"
)


def _ms_sql(column: str, sqlite: bool) -> str:
    """SQL turning a stored time (SQLite: the codec's text; PostgreSQL: timestamptz) into epoch ms."""
    if sqlite:
        return f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000 + CAST(substr({column}, 21, 3) AS INTEGER))"
    return f"(floor(extract(epoch from {column}) * 1000)::bigint)"


def _time_sql(column: str, sqlite: bool) -> str:
    """SQL turning epoch ms back into the time codec's form."""
    if sqlite:
        return (
            f"(strftime('%Y-%m-%d %H:%M:%S', {column} / 1000, 'unixepoch') || '.' || "
            f"printf('%03d', {column} % 1000) || '000')"
        )
    return f"to_timestamp({column} / 1000.0)"


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def _lean_positions(partitioned: bool) -> None:
    op.create_table(
        "safety_positions",
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
            ["device_id"], ["safety_devices.id"], name=op.f("fk_safety_positions_device_id_safety_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", "fix_time", name=op.f("pk_safety_positions")),
        sqlite_with_rowid=False,
        postgresql_partition_by="RANGE (fix_time)" if partitioned else None,
    )


def _old_positions() -> None:
    op.create_table(
        "safety_positions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("fix_time", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
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
            ["device_id"], ["safety_devices.id"], name=op.f("fk_safety_positions_device_id_safety_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_positions")),
        sa.UniqueConstraint("device_id", "fix_time", name="uq_safety_positions_device_fix"),
    )
    op.create_index("ix_safety_positions_fix_time", "safety_positions", ["fix_time"], unique=False)


def _partitions(bind) -> None:
    """The default partition and one per day from the oldest stored fix (within BACK_DAYS) to AHEAD_DAYS ahead."""
    op.execute("CREATE TABLE safety_positions_default PARTITION OF safety_positions DEFAULT")
    today = datetime.now(UTC).date()
    oldest = bind.exec_driver_sql("SELECT min(fix_time) FROM safety_positions_old").scalar()
    first = today if oldest is None else max(oldest.astimezone(UTC).date(), today - timedelta(days=BACK_DAYS))
    first = min(first, today)
    day = first
    while day <= today + timedelta(days=AHEAD_DAYS):
        nxt = day + timedelta(days=1)
        op.execute(
            f"CREATE TABLE safety_positions_{day:%Y%m%d} PARTITION OF safety_positions "
            f"FOR VALUES FROM ({_day_ms(day)}) TO ({_day_ms(nxt)})"
        )
        day = nxt


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    # The old table's constraint and index names are wanted by the new one: they go first, the rows stay.
    op.drop_index("ix_safety_positions_fix_time", table_name="safety_positions")
    op.rename_table("safety_positions", "safety_positions_old")
    if not sqlite:
        for name in (
            "pk_safety_positions",
            "uq_safety_positions_device_fix",
            "fk_safety_positions_device_id_safety_devices",
        ):
            op.execute(f"ALTER TABLE safety_positions_old DROP CONSTRAINT {name}")
    _lean_positions(partitioned=not sqlite)
    if not sqlite:
        _partitions(bind)
    conflict = "" if sqlite else " ON CONFLICT DO NOTHING"
    op.execute(
        f"INSERT {'OR IGNORE ' if sqlite else ''}INTO safety_positions ({COLUMNS}) "
        f"SELECT device_id, {_ms_sql('fix_time', sqlite)}, person_id, {_ms_sql('received_at', sqlite)}, lat, lon, "
        f"speed, bearing, altitude, accuracy, battery, alarm, protocol, outside_city, attributes, valid "
        f"FROM safety_positions_old ORDER BY device_id, fix_time, id{conflict}"
    )
    op.drop_table("safety_positions_old")

    for column in ("fix_time", "received_at"):
        if sqlite:
            op.execute(f"UPDATE safety_device_state SET {column} = {_ms_sql(column, True)} WHERE {column} IS NOT NULL")
        else:
            op.execute(
                f"ALTER TABLE safety_device_state ALTER COLUMN {column} TYPE BIGINT USING {_ms_sql(column, False)}"
            )
    if sqlite:
        with op.batch_alter_table("safety_device_state", schema=None) as batch_op:
            for column in ("fix_time", "received_at"):
                batch_op.alter_column(
                    column,
                    existing_type=smartcity.core.db.UTCDateTime(timezone=True),
                    type_=smartcity.core.db.EpochMillis(),
                    existing_nullable=True,
                )


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        with op.batch_alter_table("safety_device_state", schema=None) as batch_op:
            for column in ("fix_time", "received_at"):
                batch_op.alter_column(
                    column,
                    existing_type=smartcity.core.db.EpochMillis(),
                    type_=smartcity.core.db.UTCDateTime(timezone=True),
                    existing_nullable=True,
                )
    for column in ("fix_time", "received_at"):
        if sqlite:
            op.execute(
                f"UPDATE safety_device_state SET {column} = {_time_sql(column, True)} WHERE {column} IS NOT NULL"
            )
        else:
            op.execute(
                f"ALTER TABLE safety_device_state ALTER COLUMN {column} TYPE TIMESTAMP WITH TIME ZONE "
                f"USING {_time_sql(column, False)}"
            )

    op.rename_table("safety_positions", "safety_positions_lean")
    if not sqlite:
        op.execute("ALTER TABLE safety_positions_lean DROP CONSTRAINT pk_safety_positions")
        op.execute("ALTER TABLE safety_positions_lean DROP CONSTRAINT fk_safety_positions_device_id_safety_devices")
    _old_positions()
    op.execute(
        f"INSERT INTO safety_positions ({COLUMNS}) "
        f"SELECT device_id, {_time_sql('fix_time', sqlite)}, person_id, {_time_sql('received_at', sqlite)}, lat, "
        f"lon, speed, bearing, altitude, accuracy, battery, alarm, protocol, outside_city, attributes, valid "
        f"FROM safety_positions_lean ORDER BY fix_time, device_id"
    )
    # On PostgreSQL the partitions go with their table.
    op.drop_table("safety_positions_lean")
