"""Intake names every problem of a report at once: one error with a detail per field problem (the category,
the place, the text, the contact and the attributes together), in each surface's own error format, and
nothing stored; a lone refusal keeps its own code."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from smartcity.reports.models import Report
from tests.conftest import make_key

BUSAN = (35.1796, 129.0756)  # outside Seoul
CITY_HALL = (37.5665, 126.9780)


def stored(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Report))


def test_the_json_api_lists_every_problem_of_a_report_at_once(client, db):
    r = client.post(
        "/api/reports",
        json={
            "category": "roads-pothole",
            "lat": BUSAN[0],
            "lon": BUSAN[1],
            "title": "",
            "attributes": {"size": "enormous"},
            "contact": {"email": "not an address"},
        },
    )
    assert r.status_code == 422
    error = r.json()["error"]
    fields = {d["field"]: d["code"] for d in error["details"]}
    assert fields == {
        "lat": "outside_city",
        "title": "required",
        "contact.email": "invalid_email",
        "attribute[size]": "invalid_attribute",
    }
    assert error["code"] == "outside_city"  # the first problem's
    r = client.post(
        "/api/reports", json={"category": "no-such-thing", "lat": 100.0, "lon": CITY_HALL[1], "title": "x" * 201}
    )
    fields = {d["field"]: d["code"] for d in r.json()["error"]["details"]}
    assert fields == {"category": "unknown_category", "lat": "invalid_coordinates", "title": "too_long"}
    assert stored(db) == 0


def test_a_lone_refusal_keeps_its_code(client, db):
    r = client.post(
        "/api/reports",
        json={
            "category": "roads-pothole",
            "lat": BUSAN[0],
            "lon": BUSAN[1],
            "title": "Pothole",
            "attributes": {"size": "small"},
        },
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "outside_city"
    assert stored(db) == 0


def test_open311_answers_every_problem_as_its_own_error(client, db):
    key = make_key(db, scope="open311")
    r = client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": key,
            "service_code": "roads-pothole",
            "attribute[size]": "enormous",
            "description": "A pothole",
            "lat": str(BUSAN[0]),
            "long": str(BUSAN[1]),
            "email": "not an address",
        },
    )
    assert r.status_code == 400
    described = sorted(e["description"].split(":")[0] for e in r.json())
    assert described == ["attribute[size]", "lat"]  # a bad email from a partner is dropped and noted, not refused
    assert all(e["code"] == 400 for e in r.json())
    assert stored(db) == 0


def test_the_form_marks_every_field_from_the_service_alone(client, db):
    page = client.get("/reports/new?lang=en")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post(
        "/reports/new?lang=en",
        data={
            "csrf_token": csrf,
            "category": "roads-pothole",
            "lat": str(BUSAN[0]),
            "lon": str(BUSAN[1]),
            "title": "",
            "attr.roads-pothole.size": "enormous",
            "email": "nope",
            "phone": "12",
        },
    )
    assert r.status_code == 422
    marked = set(re.findall(r'class="field-error" role="alert" data-field="([^"]+)"', r.text))
    assert marked == {"location", "title", "email", "phone", "attr.size"}
    assert stored(db) == 0
