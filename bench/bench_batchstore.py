"""The raw-store ceiling: positions through `core.batchstore` alone (no engine, no HTTP), at 100,000 devices, in
batches of 1,000 and 5,000, on SQLite and on PostgreSQL; each also with one device-state row updated per
position's device (`update_rows`), as the intake does when a device's state changes.

Then the same at 0, 1M and 3M rows of history already stored (batches of 5,000, positions only): the keyed
table written directly, and on SQLite also through the staging table (`SQLiteBatchStore(staging=True)`) with its
mover running meanwhile — "sustained" counts the time to move what was still staged at the end. And (SQLite,
`run_sustained`, a fresh database per depth) 30 s of staged intake with the mover's rounds (at 1x and 3x the
devices staged): the intake's commit times while a round moves, the chunks, the staging table's size, and the
rate once what stayed staged is drained.

Rows arrive as the intake's columns (numpy arrays, NaN = absent) for random devices, so a batch writes all over
the (device, fix time) key, as a city's devices do. Each batch is one transaction, committed (durable in WAL
with synchronous=NORMAL on SQLite; fsync'd by PostgreSQL's commit).

    python -m bench batchstore         (BENCH_QUICK=1 for a smoke run)
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

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


def _history(db, rows: int) -> None:
    """Fill the positions table up to `rows` rows of older history: layer after layer, one older fix for every
    device per layer, each chunk written in key order (so filling is quick)."""
    from smartcity.core.batchstore import batch_store

    with db.engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM safety_positions WHERE fix_time < :t"), {"t": T0}).scalar()
    store = batch_store(db)
    step = 200_000
    rng = np.random.default_rng(7)
    while have < rows:
        n = min(step, rows - have)
        index = np.arange(have, have + n, dtype=np.int64)
        cols = _columns(rng, 0, n, DEVICES)
        cols["device_id"] = cols["person_id"] = index % DEVICES + 1
        cols["fix_time"] = T0 - 10**9 + (index // DEVICES) * 10_000
        cols["received_at"] = cols["fix_time"] + 500
        order = np.lexsort((cols["fix_time"], cols["device_id"]))
        cols = {name: values[order] for name, values in cols.items()}
        with db.engine.begin() as conn:
            store.insert_new(conn, "safety_positions", cols, ("device_id", "fix_time"), maybe_present=False)
        have += n


def _depth_run(db, rows: int, staged: bool, seed: int, offset: int) -> dict:
    """Positions through the store at the current history depth, batches of 5,000; with `staged` (SQLite) the
    mover runs meanwhile and what it has not moved at the end is flushed: `sustained` counts that too."""
    from smartcity.core.batchstore import batch_store
    from smartcity.core.staging import StagingMover, flush_staged

    store = batch_store(db, background_checkpoints=False, staging=staged)
    rng = np.random.default_rng(seed)
    batch = 5000
    batches = [_columns(rng, offset + i * batch, batch, DEVICES) for i in range(rows // batch)]
    mover = StagingMover(db.engine.url.database, "safety_positions", max_age=0, poll=2.0).start() if staged else None
    t0 = time.perf_counter()
    for cols in batches:
        with db.engine.begin() as conn:
            store.prepare(conn)
            # As the engine calls it: each fix is newer than its device's last stored one, so none is looked up.
            fresh = np.zeros(len(cols["device_id"]), dtype=bool)
            store.insert_new(conn, "safety_positions", cols, ("device_id", "fix_time"), maybe_present=fresh)
    intake = time.perf_counter() - t0
    out = {"positions": rows, "intake_per_s": round(rows / intake)}
    if mover is not None:
        mover.stop()
        t1 = time.perf_counter()
        left = flush_staged(db.engine, "safety_positions")
        flush = time.perf_counter() - t1
        sustained = round(rows / (intake + flush))
        out |= {"moved_meanwhile": mover.moved, "flushed_after": left, "sustained_per_s": sustained}
    return out


def _run_depths(db, quick: bool) -> dict:
    """The keyed table written directly, and (SQLite) through the staging table, at 0 / 1M / 3M rows of history."""
    depths = (0, 200_000) if quick else (0, 1_000_000, 3_000_000)
    rows = 20_000 if quick else 100_000
    layouts = ("keyed", "staged") if not db.is_postgres else ("keyed",)
    out, offset = {}, 10**8
    for depth in depths:
        _history(db, depth)
        for layout in layouts:
            key = f"{layout}_history_{depth}"
            out[key] = _depth_run(db, rows, layout == "staged", seed=depth + len(layout), offset=offset)
            offset += rows
            print(f"   {db.engine.dialect.name} {key}: {out[key]}", flush=True)
    return out


def _sustained_run(db, seconds: float, threshold: int, seed: int, offset: int) -> dict:
    """Staged intake for `seconds` with the mover moving as it would in the writer (a round at `threshold` rows
    staged or after 60 s, chunks of 5,000): the rate stored, the batches' commit times (p50, p99, the longest)
    and the longest while a round was moving, the mover's rounds and chunks, and what stayed staged."""
    from smartcity.core.batchstore import batch_store
    from smartcity.core.staging import StagingMover

    store = batch_store(db, staging=True)
    rng = np.random.default_rng(seed)
    batch = 5000
    mover = StagingMover(db.engine.url.database, "safety_positions", threshold=threshold, max_age=60.0).start()
    times, during = [], []
    stored, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        cols = _columns(rng, offset + stored, batch, DEVICES)
        fresh = np.zeros(batch, dtype=bool)
        rounds, chunks = mover.stats["rounds"], mover.stats["chunks"]
        t0 = time.perf_counter()
        with db.engine.begin() as conn:
            store.prepare(conn)
            store.insert_new(conn, "safety_positions", cols, ("device_id", "fix_time"), maybe_present=fresh)
        took = time.perf_counter() - t0
        times.append(took)
        if mover.stats["chunks"] != chunks or mover.stats["rounds"] != rounds:
            during.append(took)
        stored += batch
    wall = time.perf_counter() - start
    mover.stop()
    staged_before_drain = mover.staged(sqlite3.connect(db.engine.url.database))
    # What was still staged is moved with the intake stopped: a rate a day can keep counts that time too.
    t1 = time.perf_counter()
    drain = StagingMover(db.engine.url.database, "safety_positions", chunk_rows=5000, min_pause=0)
    conn = sqlite3.connect(db.engine.url.database, isolation_level=None)
    conn.execute("PRAGMA cache_size = -131072")
    drained = drain.round(conn)
    conn.close()
    drain_s = time.perf_counter() - t1
    with db.engine.connect() as conn:
        staged = conn.execute(text("SELECT count(*) FROM safety_positions_recent")).scalar()
        moved_total = conn.execute(text("SELECT count(*) FROM safety_positions WHERE fix_time >= :t"), {"t": T0})
        moved_total = moved_total.scalar()
    ms = np.asarray(times) * 1000
    return {
        "threshold_rows": threshold,
        "seconds": round(wall, 1),
        "positions": stored,
        "intake_per_s": round(stored / wall),
        "batch_commit_ms": {
            "p50": round(float(np.percentile(ms, 50)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1),
            "max": round(float(ms.max()), 1),
            "max_while_moving": round(max(during) * 1000, 1) if during else None,
        },
        "mover": {
            "rounds": mover.stats["rounds"],
            "chunks": mover.stats["chunks"],
            "moved": mover.stats["moved"],
            "longest_chunk_ms": round(mover.stats["longest_chunk_s"] * 1000, 1),
        },
        "staged_at_end": staged_before_drain,
        "drained_after": drained,
        "drain_s": round(drain_s, 1),
        "sustained_with_drain_per_s": round(stored / (wall + drain_s)),
        "in_keyed_table": moved_total,
        "left_staged": staged,
    }


def run_sustained(quick: bool = False) -> dict:
    """SQLite staged intake with its mover, at 0 / 1M / 3M rows of history (a fresh database each, so one run's
    rows are not the next one's history), rounds at 1x and 3x the devices staged."""
    from smartcity.core.db import Database, migrate

    depths = (0, 200_000) if quick else (0, 1_000_000, 3_000_000)
    seconds = 5.0 if quick else 30.0
    out: dict = {"devices": DEVICES, "batch": 5000}
    with tempfile.TemporaryDirectory() as tmp:
        for depth in depths:
            for factor in (1, 3):
                db = Database(f"sqlite:///{Path(tmp) / f'sustained_{depth}_{factor}.db'}")
                try:
                    migrate(db.url)
                    _registry(db, DEVICES)
                    _history(db, depth)
                    key = f"history_{depth}_threshold_{factor}x"
                    out[key] = _sustained_run(db, seconds, factor * DEVICES, seed=depth + factor, offset=10**8)
                    print(f"   sqlite sustained {key}: {out[key]}", flush=True)
                finally:
                    db.dispose()
                Path(db.engine.url.database).unlink(missing_ok=True)
    return out


def run(quick: bool = False) -> dict:
    from smartcity.core.db import Database, migrate
    from tests.servers import PostgresServer

    out = {"devices": DEVICES}
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            out["sqlite"] = _run_store(db, quick)
        finally:
            db.dispose()
        db = Database(f"sqlite:///{Path(tmp) / 'depth.db'}")
        try:
            migrate(db.url)
            _registry(db, DEVICES)
            out["sqlite_by_history"] = _run_depths(db, quick)
        finally:
            db.dispose()
    out["sqlite_sustained"] = run_sustained(quick)
    pg = PostgresServer().start()
    try:
        pg.execute("CREATE DATABASE bench")
        db = Database(pg.url("bench"))
        try:
            out["postgresql"] = _run_store(db, quick)
        finally:
            db.dispose()
        pg.execute("CREATE DATABASE depth")
        db = Database(pg.url("depth"))
        try:
            migrate(db.url)
            _registry(db, DEVICES)
            out["postgresql_by_history"] = _run_depths(db, quick)
        finally:
            db.dispose()
    finally:
        pg.stop()
    return out


if __name__ == "__main__":
    import json
    import os

    print(json.dumps(run(quick=os.environ.get("BENCH_QUICK") == "1"), indent=2))
