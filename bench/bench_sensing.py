"""Sensing's two performance goals (issue 16), on SQLite and, where the store migrates, PostgreSQL:

- readings stored per second through MQTT (goal ≥ 20,000/s): a real Mosquitto, the platform's app with its
  sensing subscription (core's MQTT client → `ReadingsOverMqtt` → validation → the intake's `BatchQueue` → one
  transaction per batch through the batch store), 850 registered sensors; a publisher process sends each
  sensor's 2-minute period as one message (9 quantities, the S-DoT shape) at QoS 1. Measured from the first
  publish to the last reading stored and acknowledged.
- the temporal query: one sensor, one quantity, 30 days at 2-minute resolution (21,600 readings) through the
  service's read (`rollup.series`, which the NGSI-LD temporal API, the series API and the air page use), p99 <
  50 ms with a year of data for all 850 sensors: on SQLite the whole year (223 M readings of PM2.5 and their
  hourly/daily roll-ups, ~9 GB) in a store cached outside the repository (`CACHE`, built once when absent: about
  25 minutes on 2 loaded cores), read cold (evicted from the OS cache, new connection) and warm over 400 random
  windows; the daily and hourly roll-ups over 30 days; the NGSI-LD aggregated endpoint and the air sensor page
  over HTTP in-process. On PostgreSQL a year for a fraction of the sensors at two table sizes (`_temporal`).

    python -m bench sensing          (BENCH_QUICK=1 for a smoke run)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import date
from itertools import repeat
from pathlib import Path

import numpy as np
from sqlalchemy import text

YEAR_S = 365 * 86400
STEP_S = 120
QUANTITIES = ("pm10", "pm25", "temperature", "humidity", "noise", "illuminance", "wind", "uv", "vibration")
HIGH = np.array([150, 80, 35, 100, 90, 50_000, 20, 10, 10], dtype=float)


def _publish(port: int, serials: list[str], periods: int, start: int, done) -> None:
    """The publisher (its own process): every sensor's period as one message, at QoS 1."""
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    rng = np.random.default_rng(16)
    last = None
    for p in range(periods):
        when = start + p * STEP_S
        for serial in serials:
            values = rng.uniform(0.1, 1, len(QUANTITIES)) * HIGH  # within each quantity's possible range
            payload = [
                {"quantity": q, "time": when, "value": round(float(v), 1)}
                for q, v in zip(QUANTITIES, values, strict=True)
            ]
            last = client.publish(f"city/sensors/{serial}/readings", json.dumps(payload), qos=1)
    if last is not None:
        last.wait_for_publish(120)
    done.set()
    client.disconnect()
    client.loop_stop()


def _mqtt(url: str, tmp: Path, quick: bool) -> dict:
    from fastapi.testclient import TestClient

    from smartcity.app import create_app
    from smartcity.core.city import load_profile
    from smartcity.core.db import Database
    from smartcity.core.seed import seed_profile
    from smartcity.sensing import service
    from tests import synthetic
    from tests.conftest import make_settings
    from tests.servers import MosquittoServer

    db = Database(url)
    with db.session() as s:
        seed_profile(s, load_profile("seoul"))
    planted = synthetic.sdot(n=850, seed=16)
    service.import_sensors(db, planted.data)
    with db.session() as s:
        serials = [row["serial"] for row in service.sensors(s)]
    periods = 3 if quick else 12
    expected = len(serials) * periods * len(QUANTITIES)
    broker = MosquittoServer().start()
    try:
        settings = make_settings(url, tmp, run_jobs=False, sensing_mqtt_url=f"mqtt://127.0.0.1:{broker.port}")
        with TestClient(create_app(settings, db)) as client:
            [mqtt] = client.app.state.mqtt_clients.values()
            mqtt.connected.wait(10)
            stats = client.app.state.sensing_mqtt.stats
            done = multiprocessing.Event()
            start = int(time.time()) - 3 * 3600
            sender = multiprocessing.Process(target=_publish, args=(broker.port, serials, periods, start, done))
            t0 = time.perf_counter()
            sender.start()
            while sum(stats.values()) < expected and time.perf_counter() - t0 < 300:
                time.sleep(0.01)
            elapsed = time.perf_counter() - t0
            sender.join(30)
            got = dict(stats)
    finally:
        broker.stop()
        db.dispose()
    return {
        "sensors": len(serials),
        "messages": len(serials) * periods,
        "readings_per_message": len(QUANTITIES),
        "readings": expected,
        "stored": got["stored"],
        "refused": got["refused"],
        "seconds": round(elapsed, 2),
        "readings_per_second": round(got["stored"] / elapsed),
        "goal_per_second": 20_000,
    }


def _fill(db, sensors: range, quantity: int, end: int) -> int:
    """A year of 2-minute readings for each sensor, written straight (SQLite executemany in key order;
    PostgreSQL COPY): the filling is not what is measured."""
    times = np.arange(end - YEAR_S, end, STEP_S, dtype=np.int64)
    rng = np.random.default_rng(7)
    n = 0
    with db.engine.begin() as conn:
        raw = conn.connection.driver_connection
        for sensor in sensors:
            values = np.round(rng.uniform(0, 80, len(times)), 1)
            if db.is_postgres:
                with raw.cursor().copy(
                    "COPY sensing_readings (sensor_id, quantity, observed_at, value) FROM STDIN"
                ) as cp:
                    for t, v in zip(times.tolist(), values.tolist(), strict=True):
                        cp.write_row((sensor, quantity, t, v))
            else:
                raw.executemany(
                    "INSERT INTO sensing_readings (sensor_id, quantity, observed_at, value) VALUES (?, ?, ?, ?)",
                    zip([sensor] * len(times), [quantity] * len(times), times.tolist(), values.tolist(), strict=True),
                )
            n += len(times)
    return n


def _plan(db, end: int, sensor: int = 3, quantity: int = 1) -> str:
    sql = (
        f"SELECT observed_at, value FROM sensing_readings WHERE sensor_id = {sensor} AND quantity = {quantity} "
        f"AND observed_at >= {end - 30 * 86400} AND observed_at < {end} ORDER BY observed_at"
    )
    with db.engine.connect() as conn:
        if db.is_postgres:
            rows = conn.execute(text("EXPLAIN " + sql)).scalars().all()
        else:
            rows = [r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    return " | ".join(r.strip() for r in rows)


def _percentiles(latencies: list[float], cpu: list[float]) -> dict:
    latencies, cpu = sorted(latencies), sorted(cpu)
    return {
        "queries": len(latencies),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        # This process's CPU only (on a shared, loaded machine the wall clock also counts others' work).
        "cpu_p50_ms": round(cpu[len(cpu) // 2] * 1000, 2),
        "cpu_p99_ms": round(cpu[int(len(cpu) * 0.99)] * 1000, 2),
    }


def _queries(db, sensors: int, end: int, n: int) -> dict:
    from smartcity.sensing.rollup import series

    rng = np.random.default_rng(3)
    latencies, cpu, sizes = [], [], set()
    with db.session() as s:
        for _ in range(n):
            sensor = int(rng.integers(1, sensors + 1))
            stop = end - int(rng.integers(0, YEAR_S - 31 * 86400)) // STEP_S * STEP_S
            c, t = time.process_time(), time.perf_counter()
            points = series(s, sensor, 1, 0, stop - 30 * 86400, stop)
            latencies.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            sizes.add(len(points))
    return {"points_per_answer": sorted(sizes), **_percentiles(latencies, cpu)}


def _temporal(url: str, quick: bool) -> dict:
    """PostgreSQL: a year for a fraction of the sensors at two table sizes (the full year is measured on SQLite,
    `_year`)."""
    from smartcity.core.db import Database

    db = Database(url)
    end = (int(time.time()) // STEP_S) * STEP_S
    steps = (2, 6) if quick else (8, 24)
    out: dict = {"goal_p99_ms": 50, "year_rows_all_sensors": 850 * YEAR_S // STEP_S, "by_table_size": []}
    try:
        filled = 0
        for sensors in steps:
            if db.is_postgres:  # the months of the year, as a year of the roll-up job would have made them
                from smartcity.sensing.partitions import ensure_months

                with db.engine.begin() as conn:
                    ensure_months(conn, date.fromtimestamp(end - YEAR_S - 86400), date.fromtimestamp(end))
            t = time.perf_counter()
            filled += _fill(db, range(filled // (YEAR_S // STEP_S) + 1, sensors + 1), 1, end)
            fill_s = time.perf_counter() - t
            if db.is_postgres:
                with db.engine.begin() as conn:
                    conn.execute(text("ANALYZE sensing_readings"))
            result = _queries(db, sensors, end, 200 if quick else 400)
            out["by_table_size"].append(
                {"sensors_with_a_year": sensors, "rows": filled, "fill_seconds": round(fill_s, 1), **result}
            )
        out["fraction_of_the_year_of_850"] = round(filled / out["year_rows_all_sensors"], 4)
        out["plan"] = _plan(db, end)
    finally:
        db.dispose()
    return out


# The full year (issue 16's goal at its size): 850 sensors × one quantity (PM2.5, the air page's default) ×
# a year at 2 minutes, in a SQLite store kept outside the repository and reused by later runs.
CACHE = Path(os.environ.get("SMARTCITY_BENCH_CACHE", "/work/bench-cache")) / "sensing-year"
YEAR_FORMAT = 1  # bump when what the cache holds changes: an older cache is then built again
YEAR_QUANTITY = 2  # pm25
HOURS_PER_YEAR = YEAR_S // 3600


def _log(message: str) -> None:
    print(f"   [sensing-year {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _build_year(path: Path, sensors: int) -> dict:
    """The store: the migrations' schema, the sensors imported as assets (the S-DoT list), then a year of
    readings and their hourly/daily roll-ups written straight with the driver's executemany in key order (the
    readings' secondary index dropped and made again afterwards with its own DDL): the same rows the intake
    and the roll-up job store, the fastest honest way in. Built under a temporary name, renamed when whole."""
    import sqlite3

    from smartcity.core.city import load_profile
    from smartcity.core.db import Database, migrate
    from smartcity.core.seed import seed_profile
    from smartcity.sensing import service
    from smartcity.sensing.rollup import _day_start
    from tests import synthetic

    part = path.with_name(path.name + ".part")
    for leftover in (part, Path(f"{part}-wal"), Path(f"{part}-shm")):
        leftover.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{part}"
    started = time.perf_counter()
    migrate(url)
    profile = load_profile("seoul")
    db = Database(url)
    try:
        with db.session() as s:
            seed_profile(s, load_profile("seoul"))
        service.import_sensors(db, synthetic.sdot(n=850, seed=16).data)
        with db.session() as s:
            ids = sorted(row["id"] for row in service.sensors(s))[:sensors]
    finally:
        db.dispose()
    # The year ends at the start of the city's day the cache is built: hours and days fall whole inside it.
    end = _day_start(int(time.time()), profile.tz)
    times = np.arange(end - YEAR_S, end, STEP_S, dtype=np.int64)
    hours = times[:: 3600 // STEP_S]
    day_of_hour = np.array([_day_start(int(h), profile.tz) for h in hours])
    days, first_hour = np.unique(day_of_hour, return_index=True)
    con = sqlite3.connect(part, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")  # the build only: a half-built store is thrown away, never used
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-400000")
    index_sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'ix_sensing_readings_observed_at'").fetchone()
    con.execute("DROP INDEX ix_sensing_readings_observed_at")
    rng = np.random.default_rng(16)
    t0 = time.perf_counter()
    _log(
        f"building the year store at {path} ({len(ids)} sensors × {len(times):,} readings = "
        f"{len(ids) * len(times):,} rows); about 15–25 minutes on 2 loaded cores, once"
    )
    per_sensor = len(times)
    time_list = times.tolist()
    insert_reading = "INSERT INTO sensing_readings (sensor_id, quantity, observed_at, value) VALUES (?, ?, ?, ?)"
    insert_rollup = (
        "INSERT INTO sensing_rollups (sensor_id, quantity, resolution, start, count, min, max, sum) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    for i, sensor in enumerate(ids, 1):
        # A day's shape (higher by night and in the morning) plus noise: PM2.5 within its possible range.
        hour_of_day = (times // 3600 + 9) % 24
        values = np.round(20 + 10 * np.cos(hour_of_day / 24 * 2 * np.pi) + rng.gamma(2.0, 6.0, len(times)), 1)
        con.execute("BEGIN")
        con.executemany(
            insert_reading,
            zip(repeat(sensor), repeat(YEAR_QUANTITY), time_list, values.tolist()),
        )
        by_hour = values.reshape(HOURS_PER_YEAR, 3600 // STEP_S)
        h_count = np.full(HOURS_PER_YEAR, 3600 // STEP_S)
        h_min, h_max, h_sum = by_hour.min(axis=1), by_hour.max(axis=1), by_hour.sum(axis=1)
        con.executemany(
            insert_rollup,
            zip(
                repeat(sensor),
                repeat(YEAR_QUANTITY),
                repeat(3600),
                hours.tolist(),
                h_count.tolist(),
                h_min.tolist(),
                h_max.tolist(),
                h_sum.tolist(),
            ),
        )
        con.executemany(
            insert_rollup,
            zip(
                repeat(sensor),
                repeat(YEAR_QUANTITY),
                repeat(86400),
                days.tolist(),
                np.add.reduceat(h_count, first_hour).tolist(),
                np.minimum.reduceat(h_min, first_hour).tolist(),
                np.maximum.reduceat(h_max, first_hour).tolist(),
                np.add.reduceat(h_sum, first_hour).tolist(),
            ),
        )
        con.execute("COMMIT")
        if i % 50 == 0 or i == len(ids):
            rate = i * per_sensor / (time.perf_counter() - t0)
            left = (len(ids) - i) * per_sensor / rate / 60
            _log(f"{i}/{len(ids)} sensors, {rate:,.0f} rows/s, about {left:.1f} min left")
    fill_s = time.perf_counter() - t0
    t = time.perf_counter()
    _log("making the readings' observed_at index again (an external sort)")
    con.execute("PRAGMA threads=2")
    con.execute(index_sql[0])
    index_s = time.perf_counter() - t
    # The roll-ups were computed beside the rows: checked against the store's own aggregate of what it holds.
    for sensor in (ids[0], ids[-1]):
        day = int(days[len(days) // 2])
        got = con.execute(
            "SELECT count, min, max, sum FROM sensing_rollups WHERE sensor_id = ? AND quantity = ? "
            "AND resolution = 86400 AND start = ?",
            (sensor, YEAR_QUANTITY, day),
        ).fetchone()
        want = con.execute(
            "SELECT count(*), min(value), max(value), sum(value) FROM sensing_readings WHERE sensor_id = ? "
            "AND quantity = ? AND observed_at >= ? AND observed_at < ?",
            (sensor, YEAR_QUANTITY, day, day + 86400),
        ).fetchone()
        if got[:3] != want[:3] or abs(got[3] - want[3]) > 1e-6 * abs(want[3]):
            raise RuntimeError(f"the year store's roll-up of sensor {sensor} is not its readings': {got} != {want}")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    part.rename(path)
    meta = {
        "format": YEAR_FORMAT,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "end": end,
        "sensor_ids": ids,
        "quantities": 1,
        "quantity": "pm25",
        "readings": len(ids) * per_sensor,
        "hourly_rollups": len(ids) * HOURS_PER_YEAR,
        "daily_rollups": len(ids) * len(days),
        "fill_method": (
            "migrations' schema; sensors imported as assets; readings and roll-ups written with sqlite3 "
            "executemany in key order, one transaction per sensor (journal off for the build), the observed_at "
            "index dropped and made again with its DDL"
        ),
        "fill_seconds": round(fill_s, 1),
        "index_seconds": round(index_s, 1),
        "build_seconds": round(time.perf_counter() - started, 1),
        "load_average_after_build": [round(x, 2) for x in os.getloadavg()],
    }
    return meta


def _year_store(quick: bool, tmp: Path) -> tuple[Path, dict]:
    """The year store: the cached one when whole and of this format, else built (quick runs: a small one)."""
    if quick:
        path = tmp / "year.db"
        return path, _build_year(path, 6)
    path, meta_path = CACHE / "year.db", CACHE / "year.json"
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == YEAR_FORMAT:
            _log(f"reusing {path} (built {meta['built_at']})")
            return path, {**meta, "reused": True}
    meta = _build_year(path, 850)
    meta_path.write_text(json.dumps(meta, indent=2))
    return path, {**meta, "reused": False}


def _drop_from_os_cache(path: Path) -> None:
    """Evict the store's files from the kernel's page cache (the next read goes to the disk)."""
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            fd = os.open(name, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _random_page_reads(path: Path, n: int) -> dict:
    """Cold reads of single 4 KiB pages at random places in the store: what a 30-day range would cost per page
    if its pages were scattered (the intake's time-ordered writes interleave the sensors' pages; the bench's
    key-ordered fill keeps each sensor's year contiguous)."""
    rng = np.random.default_rng(9)
    size = path.stat().st_size
    _drop_from_os_cache(path)
    latencies = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in rng.integers(0, size // 4096, n):
            t = time.perf_counter()
            os.pread(fd, 4096, int(offset) * 4096)
            latencies.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    latencies.sort()
    return {
        "pages": n,
        "p50_ms": round(latencies[n // 2] * 1000, 3),
        "p99_ms": round(latencies[int(n * 0.99)] * 1000, 3),
        "mean_ms": round(sum(latencies) / n * 1000, 3),
    }


def _windows(meta: dict, n: int, seed: int) -> list[tuple[int, int, int]]:
    """n random (sensor, start, end) 30-day windows inside the year."""
    rng = np.random.default_rng(seed)
    ids, end = meta["sensor_ids"], meta["end"]
    out = []
    for _ in range(n):
        stop = end - int(rng.integers(0, YEAR_S - 31 * 86400)) // STEP_S * STEP_S
        out.append((int(ids[rng.integers(0, len(ids))]), stop - 30 * 86400, stop))
    return out


def _series_timed(db, path: Path, windows, resolution: int, cold: bool) -> dict:
    """`rollup.series` (what the NGSI-LD temporal API, the series API and the air page read through) over each
    window; cold: the store's files evicted from the OS cache and a new connection (empty SQLite cache) first."""
    from smartcity.sensing.rollup import series

    latencies, cpu, sizes = [], [], set()
    load = os.getloadavg()[0]
    for sensor, start, stop in windows:
        if cold:
            db.dispose()
            _drop_from_os_cache(path)
        with db.session() as s:
            s.execute(text("SELECT 1"))  # the connection (and its schema) made before the clock starts
            c, t = time.process_time(), time.perf_counter()
            points = series(s, sensor, YEAR_QUANTITY, resolution, start, stop)
            latencies.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        sizes.add(len(points))
    return {
        "points_per_answer": sorted(sizes),
        **_percentiles(latencies, cpu),
        "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def _http_timed(client, urls: list[str]) -> dict:
    """Each request's wall clock and this process's CPU (the app serves in-process); the first request, which
    also pays the route's first use (imports, contexts, templates), is reported apart."""
    c, t = time.process_time(), time.perf_counter()
    client.get(urls[0]).raise_for_status()
    first = {
        "first_ms": round((time.perf_counter() - t) * 1000, 1),
        "first_cpu_ms": round((time.process_time() - c) * 1000, 1),
    }
    latencies, cpu = [], []
    for url in urls:
        c, t = time.process_time(), time.perf_counter()
        r = client.get(url)
        latencies.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        r.raise_for_status()
    return {
        **_percentiles(latencies, cpu),
        **first,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "bytes": len(r.content),
    }


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _year(quick: bool, tmp: Path) -> dict:
    """The goal at its size on SQLite: the raw 30-day series cold and warm, the daily (air page) and hourly
    (NGSI-LD aggregatedValues) roll-ups, over random sensors and windows of the year."""
    from fastapi.testclient import TestClient

    from smartcity.app import create_app
    from smartcity.core.db import Database
    from tests.conftest import make_settings

    path, meta = _year_store(quick, tmp)
    n = 100 if quick else 400
    windows = _windows(meta, n, seed=3)
    url = f"sqlite:///{path}"
    db = Database(url)
    out: dict = {
        "goal_p99_ms": 50,
        "store": {k: v for k, v in meta.items() if k != "sensor_ids"} | {"sensors": len(meta["sensor_ids"])},
        "store_bytes": sum(p.stat().st_size for p in path.parent.glob(path.name + "*")),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        out["plan"] = _plan(db, meta["end"], meta["sensor_ids"][-1], YEAR_QUANTITY)
        out["raw_30_days_cold"] = _series_timed(db, path, windows, 0, cold=True)
        out["raw_30_days_warm"] = _series_timed(db, path, windows, 0, cold=False)
        out["random_page_read_cold"] = _random_page_reads(path, n)
        out["daily_30_days_cold"] = _series_timed(db, path, _windows(meta, n, seed=4), 86400, cold=True)
        out["hourly_30_days_cold"] = _series_timed(db, path, _windows(meta, n, seed=5), 3600, cold=True)
        db.dispose()
        settings = make_settings(url, tmp, run_jobs=False)
        with TestClient(create_app(settings, db)) as client:
            with db.session() as s:
                from smartcity.sensing import service

                serial_of = {row["id"]: row["serial"] for row in service.sensors(s)}
            ngsi = [
                f"/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:AirQualityObserved:{serial_of[sensor]}?timerel=between"
                f"&timeAt={_iso(start)}&endTimeAt={_iso(stop)}&attrs=pm25&options=aggregatedValues"
                "&aggrMethods=avg,min,max&aggrPeriodDuration=PT1H"
                for sensor, start, stop in _windows(meta, n // 4, seed=6)
            ]
            _drop_from_os_cache(path)
            out["ngsi_hourly_aggregates_30_days_http"] = _http_timed(client, ngsi)
            # The page reads the 30 days up to now: the year ends when the cache was built.
            pages = [f"/air/sensors/{serial_of[sensor]}?quantity=pm25" for sensor, _, _ in _windows(meta, n // 4, 7)]
            _drop_from_os_cache(path)
            out["air_sensor_page_http"] = _http_timed(client, pages) | {
                "days_of_the_year_before_now": round((time.time() - meta["end"]) / 86400, 1)
            }
    finally:
        db.dispose()
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def run(quick: bool = False) -> dict:
    from smartcity.core.db import migrate
    from tests.servers import PostgresServer

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'mqtt.db'}"
        migrate(url)
        out["sqlite"] = {"mqtt": _mqtt(url, Path(tmp), quick)}
        out["sqlite"]["temporal_year"] = _year(quick, Path(tmp))
        pg = PostgresServer().start()
        try:
            pg.execute("CREATE DATABASE mqtt")
            pg.execute("CREATE DATABASE temporal")
            try:
                migrate(pg.url("mqtt"))
                migrate(pg.url("temporal"))
            except Exception as exc:  # noqa: BLE001 - reported: the other store's figures still stand
                out["postgresql"] = {"error": f"the store did not migrate: {type(exc).__name__}: {str(exc)[:200]}"}
            else:
                out["postgresql"] = {"mqtt": _mqtt(pg.url("mqtt"), Path(tmp), quick)}
                out["postgresql"]["temporal"] = _temporal(pg.url("temporal"), quick)
        finally:
            pg.stop()
    return out
