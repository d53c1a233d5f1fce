"""The Seoul Open Data Plaza's OpenAPI call shape (/openapi/{KEY}/{json|xml|xls}/{SERVICE}/{START}/{END}/…)
on both stores: rows in JSON, XML (read with ElementTree) and XLSX (read with openpyxl), every RESULT code in
HTTP 200, keys issued and revoked on /opendata/keys, daily quotas counted in batches."""

from __future__ import annotations

import io
import re
import time
import xml.etree.ElementTree as ET
from urllib.parse import quote

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from smartcity.app import create_app
from smartcity.core import accounts, audit
from smartcity.opendata import keys, publishing, seoul_api
from smartcity.opendata.models import OpenApiUsage
from tests.conftest import make_settings, make_user, signin
from tests.opendata.helpers import PUBLISHER, publish

DISTRICTS = [
    "강남구",
    "서초구",
    "마포구",
    "강남구",
    "종로구",
    "강남구",
    "송파구",
    "마포구",
    "강남구",
    "서초구",
    "중구",
    "강남구",
]
CCTV = "자치구,설치장소,수량,비고\n" + "\n".join(
    f"{d},{d} 설치장소 {n},{n},{'=1+1' if n == 3 else ''}" for n, d in enumerate(DISTRICTS, 1)
)


def _publish(db) -> str:
    """The CCTV file as dataset 'seoul-cctv', also declared as service CctvInstallInfo filtered by 자치구."""
    uid = publish(db, "seoul-cctv", CCTV.encode(), "cctv.csv").resource_id
    with db.session() as s:
        seoul_api.declare_service(s, PUBLISHER, "CctvInstallInfo", uid, ["자치구"])
    return uid


def _csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def _issue(client, name: str = "대시보드") -> str:
    answer = client.post("/opendata/keys", data={"csrf_token": _csrf(client, "/opendata/keys"), "name": name})
    assert answer.status_code == 201
    return re.search(r"<code>(sc_[^<]+)</code>", answer.text).group(1)


def _code(answer) -> str:
    """The RESULT code of a JSON answer (HTTP 200 whatever the outcome, as Seoul's)."""
    assert answer.status_code == 200
    body = answer.json()
    return (body["RESULT"] if "RESULT" in body else next(iter(body.values()))["RESULT"])["CODE"]


def test_the_sample_key_reads_five_rows_as_seouls_documentation_shows(db, client):
    _publish(db)
    answer = client.get("/openapi/sample/json/seoul-cctv/1/5/")
    assert answer.status_code == 200
    body = answer.json()["seoul-cctv"]
    assert body["list_total_count"] == len(DISTRICTS)
    assert body["RESULT"] == {"CODE": "INFO-000", "MESSAGE": seoul_api.CODES["INFO-000"]}
    assert [r["자치구"] for r in body["row"]] == DISTRICTS[:5]
    assert body["row"][1] == {"자치구": "서초구", "설치장소": "서초구 설치장소 2", "수량": 2, "비고": None}
    # Without the trailing slash, and a later window: 1-based, both ends included.
    later = client.get("/openapi/sample/json/seoul-cctv/8/12").json()["seoul-cctv"]["row"]
    assert [r["수량"] for r in later] == [8, 9, 10, 11, 12]
    assert _code(client.get("/openapi/sample/json/seoul-cctv/1/10/")) == "ERROR-335"
    assert _code(client.get("/openapi/sample/json/seoul-cctv/13/15/")) == "INFO-200"


def test_an_issued_key_reads_up_to_1000_rows_in_xml_and_filters_by_position(db, client):
    _publish(db)
    make_user(db, "dev", "citizen")
    signin(client, "dev")
    key = _issue(client)
    answer = client.get(f"/openapi/{key}/xml/CctvInstallInfo/1/1000/")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(answer.content)
    assert root.tag == "CctvInstallInfo"
    assert root.findtext("list_total_count") == str(len(DISTRICTS))
    assert root.findtext("RESULT/CODE") == "INFO-000"
    rows = root.findall("row")
    assert [r.findtext("자치구") for r in rows] == DISTRICTS
    assert rows[0].findtext("수량") == "1" and rows[0].findtext("비고") == ""
    # The service's one filter column is 자치구: a Korean value in the path, percent-encoded by the client.
    gangnam = ET.fromstring(client.get(f"/openapi/{key}/xml/CctvInstallInfo/1/3/{quote('강남구')}").content)
    assert gangnam.findtext("list_total_count") == str(DISTRICTS.count("강남구"))
    assert [r.findtext("설치장소") for r in gangnam.findall("row")] == [
        "강남구 설치장소 1",
        "강남구 설치장소 4",
        "강남구 설치장소 6",
    ]
    # A blank filter (a space, as Seoul's clients send for an optional value) leaves the column free.
    assert ET.fromstring(client.get(f"/openapi/{key}/xml/CctvInstallInfo/1/2/%20/").content).findtext(
        "list_total_count"
    ) == str(len(DISTRICTS))
    # Errors in XML are a RESULT alone.
    refused = ET.fromstring(client.get(f"/openapi/{key}/xml/CctvInstallInfo/1/1001/").content)
    assert refused.tag == "RESULT" and refused.findtext("CODE") == "ERROR-336"
    assert refused.findtext("MESSAGE") == seoul_api.CODES["ERROR-336"]
    nothing = ET.fromstring(client.get(f"/openapi/{key}/xml/CctvInstallInfo/1/5/{quote('도봉구')}").content)
    assert nothing.findtext("CODE") == "INFO-200"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/openapi/sample/json/seoul-cctv/5/2/", "ERROR-334"),
        ("/openapi/sample/json/seoul-cctv/0/3/", "ERROR-331"),
        ("/openapi/sample/json/seoul-cctv/1/0/", "ERROR-332"),
        ("/openapi/sample/json/seoul-cctv/a/5/", "ERROR-333"),
        ("/openapi/sample/json/seoul-cctv/1/2.5/", "ERROR-333"),
        ("/openapi/sample/json/seoul-cctv/1/", "ERROR-300"),
        ("/openapi/sample/json/%20/1/5/", "ERROR-300"),
        ("/openapi/sample/json/NoSuchService/1/5/", "ERROR-310"),
        ("/openapi/sample/json/draft-cctv/1/5/", "ERROR-310"),
        ("/openapi/sample/json/CctvInstallInfo/1/5/강남구/extra/", "ERROR-338"),
        ("/openapi/not-a-key/json/seoul-cctv/1/5/", "INFO-100"),
        ("/openapi/sample/json/seoul-cctv/1/99999999999999999999999/", "ERROR-335"),
        ("/openapi/sample/json/seoul-cctv/99999999999999999999999/99999999999999999999999/", "INFO-200"),
    ],
)
def test_bad_calls_are_answered_with_seouls_codes_and_http_200(db, client, path, code):
    _publish(db)
    publish(db, "draft-cctv", CCTV.encode(), "draft.csv")
    with db.session() as s:
        publishing.set_published(s, PUBLISHER, "draft-cctv", False)
    answer = client.get(path)
    assert _code(answer) == code
    assert answer.json()["RESULT"]["MESSAGE"] == seoul_api.CODES[code]


def test_an_unknown_file_type_is_error_301_in_xml(db, client):
    _publish(db)
    answer = client.get("/openapi/sample/csv/seoul-cctv/1/5/")
    assert answer.status_code == 200
    assert ET.fromstring(answer.content).findtext("CODE") == "ERROR-301"


def test_xls_is_a_real_workbook_whose_text_never_becomes_a_formula(db, client):
    _publish(db)
    answer = client.get("/openapi/sample/xls/seoul-cctv/1/5/")
    assert answer.status_code == 200 and answer.headers["content-type"] == seoul_api.XLSX
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["seoul-cctv", "RESULT"]
    rows = list(book["seoul-cctv"].iter_rows(values_only=True))
    assert rows[0] == ("자치구", "설치장소", "수량", "비고")
    assert rows[3] == ("마포구", "마포구 설치장소 3", 3, "=1+1")
    assert book["seoul-cctv"]["D4"].data_type == "s"
    result = dict(book["RESULT"].iter_rows(values_only=True))
    assert result == {"list_total_count": len(DISTRICTS), "CODE": "INFO-000", "MESSAGE": seoul_api.CODES["INFO-000"]}
    refused = openpyxl.load_workbook(io.BytesIO(client.get("/openapi/sample/xls/seoul-cctv/1/6/").content))
    assert dict(refused["RESULT"].iter_rows(values_only=True))["CODE"] == "ERROR-335"


def test_a_revoked_key_is_info_100_and_another_persons_key_cannot_be_revoked(db, client):
    _publish(db)
    make_user(db, "dev", "citizen")
    make_user(db, "other", "citizen")
    signin(client, "dev")
    key = _issue(client)
    assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/10/")) == "INFO-000"
    key_id = int(re.search(r'data-key-id="(\d+)"', client.get("/opendata/keys").text).group(1))
    client.post("/signout", data={"csrf_token": _csrf(client, "/")})
    signin(client, "other")
    refused = client.post(f"/opendata/keys/{key_id}/revoke", data={"csrf_token": _csrf(client, "/opendata/keys")})
    assert refused.status_code == 404
    assert f'data-key-id="{key_id}"' not in refused.text
    client.post("/signout", data={"csrf_token": _csrf(client, "/")})
    signin(client, "dev")
    assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/10/")) == "INFO-000"
    done = client.post(
        f"/opendata/keys/{key_id}/revoke",
        data={"csrf_token": _csrf(client, "/opendata/keys")},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/10/")) == "INFO-100"
    assert ET.fromstring(client.get(f"/openapi/{key}/xml/seoul-cctv/1/10/").content).findtext("CODE") == "INFO-100"


def test_an_openapi_key_opens_nothing_else(db, client):
    make_user(db, "dev", "citizen")
    signin(client, "dev")
    key = _issue(client)
    client.post("/signout", data={"csrf_token": _csrf(client, "/")})
    me = client.get("/api/me", headers={"X-API-Key": key}).json()
    assert me["via"] == "key" and me["username"] is None and me["role"] is None


def test_a_disabled_persons_keys_stop_working(db, client):
    _publish(db)
    dev = make_user(db, "dev", "citizen")
    signin(client, "dev")
    key = _issue(client)
    assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/1/")) == "INFO-000"
    with db.session() as s:
        accounts.set_active(s, dev, False, actor="cli")
    assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/1/")) == "INFO-100"


def test_a_publisher_names_a_service_and_its_filter_columns_on_a_page(db, client):
    uid = publish(db, "seoul-cctv", CCTV.encode(), "cctv.csv").resource_id
    make_user(db, "pub", "data_publisher")
    make_user(db, "dev", "citizen")
    signin(client, "dev")
    assert client.get("/opendata/publish/services").status_code == 403
    client.post("/signout", data={"csrf_token": _csrf(client, "/")})
    signin(client, "pub")
    token = _csrf(client, "/opendata/publish/services")
    refused = client.post(
        "/opendata/publish/services",
        data={"csrf_token": token, "name": "CctvByDistrict", "resource": uid, "filters": "자치구, 없는열"},
    )
    assert refused.status_code == 422 and "없는열" in refused.text
    assert _code(client.get("/openapi/sample/json/CctvByDistrict/1/5/")) == "ERROR-310"
    done = client.post(
        "/opendata/publish/services",
        data={"csrf_token": token, "name": "CctvByDistrict", "resource": uid, "filters": "자치구, 수량"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert 'data-service="CctvByDistrict"' in client.get("/opendata/publish/services").text
    # Both filter columns, in order: 자치구 then 수량 (an integer column, matched as one).
    body = client.get(f"/openapi/sample/json/CctvByDistrict/1/5/{quote('강남구')}/6").json()["CctvByDistrict"]
    assert body["list_total_count"] == 1 and body["row"][0]["설치장소"] == "강남구 설치장소 6"
    assert _code(client.get(f"/openapi/sample/json/CctvByDistrict/1/5/{quote('강남구')}/six")) == "ERROR-338"
    with db.session() as s:
        declared = audit.entries(s, object_type="opendata.openapi_service")
    assert [(e.actor, e.object_id, e.detail["filters"]) for e in declared] == [
        ("pub", "CctvByDistrict", ["자치구", "수량"])
    ]


def test_the_keys_page_needs_a_signed_in_person(client):
    assert client.get("/opendata/keys", headers={"accept": "application/json"}).status_code == 401


def test_a_key_over_its_daily_quota_is_error_337_and_calls_are_written_in_batches(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, opendata_openapi_daily_quota=3, run_jobs=False), db)
    _publish(db)
    make_user(db, "dev", "citizen")
    with TestClient(app) as client:
        signin(client, "dev")
        key = _issue(client)
        keys.flush_usage(db)  # whatever the set-up counted
        # A refused call counts as much as an answered one.
        codes = [_code(client.get(f"/openapi/{key}/json/seoul-cctv/{start}/{end}/")) for start, end in ((1, 5), (5, 1))]
        assert codes == ["INFO-000", "ERROR-334"]
        written = keys.flush_usage(db)
        assert written == 2
        with db.session() as s:
            assert s.scalar(select(OpenApiUsage.calls)) == 2
        assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/5/")) == "INFO-000"
        assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/5/")) == "ERROR-337"
        assert "3 / 3" in client.get("/opendata/keys").text
        # Another process (a new counter) reads the stored count: still over.
        keys.flush_usage(db)
        keys.USAGE.drop(db)
        assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/5/")) == "ERROR-337"
        assert _code(client.get("/openapi/sample/json/seoul-cctv/1/5/")) == "INFO-000"  # sample: rows, no quota
        with db.session() as s:
            assert s.scalar(select(OpenApiUsage.calls)) == 3


def test_calls_are_not_written_one_by_one(db, client):
    _publish(db)
    make_user(db, "dev", "citizen")
    signin(client, "dev")
    key = _issue(client)
    upserts = []

    def seen(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT") and "opendata_openapi_usage" in statement:
            upserts.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    started = time.monotonic()
    for _ in range(20):
        assert _code(client.get(f"/openapi/{key}/json/seoul-cctv/1/1/")) == "INFO-000"
    elapsed = time.monotonic() - started
    event.remove(db.engine, "before_cursor_execute", seen)
    # A write per FLUSH_EVERY_S at most, and the module's job's every 5 s: nowhere near one per call.
    assert len(upserts) <= 2 + elapsed / keys.FLUSH_EVERY_S + elapsed / 5
    keys.flush_usage(db)
    with db.session() as s:
        assert s.scalar(select(OpenApiUsage.calls)) == 20
