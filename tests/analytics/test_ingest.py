"""Importing demand files: typed Parquet by local day, per-row defects, refused files leave nothing behind."""

from __future__ import annotations

from datetime import date

import h3
import pyarrow.dataset as ds
import pytest

from smartcity.analytics.cells import exact_cell_of
from smartcity.analytics.ingest import import_file
from smartcity.analytics.settings import AnalyticsSettings, data_dir
from smartcity.core.errors import InvalidInput
from tests.analytics.conftest import csv_bytes
from tests.conftest import seoul_data

CITY_HALL = (37.5663, 126.9779)
GANGNAM = (37.4979, 127.0276)


def _folder(settings, kind):
    return data_dir(settings, settings.of(AnalyticsSettings)) / kind


def _read(settings, kind):
    return ds.dataset(_folder(settings, kind), format="parquet", partitioning="hive").to_table()


def test_phone_rows_kept_by_local_day_with_defects_by_line(analytics_settings, seoul):
    rows = [
        {"time": "2026-03-04T23:30:00+09:00", "lat": CITY_HALL[0], "lon": CITY_HALL[1], "count": 3},
        {"time": "2026-03-05T00:30:00", "lat": GANGNAM[0], "lon": GANGNAM[1], "count": 2},  # no offset: Seoul's
        {"time": "2026-03-05T01:00:00+00:00", "lat": GANGNAM[0], "lon": GANGNAM[1], "count": 1},  # wrong zone
        {"time": "yesterday", "lat": GANGNAM[0], "lon": GANGNAM[1], "count": 1},
        {"time": "2026-03-05T01:00:00+09:00", "lat": 35.1796, "lon": 129.0756, "count": 1},  # Busan
        {"time": "2026-03-05T01:00:00+09:00", "lat": GANGNAM[0], "lon": GANGNAM[1], "count": -4},
        {"time": "2026-03-05T01:10:00+09:00", "lat": "", "lon": GANGNAM[1], "count": 1},
    ]
    report = import_file(analytics_settings, seoul, "phone", csv_bytes(rows))

    assert report.kept == 2
    assert report.days == ["2026-03-04", "2026-03-05"]
    assert [(d.line, d.reason.split(":")[0], d.reason.split(": ")[1]) for d in report.defects] == [
        (4, "time", "the offset is not Asia/Seoul's"),
        (5, "time", "not a date and time"),
        (6, "lat/lon", "outside the city"),
        (7, "count", "not a number of zero or more"),
        (8, "lat/lon", "missing or not a number"),
    ]
    table = _read(analytics_settings, "phone").sort_by("time")
    assert str(table.schema.field("time").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("hour").type) == "int8"
    assert str(table.schema.field("cell").type) == "int64"
    assert table.column("hour").to_pylist() == [23, 0]
    assert table.column("day").to_pylist() == ["2026-03-04", "2026-03-05"]
    assert table.column("weekend").to_pylist() == [False, False]  # a Wednesday night, into Thursday
    assert table.column("count").to_pylist() == [3, 2]
    assert table.column("cell").to_pylist() == list(
        exact_cell_of([CITY_HALL[0], GANGNAM[0]], [CITY_HALL[1], GANGNAM[1]], 8)
    )
    assert [t.isoformat() for t in table.column("time").to_pylist()] == [
        "2026-03-04T14:30:00+00:00",
        "2026-03-04T15:30:00+00:00",
    ]


def test_wrong_columns_name_them_and_write_nothing(analytics_settings, seoul):
    data = csv_bytes([{"timestamp": "2026-03-04T23:30:00+09:00", "latitude": 37.5, "longitude": 127.0, "n": 1}])
    with pytest.raises(InvalidInput) as refused:
        import_file(analytics_settings, seoul, "phone", data)
    message = str(refused.value.message)
    assert "missing column(s) time, lat+lon or cell" in message
    assert "not understood: timestamp, latitude, longitude, n" in message
    assert not list(_folder(analytics_settings, "phone").glob("**/*.parquet"))


def test_empty_hours_of_the_period_are_reported(analytics_settings, seoul):
    rows = [
        {"time": f"2026-03-06T{h:02d}:15:00+09:00", "lat": CITY_HALL[0], "lon": CITY_HALL[1], "count": 1}
        for h in (0, 1, 4)
    ]
    report = import_file(analytics_settings, seoul, "phone", csv_bytes(rows))
    assert report.kept == 3
    assert report.empty_hours == ["2026-03-06 02:00", "2026-03-06 03:00"]


def test_cells_given_as_h3_ids(analytics_settings, seoul):
    cell = h3.latlng_to_cell(*CITY_HALL, 8)
    rows = [
        {"time": "2026-03-07T02:00:00+09:00", "cell": cell, "count": 5},
        {"time": "2026-03-07T02:00:00+09:00", "cell": "not-a-cell", "count": 5},
    ]
    report = import_file(analytics_settings, seoul, "phone", csv_bytes(rows))
    assert [(d.line, d.reason) for d in report.defects] == [(3, "cell: not an H3 cell")]
    table = _read(analytics_settings, "phone")
    assert [h3.int_to_str(c) for c in table.column("cell").to_pylist()] == [cell]
    assert table.column("weekend").to_pylist() == [True]  # Saturday


def test_taxi_trips_keep_both_points_and_refuse_a_drop_off_before_the_pick_up(analytics_settings, seoul):
    trip = {
        "pickup_time": "2026-03-04T01:05:00+09:00",
        "pickup_lat": GANGNAM[0],
        "pickup_lon": GANGNAM[1],
        "dropoff_time": "2026-03-04T01:35:00+09:00",
        "dropoff_lat": CITY_HALL[0],
        "dropoff_lon": CITY_HALL[1],
    }
    backwards = {**trip, "dropoff_time": "2026-03-04T00:35:00+09:00"}
    report = import_file(analytics_settings, seoul, "taxi", csv_bytes([trip, backwards]))
    assert [(d.line, d.reason) for d in report.defects] == [(3, "dropoff_time: before the pick-up")]
    table = _read(analytics_settings, "taxi")
    assert table.column("hour").to_pylist() == [1]
    assert table.column("dropoff_cell").to_pylist() == list(exact_cell_of([CITY_HALL[0]], [CITY_HALL[1]], 8))
    assert table.column("count").to_pylist() == [1]


@pytest.mark.real_data
def test_real_seoul_boardings_placed_at_their_stops(analytics_settings, seoul):
    boardings = seoul_data("bus_stop_boardings_2026-03-04.csv").read_bytes()
    stops = seoul_data("bus_stops.csv").read_bytes()
    report = import_file(analytics_settings, seoul, "boardings", boardings, stops=stops, day=date(2026, 3, 4))
    lines = boardings.decode("utf-8-sig").splitlines()
    blank = [i + 1 for i, line in enumerate(lines) if line.endswith(",,,,")]  # stops without boardings published
    assert blank, "the real file has stops without counts"
    assert {d.line for d in report.defects if d.reason.startswith("count")} == set(blank)
    assert report.kept + len(report.defects) == len(lines) - 1
    table = _read(analytics_settings, "boardings")
    assert table.num_rows == report.kept
    assert table.column("hour").null_count == table.num_rows  # daily averages: no hour
    first = lines[1].split(",")  # 01111, 종로구, …, 승차_일평균 612.2
    row = table.filter(ds.field("stop") == first[0]).to_pylist()[0]
    assert row["count"] == round(float(first[3]))
    assert report.days == ["2026-03-04"]


def test_a_file_with_no_row_to_keep_is_refused_saying_why(analytics_settings, seoul):
    """Regression (issue 17, bad input): a file in the wrong zone or wholly outside the city was 'imported' with
    0 rows and success; it is now refused naming each reason, and nothing is written (staging included)."""
    wrong_zone = [
        {"time": "2026-03-04T01:10:00-05:00", "lat": CITY_HALL[0], "lon": CITY_HALL[1], "count": 3},
        {"time": "2026-03-04T02:10:00+00:00", "lat": CITY_HALL[0], "lon": CITY_HALL[1], "count": 3},
        {"time": "2026-03-04T02:30:00+09:00", "lat": 35.1796, "lon": 129.0756, "count": 3},  # Busan
    ]
    with pytest.raises(InvalidInput) as refused:
        import_file(analytics_settings, seoul, "phone", csv_bytes(wrong_zone))
    assert refused.value.message == (
        "phone file: none of its 3 rows could be kept (2 × time: the offset is not Asia/Seoul's (line 2, 3); "
        "1 × lat/lon: outside the city (line 4)); nothing was imported"
    )
    with pytest.raises(InvalidInput, match="no data rows"):
        import_file(analytics_settings, seoul, "phone", b"time,lat,lon,count\n")
    root = data_dir(analytics_settings, analytics_settings.of(AnalyticsSettings))
    assert [p for p in root.rglob("*") if p.is_file()] == []
