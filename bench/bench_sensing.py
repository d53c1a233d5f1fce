"""Sensing's two performance goals (issue 16), on SQLite and, where the store migrates, PostgreSQL:

- readings stored per second through MQTT (goal ≥ 20,000/s): a real Mosquitto, the platform's app with its
  sensing subscription (core's MQTT client → `ReadingsOverMqtt` → validation → the intake's `BatchQueue` → one
  transaction per batch through the batch store), 850 registered sensors; a publisher process sends each
  sensor's 2-minute period as one message (9 quantities, the S-DoT shape) at QoS 1. Measured from the first
  publish to the last reading stored and acknowledged.
- the temporal query: one sensor, one quantity, 30 days at 2-minute resolution (21,600 readings) through the
  service's read (`rollup.series`), p99 < 50 ms. A year of 850 sensors × 1 quantity at 2 minutes is 223 M rows;
  we store a documented fraction instead — a whole year for `sensors` sensors — at two table sizes, and show
  with the store's plan that the query is a range scan of the primary key (sensor, quantity, time), whose cost
  depends on the rows it returns, not on the table's size (p99 at both sizes side by side).

    python -m bench sensing          (BENCH_QUICK=1 for a smoke run)
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from datetime import date
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


def _plan(db, end: int) -> str:
    sql = (
        "SELECT observed_at, value FROM sensing_readings WHERE sensor_id = 3 AND quantity = 1 "
        f"AND observed_at >= {end - 30 * 86400} AND observed_at < {end} ORDER BY observed_at"
    )
    with db.engine.connect() as conn:
        if db.is_postgres:
            rows = conn.execute(text("EXPLAIN " + sql)).scalars().all()
        else:
            rows = [r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    return " | ".join(r.strip() for r in rows)


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
    latencies.sort()
    cpu.sort()
    return {
        "queries": n,
        "points_per_answer": sorted(sizes),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        # This process's CPU only (on a shared, loaded machine the wall clock also counts others' work).
        "cpu_p50_ms": round(cpu[len(cpu) // 2] * 1000, 2),
        "cpu_p99_ms": round(cpu[int(len(cpu) * 0.99)] * 1000, 2),
    }


def _temporal(url: str, quick: bool) -> dict:
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


def run(quick: bool = False) -> dict:
    from smartcity.core.db import migrate
    from tests.servers import PostgresServer

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'mqtt.db'}"
        migrate(url)
        out["sqlite"] = {"mqtt": _mqtt(url, Path(tmp), quick)}
        url = f"sqlite:///{Path(tmp) / 'temporal.db'}"
        migrate(url)
        out["sqlite"]["temporal"] = _temporal(url, quick)
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
