"""PostgreSQL: readings in monthly partitions made ahead by the roll-up job and dropped, not deleted row by row,
once a whole month is past the raw retention; a reading no month holds is kept in the default partition.
SQLite keeps one table, pruned by the same job (tests/sensing/test_rollup.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text

from smartcity.sensing import partitions
from smartcity.sensing.models import Reading
from smartcity.sensing.rollup import roll_up


def _epoch(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, tzinfo=UTC).timestamp())


def _insert(db, rows: list[tuple[int, int, int, float]]) -> None:
    with db.session() as s:
        s.execute(
            text("INSERT INTO sensing_readings (sensor_id, quantity, observed_at, value) VALUES (:s, :q, :t, :v)"),
            [{"s": a, "q": b, "t": c, "v": d} for a, b, c, d in rows],
        )


def _months(db) -> dict:
    with db.session() as s:
        return partitions.months(s.connection())


def test_old_months_are_dropped_whole_and_the_coming_ones_made(db):
    if not db.is_postgres:
        pytest.skip("SQLite keeps one readings table")
    with db.session() as s:
        partitions.ensure_months(s.connection(), date(2026, 1, 1), date(2026, 3, 1))
    assert {"sensing_readings_2026_01", "sensing_readings_2026_02", "sensing_readings_default"} <= set(_months(db))
    _insert(
        db,
        [
            (1, 1, _epoch(2026, 1, 10), 10.0),
            (1, 1, _epoch(2026, 1, 31) + 86399, 11.0),
            (1, 1, _epoch(2026, 2, 1), 12.0),
            (2, 1, _epoch(2026, 3, 2), 13.0),
            (2, 1, _epoch(2024, 6, 1), 14.0),  # no month made for it: the default partition keeps it
        ],
    )
    # 30 days' retention on 2026-03-05: January is wholly past the cutoff (its partition goes), February only
    # partly (its rows before the cutoff, 2026-02-03, are deleted), and June 2024 in the default (deleted too).
    run = roll_up(db, now=_epoch(2026, 3, 5))
    months = _months(db)
    assert "sensing_readings_2026_01" not in months
    assert {"sensing_readings_2026_02", "sensing_readings_2026_03", "sensing_readings_2026_05"} <= set(months)
    assert run.pruned == 4
    with db.session() as s:
        left = s.execute(select(Reading.sensor_id, Reading.value)).all()
    assert left == [(2, 13.0)]


def test_a_month_with_rows_in_the_default_is_left_there(db):
    if not db.is_postgres:
        pytest.skip("SQLite keeps one readings table")
    _insert(db, [(1, 1, _epoch(2025, 7, 4), 5.0)])
    with db.session() as s:
        made = partitions.ensure_months(s.connection(), date(2025, 6, 1), date(2025, 8, 1))
    assert made == ["sensing_readings_2025_06", "sensing_readings_2025_08"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == 1
        held = s.execute(text("SELECT count(*) FROM sensing_readings_default")).scalar_one()
    assert held == 1


def test_the_readings_table_is_partitioned_by_month(db):
    if not db.is_postgres:
        pytest.skip("SQLite keeps one readings table")
    with db.session() as s:
        kind = s.execute(
            text("SELECT pg_get_partkeydef(oid) FROM pg_class WHERE relname = 'sensing_readings'")
        ).scalar_one()
    assert kind == "RANGE (observed_at)"
    today = datetime.now(UTC).date()
    assert partitions.name_of(today.year, today.month) in _months(db)
