"""Sensors that need a visit: silent ones, impossible values, flatlines and spikes, found by the
`sensing.maintenance` job and listed on the staff's maintenance page with since when.

- silent: nothing heard for longer than SILENT_INTERVALS of the sensor's own usual interval (the median gap
  between its recent readings), since its last reading;
- out_of_range: readings refused at intake as physically impossible (`out_of_range`) in the last day, since
  the first of them;
- flatline: a quantity's last FLATLINE_K readings all the same value (a stuck sensor), since the first of the
  run;
- spike: a reading of the last LOOKBACK_S seconds far from the median of the SPIKE_WINDOW readings before it,
  by a robust z-score (0.6745·(x − median)/MAD) above SPIKE_Z, since the first such reading.

Quantities that are legitimately constant for hours (illuminance at night, UV at night, vibration at rest)
are not judged flat.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from smartcity.sensing.air_models import MaintenanceIssue
from smartcity.sensing.models import Reading, Rejection
from smartcity.sensing.quantities import BY_CODE, BY_NAME
from smartcity.sensing.sensors import sensors

SILENT_INTERVALS = 5
FLATLINE_K = 10
SPIKE_WINDOW = 30
SPIKE_Z = 6.0
LOOKBACK_S = 6 * 3600
DEFAULT_INTERVAL_S = 120
NOT_FLAT = {BY_NAME[q].code for q in ("illuminance", "uv", "vibration", "wind")}
KINDS = ("silent", "out_of_range", "flatline", "spike")


@dataclass(frozen=True)
class Finding:
    kind: str
    since: int
    detail: str


def interval_of(times: Sequence[int]) -> int:
    """A sensor's usual interval: the median gap between its readings (the default without enough of them)."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    return int(statistics.median(gaps)) if gaps else DEFAULT_INTERVAL_S


def silent(last: int, interval: int, now: float) -> Finding | None:
    if now - last > SILENT_INTERVALS * interval:
        return Finding("silent", last, f"no reading for {int(now - last) // 60} min (usually every {interval} s)")
    return None


def flatline(series: Sequence[tuple[int, float]]) -> Finding | None:
    """The last FLATLINE_K or more readings equal: the run's first time."""
    if len(series) < FLATLINE_K:
        return None
    value = series[-1][1]
    run = 0
    for _, v in reversed(series):
        if v != value:
            break
        run += 1
    if run < FLATLINE_K:
        return None
    return Finding("flatline", series[-run][0], f"{run} readings of {value:g}")


def spike(series: Sequence[tuple[int, float]], since: float) -> Finding | None:
    """The first reading at or after `since` whose robust z-score against the SPIKE_WINDOW readings before it
    is above SPIKE_Z."""
    for i, (t, v) in enumerate(series):
        if t < since or i < SPIKE_WINDOW // 2:
            continue
        before = [x for _, x in series[max(0, i - SPIKE_WINDOW) : i]]
        median = statistics.median(before)
        mad = statistics.median(abs(x - median) for x in before)
        if mad == 0:
            continue  # a flat stretch: the flatline check's business
        z = 0.6745 * (v - median) / mad
        if abs(z) > SPIKE_Z:
            return Finding("spike", t, f"{v:g} against a median of {median:g} (z = {z:.1f})")
    return None


def find(session: Session, now: float | None = None) -> list[tuple[int, int, Finding]]:
    """(sensor id, quantity code or 0, finding) for every fault found now."""
    now = time.time() if now is None else now
    start = int(now) - LOOKBACK_S
    found: list[tuple[int, int, Finding]] = []
    series: dict[tuple[int, int], list[tuple[int, float]]] = {}
    rows = session.execute(
        select(Reading.sensor_id, Reading.quantity, Reading.observed_at, Reading.value)
        .where(Reading.observed_at >= start, Reading.observed_at <= int(now))
        .order_by(Reading.sensor_id, Reading.quantity, Reading.observed_at)
    )
    for sensor_id, q, t, v in rows:
        series.setdefault((sensor_id, q), []).append((t, v))
    last_heard = dict(
        session.execute(select(Reading.sensor_id, func.max(Reading.observed_at)).group_by(Reading.sensor_id)).all()
    )
    known = sensors(session)
    for sensor in known:
        sid = sensor["id"]
        last = last_heard.get(sid)
        if last is None:
            continue  # never heard: registered, not yet installed
        times = sorted({t for (s_id, _), pts in series.items() if s_id == sid for t, _ in pts})
        finding = silent(last, interval_of(times), now)
        if finding:
            found.append((sid, 0, finding))
    for (sid, q), pts in series.items():
        if q not in NOT_FLAT and (finding := flatline(pts)):
            found.append((sid, q, finding))
        if finding := spike(pts, now - 3600):
            found.append((sid, q, finding))
    by_serial = {s["serial"]: s["id"] for s in known if s["serial"]}
    refused = session.execute(
        select(Rejection.sensor, Rejection.quantity, func.min(Rejection.observed_at), func.count())
        .where(Rejection.code == "out_of_range", Rejection.observed_at >= int(now) - 86400)
        .group_by(Rejection.sensor, Rejection.quantity)
    )
    for serial, quantity, first, count in refused:
        sid = by_serial.get(serial)
        q = BY_NAME.get(quantity)
        if sid is not None:
            found.append((sid, q.code if q else 0, Finding("out_of_range", first, f"{count} impossible values")))
    return found


def run(db, now: float | None = None) -> int:
    """Find the faults now and keep them as the maintenance page's list (replacing the last run's)."""
    now = time.time() if now is None else now
    with db.session() as s:
        found = find(s, now)
        s.execute(delete(MaintenanceIssue))
        s.add_all(
            MaintenanceIssue(sensor_id=sid, quantity=q, kind=f.kind, since=f.since, detail=f.detail, found_at=int(now))
            for sid, q, f in found
        )
    return len(found)


def job(db, _settings) -> None:
    run(db)


def issues(session: Session) -> list[dict]:
    """The last run's findings, oldest first, with the sensor's serial and the quantity's name."""
    serial_of = {s["id"]: s for s in sensors(session)}
    out = []
    for row in session.scalars(select(MaintenanceIssue).order_by(MaintenanceIssue.since, MaintenanceIssue.id)):
        sensor = serial_of.get(row.sensor_id, {})
        quantity = BY_CODE.get(row.quantity)
        out.append(
            {
                "sensor_id": row.sensor_id,
                "serial": sensor.get("serial"),
                "district": sensor.get("district"),
                "quantity": quantity.name if quantity else None,
                "kind": row.kind,
                "since": row.since,
                "detail": row.detail,
                "found_at": row.found_at,
            }
        )
    return out
