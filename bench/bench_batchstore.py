"""The raw-store ceiling: positions through `core.batchstore` alone (no engine, no HTTP), at 100,000 devices, in
batches of 1,000 and 5,000, on SQLite and on PostgreSQL; each also with one device-state row updated per
position's device (`update_rows`), as the intake does when a device's state changes.

Rows arrive as the intake's columns (numpy arrays, NaN = absent) for random devices, so a batch writes all over
the (device, fix time) key, as a city's devices do. Each batch is one transaction, committed (durable in WAL
with synchronous=NORMAL on SQLite; fsync'd by PostgreSQL's commit).

    python -m bench batchstore         (BENCH_QUICK=1 for a smoke run)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

DEVICES = 100_000
T0 = 1_780_000_000_000  # epoch ms: a day in 2026


def _registry(db, n_devices: int) -> None:
    """Persons, devices and their state rows, written straight (the registry is not what is measured)."""
    now = "2026-01-01 00:00:00.000000" if not db.is_postgres else "2026-01-01T00:00:00+00:00"
    ids = list(range(1, n_devices + 1))
    with db.engine.begin() as conn:
        raw = conn.connection.driver_connection
        cur = raw.cursor()
        mark = "%s" if db.is_postgres else "?"
        t = "true" if db.is_postgres else "1"
        cur.executemany(
            f"INSERT INTO safety_persons (id, kind, name, notes, active, created_at) "
            f"VALUES ({mark}, 'child', 'p', '', {t}, {mark})",
            [(i, now) for i in ids],
        )
        cur.executemany(
            f"INSERT INTO safety_devices (id, identifier, protocol, name, person_id, active, created_at) "
            f"VALUES ({mark}, {mark}, 'osmand', '', {mark}, {t}, {mark})",
            [(i, f"dev-{i}", i, now) for i in ids],
        )
        cur.executemany(
            f"INSERT INTO safety_device_state (device_id, person_id, version, zones, flags) "
            f"VALUES ({mark}, {mark}, 0, '{{}}', '{{}}')",
            [(i, i) for i in ids],
        )


def _columns(rng: np.random.Generator, start: int, n: int, n_devices: int) -> dict[str, np.ndarray]:
    device = rng.integers(1, n_devices + 1, n).astype(np.int64)
    fix = T0 + start + np.arange(n, dtype=np.int64)  # unique: no duplicates, so the fast path is measured
    nan = np.full(n, np.nan)
    return {
        "device_id": device,
        "person_id": device,
        "fix_time": fix,
        "received_at": fix + 500,
        "lat": rng.uniform(37.48, 37.60, n),
        "lon": rng.uniform(126.90, 127.10, n),
        "speed": rng.uniform(0, 2, n),
        "bearing": nan,
        "altitude": nan,
        "accuracy": rng.uniform(5, 30, n),
        "battery": rng.uniform(20, 100, n),
        "alarm": np.full(n, None, dtype=object),
        "protocol": np.full(n, "osmand", dtype=object),
        "outside_city": np.zeros(n, dtype=bool),
        "attributes": np.full(n, None, dtype=object),
        "valid": np.ones(n, dtype=bool),
    }


def _state_rows(cols: dict[str, np.ndarray]) -> list[dict]:
    """One state row per device of the batch (its last fix in the batch), as the intake writes them."""
    device = cols["device_id"]
    _, last = np.unique(device[::-1], return_index=True)
    last = len(device) - 1 - last
    zones = '{"1": {"confirmed": "out", "candidate": null, "agreeing": 0, "since": null}}'
    return [
        {
            "device_id": int(device[i]),
            "version": 1,
            "fix_time": int(cols["fix_time"][i]),
            "received_at": int(cols["received_at"][i]),
            "lat": float(cols["lat"][i]),
            "lon": float(cols["lon"][i]),
            "speed": float(cols["speed"][i]),
            "accuracy": float(cols["accuracy"][i]),
            "battery": float(cols["battery"][i]),
            "district_code": "11230",
            "zones": zones,
            "flags": "{}",
        }
        for i in last.tolist()
    ]


def _measure(db, batch: int, total: int, with_state: bool, seed: int, offset: int) -> dict:
    from smartcity.core.batchstore import batch_store

    store = batch_store(db)
    rng = np.random.default_rng(seed)
    batches = [_columns(rng, offset + i * batch, batch, DEVICES) for i in range(total // batch)]
    stored = states = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for cols in batches:
        with db.engine.begin() as conn:
            store.prepare(conn)
            stored += int(store.insert_new(conn, "safety_positions", cols, ("device_id", "fix_time")).sum())
            if with_state:
                rows = _state_rows(cols)
                states += store.update_rows(conn, "safety_device_state", "device_id", rows)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    out = {
        "batch": batch,
        "positions": stored,
        "positions_per_s": round(stored / wall),
        "client_cpu_us_per_position": round(cpu / stored * 1e6, 1),
    }
    if with_state:
        out["state_rows"] = states
    return out


def _run_store(db, quick: bool) -> dict:
    from smartcity.core.db import migrate

    migrate(db.url)
    _registry(db, DEVICES)
    total = 20_000 if quick else 200_000
    results = {}
    offset = 0
    for with_state in (False, True):
        for batch in (1000, 5000):
            key = f"{'positions_and_state' if with_state else 'positions'}_batch_{batch}"
            results[key] = _measure(db, batch, total, with_state, seed=batch + with_state, offset=offset)
            offset += total
            print(f"   {db.engine.dialect.name} {key}: {results[key]}", flush=True)
    return results


def run(quick: bool = False) -> dict:
    from smartcity.core.db import Database
    from tests.servers import PostgresServer

    out = {"devices": DEVICES}
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            out["sqlite"] = _run_store(db, quick)
        finally:
            db.dispose()
    pg = PostgresServer().start()
    try:
        pg.execute("CREATE DATABASE bench")
        db = Database(pg.url("bench"))
        try:
            out["postgresql"] = _run_store(db, quick)
        finally:
            db.dispose()
    finally:
        pg.stop()
    return out


if __name__ == "__main__":
    import json
    import os

    print(json.dumps(run(quick=os.environ.get("BENCH_QUICK") == "1"), indent=2))
