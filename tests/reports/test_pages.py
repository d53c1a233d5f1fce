"""The Community Mapping pages over HTTP, on both stores: the citizen's form as a plain multipart POST (with
its errors re-rendered and nothing stored), the report page, supports and feedback, the staff work view with
CSRF, permissions, the admin editors, campaigns, subscriptions and the dashboard."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartcity.core import audit
from smartcity.core.auth import ANONYMOUS, Identity
from smartcity.reports import service as S
from smartcity.reports.models import Report, ReportPhoto, ReportSupport, ReportUpdate
from tests.conftest import make_user, signin
from tests.reports.helpers import CITY_HALL, GANGNAM, jpeg

HTML = {"accept": "text/html"}


def token_of(html: str, name: str = "csrf_token") -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', html).group(1)


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'class="field-error" role="alert" data-field="([^"]+)">([^<]+)<', html))


def form_for(client, path: str = "/reports/new?lang=en") -> dict:
    page = client.get(path)
    assert page.status_code == 200
    return {"csrf_token": token_of(page.text), "idempotency_key": token_of(page.text, "idempotency_key")}


def report_data(**kw) -> dict:
    data = {
        "category": "roads-pothole",
        "lat": str(CITY_HALL[0]),
        "lon": str(CITY_HALL[1]),
        "title": "Deep pothole",
        "description": "In front of the bus stop",
        "attr.roads-pothole.size": "large",
    }
    data.update(kw)
    return data


def count(app, model) -> int:
    with app.state.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def uploads(app) -> list[Path]:
    root = Path(app.state.settings.var_dir) / "uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def file_report(app, where=CITY_HALL, category="roads-pothole", **kw) -> int:
    kw.setdefault("title", "A pothole")
    kw.setdefault("attributes", {"size": "small"} if category == "roads-pothole" else {})
    with app.state.db.session() as s:
        return S.create_report(s, ANONYMOUS, S.NewReport(category=category, lat=where[0], lon=where[1], **kw)).report.id


def test_the_form_offers_every_group_and_the_attributes_of_each_category(client):
    page = client.get("/reports/new?lang=en")
    assert page.status_code == 200
    assert page.text.count("<optgroup") == 12 and '<optgroup label="Roads">' in page.text
    assert len(re.findall(r'<option value="[a-z]+-[a-z0-9\-]+"', page.text)) == 67
    # Attributes are form fields by datatype: a list, a number, a multi-choice, a date and time, free text.
    assert '<select name="attr.roads-pothole.size" data-required="1">' in page.text
    assert 'type="number" step="any" name="attr.roads-pothole.depth_cm"' in page.text
    assert 'type="checkbox" name="attr.cleaning-illegal-dumping.waste_types"' in page.text
    assert 'type="datetime-local" name="attr.traffic-illegal-parking.seen_at"' in page.text
    assert '<textarea name="attr.other-suggestion.details"' in page.text
    assert token_of(page.text) and len(token_of(page.text, "idempotency_key")) > 10
    assert "deleted some time after it is closed" in page.text  # the privacy note
    assert 'name="show_name" value="1">' in page.text  # opt-in: not checked by default


def test_filing_a_report_through_the_plain_form_with_a_photo(client, app):
    data = report_data(**form_for(client), name="Kim Minji", email="kim@example.org", phone="010-1234-5678")
    r = client.post(
        "/reports/new",
        data=data,
        files=[("photos", ("hole.jpg", jpeg(exif=True), "image/jpeg"))],
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    rid = int(re.fullmatch(r"/reports/(\d+)/submitted", r.headers["location"]).group(1))
    done = client.get(r.headers["location"] + "?lang=en")
    assert f"#{rid}" in done.text and f"http://127.0.0.1:8000/reports/{rid}" in done.text
    assert f"/reports/{rid}?token=" in done.text  # the private link to confirm the fix later
    page = client.get(f"/reports/{rid}?lang=en")
    assert page.status_code == 200 and "Deep pothole" in page.text and "In front of the bus stop" in page.text
    # Anonymous by default: neither the name nor the contact details appear publicly.
    assert "Kim Minji" not in page.text and "kim@example.org" not in page.text and "010-1234" not in page.text
    with app.state.db.session() as s:
        photo = s.scalar(select(ReportPhoto).where(ReportPhoto.report_id == rid))
        report = S.get_report(s, rid)
        assert report.attributes == {"size": "large"} and report.public_name is None and report.source == "web"
    assert f"/api/reports/photos/{photo.id}/thumb.jpg" in page.text
    assert f"/api/reports/photos/{photo.id}.jpg" in page.text
    # A double submit from a flaky phone (same idempotency key, the same form and file) does not file a second
    # report (the same key with another photo would be a conflict: tests/reports/test_open311_search.py).
    again = client.post(
        "/reports/new",
        data=data,
        files=[("photos", ("hole.jpg", jpeg(exif=True), "image/jpeg"))],
        follow_redirects=False,
    )
    assert again.headers["location"] == f"/reports/{rid}/submitted"
    assert count(app, Report) == 1 and count(app, ReportPhoto) == 1 and len(uploads(app)) == 2


def test_showing_the_name_is_an_opt_in(client):
    data = report_data(**form_for(client), name="Park Seoyeon", show_name="1")
    r = client.post("/reports/new", data=data, follow_redirects=False)
    assert "Park Seoyeon" in client.get(r.headers["location"].removesuffix("/submitted")).text


def test_bad_input_is_shown_next_to_the_fields_with_the_values_kept_and_nothing_stored(client, app):
    data = report_data(
        **form_for(client),
        lat="35.1796",
        lon="129.0756",
        title="",
        description="x" * 4001,
        email="not-an-email",
        name="<script>alert(1)</script>",
    )
    del data["attr.roads-pothole.size"]
    r = client.post("/reports/new?lang=en", data=data, files=[("photos", ("a.jpg", jpeg(), "image/jpeg"))])
    assert r.status_code == 422
    errors = field_errors(r.text)
    assert errors["location"].startswith("This place is outside the city")
    assert errors["title"] == "This is required."
    assert errors["attr.size"] == "This is required for the chosen category."
    assert errors["description"].startswith("This is too long") and "4001/4000" in errors["description"]
    assert errors["email"] == "This is not an email address."
    # Values are kept (and escaped), the same idempotency key and a fresh-enough CSRF token come back.
    assert 'value="not-an-email"' in r.text and "x" * 4001 in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert" not in r.text
    assert token_of(r.text, "idempotency_key") == data["idempotency_key"]
    assert '<option value="roads-pothole" selected>' in r.text
    assert count(app, Report) == 0 and uploads(app) == []
    # A file that is not an image: the error is shown by the photo field; no report, no orphan file.
    bad = report_data(**form_for(client))
    r = client.post(
        "/reports/new?lang=en", data=bad, files=[("photos", ("cv.jpg", b"%PDF-1.4 not an image", "image/jpeg"))]
    )
    assert r.status_code == 422 and "Only JPEG, PNG or WebP photos" in field_errors(r.text)["photos"]
    assert count(app, Report) == 0 and uploads(app) == []
    # Unknown category: said by the category picker.
    r = client.post("/reports/new?lang=en", data=report_data(**form_for(client), category="teleporters"))
    assert r.status_code == 422 and field_errors(r.text)["category"] == "Choose a category from the list."


def test_a_form_without_the_csrf_token_is_refused(client, app):
    data = report_data(**form_for(client))
    data["csrf_token"] = "forged"
    r = client.post("/reports/new", data=data, headers=HTML)
    assert r.status_code == 403 and count(app, Report) == 0


def test_html_in_a_report_is_shown_as_text(client, app):
    rid = file_report(app, title="<img src=x onerror=alert(1)>", description="<script>bad()</script>")
    page = client.get(f"/reports/{rid}")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text and "<script>bad()" not in page.text


def test_nearby_reports_and_me_too(client, app):
    rid = file_report(app)
    file_report(app, category="cleaning-dirty-street")  # another category: not a duplicate
    near = client.get(f"/reports/nearby.json?category=roads-pothole&lat={CITY_HALL[0] + 0.0002}&lon={CITY_HALL[1]}")
    items = near.json()["items"]
    assert [i["id"] for i in items] == [rid] and 15 < items[0]["distance_m"] < 30
    assert (
        client.get(f"/reports/nearby.json?category=roads-pothole&lat={GANGNAM[0]}&lon={GANGNAM[1]}").json()["items"]
        == []
    )
    token = form_for(client)["csrf_token"]
    headers = {"x-csrf-token": token, "accept": "application/json"}
    assert client.post(f"/reports/{rid}/support", headers=headers).json() == {"id": rid, "support_count": 1}
    assert client.post(f"/reports/{rid}/support", headers=headers).json()["support_count"] == 1  # once a browser
    assert client.post(f"/reports/{rid}/support", headers={"accept": "application/json"}).status_code == 403
    # Without script, the button is a plain form post.
    r = client.post(f"/reports/{rid}/support", data={"csrf_token": token}, follow_redirects=False)
    assert r.headers["location"] == f"/reports/{rid}?supported=1"
    assert count(app, ReportSupport) == 1
    where = client.get("/reports/where.json?lat=35.1796&lon=129.0756&lang=en").json()
    assert where["inside"] is False and where["message"].startswith("This place is outside the city")
    assert client.get(f"/reports/where.json?lat={GANGNAM[0]}&lon={GANGNAM[1]}&lang=en").json()["district"] == "11230"


def test_the_public_map_lists_and_filters_reports(client, app):
    pothole = file_report(app, title="Pothole by the station")
    litter = file_report(app, where=GANGNAM, category="cleaning-dirty-street", title="Litter in the park")
    page = client.get("/reports?lang=en")
    assert "Pothole by the station" in page.text and "Litter in the park" in page.text
    assert 'data-pins="/reports.geojson?status=unresolved"' in page.text
    roads = client.get("/reports?group=roads&lang=en").text
    assert "Pothole by the station" in roads and "Litter in the park" not in roads
    assert "Pothole" not in client.get("/reports?district=11230").text
    pins = client.get("/reports.geojson?district=11230")
    assert pins.headers["content-type"].startswith("application/geo+json")
    feature = pins.json()["features"][0]
    assert feature["id"] == litter and feature["properties"]["colour"] == "#dc2626"
    assert feature["properties"]["url"] == f"/reports/{litter}"
    assert client.get("/reports.geojson?status=resolved").json()["features"] == []
    assert pothole in [f["id"] for f in client.get("/reports.geojson").json()["features"]]
    assert client.get("/reports.geojson?bbox=1,2").status_code == 422


def test_staff_take_a_report_through_the_workflow_with_the_forms(client, app):
    db = app.state.db
    make_user(db, "roadie", "staff", department="11020-roads")
    rid = file_report(app, contact=S.Contact("Kim", "kim@example.org", None))
    signin(client, "roadie")
    queue = client.get("/staff/reports?lang=en")
    assert queue.status_code == 200 and f'data-id="{rid}"' in queue.text
    work = client.get(f"/staff/reports/{rid}?lang=en")
    assert work.status_code == 200 and "kim@example.org" in work.text
    # Only the transitions allowed from "open" are offered.
    offered = set(re.findall(r'name="status" value="([a-z_]+)"', work.text))
    assert offered == set(S.TRANSITIONS["open"])
    token = token_of(work.text)
    with db.session() as s:
        assert [
            e.actor for e in audit.entries(s, object_type="report", object_id=rid) if e.action == "read_contact"
        ] == ["roadie"]
    # Without the CSRF token nothing happens.
    r = client.post(f"/staff/reports/{rid}/status", data={"status": "acknowledged"}, headers=HTML)
    assert r.status_code == 403
    steps = [("acknowledged", "We will look at it."), ("in_progress", ""), ("fixed", "Filled on Tuesday.")]
    for status, text in steps:
        r = client.post(
            f"/staff/reports/{rid}/status",
            data={"csrf_token": token, "status": status, "text": text},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        if status == "acknowledged":
            note = client.post(
                f"/staff/reports/{rid}/note",
                data={"csrf_token": token, "visibility": "internal", "text": "Needs the asphalt crew."},
            )
            assert note.status_code == 200
            client.post(
                f"/staff/reports/{rid}/note",
                data={"csrf_token": token, "visibility": "public", "text": "The crew comes on Tuesday."},
            )
    # An illegal change is refused with a message beside the form; nothing changes.
    r = client.post(f"/staff/reports/{rid}/status?lang=en", data={"csrf_token": token, "status": "acknowledged"})
    assert r.status_code == 422 and "not allowed from the current status" in r.text
    public = TestClient(app).get(f"/reports/{rid}?lang=en")  # a second browser (the app is already started)
    kinds = re.findall(r'data-kind="([a-z]+)" data-status="([a-z_]+)"', public.text)
    assert kinds == [
        ("created", "open"),
        ("status", "acknowledged"),
        ("update", "acknowledged"),
        ("status", "in_progress"),
        ("status", "fixed"),
    ]
    assert "We will look at it." in public.text and "The crew comes on Tuesday." in public.text
    assert "asphalt" not in public.text and "kim@example.org" not in public.text
    assert "asphalt" in client.get(f"/reports/{rid}?lang=en").text  # staff see internal notes on the page too


def test_templates_assignment_reassignment_and_duplicates(client, app):
    db = app.state.db
    me = make_user(db, "roadie", "staff", department="11020-roads")
    make_user(db, "other", "staff", department="11230-roads")
    first, second = file_report(app), file_report(app, title="Same hole")
    signin(client, "roadie")
    work = client.get(f"/staff/reports/{second}?lang=en")
    token = token_of(work.text)
    assert 'data-text="Thank you for your report.' in work.text or "신고해 주셔서" in work.text
    assert f'data-parent="{first}"' in work.text  # a nearby candidate parent
    with db.session() as s:
        template = next(t for t in S.list_templates(s, Identity(role="admin")) if t.status == "fixed")
    client.post(
        f"/staff/reports/{first}/status", data={"csrf_token": token, "status": "fixed", "template_id": str(template.id)}
    )
    with db.session() as s:
        assert S.timeline(s, first)[-1].text == template.text_ko  # the report's language
    assert (
        client.post(
            f"/staff/reports/{second}/assign", data={"csrf_token": token, "user_id": str(me)}, follow_redirects=False
        ).status_code
        == 303
    )
    assert (
        client.post(f"/staff/reports/{second}/status", data={"csrf_token": token, "status": "duplicate"}).status_code
        == 422
    )  # needs the parent
    third = file_report(app, title="Third")
    r = client.post(
        f"/staff/reports/{third}/status",
        data={"csrf_token": token, "status": "duplicate", "parent_id": str(second)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"/staff/reports/{second}/reassign",
        data={"csrf_token": token, "department": "11020-civil", "reason": "Private land"},
        follow_redirects=False,
    )
    assert r.headers["location"] == f"/reports/{second}"  # no longer ours to work
    with db.session() as s:
        assert S.get_report(s, third).parent_id == second and S.get_report(s, second).unit.code == "11020-civil"
    assert client.get(f"/staff/reports/{second}", headers=HTML).status_code == 403
    assert "Private land" in client.get(f"/reports/{second}").text


def test_merging_duplicates_through_the_form(client, app):
    make_user(app.state.db, "roadie", "staff", department="11020-roads")
    parent, a, b = file_report(app), file_report(app), file_report(app)
    signin(client, "roadie")
    token = token_of(client.get(f"/staff/reports/{parent}").text)
    r = client.post(
        f"/staff/reports/{parent}/merge",
        data={"csrf_token": token, "child": [str(a)], "children": f"#{b}"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with app.state.db.session() as s:
        assert {S.get_report(s, i).status for i in (a, b)} == {"duplicate"}
    r = client.post(f"/staff/reports/{parent}/merge", data={"csrf_token": token, "children": "abc"})
    assert r.status_code == 422


def test_pages_need_the_right_permission(client, app):
    db = app.state.db
    make_user(db, "minji", "citizen")
    make_user(db, "gangnam", "staff", department="11230-roads")
    rid = file_report(app)
    r = client.get("/staff/reports", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=/staff/reports"
    assert client.get("/staff/reports").status_code == 401
    signin(client, "minji")
    for path in (
        "/staff/reports",
        f"/staff/reports/{rid}",
        "/staff/dashboard",
        "/admin/reports/routes",
        "/admin/reports/templates",
        "/admin/reports/campaigns",
        "/staff/dashboard.csv",
    ):
        assert client.get(path, headers=HTML).status_code == 403, path
    client.post("/signout", data={"csrf_token": token_of(client.get("/reports/new").text)})
    signin(client, "gangnam")
    assert client.get(f"/staff/reports/{rid}", headers=HTML).status_code == 403  # another unit's report
    assert f'data-id="{rid}"' not in client.get("/staff/reports").text
    assert client.get("/admin/reports/routes", headers=HTML).status_code == 403
    assert client.get("/staff/dashboard").status_code == 200
    token = token_of(client.get("/reports/new").text)
    r = client.post(f"/staff/reports/{rid}/status", data={"csrf_token": token, "status": "acknowledged"}, headers=HTML)
    assert r.status_code == 403
    nav = client.get("/reports?lang=en").text
    assert 'href="/staff/reports"' in nav and 'href="/admin/reports/routes"' not in nav


def test_the_reporter_confirms_or_reopens_and_rates(client, app):
    make_user(app.state.db, "boss", "admin")
    r = client.post("/reports/new", data=report_data(**form_for(client)), follow_redirects=False)
    rid = int(r.headers["location"].split("/")[2])
    with app.state.db.session() as s:
        report = S.get_report(s, rid)
        report.status, token = "fixed", S.feedback_token(report, app.state.settings)
    # This browser filed it, so it may answer; a stranger with no token may not.
    page = client.get(f"/reports/{rid}?lang=en")
    assert "Is it fixed?" in page.text
    stranger = TestClient(app)  # another browser (the app is already started)
    assert "Is it fixed?" not in stranger.get(f"/reports/{rid}?lang=en").text
    assert "Is it fixed?" in stranger.get(f"/reports/{rid}?lang=en&token={token}").text
    bad = stranger.post(
        f"/reports/{rid}/feedback",
        headers=HTML,
        data={"csrf_token": token_of(stranger.get("/reports/new").text), "fixed": "yes", "token": "0" * 32},
    )
    assert bad.status_code == 403
    csrf = token_of(page.text)
    r = client.post(f"/reports/{rid}/feedback?lang=en", data={"csrf_token": csrf, "fixed": "yes", "rating": "9"})
    assert r.status_code == 422 and "Choose a rating from 1 to 5." in r.text
    r = client.post(
        f"/reports/{rid}/feedback",
        data={"csrf_token": csrf, "fixed": "no", "rating": "2", "comment": "Still a hole"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with app.state.db.session() as s:
        report = S.get_report(s, rid)
        assert (report.status, report.rating) == ("open", 2)
        assert S.timeline(s, rid)[-1].text == "★2 Still a hole"


def test_administrators_edit_routing_templates_and_campaigns(client, app):
    make_user(app.state.db, "boss", "admin")
    signin(client, "boss")
    page = client.get("/admin/reports/routes?category=roads-pothole&lang=en")
    assert page.status_code == 200 and page.text.count("<tr data-district=") == 25
    token = token_of(page.text)
    r = client.post(
        "/admin/reports/routes",
        data={"csrf_token": token, "category": "roads-pothole", "district": "11020", "department": "11020-civil"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert 'data-district="11020" class="explicit"' in client.get("/admin/reports/routes?category=roads-pothole").text
    rid = file_report(app)
    with app.state.db.session() as s:
        assert S.get_report(s, rid).unit.code == "11020-civil"
    bad = client.post(
        "/admin/reports/routes",
        data={"csrf_token": token, "category": "roads-pothole", "district": "11020", "department": "nowhere"},
    )
    assert bad.status_code == 422
    client.post(
        "/admin/reports/routes",
        data={"csrf_token": token, "category": "roads-pothole", "district": "11020", "action": "delete"},
    )
    assert 'class="explicit"' not in client.get("/admin/reports/routes?category=roads-pothole").text
    # Response templates.
    r = client.post(
        "/admin/reports/templates",
        data={
            "csrf_token": token,
            "title": "Salt spread",
            "text_ko": "제설제를 뿌렸습니다.",
            "text_en": "We spread salt.",
            "status": "fixed",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and "Salt spread" in client.get("/admin/reports/templates").text
    r = client.post(
        "/admin/reports/templates?lang=en", data={"csrf_token": token, "title": "", "text_ko": "x", "text_en": "y"}
    )
    assert r.status_code == 422 and field_errors(r.text)["title"] == "This is required."
    # A campaign with a category of its own: its themed map, a form limited to its categories, exports.
    r = client.post(
        "/admin/reports/campaigns",
        data={
            "csrf_token": token,
            "slug": "barrier-free",
            "title_ko": "무장애 길 찾기",
            "title_en": "Barrier-free routes",
            "description_en": "Map steps and broken ramps.",
            "theme": "#7c3aed",
            "starts_at": "2020-01-01",
            "ends_at": "2099-12-31",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    r = client.post(
        "/admin/reports/campaigns/categories",
        data={
            "csrf_token": token,
            "campaign": "barrier-free",
            "code": "bf-steps",
            "group": "streets",
            "name_ko": "계단",
            "name_en": "Steps without a ramp",
            "service_days": "30",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    bad = client.post(
        "/admin/reports/campaigns",
        data={
            "csrf_token": token,
            "slug": "Bad Slug!",
            "title_ko": "",
            "title_en": "x",
            "starts_at": "2020-01-01",
            "ends_at": "2019-01-01",
        },
    )
    assert bad.status_code == 422
    assert "Barrier-free routes" in client.get("/campaigns?lang=en").text
    camp = client.get("/campaigns/barrier-free?lang=en")
    assert "--theme: #7c3aed" in camp.text and "Steps without a ramp" in camp.text
    form = client.get("/reports/new?campaign=barrier-free&lang=en")
    assert re.findall(r'<option value="([a-z\-]+)"', form.text) == ["bf-steps"]
    r = client.post(
        "/reports/new",
        data={
            **form_for(client, "/reports/new?campaign=barrier-free"),
            "campaign": "barrier-free",
            "category": "bf-steps",
            "title": "Steps",
            "lat": str(GANGNAM[0]),
            "lon": str(GANGNAM[1]),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    geo = client.get("/campaigns/barrier-free.geojson").json()
    assert [f["properties"]["title"] for f in geo["features"]] == ["Steps"]
    rows = list(csv.DictReader(io.StringIO(client.get("/campaigns/barrier-free.csv").text)))
    assert [row["category"] for row in rows] == ["bf-steps"]


def test_subscriptions_by_email(client, app):
    form = client.get("/reports/subscribe?district=11020&lang=en")
    token = token_of(form.text)
    assert '<option value="11020" selected>' in form.text
    r = client.post(
        "/reports/subscribe?lang=en",
        data={"csrf_token": token, "email": "nope", "area": "district", "district": "11020"},
    )
    assert r.status_code == 422 and field_errors(r.text)["email"] == "This is not an email address."
    for area in ({"area": "bbox", "bbox": "1,2"}, {"area": "district", "district": "99999"}, {"area": "district"}):
        r = client.post("/reports/subscribe?lang=en", data={"csrf_token": token, "email": "kim@example.org", **area})
        assert r.status_code == 422 and field_errors(r.text) == {"area": "Choose a district or the map area."}, area
    r = client.post(
        "/reports/subscribe",
        data={"csrf_token": token, "email": "kim@example.org", "area": "bbox", "bbox": "126.97,37.56,126.99,37.57"},
    )
    assert r.status_code == 200
    unsubscribe = re.search(r'href="(/reports/unsubscribe/[^"]+)"', r.text).group(1)
    assert "126.97,37.56" in client.get("/reports/subscribe?bbox=126.97,37.56,126.99,37.57").text
    feed = client.get("/reports?district=11020").text
    assert 'href="/reports/feed.atom?district=11020"' in feed
    assert client.post(unsubscribe, data={"csrf_token": token}).status_code == 200
    assert client.post(unsubscribe, data={"csrf_token": token}, headers=HTML).status_code == 404


def test_the_dashboard_counts_maps_and_exports(client, app):
    make_user(app.state.db, "roadie", "staff", department="11020-roads")
    make_user(app.state.db, "boss", "admin")
    file_report(app)
    file_report(app, where=GANGNAM)
    signin(client, "roadie")
    page = client.get("/staff/dashboard?lang=en")
    assert page.status_code == 200
    assert re.search(r'id="total">(\d+)<', page.text).group(1) == "1"  # staff: their unit only
    heat = json.loads(re.search(r'data-heat="([^"]+)"', page.text).group(1).replace("&#34;", '"'))
    assert len(heat) == 1 and len(heat[0]["hexagon"]) == 6 and heat[0]["count"] == 1
    assert client.get("/staff/dashboard.json").json()["total"] == 1
    rows = list(csv.DictReader(io.StringIO(client.get("/staff/dashboard.csv").text)))
    assert len(rows) == 1 and "contact_email" not in rows[0]
    client.post("/signout", data={"csrf_token": token_of(page.text)})
    signin(client, "boss")
    assert re.search(r'id="total">(\d+)<', client.get("/staff/dashboard").text).group(1) == "2"
    assert re.search(r'id="total">(\d+)<', client.get("/staff/dashboard?district=11230").text).group(1) == "1"


def test_unknown_reports_and_campaigns_are_404(client):
    assert client.get("/reports/999999", headers=HTML).status_code == 404
    assert client.get("/campaigns/nope", headers=HTML).status_code == 404
    assert client.get("/reports/999999.json").json()["error"]["code"] == "not_found"


def test_every_public_page_renders_in_korean_by_default(client, app):
    rid = file_report(app)
    for path in ("/reports/new", "/reports", f"/reports/{rid}", "/campaigns", "/reports/subscribe"):
        page = client.get(path)
        assert page.status_code == 200 and '<html lang="ko">' in page.text, path
    assert "신고하기" in client.get("/reports/new").text
    with app.state.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ReportUpdate)) == 1


def test_the_queue_filters_overdue_and_mine_and_sorts_by_due_date(client, app):
    from datetime import UTC, datetime, timedelta

    me = make_user(app.state.db, "roadie", "staff", department="11020-roads")
    late, fresh, mine = file_report(app, title="Late"), file_report(app, title="Fresh"), file_report(app, title="Mine")
    with app.state.db.session() as s:
        S.get_report(s, late).due_at = datetime.now(UTC) - timedelta(days=2)
        S.get_report(s, mine).assignee_id = me
    signin(client, "roadie")
    ids = lambda html: [int(i) for i in re.findall(r'<tr class="[a-z]*" data-id="(\d+)"', html)]  # noqa: E731
    assert ids(client.get("/staff/reports").text)[0] == late  # the most urgent first
    assert ids(client.get("/staff/reports?overdue=1").text) == [late]
    assert ids(client.get("/staff/reports?mine=1").text) == [mine]
    assert set(ids(client.get("/staff/reports?order=created_desc").text)) == {late, fresh, mine}
    assert ids(client.get("/staff/reports?status=fixed").text) == []
