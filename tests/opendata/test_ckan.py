"""The CKAN Action API driven by the real `ckanapi` client against a running server, on both stores; bad
input answered in CKAN's error envelope with its status codes."""

from __future__ import annotations

import json

import ckanapi
import httpx
import pytest
from sqlalchemy import event, func, select

from smartcity.opendata import publishing
from smartcity.opendata.models import Dataset, Organisation
from tests.opendata.helpers import PUBLISHER, publish

CCTV = "자치구,설치장소,수량,설치일\n" + "\n".join(
    [
        "강남구,역삼동 테헤란로 152,3,2020-01-05",
        "강남구,삼성동 봉은사로 524,5,2021-03-01",
        "서초구,서초동 1-1,2,2019-07-30",
        "강남구,대치동 선릉로 424,1,2022-11-11",
        "마포구,서교동 홍익로 10,4,2018-02-02",
    ]
)


def _catalogue(db) -> dict[str, str]:
    """Three published datasets in two organisations, one unpublished; their resources' ids by dataset."""
    with db.session() as s:
        orgs = list(s.scalars(select(Organisation.name).order_by(Organisation.name).limit(2)))
        for name, title, org, tags, theme in (
            ("cctv-gangnam", "강남구 CCTV 설치 현황", orgs[0], ["cctv", "안전"], "safety"),
            ("wifi-points", "공공 와이파이 위치", orgs[1], ["wifi"], "communication"),
            ("cctv-seocho", "서초구 방범 CCTV", orgs[1], ["cctv"], "safety"),
            ("draft-data", "공개 전 CCTV 자료", orgs[0], ["cctv"], "safety"),
        ):
            info = publishing.DatasetInfo(
                name, title_ko=title, title_en=name, organisation=org, tags=tags, theme=theme, licence="KOGL-Type1"
            )
            publishing.save_dataset(s, PUBLISHER, info)
    ids = {
        "cctv-gangnam": publish(db, "cctv-gangnam", CCTV.encode(), "cctv.csv").resource_id,
        "wifi-points": publish(
            db, "wifi-points", b"place,lat,lon\nA,37.5,127.0\nB,37.6,127.1\n", "wifi.csv"
        ).resource_id,
        "draft-data": publish(db, "draft-data", b"secret,n\nx,1\n", "draft.csv").resource_id,
    }
    with db.session() as s:
        s.scalar(select(Dataset).where(Dataset.name == "draft-data")).published = False
        from smartcity.opendata.catalogue import index_dataset

        index_dataset(s, s.scalar(select(Dataset).where(Dataset.name == "draft-data")))
    return ids


def test_ckanapi_lists_searches_and_shows_the_catalogue(live, db):
    ids = _catalogue(db)
    ckan = ckanapi.RemoteCKAN(live.url)
    assert ckan.action.package_list() == ["cctv-gangnam", "cctv-seocho", "wifi-points"]
    found = ckan.action.package_search(q="CCTV", facet_field=["tags", "organization", "res_format"])
    assert found["count"] == 2
    assert {p["name"] for p in found["results"]} == {"cctv-gangnam", "cctv-seocho"}  # never the unpublished one
    assert found["facets"]["tags"] == {"cctv": 2, "안전": 1}
    assert sum(found["facets"]["organization"].values()) == 2
    assert found["facets"]["res_format"] == {"CSV": 1}
    # CKAN's own spelling of the parameters, and a filter query.
    only = ckan.action.package_search(**{"fq": 'tags:"안전"', "facet.field": ["theme"], "facet.mincount": 1})
    assert [p["name"] for p in only["results"]] == ["cctv-gangnam"] and only["facets"]["theme"] == {"safety": 1}
    by_name = ckan.action.package_search(sort="name desc", rows=2, start=1)
    assert by_name["count"] == 3 and [p["name"] for p in by_name["results"]] == ["cctv-seocho", "cctv-gangnam"]
    package = ckan.action.package_show(id="cctv-gangnam")
    assert package["title"] == "강남구 CCTV 설치 현황" and package["num_resources"] == 1
    assert package["resources"][0]["id"] == ids["cctv-gangnam"] and package["resources"][0]["datastore_active"]
    assert ckan.action.resource_show(id=ids["cctv-gangnam"])["package_id"] == package["id"]
    orgs = ckan.action.organization_list(all_fields=True)
    assert sum(o["package_count"] for o in orgs) == 3
    shown = ckan.action.organization_show(id=package["organization"]["name"], include_datasets=True)
    assert [p["name"] for p in shown["packages"]] == ["cctv-gangnam"]
    assert ckan.action.tag_list() == ["cctv", "wifi", "안전"]
    with pytest.raises(ckanapi.NotFound):
        ckan.action.package_show(id="no-such-dataset")
    with pytest.raises(ckanapi.NotAuthorized):
        ckan.action.package_show(id="draft-data")


def test_ckanapi_reads_rows_with_filters_sort_fields_and_formats(live, db):
    ids = _catalogue(db)
    ckan = ckanapi.RemoteCKAN(live.url)
    rid = ids["cctv-gangnam"]
    page = ckan.action.datastore_search(resource_id=rid, filters={"자치구": "강남구"}, sort="수량 desc", limit=2)
    assert page["total"] == 3
    assert [(r["설치장소"], r["수량"]) for r in page["records"]] == [
        ("삼성동 봉은사로 524", 5),
        ("역삼동 테헤란로 152", 3),
    ]
    types = {f["id"]: f["type"] for f in page["fields"]}
    assert types == {"_id": "int", "자치구": "text", "설치장소": "text", "수량": "int", "설치일": "date"}
    assert page["records"][0]["설치일"] == "2021-03-01"
    rest = ckan.action.datastore_search(resource_id=rid, filters={"자치구": "강남구"}, sort="수량 desc", offset=2)
    assert [r["수량"] for r in rest["records"]] == [1]
    many = ckan.action.datastore_search(resource_id=rid, filters={"자치구": ["서초구", "마포구"]}, fields=["수량"])
    assert sorted(r["수량"] for r in many["records"]) == [2, 4] and list(many["records"][0]) == ["수량"]
    assert ckan.action.datastore_search(resource_id=rid, q="선릉로")["total"] == 1
    districts = ckan.action.datastore_search(resource_id=rid, fields="자치구", distinct=True, sort="자치구")
    assert [r["자치구"] for r in districts["records"]] == ["강남구", "마포구", "서초구"] and districts["total"] == 3
    lists = ckan.action.datastore_search(resource_id=rid, records_format="lists", fields=["_id", "수량"], limit=2)
    assert lists["records"] == [[1, 3], [2, 5]]
    as_csv = ckan.action.datastore_search(resource_id=rid, records_format="csv", fields=["자치구", "수량"], limit=2)
    assert as_csv["records"] == "강남구,3\n강남구,5\n"
    assert "total" not in ckan.action.datastore_search(resource_id=rid, include_total=False)
    with pytest.raises(ckanapi.ValidationError) as bad:
        ckan.action.datastore_search(resource_id=rid, filters={"nope": 1})
    assert "filters" in bad.value.error_dict
    with pytest.raises(ckanapi.NotAuthorized):
        ckan.action.datastore_search(resource_id=ids["draft-data"])
    with pytest.raises(ckanapi.NotFound):
        ckan.action.datastore_search(resource_id="00000000-0000-0000-0000-000000000000")


def test_datastore_search_sql_reads_published_tables_only(live, db):
    ids = _catalogue(db)
    ckan = ckanapi.RemoteCKAN(live.url)
    rid = ids["cctv-gangnam"]
    done = ckan.action.datastore_search_sql(
        sql=f'SELECT "자치구", sum("수량") AS cameras FROM "{rid}" GROUP BY "자치구" ORDER BY cameras DESC'
    )
    assert [(r["자치구"], r["cameras"]) for r in done["records"]] == [("강남구", 9), ("마포구", 4), ("서초구", 2)]
    assert "records_truncated" not in done
    joined = ckan.action.datastore_search_sql(
        sql=f'SELECT count(*) AS n FROM "{rid}" c JOIN "{ids["wifi-points"]}" w ON c._id = w._id'
    )
    assert joined["records"] == [{"n": 2}]
    for writing in (
        f'DELETE FROM "{rid}"',
        f'DROP TABLE "{rid}"',
        f'SELECT 1; DELETE FROM "{rid}"',
        f'SELECT * INTO stolen FROM "{rid}"',
        f'UPDATE "{rid}" SET "수량" = 0',
        f'SELECT * FROM "{rid}" FOR UPDATE',
    ):
        with pytest.raises(ckanapi.ValidationError):
            ckan.action.datastore_search_sql(sql=writing)
    for hidden in (
        "SELECT * FROM users",
        "SELECT * FROM opendata_datasets",
        f'SELECT * FROM "{ids["draft-data"]}"',  # a resource of an unpublished dataset
        "SELECT name FROM sqlite_master",
        "SELECT * FROM pg_catalog.pg_tables",
        f'SELECT * FROM "{rid}" WHERE 1 IN (SELECT 1 FROM users)',
        "SELECT pg_sleep(1)",
    ):
        with pytest.raises(ckanapi.NotAuthorized):
            ckan.action.datastore_search_sql(sql=hidden)
    assert ckan.action.datastore_search(resource_id=rid)["total"] == 5  # nothing was changed


def test_datastore_search_sql_caps_rows_and_time(live, db):
    ckan = ckanapi.RemoteCKAN(live.url)
    counted = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000) SELECT i FROM n"
    capped = ckan.action.datastore_search_sql(sql=counted)
    assert capped["records_truncated"] is True and len(capped["records"]) == 32_000
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    with pytest.raises(ckanapi.ValidationError) as slow:
        ckan.action.datastore_search_sql(sql=endless)
    assert "too long" in str(slow.value.error_dict["sql"])


def test_rows_are_clamped_at_1000_with_the_true_count(live, db):
    with db.session() as s:
        for n in range(1005):
            publishing.save_dataset(
                s, PUBLISHER, publishing.DatasetInfo(f"bus-stops-{n:04d}", title_ko=f"버스 정류소 {n}", tags=["bus"])
            )
    ckan = ckanapi.RemoteCKAN(live.url)
    found = ckan.action.package_search(q="정류소", rows=5000)
    assert found["count"] == 1005 and len(found["results"]) == 1000
    assert len(ckan.action.package_search()["results"]) == 10  # CKAN's default
    last = ckan.action.package_search(fq="tags:bus", rows=1000, start=1000, sort="name asc")
    assert [p["name"] for p in last["results"]] == [f"bus-stops-{n:04d}" for n in range(1000, 1005)]


def test_fq_injection_is_refused_or_taken_literally(live, db):
    _catalogue(db)
    ckan = ckanapi.RemoteCKAN(live.url)
    for injected in ("tags:cctv' OR '1'='1", "tags:cctv) OR (1=1", "name:x", "tags:cctv; DROP TABLE opendata_datasets"):
        with pytest.raises(ckanapi.SearchQueryError):
            ckan.action.package_search(fq=injected)
    literal = ckan.action.package_search(fq="tags:\"cctv' OR '1'='1\"")
    assert literal["count"] == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == 4


def test_errors_use_ckans_envelope_and_status_codes(live, db):
    ids = _catalogue(db)
    with httpx.Client(base_url=live.url) as http:
        unknown = http.get("/api/3/action/package_destroy")
        assert unknown.status_code == 400 and unknown.json()["success"] is False
        assert "Action name not known" in unknown.json()["error"]["message"]
        missing = http.get("/api/3/action/package_show", params={"id": "nothing"})
        assert missing.status_code == 404 and missing.json()["error"]["__type"] == "Not Found Error"
        assert missing.json()["help"].endswith("/api/3/action/help_show?name=package_show")
        hidden = http.get("/api/action/datastore_search", params={"resource_id": ids["draft-data"]})
        assert hidden.status_code == 403 and hidden.json()["error"]["__type"] == "Authorization Error"
        invalid = http.post("/api/3/action/datastore_search", json={"resource_id": ids["cctv-gangnam"], "limit": -1})
        assert invalid.status_code == 409 and invalid.json()["error"]["__type"] == "Validation Error"
        assert "limit" in invalid.json()["error"]
        broken = http.post(
            "/api/3/action/package_search", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400 and "JSON" in broken.json()["error"]["message"]
        bad_fq = http.get("/api/3/action/package_search", params={"fq": "owner:1 OR 1=1"})
        assert bad_fq.status_code == 400 and bad_fq.json()["error"]["__type"] == "Search Query Error"
        ok = http.get("/api/3/action/package_search", params={"q": "CCTV", "facet.field": '["tags"]', "rows": "1"})
        assert ok.status_code == 200 and ok.json()["result"]["count"] == 2 and len(ok.json()["result"]["results"]) == 1


def test_a_large_table_is_indexed_for_its_filters_and_its_total_is_not_recounted(db):
    """Regression (speed): datastore_search scanned the typed table for each page (no index; count(*) over
    every row). A table of at least a thousand rows gets indexes on its dates and few-valued text columns,
    and one over them together; an unfiltered total is the version's count."""
    from sqlalchemy import inspect

    from smartcity.opendata import datastore
    from smartcity.opendata.models import Resource

    districts, kinds = ["강남구", "서초구", "송파구", "마포구"], ["도로", "조명", "쓰레기"]
    lines = [
        f"{n},{districts[n % 4]},{kinds[n % 3]},2024-{n % 12 + 1:02d}-{n % 28 + 1:02d},{n * 1.5},제목 {n}"
        for n in range(1, 3001)
    ]
    data = ("id,district,kind,date,amount,title\n" + "\n".join(lines) + "\n").encode()
    done = publish(db, "many-rows", data, "many.csv")
    with db.session() as s:
        table = s.scalar(select(Resource.table).where(Resource.uid == done.resource_id))
        indexed = {tuple(i["column_names"]) for i in inspect(s.connection()).get_indexes(table)}
        assert ("kind",) in indexed and ("date",) in indexed
        assert ("district", "kind", "date") in indexed  # district alone: the first column of this one
        assert not {("id",), ("amount",), ("title",)} & indexed  # identifiers, amounts, free text: none
        s.execute(select(Resource).where(Resource.uid == done.resource_id)).scalar_one().row_count = 2999
        s.flush()
        assert datastore.search(s, done.resource_id, limit=1)["total"] == 2999  # the version's count
        found = datastore.search(s, done.resource_id, filters={"district": "서초구", "kind": "도로"}, sort="date desc")
    expected = [n for n in range(1, 3001) if n % 4 == 1 and n % 3 == 0]
    assert found["total"] == len(expected)
    assert len(found["records"]) == 100 and {r["id"] for r in found["records"]} <= set(expected)
    dates = [r["date"] for r in found["records"]]
    assert dates == sorted(dates, reverse=True)


def test_a_page_of_packages_is_read_in_the_same_statements_whatever_its_size(db):
    """Regression (speed): each result was read on its own (its organisation, tags and resources: three
    statements a dataset, thirty for CKAN's default page). A page is now read in the same statements whatever
    its size, and each package is still whole."""
    from smartcity.opendata import catalogue

    _catalogue(db)
    ran: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        ran.append(statement)

    def statements(rows: int) -> tuple[int, dict]:
        ran.clear()
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            with db.session() as s:
                found = catalogue.search_packages(s, "http://city", q="CCTV", rows=rows, facet_fields=["tags"])
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        return len(ran), found

    statements(2)  # the matches' facets read once (then remembered: tests/opendata/test_search.py)
    one, small = statements(1)
    two, found = statements(2)
    assert one == two
    assert len(small["results"]) == 1 and len(found["results"]) == 2 and found["count"] == 2
    gangnam = next(p for p in found["results"] if p["name"] == "cctv-gangnam")
    seocho = next(p for p in found["results"] if p["name"] == "cctv-seocho")
    assert [t["name"] for t in gangnam["tags"]] == ["cctv", "안전"] and gangnam["num_tags"] == 2
    assert [r["format"] for r in gangnam["resources"]] == ["CSV"] and gangnam["resources"][0]["datastore_active"]
    assert seocho["resources"] == [] and seocho["num_resources"] == 0
    assert gangnam["organization"]["name"] != seocho["organization"]["name"]
    with db.session() as s:
        shown = catalogue.package_dict(
            s, s.scalar(select(Dataset).where(Dataset.name == "cctv-gangnam")), "http://city"
        )
    assert shown == gangnam


def test_datastore_search_by_get_answers_as_by_post(live, db):
    """GET datastore_search has a route of its own (the hot path): the same answer as POST's, and its errors in
    CKAN's envelope with CKAN's types (ckanapi's GET mode reads them), the help naming the action."""
    ids = _catalogue(db)
    rid = ids["cctv-gangnam"]
    by_get = ckanapi.RemoteCKAN(live.url, get_only=True)
    by_post = ckanapi.RemoteCKAN(live.url)
    wanted = {"resource_id": rid, "filters": {"자치구": ["강남구", "마포구"]}, "sort": "수량 desc", "limit": 3}
    # A GET carries an object as JSON text (ckanapi's GET mode sends the values as they are given).
    got = by_get.call_action("datastore_search", {**wanted, "filters": json.dumps(wanted["filters"])})
    assert got == by_post.call_action("datastore_search", wanted)
    assert [r["수량"] for r in got["records"]] == [5, 4, 3] and got["total"] == 4
    with pytest.raises(ckanapi.ValidationError) as bad:
        by_get.action.datastore_search(resource_id=rid, filters='{"nope": 1}')
    assert "filters" in bad.value.error_dict
    with pytest.raises(ckanapi.NotAuthorized):
        by_get.action.datastore_search(resource_id=ids["draft-data"])
    with pytest.raises(ckanapi.NotFound):
        by_get.action.datastore_search(resource_id="00000000-0000-0000-0000-000000000000")
    raw = httpx.get(f"{live.url}/api/3/action/datastore_search", params={"resource_id": rid, "limit": "x"})
    assert raw.status_code == 409 and raw.json()["success"] is False
    assert raw.json()["help"].endswith("help_show?name=datastore_search")
    assert raw.json()["error"]["__type"] == "Validation Error" and "limit" in raw.json()["error"]
