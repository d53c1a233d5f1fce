"""Rows the Datasette way (/opendata/rows/{resource}.json|.csv|.parquet) on both stores, over resources loaded
through the publishing functions: filters, sort, keyset pages stable under inserts, facets, shapes, the whole
table streamed as CSV, Parquet typed as the table, and refusals in Datasette's error shape."""

from __future__ import annotations

import csv
import io
from datetime import date

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy import inspect

from smartcity.opendata import publishing
from tests.conftest import seoul_data
from tests.opendata.helpers import PUBLISHER, publish

HEADER = "name,gu,count,price,day"
ROWS = [
    ("역삼역 앞", "강남구", 3, 1.5, "2024-01-02"),
    ("강남역", "강남구", 5, None, "2024-01-05"),
    ("선릉역", "강남구", None, 2.25, "2024-02-01"),
    ("시청", "중구", 10, 0.5, None),
    ("을지로_3가", "중구", 7, 2.25, "2024-03-10"),
    ("홍대입구", "마포구", 1, 9.0, "2023-12-31"),
    ("합정%역", "마포구", 2, 4.0, "2024-01-02"),
]


def _csv(rows) -> bytes:
    lines = [HEADER] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _load(db, rows=ROWS, name="stations") -> str:
    return publish(db, name, _csv(rows), f"{name}.csv").resource_id


def _names(body) -> list[str]:
    return [row["name"] for row in body["rows"]]


def test_filters_select_the_rows_their_operator_names(client, db):
    uid = _load(db)
    url = f"/opendata/rows/{uid}.json"

    def names(**params) -> list[str]:
        answer = client.get(url, params=params)
        assert answer.status_code == 200, answer.text
        return _names(answer.json())

    assert names(gu="중구") == ["시청", "을지로_3가"]
    assert names(gu__exact="마포구") == ["홍대입구", "합정%역"]
    assert names(count__gt="5") == ["시청", "을지로_3가"]
    assert names(count__gte="5") == ["강남역", "시청", "을지로_3가"]
    assert names(count__lt="3") == ["홍대입구", "합정%역"]
    assert names(count__lte="3", gu="강남구") == ["역삼역 앞"]
    assert names(price__gte="2.25", price__lt="9") == ["선릉역", "을지로_3가", "합정%역"]
    assert names(day__lt="2024-01-01") == ["홍대입구"]
    assert names(name__contains="%") == ["합정%역"]  # a LIKE wildcard is a plain character
    assert names(name__contains="_") == ["을지로_3가"]
    assert names(name__startswith="역삼") == ["역삼역 앞"]
    assert names(name__endswith="입구") == ["홍대입구"]
    assert names(count__contains="0") == ["시청"]  # a number matched as its text
    assert names(count__in="1,2,3") == ["역삼역 앞", "홍대입구", "합정%역"]
    assert names(gu__in='["중구", "마포구"]') == ["시청", "을지로_3가", "홍대입구", "합정%역"]
    assert names(gu__notin="강남구,마포구") == ["시청", "을지로_3가"]
    assert names(count__isnull="1") == ["선릉역"]
    assert names(price__notnull="1", day__isnull="1") == ["시청"]
    assert names(gu__not="강남구", count__gt="1") == ["시청", "을지로_3가", "합정%역"]
    body = client.get(url, params={"gu": "강남구"}).json()
    assert body["ok"] is True and body["filtered_table_rows_count"] == 3
    assert body["columns"] == ["_id", "name", "gu", "count", "price", "day"]
    first = {"_id": 1, "name": "역삼역 앞", "gu": "강남구", "count": 3, "price": 1.5, "day": "2024-01-02"}
    assert body["rows"][0] == first


def test_sorted_keyset_pages_cover_every_row_once_and_stay_put_when_rows_are_added(client, db):
    uid = _load(db)
    url = f"/opendata/rows/{uid}.json"
    # price ascending, NULLs last, ties by the row key: the same on SQLite and PostgreSQL
    expected = sorted(ROWS, key=lambda r: (r[3] is None, r[3] or 0))
    walked, params, pages = [], {"_sort": "price", "_size": "3"}, 0
    while True:
        body = client.get(url, params=params).json()
        walked += _names(body)
        pages += 1
        if not body["next"]:
            break
        assert body["next_url"].startswith("http") and "_next=" in body["next_url"]
        params = {"_sort": "price", "_size": "3", "_next": body["next"]}
    assert walked == [r[0] for r in expected] and pages == 3
    down = client.get(url, params={"_sort_desc": "price", "_size": "2"}).json()
    assert _names(down) == ["홍대입구", "합정%역"]
    second = client.get(url, params={"_sort_desc": "price", "_size": "2", "_next": down["next"]}).json()
    assert _names(second) == ["선릉역", "을지로_3가"]  # tied at 2.25: by row key

    first = client.get(url, params={"_sort": "count", "_size": "3"}).json()
    assert _names(first) == ["홍대입구", "합정%역", "역삼역 앞"]
    # A new version adds a row that sorts inside the first page: an offset would now repeat 역삼역 앞.
    publish(db, "stations", _csv([*ROWS, ("신설", "중구", 0, 1.0, "2024-04-01")]), "stations.csv")
    after = client.get(url, params={"_sort": "count", "_size": "3", "_next": first["next"]}).json()
    assert _names(after) == ["강남역", "을지로_3가", "시청"]
    rest = client.get(url, params={"_sort": "count", "_size": "3", "_next": after["next"]}).json()
    assert _names(rest) == ["선릉역"] and rest["next"] is None  # the NULL count comes last


def test_shapes_facets_and_the_size_limit(client, db):
    uid = _load(db)
    url = f"/opendata/rows/{uid}.json"
    arrays = client.get(url, params={"_shape": "arrays", "gu": "중구"}).json()
    assert arrays["columns"][1] == "name" and arrays["rows"] == [
        [4, "시청", "중구", 10, 0.5, None],
        [5, "을지로_3가", "중구", 7, 2.25, "2024-03-10"],
    ]
    array = client.get(url, params={"_shape": "array", "_size": "2"})
    assert [r["name"] for r in array.json()] == ["역삼역 앞", "강남역"]
    assert 'rel="next"' in array.headers["link"] and "_next=" in array.headers["link"]
    assert client.get(url, params={"_shape": "object", "gu": "마포구"}).json() == {
        "6": {"_id": 6, "name": "홍대입구", "gu": "마포구", "count": 1, "price": 9.0, "day": "2023-12-31"},
        "7": {"_id": 7, "name": "합정%역", "gu": "마포구", "count": 2, "price": 4.0, "day": "2024-01-02"},
    }
    faceted = client.get(url, params=[("_facet", "gu"), ("_facet", "day"), ("count__gt", "1"), ("_size", "1")]).json()
    gu = {r["value"]: r["count"] for r in faceted["facet_results"]["gu"]["results"]}
    assert gu == {"강남구": 2, "중구": 2, "마포구": 1}  # over the filtered rows, not the page
    assert faceted["facet_results"]["day"]["results"][0] == {"value": "2024-01-02", "label": "2024-01-02", "count": 2}
    many = _load(db, [(f"s{i}", "구", i, float(i), "2024-01-01") for i in range(1500)], name="many")
    assert len(client.get(f"/opendata/rows/{many}.json", params={"_size": "max"}).json()["rows"]) == 1000
    assert client.get(f"/opendata/rows/{many}.json", params={"_size": "1001"}).status_code == 400


def test_bad_requests_answer_400_in_datasettes_shape_and_touch_nothing(client, db):
    uid = _load(db)
    url = f"/opendata/rows/{uid}.json"
    bad = {
        "nope": "1",
        'name"; DROP TABLE x; --': "1",
        "_hash": "abc",
        "count__gt": "many",
        "day__exact": "2024-13-01",
        "_sort": "nope",
        "_facet": "_problems",
        "_next": "not-a-token",
        "_shape": "tables",
        "_size": "0",
        "count__isnull": "maybe",
    }
    for key, value in bad.items():
        answer = client.get(url, params={key: value})
        assert answer.status_code == 400, (key, answer.text)
        body = answer.json()
        assert body["ok"] is False and body["status"] == 400 and body["error"], key
    assert "nope" in client.get(url, params={"nope": "1"}).json()["error"]
    assert client.get(f"/opendata/rows/{uid}.csv", params={"nope": "1"}).json()["status"] == 400
    assert client.get(url, params={"_sort": "price", "_sort_desc": "price"}).status_code == 400
    assert client.get(f"/opendata/rows/{uid}.json", params={"_stream": "on"}).status_code == 400
    assert client.get(f"/opendata/rows/{uid}.xml").status_code == 400
    assert client.get("/opendata/rows/00000000-0000-0000-0000-000000000000.json").status_code == 404
    with db.session() as s:
        assert len([t for t in inspect(s.connection()).get_table_names() if t.startswith("od_r_")]) == 1
    assert len(client.get(url).json()["rows"]) == len(ROWS)
    with db.session() as s:
        publishing.set_published(s, PUBLISHER, "stations", False)
    withdrawn = client.get(url)
    assert withdrawn.status_code == 403 and withdrawn.json()["ok"] is False


def test_csv_pages(client, db):
    uid = _load(db)
    page = client.get(f"/opendata/rows/{uid}.csv", params={"_sort": "price", "_size": "2"})
    assert page.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(page.text))) == [
        ["_id", "name", "gu", "count", "price", "day"],
        ["4", "시청", "중구", "10", "0.5", ""],
        ["1", "역삼역 앞", "강남구", "3", "1.5", "2024-01-02"],
    ]
    assert "_next=" in page.headers["link"]


def test_the_whole_table_streamed_as_csv(live):
    big = [(f"장소 {i}", ("강남구", "중구")[i % 2], i, i / 4, "2024-05-01") for i in range(12_000)]
    many = _load(live.db, big, name="big")
    with httpx.stream(
        "GET", f"{live.url}/opendata/rows/{many}.csv", params={"_stream": "on", "gu": "중구"}, timeout=30
    ) as answer:
        assert answer.status_code == 200 and "content-length" not in answer.headers
        chunks = list(answer.iter_raw())
    table = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert len(chunks) > 1  # sent as it is read, not after
    assert table[0] == ["_id", "name", "gu", "count", "price", "day"]
    assert [int(r[3]) for r in table[1:]] == [i for i in range(12_000) if i % 2]


def test_parquet_has_the_tables_types_and_rows(client, db):
    uid = _load(db)
    for url in (f"/opendata/rows/{uid}.parquet", f"/opendata/resources/{uid}/download?format=parquet"):
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.text)
        table = pq.read_table(io.BytesIO(answer.content))
        types = {f.name: str(f.type) for f in table.schema}
        assert types == {"name": "string", "gu": "string", "count": "int64", "price": "double", "day": "date32[day]"}
        assert table.column("count").to_pylist() == [r[2] for r in ROWS]
        assert table.column("day").to_pylist() == [date.fromisoformat(r[4]) if r[4] else None for r in ROWS]
    only = pq.read_table(io.BytesIO(client.get(f"/opendata/rows/{uid}.parquet", params={"gu": "마포구"}).content))
    assert only.column("name").to_pylist() == ["홍대입구", "합정%역"]


def test_a_streamed_table_is_read_a_chunk_at_a_time_not_held(db):
    import tracemalloc

    from smartcity.opendata import rows

    uid = _load(db, [(f"장소 {i}", "강남구", i, i / 4, "2024-05-01") for i in range(30_000)], name="held")
    tracemalloc.start()
    streamed = sum(len(chunk) for _, chunk in rows.stream_rows(db, uid, []))
    _, streaming_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    with db.session() as s:
        held = len(s.execute(rows.rows_query(rows.parse(s, uid, [], "csv"), paged=False)).all())
    _, holding_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert streamed == held == 30_000
    assert streaming_peak < holding_peak / 4, (streaming_peak, holding_peak)  # measured: 2.5 MB against 90-120 MB


def test_keyset_pages_over_times_and_truth_values(client, db):
    data = (
        "at,open,note\n"
        + "".join(f"2024-05-0{1 + i % 3} 0{i % 4}:30:15,{'true' if i % 2 else 'false'},n{i}\n" for i in range(9))
        + ",,blank\n"
    )
    uid = publish(db, "times", data.encode(), "times.csv").resource_id
    everything = client.get(f"/opendata/rows/{uid}.json", params={"_size": "max"}).json()["rows"]
    opened = client.get(f"/opendata/rows/{uid}.json", params={"open__gt": "false"}).json()["rows"]
    assert [r["note"] for r in opened] == ["n1", "n3", "n5", "n7"]
    late = client.get(f"/opendata/rows/{uid}.json", params={"at__gte": "2024-05-03 00:30:15"}).json()["rows"]
    assert [r["note"] for r in late] == ["n2", "n5", "n8"]
    for sort in ("at", "open"):
        for direction in ("_sort", "_sort_desc"):
            walked, params = [], {direction: sort, "_size": "2"}
            while True:
                body = client.get(f"/opendata/rows/{uid}.json", params=params).json()
                assert body["ok"], body
                walked += [r["_id"] for r in body["rows"]]
                if not body["next"]:
                    break
                params = {direction: sort, "_size": "2", "_next": body["next"]}
            # NULLs last, ties by row key in either direction (Python's sort is stable, reversed too)
            present = sorted((r for r in everything if r[sort] is not None), key=lambda r: r["_id"])
            present.sort(key=lambda r: r[sort], reverse=direction == "_sort_desc")
            expected = [r["_id"] for r in present] + [r["_id"] for r in everything if r[sort] is None]
            assert walked == expected, (sort, direction)


@pytest.mark.real_data
def test_real_dumping_records_walked_faceted_and_as_parquet(client, db):
    path = seoul_data("illegal_dumping_gangnam_2022.csv")
    done = publish(db, "dumping", path.read_bytes(), path.name)
    url = f"/opendata/rows/{done.resource_id}"
    seen, params = [], {"_sort_desc": "위반일시", "_size": "max"}
    previous = None
    while True:
        body = client.get(f"{url}.json", params=params).json()
        times = [r["위반일시"] for r in body["rows"]]
        present = [t for t in times if t is not None]
        assert present == sorted(present, reverse=True)
        if previous is not None and present:
            assert present[0] <= previous  # pages continue where the last one stopped
        previous = present[-1] if present else previous
        seen += [r["_id"] for r in body["rows"]]
        if not body["next"]:
            break
        params = {**params, "_next": body["next"]}
    assert sorted(seen) == list(range(1, done.rows + 1))  # every record once, broken dates (NULL) last
    kinds = client.get(f"{url}.json", params={"_facet": "위반쓰레기", "_size": "1"}).json()["facet_results"]
    counted = kinds["위반쓰레기"]["results"]
    assert not kinds["위반쓰레기"]["truncated"] and sum(r["count"] for r in counted) == done.rows
    top = counted[0]
    exact = client.get(f"{url}.json", params={"위반쓰레기": top["value"]}).json()
    assert exact["filtered_table_rows_count"] == top["count"]
    table = pq.read_table(io.BytesIO(client.get(f"{url}.parquet").content))
    assert table.num_rows == done.rows
    types = {f.name: str(f.type) for f in table.schema}
    assert types["위반일시"] == "timestamp[us]" and types["lat"] == "double"
