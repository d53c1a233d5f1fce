"""The catalogue's pages through HTTP on both stores: the plaza's search with facets, a dataset in ko/en with
its versions, a resource's preview (sorted, paged), points and chart; a publisher describes a dataset, loads
a file off the request (its progress and defects), publishes and withdraws it."""

from __future__ import annotations

import html
import re
import time

import pytest
from sqlalchemy import select

from smartcity.core.models import AuditEntry
from smartcity.opendata.models import Resource
from tests.conftest import make_user, seoul_data, signin
from tests.opendata.catalogue_helpers import BINS, dataset, load


def csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def listed(page: str) -> list[str]:
    return re.findall(r'<li data-name="([^"]+)">', page)


def test_the_plaza_finds_a_dataset_by_a_korean_word_and_narrows_by_facets(db, client):
    dataset(
        db, "trash-bins", "강남구 가로 쓰레기통 위치", "Street litter bins", organisation="env", tags=["쓰레기", "환경"]
    )
    load(db, "trash-bins", BINS, "bins.csv")
    dataset(db, "bus-stops", "버스 정류소 위치", "Bus stops", tags=["교통"], theme="transport")
    load(db, "bus-stops", b"id,name\n1,a\n", "stops.csv")

    found = client.get("/opendata", params={"q": "쓰레기통"})
    assert found.status_code == 200
    assert listed(found.text) == ["trash-bins"]
    assert 'data-total="1"' in found.text
    # The organisation facet shows the organisation's title with its count, and narrows the search.
    every = client.get("/opendata").text
    assert set(listed(every)) == {"trash-bins", "bus-stops"}
    facet = re.search(r'<a href="([^"]+)" data-value="env">기후환경과 <span class="n">1</span>', every)
    assert facet, "the organisation facet is listed with its title and count"
    narrowed = client.get(html.unescape(facet.group(1)))
    assert listed(narrowed.text) == ["trash-bins"]
    assert listed(client.get("/opendata", params={"tags": "교통"}).text) == ["bus-stops"]
    assert listed(client.get("/opendata", params={"res_format": "CSV", "theme": "transport"}).text) == ["bus-stops"]
    assert listed(client.get("/opendata", params={"q": "없는낱말"}).text) == []
    # In English, the English title.
    assert "Street litter bins" in client.get("/opendata", params={"q": "쓰레기통", "lang": "en"}).text


def test_the_plaza_pages_its_results(db, client):
    for n in range(12):
        dataset(db, f"set-{n:02d}", f"주차장 현황 {n}")
    first = listed(client.get("/opendata").text)
    second = listed(client.get("/opendata", params={"start": 10}).text)
    assert len(first) == 10 and len(second) == 2
    assert not set(first) & set(second)


def test_a_dataset_page_shows_its_description_resources_and_versions(db, client):
    dataset(
        db,
        "trash-bins",
        "강남구 가로 쓰레기통 위치",
        "Street litter bins",
        description_ko="강남구의 쓰레기통",
        description_en="Gangnam's bins",
        organisation="env",
        publisher="강남구청",
        update_frequency="monthly",
        spatial="강남구",
        tags=["쓰레기"],
        theme="environment",
    )
    first = load(db, "trash-bins", BINS, "bins.csv")
    second_file = BINS.replace(b"4,\xec\x84\x9c\xec\xb4\x88\xea\xb5\xac", b"4,\xea\xb0\x95\xeb\x82\xa8\xea\xb5\xac") + (
        "5,강남구,봉은사로 1,일반쓰레기,37.51,127.05,100\n".encode()
    )
    second = load(db, "trash-bins", second_file, "bins.csv")
    page = client.get("/opendata/datasets/trash-bins")
    assert page.status_code == 200
    text = page.text
    assert "<h1>강남구 가로 쓰레기통 위치</h1>" in text and "기후환경과" in text and "매월" in text
    assert f'data-uid="{first.resource_id}"' in text
    # The newest version first, with its diff summary; the first one downloadable as it was published.
    versions = re.findall(r'<tr data-version="(\d+)">', text)
    assert versions == ["2", "1"]
    assert (second.added, second.removed, second.changed) == (2, 1, 0)
    assert "+2 추가, −1 삭제, 0 변경" in text
    old = client.get(f"/opendata/resources/{first.resource_id}/versions/1/download")
    assert old.status_code == 200 and old.content == BINS
    assert client.get(f"/opendata/resources/{first.resource_id}/versions/2/download").content == second_file
    english = client.get("/opendata/datasets/trash-bins?lang=en").text
    assert "<h1>Street litter bins</h1>" in english and "Gangnam&#39;s bins" in english and "Monthly" in english


def test_an_unpublished_dataset_is_seen_by_publishers_only(db, client):
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    token = csrf(client, "/opendata/publish/datasets/new")
    made = client.post(
        "/opendata/publish/datasets",
        data={"csrf_token": token, "name": "draft-set", "title_ko": "준비 중인 자료", "tags": "초안"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    assert client.get("/opendata/datasets/draft-set").status_code == 200  # the publisher sees it
    client.post("/signout", data={"csrf_token": csrf(client, "/opendata")})
    assert client.get("/opendata/datasets/draft-set").status_code == 404
    assert "draft-set" not in listed(client.get("/opendata", params={"q": "준비"}).text)


def test_the_preview_sorts_and_pages_rows(db, client):
    dataset(db, "trash-bins", "쓰레기통")
    uid = load(db, "trash-bins", BINS, "bins.csv").resource_id
    page = client.get(f"/opendata/resources/{uid}")
    assert page.status_code == 200
    first_cells = re.findall(r"<tr><td>(\d+)</td>", page.text)
    assert first_cells == ["1", "2", "3", "4"]
    by_size = client.get(f"/opendata/resources/{uid}", params={"sort": "용량", "order": "desc"}).text
    assert re.findall(r"<tr><td>(\d+)</td>", by_size) == ["3", "1", "2", "4"]  # the empty size last
    assert 'aria-sort="descending"' in by_size
    paged = client.get(f"/opendata/resources/{uid}", params={"limit": 2, "start": 2}).text
    assert re.findall(r"<tr><td>(\d+)</td>", paged) == ["3", "4"]
    # A column it does not have: the rows in file order, not an error page.
    assert client.get(f"/opendata/resources/{uid}", params={"sort": "nope"}).status_code == 200


def test_points_and_the_chart_of_a_numeric_column(db, client):
    dataset(db, "trash-bins", "쓰레기통")
    uid = load(db, "trash-bins", BINS, "bins.csv").resource_id
    page = client.get(f"/opendata/resources/{uid}").text
    assert 'id="resource-map"' in page and 'class="chart-box"' in page
    geojson = client.get(f"/opendata/resources/{uid}/download?format=geojson")
    assert f'href="/opendata/resources/{uid}/download?format=geojson"' in page and geojson.status_code == 200
    points = client.get(f"/opendata/resources/{uid}/points.geojson").json()
    assert [f["geometry"]["coordinates"] for f in points["features"]][0] == [127.0364, 37.5006]
    assert len(points["features"]) == 4
    chart = client.get(f"/opendata/resources/{uid}/chart.json", params={"column": "용량"}).json()
    assert chart["counted"] == 3 and sum(b["count"] for b in chart["bins"]) == 3
    assert chart["bins"][0]["from"] == 80 and chart["bins"][-1]["to"] == 200
    refused = client.get(f"/opendata/resources/{uid}/chart.json", params={"column": "자치구"})
    assert refused.status_code == 422
    # Rows without positions: no map on the page.
    dataset(db, "plain", "번호")
    plain = load(db, "plain", b"id,name\n1,a\n", "plain.csv").resource_id
    plain_page = client.get(f"/opendata/resources/{plain}").text
    assert 'id="resource-map"' not in plain_page and "format=geojson" not in plain_page


def wait_for(client, url: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(url).json()
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"the load did not end: {status}")


def test_a_publisher_loads_a_file_off_the_request_and_sees_its_defects(db, client):
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    dataset(db, "dumping", "무단투기 단속")
    rows = "".join(f"담배꽁초,대치동 선릉로{n},2022.1.{n % 28 + 1} 10:11,37.50,127.05\n" for n in range(300))
    defective = ("위반쓰레기,장소,위반일시,lat,lng\n" + rows + "담배꽁초,신사동,##########,37.52,127.03\n").encode()
    token = csrf(client, "/opendata/publish/datasets/dumping")
    sent = client.post(
        "/opendata/publish/datasets/dumping/upload",
        data={"csrf_token": token, "resource": "2022"},
        files={"file": ("dumping.csv", defective, "text/csv")},
        headers={"Accept": "application/json"},
    )
    assert sent.status_code == 202, sent.text
    status = wait_for(client, sent.json()["status"])
    assert status["state"] == "done", status
    assert status["rows"] == 301 and status["problem_count"] == 1
    assert status["problems"][0] | {"problem": ""} == {
        "line": 302,
        "column": "위반일시",
        "value": "##########",
        "problem": "",
    }
    page = client.get(sent.json()["url"]).text
    assert "<td>302</td><td>위반일시</td><td>##########</td><td>날짜와 시간 형식이 아닙니다.</td>" in page
    with db.session() as s:
        resource = s.scalar(select(Resource).where(Resource.name == "2022"))
        assert resource.row_count == 301 and resource.version == 1
    # Without the page's script, the form sends to the load's page.
    plain = client.post(
        "/opendata/publish/datasets/dumping/upload",
        data={"csrf_token": token},
        files={"file": ("dumping.csv", defective, "text/csv")},
        follow_redirects=False,
    )
    assert plain.status_code == 303 and plain.headers["location"].startswith("/opendata/publish/loads/")


def test_a_file_that_is_not_a_table_fails_and_stores_nothing(db, client):
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    dataset(db, "dumping", "무단투기 단속")
    token = csrf(client, "/opendata/publish/datasets/dumping")
    sent = client.post(
        "/opendata/publish/datasets/dumping/upload",
        data={"csrf_token": token},
        files={"file": ("table.csv", b"PK\x03\x04 not a csv at all", "text/csv")},
        headers={"Accept": "application/json"},
    )
    status = wait_for(client, sent.json()["status"])
    assert status["state"] == "failed" and "CSV" in status["error"]
    with db.session() as s:
        assert s.scalar(select(Resource.id)) is None
    wrong = client.post(
        "/opendata/publish/datasets/dumping/upload",
        data={"csrf_token": token},
        files={"file": ("photo.jpg", b"\xff\xd8\xff", "image/jpeg")},
        headers={"Accept": "application/json"},
    )
    assert wrong.status_code == 422 and "photo.jpg" in wrong.json()["error"]
    huge = client.post(
        "/opendata/publish/datasets/dumping/upload",
        content=b"x",
        headers={"Content-Length": str(2 * 1024**3), "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert huge.status_code == 413


def test_publish_and_withdraw_are_audited_and_change_what_the_public_finds(db, client):
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    dataset(db, "trash-bins", "강남구 쓰레기통")
    load(db, "trash-bins", BINS, "bins.csv")
    token = csrf(client, "/opendata/publish/datasets/trash-bins")
    client.post("/opendata/publish/datasets/trash-bins/published", data={"csrf_token": token, "published": "0"})
    assert listed(client.get("/opendata", params={"q": "쓰레기통"}).text) == []
    client.post("/opendata/publish/datasets/trash-bins/published", data={"csrf_token": token, "published": "1"})
    assert listed(client.get("/opendata", params={"q": "쓰레기통"}).text) == ["trash-bins"]
    with db.session() as s:
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.object_type == "opendata.dataset").order_by(AuditEntry.id)
        ).all()
    assert actions[-2:] == ["unpublish", "publish"]


def test_the_publisher_pages_are_for_publishers(db, client):
    make_user(db, "minji", "citizen")
    signin(client, "minji")
    assert client.get("/opendata/publish").status_code == 403
    assert client.get("/opendata/publish/datasets/new").status_code == 403
    home = client.get("/").text
    assert 'href="/opendata"' in home and "공공데이터 찾기" in home  # the nav link and the home action
    assert 'href="/opendata/publish"' not in home


@pytest.mark.real_data
def test_the_real_dumping_records_through_the_pages(db, client):
    """Gangnam's dumping records (28,000 rows, about 2,600 broken dates) uploaded on the page: the defects are
    listed by line, and the rows' positions (lat/lng) drawn on the map, all inside Seoul."""
    path = seoul_data("illegal_dumping_gangnam_2022.csv")
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    dataset(db, "dumping", "강남구 무단투기 단속")
    sent = client.post(
        "/opendata/publish/datasets/dumping/upload",
        data={"csrf_token": csrf(client, "/opendata/publish/datasets/dumping")},
        files={"file": (path.name, path.read_bytes(), "text/csv")},
        headers={"Accept": "application/json"},
    )
    status = wait_for(client, sent.json()["status"], timeout=120)
    assert status["state"] == "done" and status["rows"] == 28_248
    assert 2_500 < status["problem_count"] < 2_700
    page = client.get(sent.json()["url"]).text
    listed_lines = [int(n) for n in re.findall(r"<tr><td>(\d+)</td><td>위반일시</td>", page)]
    assert len(listed_lines) == 200 and listed_lines == sorted(listed_lines)
    points = client.get(f"/opendata/resources/{status['resource']}/points.geojson").json()["features"]
    assert len(points) == 2000
    assert all(126.7 < p["geometry"]["coordinates"][0] < 127.3 for p in points)
    assert all(37.4 < p["geometry"]["coordinates"][1] < 37.7 for p in points)


def test_the_plazas_search_says_how_many_published_documents_the_same_words_find(db, client):
    from smartcity.core.auth import Identity
    from smartcity.opendata import documents

    who = Identity(user_id=make_user(db, "pub", "data_publisher"), username="pub", role="data_publisher", via="session")
    dataset(db, "streetlights", "가로등 위치")
    with db.session() as s:
        shown = documents.upload(
            s,
            who,
            documents.Upload("lights.txt", "가로등 보수공사를 다음 달에 시작합니다.\n".encode(), "가로등 보수 안내"),
        )
        documents.accept_all(s, who, shown.uid)
        documents.publish(s, who, shown.uid)
        documents.upload(s, who, documents.Upload("draft.txt", "가로등 교체 계획 초안\n".encode(), "가로등 교체 계획"))
    page = client.get("/opendata", params={"q": "가로등"}).text
    assert listed(page) == ["streetlights"]
    found = re.search(r'<p class="also-documents"><a href="([^"]+)" data-total="(\d+)">([^<]+)</a>', page)
    assert found and found[2] == "1" and "공개 문서 1건" in found[3], page
    linked = client.get(html.unescape(found[1])).text
    assert "가로등 보수 안내" in linked and "가로등 교체 계획" not in linked
    assert 'class="also-documents"' not in client.get("/opendata", params={"q": "교체"}).text
    assert 'class="also-documents"' not in client.get("/opendata").text
