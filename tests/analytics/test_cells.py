"""Cells and demand: the vectorised cell assignment, k-anonymity suppression, the same result on DuckDB and Spark."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import h3
import numpy as np
import pytest

from smartcity.analytics import cells
from smartcity.analytics.cells import BLOCK, LATTICE_PER_EDGE, cell_of, demand, exact_cell_of
from smartcity.analytics.engine import DuckDBEngine
from smartcity.analytics.ingest import import_file
from smartcity.analytics.settings import AnalyticsSettings, data_dir
from smartcity.analytics.synthetic import generate, hubs_from
from tests.analytics.conftest import csv_bytes
from tests.conftest import make_settings

CITY_HALL = (37.5663, 126.9779)
GANGNAM = (37.4979, 127.0276)


def test_lattice_cells_match_h3_except_beside_a_border():
    rng = np.random.default_rng(7)
    lat = rng.uniform(37.45, 37.68, 20_000)
    lon = rng.uniform(126.80, 127.17, 20_000)
    fast = cell_of(lat, lon, 8)
    exact = exact_cell_of(lat, lon, 8)
    differ = np.flatnonzero(fast != exact)
    assert len(differ) / len(lat) < 0.05
    for i in differ:  # a point placed in the wrong cell lies within a lattice square of the right one's border
        assert h3.grid_distance(h3.int_to_str(int(fast[i])), h3.int_to_str(int(exact[i]))) == 1


def _night(hour_rows: dict[tuple[float, float, int], int]) -> list[dict]:
    rows = []
    for (lat, lon, hour), n in hour_rows.items():
        rows += [{"time": f"2026-03-04T{hour:02d}:20:00+09:00", "lat": lat, "lon": lon, "count": 1}] * n
    return rows


def test_cell_hours_under_k_records_are_suppressed(tmp_path, seoul):
    rows = _night({(*CITY_HALL, 1): 10, (*GANGNAM, 1): 9, (*GANGNAM, 2): 12})
    strict = make_settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    import_file(strict, seoul, "phone", csv_bytes(rows))
    found = demand(strict, hours=range(0, 6))
    hall, gangnam = (h3.latlng_to_cell(*p, 8) for p in (CITY_HALL, GANGNAM))
    assert sorted(map(tuple, found.itertuples(index=False))) == sorted(
        [(hall, 1, "weekday", 10), (gangnam, 2, "weekday", 12)]
    )
    lenient = make_settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, analytics_k_anonymity=5)
    assert lenient.of(AnalyticsSettings).k_anonymity == 5
    assert (gangnam, 1, "weekday", 9) in set(map(tuple, demand(lenient).itertuples(index=False)))
    assert demand(strict, hours=[3]).empty


def test_demand_without_data_is_empty_with_its_columns(analytics_settings):
    found = demand(analytics_settings, kinds=("phone", "taxi"))
    assert found.empty and list(found.columns) == ["cell", "hour", "day_type", "count"]


def _synthetic(settings, seoul, rows: int) -> None:
    analytics = settings.of(AnalyticsSettings)
    out = data_dir(settings, analytics) / "phone"
    generate(hubs_from(seoul, seed=3), rows, out, start=date(2026, 3, 2), days=7, seed=3, chunk_rows=40_000)


def test_synthetic_demand_peaks_at_night_and_stays_in_the_city(analytics_settings, seoul):
    _synthetic(analytics_settings, seoul, 100_000)
    table = (
        DuckDBEngine()
        .query(
            'SELECT hour, SUM("count") AS n, MIN(lat) AS s, MAX(lat) AS north, COUNT(DISTINCT weekend) AS types '
            "FROM phone GROUP BY hour ORDER BY hour",
            {"phone": data_dir(analytics_settings, analytics_settings.of(AnalyticsSettings)) / "phone"},
        )
        .to_pandas()
    )
    assert table["n"].sum() == 100_000
    by_hour = dict(zip(table["hour"], table["n"], strict=True))
    assert by_hour[22] > by_hour[4] * 2 and by_hour[0] > by_hour[10]
    west, south, east, north = seoul.bbox
    assert table["s"].min() > south - 0.05 and table["north"].max() < north + 0.05
    assert set(table["types"]) == {2}  # a week has weekdays and a weekend in every hour


@pytest.mark.spark
def test_the_same_pipeline_on_duckdb_and_spark(analytics_settings, seoul, spark_engine):
    _synthetic(analytics_settings, seoul, 60_000)
    import_file(analytics_settings, seoul, "phone", csv_bytes(_night({(*CITY_HALL, 3): 11})))
    on_duckdb = demand(analytics_settings, hours=None, engine=DuckDBEngine())
    on_spark = demand(analytics_settings, hours=None, engine=spark_engine)
    assert len(on_duckdb) > 100
    assert on_duckdb.to_dict("list") == on_spark.to_dict("list")


def test_far_apart_points_sample_only_the_tiles_they_fall_in():
    # Seoul and Busan in one batch: a lattice over their whole extent would be ~100 M h3 calls (minutes);
    # only the two points' tiles are sampled.
    lat, lon = np.array([37.5663, 35.1796]), np.array([126.9779, 129.0756])
    started = time.perf_counter()
    found = cell_of(lat, lon, 8)
    assert time.perf_counter() - started < 10
    assert list(found) == list(exact_cell_of(lat, lon, 8))


def _square_centre_cells(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    # What cell_of promises, point by point: the cell of the centre of the point's lattice square.
    step = h3.average_hexagon_edge_length(res, "m") / LATTICE_PER_EDGE / 111_320.0
    return exact_cell_of((np.floor(lat / step) + 0.5) * step, (np.floor(lon / step) + 0.5) * step, res)


def test_a_long_array_gets_its_squares_cells_across_blocks_and_a_tile_box_grown_midway():
    rng = np.random.default_rng(11)
    n = 3 * BLOCK + 123
    lat = 37.55 + rng.normal(0, 0.03, n)
    lon = 126.98 + rng.normal(0, 0.04, n)
    # Resolution 7 is this test's own (a lattice is kept per resolution) and its tiles are cheap to sample.
    # Busan in the second block, after Seoul's tiles are kept: the kept box must grow to hold both.
    lat[BLOCK + 5 : BLOCK + 50] = 35.1796 + rng.normal(0, 0.002, 45)
    lon[BLOCK + 5 : BLOCK + 50] = 129.0756 + rng.normal(0, 0.002, 45)
    found = cell_of(lat, lon, 7)
    edges = [k + d for k in range(0, n, BLOCK) for d in (-2, -1, 0, 1) if 0 <= k + d < n]
    picked = np.unique(np.concatenate([rng.choice(n, 3000, replace=False), np.arange(BLOCK, BLOCK + 60), edges]))
    assert list(found[picked]) == list(_square_centre_cells(lat[picked], lon[picked], 7))
    # And the same points again, now from the kept tiles only.
    assert list(cell_of(lat[picked], lon[picked], 7)) == list(found[picked])


def test_threads_sharing_a_lattice_that_outgrows_its_tile_budget_get_their_own_cells(monkeypatch):
    monkeypatch.setattr(cells, "KEEP_TILES", 6)  # a small budget: the lattice starts again while others read it
    rng = np.random.default_rng(5)
    places = [(37.5663, 126.9779), (35.1796, 129.0756), (33.4996, 126.5312), (37.4563, 126.7052)]
    batches = []
    for lat0, lon0 in places * 3:
        batches.append((lat0 + rng.normal(0, 0.004, 2_000), lon0 + rng.normal(0, 0.004, 2_000)))
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda b: cell_of(b[0], b[1], 9), batches))
    for (lat, lon), cells_found in zip(batches, found, strict=True):
        assert list(cells_found[:300]) == list(_square_centre_cells(lat[:300], lon[:300], 9))
