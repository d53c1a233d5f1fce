"""What a person reads of the taxonomy is in their language: a report's attributes show their question and
their answers' names (not "size small"), response templates their titles; the data twins and Open311 keep
the codes."""

from __future__ import annotations

import csv
import io
import re
from html import unescape

from smartcity.core.auth import ANONYMOUS
from smartcity.reports import service as S
from smartcity.reports.taxonomy import attribute_items
from tests.conftest import make_user, signin
from tests.reports.helpers import CITY_HALL, who


def attributes_shown(html: str) -> dict[str, str]:
    """The page's attribute rows: code (data-attribute) → "question: answer" as the page shows them."""
    rows = re.findall(r'<dt data-attribute="([^"]+)">([^<]*)</dt><dd>([^<]*)</dd>', html)
    return {code: f"{unescape(label)}: {unescape(text)}" for code, label, text in rows}


def file_by_form(client, **attributes: str) -> int:
    page = client.get("/reports/new?lang=ko")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    data = {
        "csrf_token": token,
        "idempotency_key": key,
        "category": "roads-pothole",
        "lat": str(CITY_HALL[0]),
        "lon": str(CITY_HALL[1]),
        "title": "깊게 파인 도로",
        "description": "버스정류장 앞",
        **{f"attr.roads-pothole.{code}": value for code, value in attributes.items()},
    }
    r = client.post("/reports/new", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(re.fullmatch(r"/reports/(\d+)/submitted", r.headers["location"]).group(1))


def test_a_reports_attributes_read_as_questions_and_answers_in_the_pages_language(client):
    rid = file_by_form(client, size="large", depth_cm="12")
    ko = client.get(f"/reports/{rid}?lang=ko")
    assert attributes_shown(ko.text) == {"size": "크기: 큼 (차로 절반 이상)", "depth_cm": "깊이 (cm): 12"}
    en = client.get(f"/reports/{rid}?lang=en")
    assert attributes_shown(en.text) == {"size": "Size: Large (half a lane or more)", "depth_cm": "Depth (cm): 12"}
    # The data twin and Open311 keep the codes machines read.
    twin = client.get(f"/reports/{rid}.json?lang=en").json()
    assert twin["attributes"] == {"size": "large", "depth_cm": 12}
    assert [a["text"] for a in twin["attribute_items"]] == ["Large (half a lane or more)", "12"]


def test_staff_read_the_attributes_in_their_language_on_the_work_page(client, app):
    make_user(app.state.db, "roadie", "staff", department="11020-roads")
    rid = file_by_form(client, size="small")
    signin(client, "roadie")
    work = client.get(f"/staff/reports/{rid}?lang=ko")
    assert work.status_code == 200
    assert attributes_shown(work.text) == {"size": "크기: 작음 (손바닥 크기)"}
    assert ">small<" not in work.text


def test_a_list_of_answers_shows_each_name_and_what_the_definitions_no_longer_know_shows_as_stored(db):
    with db.session() as s:
        dumping = S.get_category(s, "cleaning-illegal-dumping")
        filed = S.create_report(
            s,
            ANONYMOUS,
            S.NewReport(
                category="cleaning-illegal-dumping",
                lat=CITY_HALL[0],
                lon=CITY_HALL[1],
                title="쓰레기 무단 투기",
                attributes={"waste_types": ["food", "cigarettes"]},
            ),
        ).report
        assert attribute_items(dumping, filed.attributes, "ko") == [
            {
                "code": "waste_types",
                "label": "쓰레기 종류",
                "value": ["food", "cigarettes"],
                "text": "음식물, 담배꽁초",
            }
        ]
        # A definition changed after filing: the old answer and the old question are not hidden.
        stored = {"waste_types": ["food", "tyres"], "colour": "blue"}
        assert [(a["label"], a["text"]) for a in attribute_items(dumping, stored, "en")] == [
            ("Kinds of waste", "Food, tyres"),
            ("colour", "blue"),
        ]


def test_response_template_titles_are_shown_in_the_staff_members_language(client, app):
    make_user(app.state.db, "roadie", "staff", department="11020-roads")
    with app.state.db.session() as s:
        rid = S.create_report(
            s,
            ANONYMOUS,
            S.NewReport(
                category="roads-pothole", lat=CITY_HALL[0], lon=CITY_HALL[1], title="구멍", attributes={"size": "small"}
            ),
        ).report.id
    signin(client, "roadie")
    ko = client.get(f"/staff/reports/{rid}?lang=ko").text
    titles = set(re.findall(r'<option value="\d+" data-text="[^"]*"(?: data-status="[^"]*")?>([^<]+)</option>', ko))
    assert titles >= {"접수 안내", "작업 예정 안내", "처리 완료 안내", "소관 아님 안내"}
    assert not titles & {"Received", "Work scheduled", "Fixed", "Not ours"}
    # On an English page the titles are English; the text stays in the reporter's language (the city's: Korean).
    en = client.get(f"/staff/reports/{rid}?lang=en").text
    picked = re.search(r'<option value="\d+" data-text="([^"]*)"(?: data-status="[^"]*")?>Received</option>', en)
    assert picked is not None and picked.group(1).startswith("신고해 주셔서 감사합니다")
    # A title an administrator wrote is shown as written.
    make_user(app.state.db, "boss", "admin")
    with app.state.db.session() as s:
        S.save_template(
            s, who(app.state.db, "boss"), S.TemplateIn("포트홀 긴급 보수", "긴급 보수를 마쳤습니다.", "Patched.")
        )
    api = client.get(f"/api/reports/templates?report_id={rid}&lang=en").json()["items"]
    assert {"Received", "포트홀 긴급 보수"} <= {t["title"] for t in api}


def test_the_staff_export_has_the_answers_in_words_beside_the_codes(client, app):
    make_user(app.state.db, "roadie", "staff", department="11020-roads")
    rid = file_by_form(client, size="medium", depth_cm="7")
    signin(client, "roadie")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(client.get("/staff/dashboard.csv?lang=ko").text))}
    assert rows[str(rid)]["answers"] == "크기: 중간 (바퀴 크기); 깊이 (cm): 7"
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(client.get("/staff/dashboard.csv?lang=en").text))}
    assert rows[str(rid)]["answers"] == "Size: Medium (wheel-sized); Depth (cm): 7"
