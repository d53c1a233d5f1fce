"""Cell × hour aggregation of synthetic late-night phone activity (SYNTHETIC data, made by
smartcity.analytics.synthetic, shaped by the real Seoul stops and stations when ../shared/data/seoul is there).

The issue's set is 300 M records; this shared 2-core machine generates a fraction (BENCH_ANALYTICS_ROWS, default
30 M; quick: 2 M) as Parquet under var/bench-analytics/ (deleted afterwards) and reports rows/s, from which the
300 M times are extrapolated (said so in the results). Measured: generation; DuckDB's cell × hour × day type
aggregation with the cell ids present; cell assignment (the lattice of analytics/cells.py) over the stored
lat/lon; Spark local[2] on a 10 M-row part (quick: 1 M) beside DuckDB on the same part, as a ratio."""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path

import pyarrow.dataset as ds

from smartcity.analytics.cells import cell_hour_sql, cell_of
from smartcity.analytics.engine import DuckDBEngine, SparkEngine
from smartcity.analytics.synthetic import generate, hubs_from
from smartcity.core.city import load_profile
from tests import synthetic as test_data

FULL_SET = 300_000_000


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run(quick: bool = False) -> dict:
    rows = 2_000_000 if quick else int(os.environ.get("BENCH_ANALYTICS_ROWS", 30_000_000))
    spark_rows = min(rows, 1_000_000 if quick else 10_000_000)
    profile = load_profile("seoul")
    real, _ = test_data.real_data_dir()
    stops = real / "bus_stops.csv" if real is not None else None
    stations = real / "subway_stations.csv" if real is not None else None
    hubs = hubs_from(
        profile,
        stops.read_bytes() if stops and stops.exists() else None,
        stations.read_bytes() if stations and stations.exists() else None,
    )
    root = Path("var/bench-analytics")
    shutil.rmtree(root, ignore_errors=True)
    out: dict = {
        "data": "synthetic (smartcity.analytics.synthetic)",
        "shaped_by": "real stops and stations" if real is not None else "the city profile's district points",
        "rows": rows,
    }
    try:
        started = time.perf_counter()
        generate(hubs, rows, root / "all" / "phone", start=date(2026, 3, 2), days=7, chunk_rows=5_000_000)
        out["generate_rows_per_s"] = round(rows / (time.perf_counter() - started))
        generate(hubs, spark_rows, root / "part" / "phone", start=date(2026, 3, 2), days=7, seed=1)
        size = sum(f.stat().st_size for f in (root / "all").rglob("*.parquet"))
        out["parquet_bytes_per_row"] = round(size / rows, 1)

        duck = DuckDBEngine()
        sql = cell_hour_sql("phone", 10)
        tables = {"phone": root / "all" / "phone"}
        seconds = _best(lambda: duck.query(sql, tables))
        out["duckdb_aggregate"] = {
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            "cells_hours": duck.query(sql, tables).num_rows,
            "extrapolated_300M_s": round(FULL_SET / (rows / seconds), 1),
        }

        def assign() -> None:
            for batch in ds.dataset(tables["phone"], format="parquet").to_batches(columns=["lat", "lon"]):
                cell_of(batch.column("lat").to_numpy(), batch.column("lon").to_numpy(), 8)

        assign()  # the lattice is built once per process (cached), as a long-running analysis would
        seconds_cells = _best(assign, repeat=1)
        per_s = rows / seconds_cells
        out["cell_assignment"] = {
            "seconds": round(seconds_cells, 2),
            "rows_per_s": round(per_s),
            "extrapolated_300M_with_aggregation_s": round(FULL_SET / per_s + FULL_SET / (rows / seconds), 1),
        }

        part = {"phone": root / "part" / "phone"}
        spark = SparkEngine("local[2]")
        started = time.perf_counter()
        spark.query(sql, part)
        out_start = time.perf_counter() - started
        spark_s = _best(lambda: spark.query(sql, part))
        duck_s = _best(lambda: duck.query(sql, part))
        out["spark_local_vs_duckdb"] = {
            "rows": spark_rows,
            "spark_s": round(spark_s, 2),
            "spark_first_run_s": round(out_start, 2),
            "duckdb_s": round(duck_s, 3),
            "spark_over_duckdb": round(spark_s / duck_s, 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out
