"""Roll-ups: hourly and daily min/max/mean/count computed from what was stored, a late reading rolled in again,
raw readings pruned after the retention period while the roll-ups stay (both stores)."""

from __future__ import annotations

import random
import statistics
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from smartcity.sensing import service
from smartcity.sensing.intake import store_now, validate
from smartcity.sensing.models import Reading

KST = timezone(timedelta(hours=9))
HOUR, DAY = 3600, 86400


def _seoul_midnight(days_ago: int) -> int:
    today = datetime.fromtimestamp(time.time(), KST).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - timedelta(days=days_ago)).timestamp())


def _store(db, readings: list[dict], now: int):
    outcome = store_now(db, validate(db, readings, "http", now=now))
    assert not outcome.refused
    return outcome


def _expect(values: list[float]) -> dict:
    return {
        "count": len(values),
        "min": min(values),
        "max": max(values),
        "mean": pytest.approx(statistics.fmean(values)),
    }


def _points(db, serial: str, resolution: str, start: int, end: int) -> dict[int, dict]:
    with db.session() as s:
        got = service.reading_series(s, serial, "pm10", start, end, resolution)
    return {p["time"]: {k: p[k] for k in ("count", "min", "max", "mean")} for p in got["points"]}


def test_hours_and_seoul_days_are_rolled_up_from_the_stored_readings(db, sensors):
    rng = random.Random(16)
    serial = sensors.serials[0]
    midnight = _seoul_midnight(2)
    times = [midnight - HOUR + 120 * i for i in range(30)] + [midnight + 120 * i for i in range(45)]
    sent = {t: float(rng.randint(5, 180)) for t in times}
    now = midnight + 2 * HOUR
    _store(db, [{"sensor": serial, "quantity": "pm10", "time": t, "value": v} for t, v in sent.items()], now)

    done = service.roll_up(db, now=now)
    assert (done.hours, done.days, done.pruned) == (3, 2, 0)

    def in_range(lo: int, hi: int) -> list[float]:
        return [v for t, v in sent.items() if lo <= t < hi]

    hourly = _points(db, serial, "hour", midnight - DAY, midnight + DAY)
    assert hourly == {
        midnight - HOUR: _expect(in_range(midnight - HOUR, midnight)),
        midnight: _expect(in_range(midnight, midnight + HOUR)),
        midnight + HOUR: _expect(in_range(midnight + HOUR, midnight + 2 * HOUR)),
    }
    daily = _points(db, serial, "day", midnight - 2 * DAY, midnight + DAY)
    assert daily == {
        midnight - DAY: _expect(in_range(midnight - DAY, midnight)),
        midnight: _expect(in_range(midnight, midnight + DAY)),
    }

    # A late reading of an hour already rolled up: that hour and its day are rolled up again, the others kept.
    late = midnight + 61
    _store(db, [{"sensor": serial, "quantity": "pm10", "time": late, "value": 999.0}], now)
    assert service.roll_up(db, now=now).hours == 1
    sent[late] = 999.0
    assert _points(db, serial, "hour", midnight, midnight + 1)[midnight] == _expect(in_range(midnight, midnight + HOUR))
    assert _points(db, serial, "day", midnight, midnight + 1)[midnight] == _expect(in_range(midnight, midnight + DAY))
    assert service.roll_up(db, now=now).hours == 0  # nothing new: nothing computed again


def test_raw_readings_are_pruned_after_the_retention_period_and_the_roll_ups_kept(db, sensors):
    serial = sensors.serials[1]
    midnight = _seoul_midnight(3)
    sent = {midnight + 600 * i: float(i) for i in range(12)}
    _store(db, [{"sensor": serial, "quantity": "pm10", "time": t, "value": v} for t, v in sent.items()], midnight + DAY)
    service.roll_up(db, now=midnight + DAY)
    daily_before = _points(db, serial, "day", midnight, midnight + 1)

    later = midnight + 31 * DAY + 3 * HOUR  # the default retention is 30 days
    done = service.roll_up(db, now=later)
    assert done.pruned == len(sent)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == 0
    assert (
        _points(db, serial, "day", midnight, midnight + 1) == daily_before == {midnight: _expect(list(sent.values()))}
    )
    # A reading as old as the pruned ones is refused: rolling its hour up again would drop the others.
    refused = validate(db, [{"sensor": serial, "quantity": "pm10", "time": midnight, "value": 1}], "http", now=later)
    assert [r.code for r in refused.refused] == ["too_old"]
