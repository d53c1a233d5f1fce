"""Roll-ups: each sensor's quantities per hour and per day (min, max, sum, count), kept; raw readings pruned
after the retention period (SMARTCITY_SENSING_RAW_RETENTION_DAYS) once rolled up.

The intake marks the hours its stored readings fall in (`sensing_pending_hours`); the `sensing.rollup` job takes
those marks and computes those hours again from the raw readings, then the days holding them from the hours,
in one transaction that began by taking the marks (a write, so on SQLite it holds the write lock; on PostgreSQL
the marks' table is locked against inserts): a reading committed later marks its hour again for the next run,
never lost between a mark taken and a roll-up computed. Days are the city's days (its time zone).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select, text

from smartcity.core.context import context_of
from smartcity.sensing.models import PendingHour, Reading, Rollup
from smartcity.sensing.settings import SensingSettings

HOUR, DAY = 3600, 86400


@dataclass
class RollupRun:
    hours: int = 0
    days: int = 0
    pruned: int = 0


def _day_start(epoch: int, tz) -> int:
    local = datetime.fromtimestamp(epoch, tz)
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def _next_day(start: int, tz) -> int:
    local = datetime.fromtimestamp(start, tz) + timedelta(days=1, hours=3)  # past a DST change, then floored
    return _day_start(int(local.timestamp()), tz)


def _roll_hours(session, hours: Iterable[int]) -> None:
    for hour in hours:
        session.execute(delete(Rollup).where(Rollup.resolution == HOUR, Rollup.start == hour))
        rows = (
            select(
                Reading.sensor_id,
                Reading.quantity,
                literal(HOUR),
                literal(hour),
                func.count(),
                func.min(Reading.value),
                func.max(Reading.value),
                func.sum(Reading.value),
            )
            .where(Reading.observed_at >= hour, Reading.observed_at < hour + HOUR)
            .group_by(Reading.sensor_id, Reading.quantity)
        )
        session.execute(insert(Rollup).from_select(_COLUMNS, rows))


_COLUMNS = ["sensor_id", "quantity", "resolution", "start", "count", "min", "max", "sum"]


def _roll_days(session, days: Iterable[int], tz) -> None:
    for day in days:
        session.execute(delete(Rollup).where(Rollup.resolution == DAY, Rollup.start == day))
        rows = (
            select(
                Rollup.sensor_id,
                Rollup.quantity,
                literal(DAY),
                literal(day),
                func.sum(Rollup.count),
                func.min(Rollup.min),
                func.max(Rollup.max),
                func.sum(Rollup.sum),
            )
            .where(Rollup.resolution == HOUR, Rollup.start >= day, Rollup.start < _next_day(day, tz))
            .group_by(Rollup.sensor_id, Rollup.quantity)
        )
        session.execute(insert(Rollup).from_select(_COLUMNS, rows))


def roll_up(db, now: float | None = None) -> RollupRun:
    """Roll up the marked hours and their days, then prune raw readings older than the retention period."""
    context = context_of(db)
    settings = context.settings_of(SensingSettings)
    tz = context.profile.tz
    now = time.time() if now is None else now
    run = RollupRun()
    with db.session() as s:
        if db.is_postgres:
            s.execute(text("LOCK TABLE sensing_pending_hours IN SHARE ROW EXCLUSIVE MODE"))
        hours = sorted(s.scalars(delete(PendingHour).returning(PendingHour.hour)))
        _roll_hours(s, hours)
        days = sorted({_day_start(h, tz) for h in hours})
        _roll_days(s, days, tz)
        run.hours, run.days = len(hours), len(days)
        # Every hour below the cutoff has been rolled up: the intake refuses readings older than the retention
        # period, and the marks were all taken above. An hour's margin keeps the hour being refused whole.
        cutoff = (int(now) - settings.raw_retention_days * DAY) // HOUR * HOUR - HOUR
        if db.is_postgres:  # whole months past the cutoff go with their partition; the coming ones are made
            from smartcity.sensing.partitions import maintain

            run.pruned = sum(maintain(s.connection(), cutoff, now).values())
        run.pruned += s.execute(delete(Reading).where(Reading.observed_at < cutoff)).rowcount or 0
    return run


def job(db, _settings) -> None:
    roll_up(db)


def series(session, sensor_id: int, quantity: int, resolution: int, start: int, end: int) -> list[dict]:
    """A sensor's quantity over [start, end): raw readings (resolution 0) or hourly/daily aggregates."""
    if resolution == 0:
        # A month at 2 minutes is 21,600 rows: read through the driver's cursor, whose plain tuples cost a third
        # of the ORM's rows (bench/bench_sensing.py); the same key range scan either way.
        mark = "%s" if session.info["db"].is_postgres else "?"
        cursor = session.connection().connection.dbapi_connection.cursor()
        try:
            cursor.execute(
                f"SELECT observed_at, value FROM sensing_readings WHERE sensor_id = {mark} AND quantity = {mark} "
                f"AND observed_at >= {mark} AND observed_at < {mark} ORDER BY observed_at",
                (sensor_id, quantity, start, end),
            )
            return [{"time": t, "value": v} for t, v in cursor.fetchall()]
        finally:
            cursor.close()
    q = (
        select(Rollup.start, Rollup.count, Rollup.min, Rollup.max, Rollup.sum)
        .where(
            Rollup.sensor_id == sensor_id,
            Rollup.quantity == quantity,
            Rollup.resolution == resolution,
            Rollup.start >= start,
            Rollup.start < end,
        )
        .order_by(Rollup.start)
    )
    return [
        {"time": t, "count": n, "min": lo, "max": hi, "mean": total / n if n else None}
        for t, n, lo, hi, total in session.execute(q)
    ]


def district_daily_means(
    session, quantity: str = "pm25", start: int | None = None, end: int | None = None
) -> list[dict]:
    """Each district's daily mean of a quantity from the daily roll-ups, for the city's statistics (analytics'
    trends): all its sensors' readings of the city's day pooled (sum of sums ÷ sum of counts), with how many
    readings and sensors made it. [start, end) bounds the day's start (epoch seconds); sensors without a
    district are left out."""
    from smartcity.sensing.quantities import BY_NAME
    from smartcity.sensing.sensors import sensors

    district_of = {s["id"]: s["district"] for s in sensors(session) if s["district"]}
    q = select(Rollup.start, Rollup.sensor_id, Rollup.sum, Rollup.count).where(
        Rollup.resolution == DAY, Rollup.quantity == BY_NAME[quantity].code, Rollup.count > 0
    )
    if start is not None:
        q = q.where(Rollup.start >= start)
    if end is not None:
        q = q.where(Rollup.start < end)
    tz = context_of(session.info["db"]).profile.tz
    pooled: dict[tuple[int, str], list] = {}
    for day, sensor_id, total, count in session.execute(q):
        district = district_of.get(sensor_id)
        if district:
            acc = pooled.setdefault((day, district), [0.0, 0, 0])
            acc[0] += total
            acc[1] += count
            acc[2] += 1
    return [
        {
            "day": datetime.fromtimestamp(day, tz).date().isoformat(),
            "district": district,
            "mean": total / count,
            "readings": count,
            "sensors": n,
        }
        for (day, district), (total, count, n) in sorted(pooled.items())
    ]
