"""Resources from JSON, GeoJSON and Parquet files (issue 14: "resources (CSV, GeoJSON, XLSX, JSON, Parquet)"):
typed over the whole file like a CSV, a bad record reported by its number without stopping the load, the
resource's format in the catalogue, and a file that is not what its name says refused with nothing stored."""

from __future__ import annotations

import io
import json
import time
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from smartcity.core.errors import InvalidInput
from smartcity.opendata import catalogue
from smartcity.opendata.models import Resource
from tests.conftest import make_user, signin
from tests.opendata.catalogue_helpers import dataset
from tests.opendata.helpers import publish, stored_rows
from tests.opendata.upload_helpers import csrf


def _feature(props: dict, lon: float, lat: float) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}


CAMERAS = {
    "type": "FeatureCollection",
    "features": [
        _feature({"관리번호": "CCTV-0001", "자치구": "강남구", "대수": 2, "설치일": "2021-03-01"}, 127.0364, 37.5006),
        _feature({"관리번호": "CCTV-0002", "자치구": "서초구", "대수": 1, "설치일": "2022-11-15"}, 127.0276, 37.4966),
        # A point outside the globe: reported by its feature number, the others load.
        _feature({"관리번호": "CCTV-0003", "자치구": "마포구", "대수": 3, "설치일": "2020-01-02"}, 1270.1, 37.55),
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[127.0, 37.5], [127.1, 37.6]]},
            "properties": {"관리번호": "CCTV-0004", "자치구": "송파구", "대수": 4, "설치일": "2019-07-30"},
        },
    ],
}


def test_a_geojson_file_becomes_a_typed_table_with_its_points(db):
    done = publish(db, "cctv", json.dumps(CAMERAS, ensure_ascii=False).encode(), "cameras.geojson")
    assert {c["id"]: c["type"] for c in done.columns} == {
        "관리번호": "text",
        "자치구": "text",
        "대수": "integer",
        "설치일": "date",
        "longitude": "float",
        "latitude": "float",
        "geometry": "text",
    }
    assert done.rows == 3 and [(p["line"], p["column"]) for p in done.problems] == [(3, None)]
    rows = stored_rows(db, done.resource_id)
    assert [(r["관리번호"], r["대수"], r["설치일"], r["latitude"], r["longitude"]) for r in rows[:2]] == [
        ("CCTV-0001", 2, date(2021, 3, 1), 37.5006, 127.0364),
        ("CCTV-0002", 1, date(2022, 11, 15), 37.4966, 127.0276),
    ]
    assert rows[2]["latitude"] is None and json.loads(rows[2]["geometry"])["type"] == "LineString"
    with db.session() as s:
        assert s.scalar(select(Resource.format).where(Resource.uid == done.resource_id)) == "GeoJSON"
        found = catalogue.search_packages(s, "http://testserver", facet_fields=["res_format"])
    assert found["search_facets"]["res_format"]["items"] == [{"name": "GeoJSON", "display_name": "GeoJSON", "count": 1}]


def test_a_json_file_of_records_is_typed_over_every_record(db):
    records = [{"id": n, "구": f"구{n % 3}", "값": n * 1.5, "확인": n % 2 == 0} for n in range(1, 2001)]
    records[1500]["id"] = "1501번"  # a late value that is not an integer: reported, the load goes on
    records[7]["메모"] = {"비고": "첫 기록"}  # a nested value is kept as its JSON text
    records.append("not a record")
    done = publish(db, "plain", json.dumps(records, ensure_ascii=False).encode("utf-8-sig"), "values.json")
    assert [(c["id"], c["type"]) for c in done.columns] == [
        ("id", "integer"),
        ("구", "text"),
        ("값", "float"),
        ("확인", "boolean"),
        ("메모", "text"),
    ]
    assert done.rows == 2000
    assert [(p["line"], p["column"], p["value"]) for p in done.problems] == [
        (1501, "id", "1501번"),
        (2001, None, "not a record"),
    ]
    rows = stored_rows(db, done.resource_id)
    assert rows[7]["메모"] == '{"비고": "첫 기록"}' and rows[1500]["id"] is None and rows[1]["확인"] is True
    # The shape of a Seoul OpenAPI answer (the records are the one list inside it) loads as its rows.
    answer = {
        "CctvInstallInfo": {
            "list_total_count": 2,
            "RESULT": {"CODE": "INFO-000", "MESSAGE": "정상 처리되었습니다"},
            "row": [{"GU": "강남구", "CNT": "12"}, {"GU": "서초구", "CNT": "7"}],
        }
    }
    seoul = publish(db, "seoul", json.dumps(answer, ensure_ascii=False).encode(), "cctv.json")
    assert [(c["id"], c["type"]) for c in seoul.columns] == [("GU", "text"), ("CNT", "integer")]
    assert [r["CNT"] for r in stored_rows(db, seoul.resource_id)] == [12, 7]


def test_a_parquet_file_keeps_its_types(db):
    table = pa.table(
        {
            "station": pa.array(["강남", "역삼", None]),
            "riders": pa.array([120, 95, 40], pa.int64()),
            "fare": pa.array([Decimal("1.50"), Decimal("2.25"), None], pa.decimal128(6, 2)),
            "day": pa.array([date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)], pa.date32()),
            "at": pa.array([datetime(2024, 1, 1, 8, 30), None, datetime(2024, 1, 3, 9)], pa.timestamp("us")),
            "open": pa.array([True, False, True]),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    done = publish(db, "riders", out.getvalue(), "riders.parquet")
    assert [(c["id"], c["type"]) for c in done.columns] == [
        ("station", "text"),
        ("riders", "integer"),
        ("fare", "float"),
        ("day", "date"),
        ("at", "datetime"),
        ("open", "boolean"),
    ]
    assert done.rows == 3 and done.problem_count == 0
    rows = stored_rows(db, done.resource_id)
    assert [(r["station"], r["riders"], r["fare"], r["day"], r["open"]) for r in rows] == [
        ("강남", 120, 1.5, date(2024, 1, 1), True),
        ("역삼", 95, 2.25, date(2024, 1, 2), False),
        (None, 40, None, date(2024, 1, 3), True),
    ]
    with db.session() as s:
        assert s.scalar(select(Resource.format).where(Resource.uid == done.resource_id)) == "Parquet"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"a,b\n1,2\n", "data.json", "not a JSON document"),
        (b'{"type": "Feature", "properties": {}}', "one.geojson", "not a GeoJSON FeatureCollection"),
        (b'{"a": 1, "b": [1, 2]}', "odd.json", "no list of records"),
        (b"PAR1 but then a,b\n1,2\nPAR1", "fake.parquet", "not a Parquet file"),
        (b"a,b\n1,2\n", "fake.parquet", "not a Parquet file"),
        (b"[]", "empty.json", "no records"),
    ],
)
def test_a_file_that_is_not_what_its_name_says_is_refused_and_nothing_is_stored(db, data, name, message):
    first = publish(db, "kept", b"a,b\n1,2\n", "kept.csv", resource_name="table")
    with pytest.raises(InvalidInput, match=message):
        publish(db, "kept", data, name, resource_name="table")
    with db.session() as s:
        resource = s.scalar(select(Resource).where(Resource.uid == first.resource_id))
        assert (resource.version, resource.format, resource.row_count) == (1, "CSV", 1)


def test_a_publisher_uploads_a_geojson_file_on_the_page_and_its_points_are_mapped(db, client):
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    dataset(db, "cctv", "CCTV 위치")
    page = client.get("/opendata/publish/datasets/cctv").text
    assert ".geojson" in page and "GeoJSON" in page
    sent = client.post(
        "/opendata/publish/datasets/cctv/upload",
        data={"csrf_token": csrf(client, "/opendata/publish/datasets/cctv"), "resource": "cameras"},
        files={"file": ("cameras.geojson", json.dumps(CAMERAS).encode(), "application/geo+json")},
        headers={"Accept": "application/json"},
    )
    assert sent.status_code == 202, sent.text
    deadline = time.monotonic() + 30
    while (status := client.get(sent.json()["status"]).json())["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status["state"] == "done" and status["rows"] == 3, status
    points = client.get(f"/opendata/resources/{status['resource']}/points.geojson").json()["features"]
    assert sorted(tuple(f["geometry"]["coordinates"]) for f in points) == [(127.0276, 37.4966), (127.0364, 37.5006)]
