"""Cells and demand: the vectorised cell assignment, k-anonymity suppression, the same result on DuckDB and Spark."""

from __future__ import annotations

import time
from datetime import date

import h3
import numpy as np
import pytest

from smartcity.analytics.cells import cell_of, demand, exact_cell_of
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
