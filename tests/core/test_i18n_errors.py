"""Error pages say what went wrong in the page's language: the error's English template and params are looked
up in the catalogues (Korean particles settled by core.i18n), falling back to the English message; the JSON
API's error body is the same whatever the language (a protocol)."""

from __future__ import annotations

import html

from smartcity.core.errors import NotFound
from smartcity.core.web import error_text
from tests.conftest import make_user, signin
from tests.reports.helpers import GANGNAM, file_report

HTML = {"accept": "text/html"}


def _error_line(page: str) -> str:
    start = page.index('<p class="error"')
    return html.unescape(page[page.index(">", start) + 1 : page.index("</p>", start)])


def test_a_missing_report_is_named_in_the_pages_language(db, client):
    ko = client.get("/reports/999999?lang=ko", headers=HTML)
    assert ko.status_code == 404 and _error_line(ko.text) == "신고 #999999가 없습니다."
    en = client.get("/reports/999999?lang=en", headers=HTML)
    assert en.status_code == 404 and _error_line(en.text) == "no report 999999"
    # The particle follows the number as read aloud: 3 (삼) ends in a consonant.
    assert _error_line(client.get("/reports/999993?lang=ko", headers=HTML).text) == "신고 #999993이 없습니다."
    for lang in ("ko", "en"):
        api = client.get(f"/api/reports/999999?lang={lang}", headers={"accept-language": lang})
        assert api.status_code == 404
        assert api.json() == {"error": {"code": "not_found", "message": "no report 999999"}}


def test_another_units_report_is_refused_in_the_pages_language(db, client):
    make_user(db, "roadie", "staff", department="11020-roads")
    theirs = file_report(db, where=GANGNAM)  # Gangnam's roads unit
    signin(client, "roadie")
    ko = client.get(f"/staff/reports/{theirs}?lang=ko", headers=HTML)
    assert ko.status_code == 403 and _error_line(ko.text) == "다른 부서에 배정된 신고입니다."
    en = client.get(f"/staff/reports/{theirs}?lang=en", headers=HTML)
    assert en.status_code == 403 and _error_line(en.text) == "this report belongs to another unit"


def test_someone_elses_ward_is_refused_in_the_pages_language(db, client):
    make_user(db, "stranger", "guardian")
    signin(client, "stranger")
    ko = client.get("/safety/guardian/999999?lang=ko", headers=HTML)
    assert ko.status_code == 403 and _error_line(ko.text) == "이 사람의 위치를 볼 권한이 없습니다."
    en = client.get("/safety/guardian/999999?lang=en", headers=HTML)
    assert en.status_code == 403 and _error_line(en.text) == "you may not see this person's location"


def test_an_error_without_a_translation_falls_back_to_english():
    unknown = NotFound("no gadget {n} in {where}", params={"n": 7, "where": "Jung-gu"})
    assert unknown.message == "no gadget 7 in Jung-gu"
    assert error_text(unknown, "ko") == "no gadget 7 in Jung-gu"
    radius = NotFound("a circle's radius is between 20 m and 5 km")
    assert error_text(radius, "ko") == "원의 반경은 20m에서 5km 사이여야 합니다."
    assert error_text(radius, "en") == "a circle's radius is between 20 m and 5 km"
    zone = NotFound("no zone {zone_id}", params={"zone_id": 12})
    assert (error_text(zone, "ko"), error_text(zone, "en")) == ("구역 12가 없습니다.", "no zone 12")
