"""The air-quality jobs at the city's scale (issue 16): 850 registered sensors × 9 quantities, readings every
2 minutes for the maintenance job's lookback, with a few planted faults (a silent sensor, a stuck one, a spike);
the time of one `sensing.maintenance` run and one `sensing.air_alerts` run, on SQLite and PostgreSQL.

    python -m bench air          (BENCH_QUICK=1: 200 sensors)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

STEP_S = 120
QUANTITIES = ("pm10", "pm25", "temperature", "humidity", "noise", "illuminance", "wind", "uv", "vibration")
MEAN = np.array([40, 20, 15, 50, 55, 500, 2, 1, 0.5])


def _fill(db, ids: list[int], now: int, hours: int) -> int:
    """Noisy readings for every sensor and quantity, written straight (not what is measured); the first sensor
    silent for the last hour, the second stuck on its PM10, the third with a PM2.5 spike 20 minutes ago."""
    from smartcity.sensing.quantities import BY_NAME

    codes = [BY_NAME[q].code for q in QUANTITIES]
    times = np.arange(now - hours * 3600 + STEP_S, now + 1, STEP_S, dtype=np.int64)
    rng = np.random.default_rng(16)
    n = 0
    with db.engine.begin() as conn:
        raw = conn.connection.driver_connection
        for k, sensor in enumerate(ids):
            rows = []
            for q, code in enumerate(codes):
                values = np.round(np.abs(rng.normal(MEAN[q], MEAN[q] * 0.1 + 0.5, len(times))), 1)
                upto = len(times) - 30 if k == 0 else len(times)
                if k == 1 and code == BY_NAME["pm10"].code:
                    values[-20:] = 33.0
                if k == 2 and code == BY_NAME["pm25"].code:
                    values[-10] = 400.0
                rows.extend(
                    zip([sensor] * upto, [code] * upto, times[:upto].tolist(), values[:upto].tolist(), strict=True)
                )
            if db.is_postgres:
                with raw.cursor().copy(
                    "COPY sensing_readings (sensor_id, quantity, observed_at, value) FROM STDIN"
                ) as cp:
                    for row in rows:
                        cp.write_row(row)
            else:
                raw.executemany(
                    "INSERT INTO sensing_readings (sensor_id, quantity, observed_at, value) VALUES (?, ?, ?, ?)", rows
                )
            n += len(rows)
    return n


def _measure(url: str, quick: bool) -> dict:
    from sqlalchemy import text

    from smartcity.core.city import load_profile
    from smartcity.core.db import Database
    from smartcity.core.seed import seed_profile
    from smartcity.sensing import air, maintenance, service
    from tests import synthetic

    db = Database(url)
    try:
        with db.session() as s:
            seed_profile(s, load_profile("seoul"))
        service.import_sensors(db, synthetic.sdot(n=200 if quick else 850, seed=16).data)
        with db.session() as s:
            ids = sorted(row["id"] for row in service.sensors(s))
        now = int(time.time()) // STEP_S * STEP_S
        if db.is_postgres:
            from datetime import date

            from smartcity.sensing.partitions import ensure_months

            with db.engine.begin() as conn:
                ensure_months(conn, date.fromtimestamp(now - 86400), date.fromtimestamp(now))
        t = time.perf_counter()
        rows = _fill(db, ids, now, hours=6)
        fill_s = time.perf_counter() - t
        if db.is_postgres:
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE sensing_readings"))
        runs, cpu = [], []
        for _ in range(3):
            t, c = time.perf_counter(), time.process_time()
            found = maintenance.run(db, now=now)
            runs.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        with db.session() as s:
            kinds = sorted({(i["kind"]) for i in maintenance.issues(s)})
        t = time.perf_counter()
        air.run_alerts(db, now=now)
        alerts_s = time.perf_counter() - t
    finally:
        db.dispose()
    return {
        "sensors": len(ids),
        "quantities": len(QUANTITIES),
        "readings": rows,
        "fill_seconds": round(fill_s, 1),
        "maintenance_seconds": [round(r, 3) for r in runs],
        "maintenance_cpu_seconds": [round(c, 3) for c in cpu],  # this process's share (the machine is shared)
        "load_average": round(os.getloadavg()[0], 1),
        "maintenance_findings": found,
        "maintenance_kinds": kinds,
        "air_alerts_seconds": round(alerts_s, 3),
    }


def run(quick: bool = False) -> dict:
    from smartcity.core.db import migrate
    from tests.servers import PostgresServer

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'air.db'}"
        migrate(url)
        out["sqlite"] = _measure(url, quick)
        pg = PostgresServer().start()
        try:
            pg.execute("CREATE DATABASE air")
            try:
                migrate(pg.url("air"))
            except Exception as exc:  # noqa: BLE001 - reported: the other store's figures still stand
                out["postgresql"] = {"error": f"the store did not migrate: {type(exc).__name__}: {str(exc)[:200]}"}
            else:
                out["postgresql"] = _measure(pg.url("air"), quick)
        finally:
            pg.stop()
    return out
