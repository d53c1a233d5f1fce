"""Sensors that need a visit: silent ones, impossible values, flatlines and spikes, found by the
`sensing.maintenance` job and listed on the staff's maintenance page with since when.

- silent: nothing heard for longer than SILENT_INTERVALS of the sensor's own usual interval (the median gap
  between its recent readings), since its last reading;
- out_of_range: readings refused at intake as physically impossible (`out_of_range`) in the last day, since
  the first of them;
- flatline: a quantity's last FLATLINE_K readings all the same value (a stuck sensor), since the first of the
  run;
- spike: a reading of the last hour far from the median of the SPIKE_WINDOW readings before it, by a robust
  z-score (0.6745·(x − median)/MAD) above SPIKE_Z, since the first such reading.

Every check runs over all series at once as numpy arrays (`Runs`) on the lookback's readings, read once
(bench/bench_air.py: 850 sensors × 9 quantities).

Quantities that are legitimately constant for hours (illuminance at night, UV at night, vibration at rest)
are not judged flat.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from smartcity.core.context import context_of
from smartcity.sensing.air import due
from smartcity.sensing.air_models import MaintenanceIssue
from smartcity.sensing.models import Rejection
from smartcity.sensing.quantities import BY_CODE, BY_NAME
from smartcity.sensing.sensors import sensors
from smartcity.sensing.settings import SensingSettings

SILENT_INTERVALS = 5
FLATLINE_K = 10
SPIKE_WINDOW = 30
SPIKE_Z = 6.0
DEFAULT_INTERVAL_S = 120
SPIKE_HOUR_S = 3600
# The last hour and, before its first reading, a full spike window at the usual 2 minutes (slower sensors are
# judged on shorter windows, at least half of one).
LOOKBACK_S = SPIKE_HOUR_S + SPIKE_WINDOW * DEFAULT_INTERVAL_S
NOT_FLAT = {BY_NAME[q].code for q in ("illuminance", "uv", "vibration", "wind")}
KINDS = ("silent", "out_of_range", "flatline", "spike")


@dataclass(frozen=True)
class Finding:
    kind: str
    since: int
    detail: str


class Runs:
    """Readings of many series at once (a series: one sensor's quantity), sorted by series then time, so that
    each check is a few array operations over all of them instead of a Python loop per reading (850 sensors ×
    9 quantities × 6 hours is 1.4 M readings)."""

    def __init__(self, key: np.ndarray, time: np.ndarray, value: np.ndarray):
        order = np.lexsort((time, key))
        self.key, self.time, self.value = key[order], time[order], value[order]
        n = len(self.key)
        # No readings, no series: np.r_[[], n] would make one end without a start (a fresh city's window).
        self.starts = np.flatnonzero(np.r_[True, self.key[1:] != self.key[:-1]]) if n else np.zeros(0, np.int64)
        self.ends = np.r_[self.starts[1:], n].astype(np.int64) if n else np.zeros(0, np.int64)
        self.first = np.repeat(self.starts, self.ends - self.starts)  # each reading's series' first index

    @classmethod
    def of(cls, series: Sequence[tuple[int, float]]) -> Runs:
        """One series of (time, value)."""
        pts = np.array(series, dtype=float).reshape(-1, 2)
        return cls(np.zeros(len(pts), np.int64), pts[:, 0].astype(np.int64), pts[:, 1])

    def flatlines(self) -> list[tuple[int, int, int, float]]:
        """(key, since, run, value) of each series whose last FLATLINE_K or more readings are equal."""
        n = len(self.value)
        if n == 0:
            return []
        last = np.repeat(self.ends - 1, self.ends - self.starts)
        differs = np.where(self.value != self.value[last], np.arange(n), -1)
        run_start = np.maximum(np.maximum.reduceat(differs, self.starts) + 1, self.starts)
        run = self.ends - run_start
        return [
            (int(self.key[s]), int(self.time[r]), int(k), float(self.value[e - 1]))
            for s, r, k, e in zip(self.starts, run_start, run, self.ends, strict=True)
            if k >= FLATLINE_K
        ]

    def spikes(self, since: float) -> list[tuple[int, int, float, float, float]]:
        """(key, time, value, median, z) of each series' first reading at or after `since` whose robust
        z-score against the SPIKE_WINDOW readings before it (at least half as many) is above SPIKE_Z."""
        position = np.arange(len(self.value)) - self.first
        at = np.flatnonzero((self.time >= since) & (position >= SPIKE_WINDOW // 2))
        if len(at) == 0:
            return []
        median = np.empty(len(at))
        mad = np.empty(len(at))
        full = position[at] >= SPIKE_WINDOW
        if full.any():
            # A copy of each window (its readings are contiguous), partitioned in place: np.median would copy
            # it again, and the windows are most of the job's time.
            window = sliding_window_view(self.value, SPIKE_WINDOW)[at[full] - SPIKE_WINDOW]
            median[full] = _median_in_place(window)
            mad[full] = _median_in_place(np.abs(window - median[full][:, None]))
        if not full.all():  # the few windows at a series' start, shorter than SPIKE_WINDOW
            part = at[~full]
            idx = part[:, None] + np.arange(-SPIKE_WINDOW, 0)[None, :]
            window = np.where(idx >= self.first[part][:, None], self.value[np.maximum(idx, 0)], np.nan)
            median[~full] = np.nanmedian(window, axis=1)
            mad[~full] = np.nanmedian(np.abs(window - median[~full][:, None]), axis=1)
        value = self.value[at]
        z = np.zeros(len(at))
        np.divide(0.6745 * (value - median), mad, out=z, where=mad > 0)  # MAD 0: a flat stretch, not a spike
        hit = np.flatnonzero(np.abs(z) > SPIKE_Z)
        keys, first = np.unique(self.key[at[hit]], return_index=True)  # sorted by time within a key
        return [
            (int(k), int(self.time[at[hit[i]]]), float(value[hit[i]]), float(median[hit[i]]), float(z[hit[i]]))
            for k, i in zip(keys, first, strict=True)
        ]

    def intervals(self) -> dict[int, int]:
        """Each series' usual interval: the median gap between its distinct times."""
        if len(self.time) == 0:
            return {}
        same = self.key[1:] == self.key[:-1]
        gap = (self.time[1:] - self.time[:-1])[same & (self.time[1:] > self.time[:-1])]
        gkey = self.key[1:][same & (self.time[1:] > self.time[:-1])]
        if len(gap) == 0:
            return {}
        gaps = Runs(gkey, gap, gap.astype(float))  # sorted by key then gap
        lo = gaps.starts + (gaps.ends - gaps.starts - 1) // 2
        hi = gaps.starts + (gaps.ends - gaps.starts) // 2
        medians = (gaps.time[lo] + gaps.time[hi]) / 2
        return {int(gaps.key[s]): int(m) for s, m in zip(gaps.starts, medians, strict=True)}

    def last(self) -> dict[int, int]:
        """Each series' last time."""
        return {int(self.key[s]): int(self.time[e - 1]) for s, e in zip(self.starts, self.ends, strict=True)}


def _median_in_place(rows: np.ndarray) -> np.ndarray:
    """Each row's median (the mean of the two middle values of an even count), reordering the rows."""
    k = rows.shape[1]
    middle = sorted({(k - 1) // 2, k // 2})
    rows.partition(middle, axis=1)
    return rows[:, middle].mean(axis=1)


def interval_of(times: Sequence[int]) -> int:
    """A sensor's usual interval: the median gap between its readings (the default without enough of them)."""
    t = np.asarray(times, dtype=np.int64)
    return Runs(np.zeros(len(t), np.int64), t, t.astype(float)).intervals().get(0, DEFAULT_INTERVAL_S)


def silent(last: int, interval: int, now: float) -> Finding | None:
    if now - last > SILENT_INTERVALS * interval:
        return Finding("silent", last, f"no reading for {int(now - last) // 60} min (usually every {interval} s)")
    return None


def _flat(found: tuple[int, int, int, float]) -> Finding:
    _, since, run, value = found
    return Finding("flatline", since, f"{run} readings of {value:g}")


def _spike(found: tuple[int, int, float, float, float]) -> Finding:
    _, t, value, median, z = found
    return Finding("spike", t, f"{value:g} against a median of {median:g} (z = {z:.1f})")


def flatline(series: Sequence[tuple[int, float]]) -> Finding | None:
    """The last FLATLINE_K or more readings equal: the run's first time."""
    found = Runs.of(series).flatlines()
    return _flat(found[0]) if found else None


def spike(series: Sequence[tuple[int, float]], since: float) -> Finding | None:
    """The first reading at or after `since` whose robust z-score against the SPIKE_WINDOW readings before it
    is above SPIKE_Z."""
    found = Runs.of(series).spikes(since)
    return _spike(found[0]) if found else None


def _window(session: Session, sensor_ids: list[int], start: int, end: int) -> np.ndarray:
    """The lookback's readings as one array, read once through the driver's cursor (plain tuples straight into
    numpy: the ORM's rows cost more than every check together). Asked by key, sensor and quantity listed, so
    both stores seek each series in the clustered key (SQLite WITHOUT ROWID) rather than walk the time index
    and look every row up: 4.3 s → 0.8 s for 324,000 readings on SQLite."""
    mark = "%s" if session.info["db"].is_postgres else "?"
    dtype = [("sensor", np.int64), ("quantity", np.int64), ("time", np.int64), ("value", np.float64)]
    if not sensor_ids:
        return np.zeros(0, dtype)
    # Integers from our own tables, written in: a bound list's syntax differs between the two drivers.
    listed = ",".join(str(int(i)) for i in sensor_ids)
    codes = ",".join(str(int(c)) for c in BY_CODE)
    cursor = session.connection().connection.dbapi_connection.cursor()
    try:
        cursor.execute(
            "SELECT sensor_id, quantity, observed_at, value FROM sensing_readings "
            f"WHERE sensor_id IN ({listed}) AND quantity IN ({codes}) "
            f"AND observed_at >= {mark} AND observed_at <= {mark}",
            (start, end),
        )
        return np.fromiter(cursor, dtype=dtype)
    finally:
        cursor.close()


def _last_heard(session: Session, ids: list[int]) -> dict[int, int]:
    """The last reading of sensors not heard in the lookback: per quantity, the key's end (an index seek on
    both stores, where a max over all of a sensor's readings would read a month of them)."""
    mark = "%s" if session.info["db"].is_postgres else "?"
    cursor = session.connection().connection.dbapi_connection.cursor()
    out: dict[int, int] = {}
    try:
        for sid in ids:
            for code in BY_CODE:
                cursor.execute(
                    f"SELECT max(observed_at) FROM sensing_readings WHERE sensor_id = {mark} AND quantity = {mark}",
                    (sid, code),
                )
                (last,) = cursor.fetchone()
                if last is not None:
                    out[sid] = max(out.get(sid, last), last)
    finally:
        cursor.close()
    return out


def find(session: Session, now: float | None = None) -> list[tuple[int, int, Finding]]:
    """(sensor id, quantity code or 0, finding) for every fault found now."""
    now = time.time() if now is None else now
    known = sensors(session)
    rows = _window(session, [s["id"] for s in known], int(now) - LOOKBACK_S, int(now))
    found: list[tuple[int, int, Finding]] = []
    # A series' key: sensor id × 2^16 + quantity code (a SmallInteger).
    series = Runs(rows["sensor"] << 16 | rows["quantity"], rows["time"], rows["value"])
    by_sensor = Runs(rows["sensor"], rows["time"], rows["value"])
    intervals, last_heard = by_sensor.intervals(), by_sensor.last()
    last_heard |= _last_heard(session, [s["id"] for s in known if s["id"] not in last_heard])
    for sensor in known:
        sid = sensor["id"]
        last = last_heard.get(sid)
        if last is None:
            continue  # never heard: registered, not yet installed
        finding = silent(last, intervals.get(sid, DEFAULT_INTERVAL_S), now)
        if finding:
            found.append((sid, 0, finding))
    for hit in series.flatlines():
        if hit[0] & 0xFFFF not in NOT_FLAT:
            found.append((hit[0] >> 16, hit[0] & 0xFFFF, _flat(hit)))
    for hit in series.spikes(now - SPIKE_HOUR_S):
        found.append((hit[0] >> 16, hit[0] & 0xFFFF, _spike(hit)))
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
    if due(db, "sensing.maintenance", context_of(db).settings_of(SensingSettings).maintenance_every_s):
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
