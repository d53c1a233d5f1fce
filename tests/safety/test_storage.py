"""Lean position storage (issue 13, migration safety_0004): times as epoch milliseconds that the ORM still reads
as aware datetimes, positions keyed by (device, fix time), existing rows converted by the upgrade and given back
by the downgrade, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from smartcity.core.db import alembic_config, from_millis, to_millis
from smartcity.safety.models import DeviceState, PositionRow
from tests.safety.helpers import HOME, make_world


def test_epoch_millis_round_trip_and_hand_written_sql_sees_integers(db):
    w = make_world(db)
    at = datetime(2026, 3, 1, 8, 30, 15, 123000, tzinfo=UTC)
    with db.session() as s:
        s.add(
            PositionRow(
                device_id=w.device_id,
                person_id=w.person_id,
                fix_time=at,
                received_at=at + timedelta(seconds=1),
                lat=HOME[0],
                lon=HOME[1],
                protocol="test",
                outside_city=False,
            )
        )
    with db.session() as s:
        row = s.scalars(select(PositionRow)).one()
        assert row.fix_time == at and row.fix_time.tzinfo is not None
        assert s.get(PositionRow, (w.device_id, at)) is row  # the key, as a datetime
    with db.engine.connect() as conn:
        raw = conn.execute(text("SELECT fix_time, received_at FROM safety_positions")).one()
    assert tuple(raw) == (1_772_353_815_123, 1_772_353_816_123) == (to_millis(at), to_millis(at) + 1000)
    assert from_millis(raw[0]) == at


def test_positions_have_no_row_id_and_only_their_key(db):
    columns = {c["name"] for c in inspect(db.engine).get_columns("safety_positions")}
    assert "id" not in columns and {"device_id", "fix_time"} <= columns
    assert inspect(db.engine).get_pk_constraint("safety_positions")["constrained_columns"] == ["device_id", "fix_time"]
    assert inspect(db.engine).get_indexes("safety_positions") == []  # every read goes through the key


def _old_shape_rows(db, device_id: int, person_id: int) -> None:
    """Rows as safety_0003 stored them: the time codec's text on SQLite, timestamptz on PostgreSQL."""
    sqlite = not db.is_postgres
    times = (
        ["2026-03-01 08:30:15.123456", "2026-03-01 08:30:15.123999", "2026-03-01 08:31:00.000000"]
        if sqlite
        else ["2026-03-01 08:30:15.123456+00", "2026-03-01 08:30:15.123999+00", "2026-03-01 08:31:00+00"]
    )
    with db.engine.begin() as conn:
        for at in times:
            conn.execute(
                text(
                    "INSERT INTO safety_positions (device_id, person_id, fix_time, received_at, lat, lon, protocol, "
                    "outside_city, valid) VALUES (:d, :p, :t, :t, 37.5, 127.0, 'osmand', false, true)"
                ),
                {"d": device_id, "p": person_id, "t": at},
            )
        conn.execute(
            text("UPDATE safety_device_state SET fix_time = :t, received_at = :t WHERE device_id = :d"),
            {"t": times[2], "d": device_id},
        )


def test_the_upgrade_converts_existing_rows_and_the_downgrade_gives_them_back(db):
    w = make_world(db)
    cfg = alembic_config(db.url)
    command.downgrade(cfg, "safety_0003")
    _old_shape_rows(db, w.device_id, w.person_id)
    command.upgrade(cfg, "heads")
    db.dispose()  # connections made before the upgrade know the old table
    first = datetime(2026, 3, 1, 8, 30, 15, 123000, tzinfo=UTC)
    last = datetime(2026, 3, 1, 8, 31, tzinfo=UTC)
    with db.session() as s:
        # Two fixes in the same millisecond: the first is kept.
        assert [(r.fix_time, r.received_at) for r in s.scalars(select(PositionRow).order_by(PositionRow.fix_time))] == [
            (first, first),
            (last, last),
        ]
        state = s.get(DeviceState, w.device_id)
        assert (state.fix_time, state.received_at) == (last, last)
    command.downgrade(cfg, "safety_0003")
    db.dispose()
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, fix_time FROM safety_positions ORDER BY fix_time")).all()
        state = conn.execute(text("SELECT fix_time FROM safety_device_state WHERE device_id = :d"), {"d": w.device_id})
        state_time = state.scalar()
    if db.is_postgres:
        assert [r.fix_time for r in rows] == [first, last] and state_time == last
    else:
        assert [r.fix_time for r in rows] == ["2026-03-01 08:30:15.123000", "2026-03-01 08:31:00.000000"]
        assert state_time == "2026-03-01 08:31:00.000000"
    assert len({r.id for r in rows}) == 2
    command.upgrade(cfg, "heads")


def _fix(model, w, at: datetime, lat: float = HOME[0], valid: bool = True):
    """A fix of the world's device at `at`, as a row of `model` (the positions table or the staging table)."""
    return model(
        device_id=w.device_id,
        person_id=w.person_id,
        fix_time=at,
        received_at=at,
        lat=lat,
        lon=HOME[1],
        protocol="test",
        outside_city=False,
        valid=valid,
    )


def test_staged_positions_are_read_deleted_and_purged_with_the_others(db, settings):
    """Fixes a staging writer has not moved yet (safety_positions_recent) are part of the track, of a history
    deletion and of the retention purge."""
    from smartcity.safety import service
    from smartcity.safety.models import RecentPositionRow

    w = make_world(db)
    now = datetime.now(UTC).replace(microsecond=0)
    earlier, later = now - timedelta(minutes=20), now - timedelta(minutes=10)
    with db.session() as s:
        old = now - timedelta(days=40)
        for model, at in ((PositionRow, earlier), (RecentPositionRow, later), (RecentPositionRow, old)):
            s.add(_fix(model, w, at))
    assert service.purge_history(db, settings, now=now) == 1  # the staged one older than the retention
    mother = w.identity(db, w.guardian_id)
    with db.session() as s:
        track = service.track(s, mother, w.person_id, since=now - timedelta(hours=1))
        assert [p["fix_time"] for p in track] == [earlier.isoformat(), later.isoformat()]
        assert service.delete_history(s, w.person_id, actor="test")["positions"] == 2
    with db.session() as s:
        assert s.scalar(select(RecentPositionRow.device_id)) is None and s.scalar(select(PositionRow.device_id)) is None


def test_a_staged_fix_already_copied_into_the_positions_table_is_read_once(db, settings):
    """A mover's round copies staged fixes first and deletes them from staging at its end: in between, the
    track shows each fix once."""
    from smartcity.safety import service
    from smartcity.safety.models import RecentPositionRow

    w = make_world(db)
    now = datetime.now(UTC).replace(microsecond=0)
    copied, staged = now - timedelta(minutes=20), now - timedelta(minutes=10)
    with db.session() as s:
        for model, at in ((PositionRow, copied), (RecentPositionRow, copied), (RecentPositionRow, staged)):
            s.add(_fix(model, w, at))
    mother = w.identity(db, w.guardian_id)
    with db.session() as s:
        track = service.track(s, mother, w.person_id, since=now - timedelta(hours=1))
    assert [p["fix_time"] for p in track] == [copied.isoformat(), staged.isoformat()]


def test_the_newest_fix_reads_staged_fixes_by_time_for_a_person_and_for_every_silent_device(db):
    """The staging table is keyed by time first: `newest_fixes` reads each device's newest staged fix by time
    range, naming a few devices in its query and, for many (the silent-device job), reading every staged device
    (a list of all of them would pass SQLite's limit on bound parameters). Both give the same answer: the newest
    valid fix, staged or not, and only staged fixes newer than `after`."""
    from smartcity.safety.models import RecentPositionRow
    from smartcity.safety.registry import FEW_DEVICES, newest_fixes

    w = make_world(db)
    now = datetime.now(UTC).replace(microsecond=0)
    stored, staged, newer_invalid = now - timedelta(minutes=30), now - timedelta(minutes=10), now - timedelta(minutes=5)
    with db.session() as s:
        for model, at, valid, lat in (
            (PositionRow, stored, True, 37.51),
            (RecentPositionRow, staged, True, 37.52),
            (RecentPositionRow, newer_invalid, False, 37.53),
        ):
            s.add(_fix(model, w, at, lat=lat, valid=valid))
    absent = list(range(10**6, 10**6 + FEW_DEVICES + 100))  # devices with nothing stored
    with db.session() as s:
        few = newest_fixes(s, [w.device_id])
        many = newest_fixes(s, [w.device_id, *absent])
        later = newest_fixes(s, [w.device_id], after=staged)
    assert few.keys() == many.keys() == {w.device_id}
    assert (few[w.device_id].fix_time, few[w.device_id].lat) == (staged, 37.52)
    assert (many[w.device_id].fix_time, many[w.device_id].lat) == (staged, 37.52)
    assert (later[w.device_id].fix_time, later[w.device_id].lat) == (stored, 37.51)  # the staged one is not newer


def test_the_staging_key_migration_keeps_staged_fixes_and_turns_the_key_time_first(db):
    """safety_0007 rebuilds the staging table (SQLite) with its unique key (fix time, device): fixes staged before
    the upgrade are still staged after it and after the downgrade, and the key still refuses a repeat."""
    from sqlalchemy.exc import IntegrityError

    w = make_world(db)
    cfg = alembic_config(db.url)
    command.downgrade(cfg, "safety_0006")
    db.dispose()
    at = to_millis(datetime(2026, 3, 1, 8, 30, tzinfo=UTC))
    row = (
        "INSERT INTO safety_positions_recent (device_id, person_id, fix_time, received_at, lat, lon, protocol, "
        "outside_city, valid) VALUES (:d, :p, :t, :t, 37.5, 127.0, 'osmand', false, true)"
    )

    def staged() -> list[tuple]:
        with db.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT device_id, fix_time FROM safety_positions_recent"))]

    def unique_keys() -> list[list[str]]:
        with db.engine.connect() as conn:
            return [u["column_names"] for u in inspect(conn).get_unique_constraints("safety_positions_recent")]

    with db.engine.begin() as conn:
        for t in (at, at + 1000):
            conn.execute(text(row), {"d": w.device_id, "p": w.person_id, "t": t})
    assert unique_keys() == [["device_id", "fix_time"]]
    command.upgrade(cfg, "heads")
    db.dispose()
    assert sorted(staged()) == [(w.device_id, at), (w.device_id, at + 1000)]
    assert unique_keys() == [["fix_time", "device_id"]]
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(row), {"d": w.device_id, "p": w.person_id, "t": at})
    command.downgrade(cfg, "safety_0006")
    db.dispose()
    assert sorted(staged()) == [(w.device_id, at), (w.device_id, at + 1000)]
    assert unique_keys() == [["device_id", "fix_time"]]
    command.upgrade(cfg, "heads")
