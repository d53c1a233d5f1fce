"""The reports JSON API over HTTP, on both stores: creating (JSON and multipart), reading, the staff actions,
routing, campaigns, the dashboard and the feed."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from smartcity.reports.settings import ReportsSettings
from tests.conftest import make_key, make_user, signin
from tests.reports.helpers import CITY_HALL, GANGNAM, jpeg

R = "/api/reports"


def body(**kw):
    out = {
        "category": "roads-pothole",
        "lat": CITY_HALL[0],
        "lon": CITY_HALL[1],
        "title": "Pothole",
        "attributes": {"size": "small"},
    }
    out.update(kw)
    return out


def files_under(app) -> list[Path]:
    root = Path(app.state.settings.var_dir) / "uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def csrf(client) -> str:
    page = client.get("/signin")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_the_taxonomy_is_listed_by_group(client):
    r = client.get(f"{R}/categories?lang=en")
    assert r.status_code == 200
    groups = r.json()["groups"]
    assert len(groups) == 12 and sum(len(g["categories"]) for g in groups) == 67
    assert groups[1]["name"] == "Roads" and groups[1]["categories"][0]["code"] == "roads-pothole"
    assert client.get(f"{R}/categories/nope").json()["error"]["code"] == "unknown_category"


def test_create_as_json_with_a_photo_then_read_it(client, app):
    photo = base64.b64encode(jpeg(exif=True)).decode()
    r = client.post(
        R,
        json=body(
            description="<b>deep</b>",
            photos=[{"filename": "a.jpg", "data": photo}],
            contact={"email": "kim@example.org"},
        ),
    )
    assert r.status_code == 201, r.text
    created = r.json()
    report = created["report"]
    assert report["unit"] == "11020-roads" and report["description"] == "<b>deep</b>"
    assert "kim@" not in r.text and len(created["feedback_token"]) == 32
    got = client.get(f"{R}/{report['id']}").json()
    assert got["photos"][0]["url"] == f"{R}/photos/{got['photos'][0]['id']}.jpg"
    img = client.get(got["photos"][0]["url"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert not Image.open(io.BytesIO(img.content)).getexif()
    assert client.get(got["photos"][0]["thumb_url"]).status_code == 200
    assert [t["kind"] for t in got["timeline"]] == ["created"]


def test_create_as_multipart_with_open311_style_attributes(client):
    r = client.post(
        R,
        data={
            "category": "environment-construction-noise",
            "lat": str(CITY_HALL[0]),
            "lon": str(CITY_HALL[1]),
            "title": "Drilling at night",
            "attribute[times][]": ["night", "early"],
            "contact_phone": "010-1234-5678",
        },
        files=[("photos", ("x.png", _png(), "image/png"))],
    )
    assert r.status_code == 201, r.text
    assert r.json()["report"]["attributes"] == {"times": ["night", "early"]}
    assert r.json()["report"]["photo_count"] == 1


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        (dict(lat=35.18, lon=129.07), 422, "outside_city"),
        (dict(category="nope"), 422, "unknown_category"),
        (dict(attributes={}), 422, "missing_attribute"),
        (dict(description="y" * 4001), 422, "too_long"),
        (dict(photos=[{"filename": "a.jpg", "data": base64.b64encode(b"GIF89a....").decode()}]), 422, "not_an_image"),
        (dict(photos=[{"filename": "a.jpg", "data": "!!!"}]), 422, "not_an_image"),
        (dict(lat="north"), 422, "invalid"),
    ],
)
def test_bad_json_reports_get_clear_errors_and_store_nothing(client, app, kwargs, status, code):
    kwargs = dict(kwargs)
    r = client.post(
        R,
        json=body(
            photos=[{"filename": "ok.jpg", "data": base64.b64encode(jpeg()).decode()}] + kwargs.pop("photos", []),
            **kwargs,
        ),
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert client.get(R).json()["items"] == [] and files_under(app) == []


def test_a_too_large_upload_is_413_and_leaves_no_file(client, app):
    big = jpeg(3000, 3000) + b"\0" * (app.state.settings.of(ReportsSettings).max_photo_bytes)
    r = client.post(
        R,
        data={
            "category": "roads-pothole",
            "lat": str(CITY_HALL[0]),
            "lon": str(CITY_HALL[1]),
            "title": "x",
            "attribute[size]": "small",
        },
        files=[("photos", ("ok.jpg", jpeg(), "image/jpeg")), ("photos", ("big.jpg", big, "image/jpeg"))],
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "photo_too_large"
    assert files_under(app) == [] and client.get(R).json()["items"] == []


def test_a_retry_with_the_same_idempotency_key_returns_the_same_report(client):
    first = client.post(R, json=body(), headers={"Idempotency-Key": "k1"})
    again = client.post(R, json=body(), headers={"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["repeated"] and again.json()["report"]["id"] == first.json()["report"]["id"]
    assert len(client.get(R).json()["items"]) == 1


def test_list_filters_and_paging(client):
    for i in range(3):
        client.post(R, json=body(title=f"city hall {i}"))
    client.post(R, json=body(lat=GANGNAM[0], lon=GANGNAM[1], title="gangnam"))
    assert len(client.get(R, params={"district": "11230"}).json()["items"]) == 1
    box = f"{CITY_HALL[1] - 0.01},{CITY_HALL[0] - 0.01},{CITY_HALL[1] + 0.01},{CITY_HALL[0] + 0.01}"
    page = client.get(R, params={"bbox": box, "status": "open", "page_size": 2, "with_total": True}).json()
    assert (len(page["items"]), page["has_more"], page["total"]) == (2, True, 3)
    assert client.get(R, params={"bbox": box, "page": 2, "page_size": 2}).json()["items"][0]["title"] == "city hall 0"
    near = client.get(R, params={"near": f"{GANGNAM[0]},{GANGNAM[1]},100"}).json()["items"]
    assert [i["title"] for i in near] == ["gangnam"]
    assert client.get(R, params={"status": "lost"}).json()["error"]["code"] == "invalid_status"
    assert client.get(R, params={"bbox": "1,2"}).json()["error"]["code"] == "invalid_bbox"
    nearby = client.get(
        f"{R}/nearby", params={"category": "roads-pothole", "lat": CITY_HALL[0], "lon": CITY_HALL[1]}
    ).json()["items"]
    assert len(nearby) == 3 and nearby[0]["distance_m"] == 0


def test_staff_work_a_report_through_the_api(client, db):
    make_user(db, "roadie", "staff", department="11020-roads")
    make_user(db, "other", "staff", department="11230-roads")
    rid = client.post(R, json=body(contact={"name": "Kim", "email": "kim@example.org"})).json()["report"]["id"]
    assert client.post(f"{R}/{rid}/transition", json={"status": "acknowledged"}).status_code == 401
    key = make_key(db, "other")
    r = client.post(f"{R}/{rid}/transition", json={"status": "acknowledged"}, headers={"X-API-Key": key})
    assert r.status_code == 403 and r.json()["error"]["code"] == "other_unit"

    signin(client, "roadie")
    token = csrf(client)
    h = {"X-CSRF-Token": token}
    assert client.post(f"{R}/{rid}/transition", json={"status": "acknowledged"}).status_code == 403  # no CSRF
    assert (
        client.post(f"{R}/{rid}/transition", json={"status": "acknowledged", "text": "Seen"}, headers=h).json()[
            "status"
        ]
        == "acknowledged"
    )
    assert client.post(f"{R}/{rid}/notes", json={"text": "internal"}, headers=h).status_code == 201
    bad = client.post(f"{R}/{rid}/transition", json={"status": "open"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "illegal_transition"
    assert client.get(f"{R}/{rid}/contact").json()["contact"]["email"] == "kim@example.org"
    queue = client.get(f"{R}/queue").json()["items"]
    assert [q["id"] for q in queue] == [rid]
    assert "internal" in client.get(f"{R}/{rid}").text
    tpl = client.get(f"{R}/templates", params={"report_id": rid}).json()["items"]
    fixed = next(t for t in tpl if t["status"] == "fixed")
    client.post(f"{R}/{rid}/transition", json={"status": "fixed", "template_id": fixed["id"]}, headers=h)
    client.post("/signout", data={"csrf_token": token})
    public = client.get(f"{R}/{rid}").json()
    assert "internal" not in str(public) and public["status"] == "fixed"
    assert public["timeline"][-1]["text"] == fixed["text_ko"]


def test_the_reporter_confirms_with_the_secret_token(client):
    created = client.post(R, json=body()).json()
    rid, token = created["report"]["id"], created["feedback_token"]
    r = client.post(f"{R}/{rid}/feedback", json={"fixed": True, "token": token})
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_fixed"
    assert client.post(f"{R}/{rid}/feedback", json={"fixed": True, "token": "x" * 32}).status_code == 403


def test_supports_and_routing_and_campaigns(client, db):
    rid = client.post(R, json=body()).json()["report"]["id"]
    assert client.post(f"{R}/{rid}/support").json()["support_count"] == 1
    assert client.post(f"{R}/{rid}/support").json()["support_count"] == 1

    make_user(db, "boss", "admin")
    admin = {"X-API-Key": make_key(db, "boss")}
    r = client.put(f"{R}/routing", json={"category": "roads-pothole", "department": "city-transport"}, headers=admin)
    assert r.status_code == 200
    routes = client.get(f"{R}/routing", params={"category": "roads-pothole"}, headers=admin).json()["routes"]
    assert {x["department_code"] for x in routes} == {"city-transport"} and all(x["explicit"] for x in routes)
    assert client.put(f"{R}/routing", json={"category": "roads-pothole", "department": "x"}).status_code == 401

    camp = {
        "title_ko": "스쿨존",
        "title_en": "School zones",
        "starts_at": "2020-01-01T00:00:00Z",
        "ends_at": "2099-01-01T00:00:00+09:00",
    }
    assert client.put(f"{R}/campaigns/school-zones", json=camp, headers=admin).json()["running"] is True
    cat = {"group": "traffic", "name_ko": "위험한 통학로", "name_en": "Unsafe school route", "campaign": "school-zones"}
    assert client.put(f"{R}/categories/sz-unsafe-route", json=cat, headers=admin).status_code == 200
    made = client.post(R, json=body(category="sz-unsafe-route", campaign="school-zones", attributes={}))
    assert made.status_code == 201, made.text
    geo = client.get(f"{R}/campaigns/school-zones.geojson")
    assert geo.headers["content-type"] == "application/geo+json"
    assert [f["id"] for f in geo.json()["features"]] == [made.json()["report"]["id"]]
    rows = list(csv.DictReader(io.StringIO(client.get(f"{R}/campaigns/school-zones.csv").text)))
    assert [r["category"] for r in rows] == ["sz-unsafe-route"]
    assert client.get(f"{R}/campaigns/school-zones").json()["categories"][0]["code"] == "sz-unsafe-route"


def test_dashboard_export_and_feed(client, db):
    make_user(db, "boss", "admin")
    admin = {"X-API-Key": make_key(db, "boss")}
    client.post(R, json=body(contact={"email": "kim@example.org"}))
    client.post(R, json=body(lat=GANGNAM[0], lon=GANGNAM[1], title="<Gangnam>"))
    assert client.get(f"{R}/dashboard").status_code == 401
    d = client.get(f"{R}/dashboard", headers=admin).json()
    assert d["total"] == 2 and d["by_district"] == {"11020": 1, "11230": 1}
    plain = client.get(f"{R}/export.csv", headers=admin)
    assert plain.headers["content-type"].startswith("text/csv") and "kim@" not in plain.text
    assert "kim@example.org" in client.get(f"{R}/export.csv?include_contacts=true", headers=admin).text
    feed = client.get("/reports/feed.atom", params={"district": "11230"})
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert "&lt;Gangnam&gt;" in feed.text and feed.text.count("<entry>") == 1
    sub = client.post(f"{R}/subscriptions", json={"email": "w@example.org", "bbox": "126.9,37.5,127.0,37.6"})
    assert sub.status_code == 201
    assert client.post(f"{R}/subscriptions", json={"email": "w@example.org"}).json()["error"]["code"] == "invalid_area"
