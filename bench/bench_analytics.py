"""Cell × hour aggregation of synthetic late-night phone activity (SYNTHETIC data, made by
smartcity.analytics.synthetic, shaped by the real Seoul stops and stations when ../shared/data/seoul is there).

The issue's set is 300 M records, and the full run measures all of them (BENCH_ANALYTICS_ROWS to change it). The
set is generated once into a cache outside the repository (BENCH_CACHE, default ../bench-cache beside the
checkout: analytics-300M/, about 6.5 GB) and reused while its manifest (generator version, seed, rows, days, the
hubs) matches; otherwise it is made again. Quick mode (BENCH_QUICK=1) makes 2 M rows under var/ and deletes
them. Measured: DuckDB's cell × hour × day type aggregation with the cell ids present; cell assignment (the
lattice of analytics/cells.py) from the stored lat/lon streamed into the same aggregation; Spark local[2] on a
10 M-row set (quick: 1 M) beside DuckDB on the same set, as a ratio; the process's memory peak and the load."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from smartcity.analytics import synthetic
from smartcity.analytics.cells import cell_hour_sql, cell_of
from smartcity.analytics.engine import DuckDBEngine, SparkEngine, spark_session
from smartcity.analytics.synthetic import Hubs, generate, hubs_from
from smartcity.core.city import load_profile
from tests import synthetic as test_data

FULL_SET = 300_000_000
START = date(2026, 3, 2)
DAYS = 7
CHUNK_ROWS = 5_000_000
CACHE = Path(os.environ.get("BENCH_CACHE", Path(__file__).resolve().parents[2] / "bench-cache"))


def hubs() -> tuple[Hubs, str]:
    profile = load_profile("seoul")
    real, _ = test_data.real_data_dir()
    stops = real / "bus_stops.csv" if real is not None else None
    stations = real / "subway_stations.csv" if real is not None else None
    found = hubs_from(
        profile,
        stops.read_bytes() if stops and stops.exists() else None,
        stations.read_bytes() if stations and stations.exists() else None,
    )
    return found, "real stops and stations" if real is not None else "the city profile's district points"


def _fingerprint(h: Hubs) -> str:
    digest = hashlib.sha256()
    for array in (h.lat, h.lon, h.weight, h.night):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def dataset(h: Hubs, rows: int, seed: int, folder: Path) -> tuple[Path, float | None]:
    """The `phone` folder of a set of `rows` rows kept in `folder`, made when missing or stale; and the seconds
    generation took (None when the kept set was reused)."""
    manifest = {
        "generator": synthetic.VERSION,
        "seed": seed,
        "rows": rows,
        "start": START.isoformat(),
        "days": DAYS,
        "res": 8,
        "chunk_rows": CHUNK_ROWS,
        "hubs": _fingerprint(h),
    }
    kept = folder / "manifest.json"
    if kept.exists() and json.loads(kept.read_text()) == manifest:
        return folder / "phone", None
    # Built beside and moved in whole: a run stopped halfway leaves no set that looks complete.
    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    started = time.perf_counter()
    generate(h, rows, building / "phone", start=START, days=DAYS, seed=seed, chunk_rows=CHUNK_ROWS)
    seconds = time.perf_counter() - started
    made = {"seconds": round(seconds, 1), "rows_per_s": round(rows / seconds), **_state()}
    (building / "generation.json").write_text(json.dumps(made, indent=2))
    (building / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    building.rename(folder)
    return folder / "phone", seconds


def _generation(folder: Path) -> dict | None:
    """How the kept set was made (seconds, rows/s, load, memory), as recorded when it was."""
    made = folder / "generation.json"
    return json.loads(made.read_text()) if made.exists() else None


def _folder(rows: int, seed: int) -> str:
    size = f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else str(rows)
    return f"analytics-{size}" + (f"-seed{seed}" if seed else "")


def _state() -> dict:
    """The process's memory peak so far and the machine's load (1 and 5 minutes)."""
    one, five, _ = os.getloadavg()
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "load": [one, five]}


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _timed(fn, repeat: int) -> tuple[list[float], list[float], object]:
    """Wall seconds and this process's CPU seconds (all its threads) of each of `repeat` runs, and the result.
    On a busy machine the wall time is mostly waiting for a core; the CPU seconds are the work itself."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _cpu()
        result = fn()
        walls.append(round(time.perf_counter() - started, 2))
        cpus.append(round(_cpu() - cpu, 2))
    return walls, cpus, result


def _step(rows: int, walls: list[float], cpus: list[float]) -> dict:
    best = walls.index(min(walls))
    return {
        "seconds": walls[best],
        "runs_s": walls,
        "rows_per_s": round(rows / walls[best]),
        "cpu_s": cpus[best],
        "cpu_runs_s": cpus,
        "rows_per_cpu_s": round(rows / max(cpus[best], 0.01)),
    }


def with_cells(phone: Path, res: int = 8):
    """The set's rows without their stored cells, each batch given its cell from lat/lon (as an import would)."""
    scanner = ds.dataset(phone, format="parquet").scanner(
        columns=["hour", "weekend", "lat", "lon", "count"], batch_size=1 << 20
    )
    schema = pa.schema([("hour", pa.int8()), ("weekend", pa.bool_()), ("cell", pa.int64()), ("count", pa.int64())])

    def batches():
        for b in scanner.to_batches():
            cells = cell_of(b.column("lat").to_numpy(), b.column("lon").to_numpy(), res)
            yield pa.record_batch([b.column("hour"), b.column("weekend"), pa.array(cells), b.column("count")], schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def assign_and_aggregate(phone: Path, sql: str) -> pa.Table:
    with duckdb.connect() as con:
        con.register("phone", with_cells(phone))
        return con.sql(sql).to_arrow_table()


def _jvm_peak_mb() -> int | None:
    # The JVM is Spark's own process: its high-water mark is in /proc, not in this process's rusage.
    try:
        pid = spark_session()._sc._gateway.proc.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except (AttributeError, OSError):
        return None
    return None


def run(quick: bool = False) -> dict:
    rows = 2_000_000 if quick else int(os.environ.get("BENCH_ANALYTICS_ROWS", FULL_SET))
    spark_rows = min(rows, 1_000_000 if quick else 10_000_000)
    h, shaped = hubs()
    root = Path("var/bench-analytics") if quick else CACHE
    out: dict = {"data": "synthetic (smartcity.analytics.synthetic)", "shaped_by": shaped, "rows": rows}
    try:
        out["before"] = _state()
        phone, generated = dataset(h, rows, 0, root / _folder(rows, 0))
        part, _ = dataset(h, spark_rows, 1, root / _folder(spark_rows, 1))
        out["set"] = {
            "folder": str(phone.parent),
            "generated_now": generated is not None,
            "generation": _generation(phone.parent),
            "parquet_bytes_per_row": round(sum(f.stat().st_size for f in phone.rglob("*.parquet")) / rows, 1),
            "files": sum(1 for _ in phone.rglob("*.parquet")),
            **_state(),
        }

        sql = cell_hour_sql("phone", 10)
        tables = {"phone": phone}
        duck = DuckDBEngine()
        walls, cpus, stored = _timed(lambda: duck.query(sql, tables), 3)
        out["duckdb_aggregate"] = {**_step(rows, walls, cpus), "cells_hours": stored.num_rows, **_state()}

        walls, cpus, assigned = _timed(lambda: assign_and_aggregate(phone, sql), 1 if quick else 2)
        key = [(k, "ascending") for k in ("cell", "hour", "day_type")]
        out["cell_assignment_and_aggregation"] = {
            **_step(rows, walls, cpus),  # the first run also samples the lattice's tiles
            "same_result_as_stored_cells": assigned.sort_by(key).equals(stored.sort_by(key)),
            **_state(),
        }

        spark = SparkEngine("local[2]")
        part_tables = {"phone": part}
        first, _, _ = _timed(lambda: spark.query(sql, part_tables), 1)
        spark_times, _, _ = _timed(lambda: spark.query(sql, part_tables), 3)
        duck_times, _, _ = _timed(lambda: duck.query(sql, part_tables), 3)
        out["spark_local_vs_duckdb"] = {
            "rows": spark_rows,
            "spark_s": min(spark_times),
            "spark_first_run_s": first[0],
            "duckdb_s": min(duck_times),
            "spark_over_duckdb": round(min(spark_times) / max(min(duck_times), 0.001), 1),
            "jvm_peak_rss_mb": _jvm_peak_mb(),
            **_state(),
        }
    finally:
        if quick:
            shutil.rmtree(root, ignore_errors=True)
    return out
