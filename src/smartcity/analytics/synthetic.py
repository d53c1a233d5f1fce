"""A synthetic late-night demand set (phone activity) of any size — made up, never real records.

Its shape: demand gathers around hubs — the real bus stops (weighted by their daily boardings) and subway
stations (by their riders) when those lists are given, else the city profile's district points — with spread
of a few hundred metres; hours follow a night curve (peaks from 22:00 to 02:00, a trough at 04:00–05:00, a day
base), and a share of hubs are nightlife or transfer hubs whose weight grows at night. Rows are drawn with numpy
in chunks and written as Parquet partitioned by day, with cell ids already assigned (bench/bench_analytics.py)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from smartcity.analytics.cells import cell_of
from smartcity.core.text import decode_korean

# Relative activity by local hour: the night's peak after the bars and last trains, the day's base.
HOUR_WEIGHTS = np.array([9, 8, 6, 4, 3, 3, 4, 6, 7, 6, 6, 6, 7, 6, 6, 6, 7, 8, 8, 8, 9, 10, 11, 10], dtype=float)
NIGHT = np.isin(np.arange(24), [22, 23, 0, 1, 2, 3])
SPREAD_M = 350.0
# Bumped whenever the rows drawn for a seed change, so a kept set (bench/bench_analytics.py's cache) is made again.
VERSION = 1


@dataclass(frozen=True)
class Hubs:
    lat: np.ndarray
    lon: np.ndarray
    weight: np.ndarray
    night: np.ndarray  # a nightlife or transfer hub: its weight triples at night


def hubs_from(profile, stops: bytes | None = None, stations: bytes | None = None, seed: int = 0) -> Hubs:
    """Hubs from Seoul's stop list (ARS_ID, X좌표, Y좌표; weighted by boardings when the boardings file's 승차_일평균
    is joined in by the caller) and station list (위도, 경도, 역_승하차_일평균), else the profile's district points."""
    rng = np.random.default_rng(seed)
    lats, lons, weights, night = [], [], [], []
    if stations is not None:
        s = pd.read_csv(io.StringIO(decode_korean(stations).text))
        s.columns = [c.strip() for c in s.columns]
        lats.append(s["위도"].to_numpy(float))
        lons.append(s["경도"].to_numpy(float))
        w = pd.to_numeric(s["역_승하차_일평균"], errors="coerce").fillna(1000).to_numpy(float)
        weights.append(w)
        night.append(w >= np.quantile(w, 0.8))  # the busiest stations are transfer hubs
    if stops is not None:
        s = pd.read_csv(io.StringIO(decode_korean(stops).text), dtype={"ARS_ID": str})
        s.columns = [c.strip() for c in s.columns]
        lats.append(pd.to_numeric(s["Y좌표"], errors="coerce").to_numpy(float))
        lons.append(pd.to_numeric(s["X좌표"], errors="coerce").to_numpy(float))
        weights.append(np.full(len(s), 300.0))
        night.append(rng.random(len(s)) < 0.1)
    if not lats:
        lats = [np.array([d.point[0] for d in profile.districts])]
        lons = [np.array([d.point[1] for d in profile.districts])]
        weights = [np.ones(len(lats[0]))]
        night = [rng.random(len(lats[0])) < 0.3]
    lat, lon, w, n = (np.concatenate(x) for x in (lats, lons, weights, night))
    ok = ~(np.isnan(lat) | np.isnan(lon) | np.isnan(w))
    west, south, east, north = profile.bbox
    ok &= (lat > south) & (lat < north) & (lon > west) & (lon < east)
    return Hubs(lat[ok], lon[ok], w[ok], n[ok])


def generate(
    hubs: Hubs,
    rows: int,
    out: Path,
    *,
    start: date,
    days: int = 7,
    res: int = 8,
    tz_hours: int = 9,
    seed: int = 0,
    chunk_rows: int = 5_000_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write `rows` synthetic phone-activity records over `days` days from `start` to `out/day=…/`."""
    rng = np.random.default_rng(seed)
    day_p = hubs.weight / hubs.weight.sum()
    night_w = hubs.weight * np.where(hubs.night, 3.0, 0.6)
    night_p = night_w / night_w.sum()
    hour_p = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
    run = uuid.uuid4().hex[:8]
    written = 0
    part = 0
    cos = np.cos(np.radians(hubs.lat.mean()))
    while written < rows:
        n = min(chunk_rows, rows - written)
        hour = rng.choice(24, size=n, p=hour_p).astype(np.int8)
        day = rng.integers(0, days, size=n)
        at_night = NIGHT[hour]
        hub = np.where(at_night, rng.choice(len(night_p), size=n, p=night_p), rng.choice(len(day_p), size=n, p=day_p))
        lat = hubs.lat[hub] + rng.normal(0, SPREAD_M / 111_320.0, n)
        lon = hubs.lon[hub] + rng.normal(0, SPREAD_M / 111_320.0 / cos, n)
        seconds = rng.integers(0, 3600, size=n)
        local = (
            np.datetime64(start, "s")
            + day.astype("timedelta64[D]")
            + hour.astype("timedelta64[h]")
            + seconds.astype("timedelta64[s]")
        )
        utc = local - np.timedelta64(tz_hours, "h")
        weekday = (np.datetime64(start, "D") + day.astype("timedelta64[D]")).astype("datetime64[D]").view("int64")
        weekend = ((weekday + 3) % 7) >= 5  # 1970-01-01 was a Thursday: +3 makes Monday 0
        table = pa.table(
            {
                "time": pa.array(utc.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
                "hour": hour,
                "weekend": weekend,
                "lat": lat,
                "lon": lon,
                "cell": cell_of(lat, lon, res),
                "count": np.ones(n, dtype=np.int64),
            }
        )
        for d in np.unique(day):
            folder = out / f"day={(start + timedelta(days=int(d))).isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(pa.array(day == d)), folder / f"synthetic-{run}-{part}.parquet")
            part += 1
        written += n
        if progress:
            progress(n)
    return written
