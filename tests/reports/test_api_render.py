"""One read model, several renderings (core.render), on both stores: the staff dashboard and its JSON twin,
the public map's pins and a campaign's points with the same pin properties, the area feed; and the
languages the city offers deciding what the API accepts."""

from __future__ import annotations

import csv
import io
from xml.etree import ElementTree as ET

from smartcity.reports.models import Subscription
from tests.conftest import make_key, make_user
from tests.reports.helpers import CITY_HALL, GANGNAM

R = "/api/reports"


def report(**kw) -> dict:
    out = {"category": "roads-pothole", "lat": CITY_HALL[0], "lon": CITY_HALL[1], "title": "Pothole"}
    out["attributes"] = {"size": "small"}
    out.update(kw)
    return out


def test_the_dashboard_page_and_its_json_are_one_view(client, db):
    make_user(db, "boss", "admin")
    admin = {"X-API-Key": make_key(db, "boss")}
    client.post(R, json=report())
    client.post(R, json=report(lat=GANGNAM[0], lon=GANGNAM[1]))
    twin = client.get("/staff/dashboard.json", headers=admin)
    assert twin.headers["content-type"].startswith("application/json")
    asked = client.get("/staff/dashboard", headers={**admin, "Accept": "application/json"})
    assert asked.headers["content-type"].startswith("application/json")
    assert asked.json() == twin.json() == client.get(f"{R}/dashboard", headers=admin).json()
    assert twin.json()["by_district"] == {"11020": 1, "11230": 1}
    page = client.get("/staff/dashboard", headers={**admin, "Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html") and 'id="heat-map"' in page.text
    assert client.get("/staff/dashboard.atom", headers=admin).status_code == 404


def test_a_report_page_and_its_json_are_one_view_without_the_reporters_secret(client):
    made = client.post(R, json=report(title="Deep hole")).json()
    rid = made["report"]["id"]
    twin = client.get(f"/reports/{rid}.json")
    asked = client.get(f"/reports/{rid}", headers={"Accept": "application/json"})
    assert asked.headers["content-type"].startswith("application/json")
    assert asked.json() == twin.json() and twin.json()["title"] == "Deep hole" and "token" not in twin.json()
    page = client.get(f"/reports/{rid}", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html") and "Deep hole" in page.text


def test_pins_carry_colour_and_page_on_the_map_and_in_the_campaign_api(client, db):
    make_user(db, "boss", "admin")
    admin = {"X-API-Key": make_key(db, "boss")}
    camp = {
        "title_ko": "캠페인",
        "title_en": "Campaign",
        "starts_at": "2020-01-01T00:00:00Z",
        "ends_at": "2099-01-01T00:00:00Z",
    }
    assert client.put(f"{R}/campaigns/walk", json=camp, headers=admin).status_code == 200
    cat = {"group": "traffic", "name_ko": "보도", "name_en": "Footway", "campaign": "walk"}
    assert client.put(f"{R}/categories/walk-footway", json=cat, headers=admin).status_code == 200
    made = client.post(R, json=report(category="walk-footway", campaign="walk", attributes={}, title="=1+2"))
    rid = made.json()["report"]["id"]
    for path in (f"{R}/campaigns/walk.geojson", "/campaigns/walk.geojson", "/reports.geojson?status="):
        pins = client.get(path)
        assert pins.headers["content-type"] == "application/geo+json", path
        (pin,) = [f for f in pins.json()["features"] if f["id"] == rid]
        assert pin["properties"]["colour"] == "#dc2626" and pin["properties"]["url"] == f"/reports/{rid}", path
        assert pin["geometry"]["coordinates"] == [CITY_HALL[1], CITY_HALL[0]], path
    for path in (f"{R}/campaigns/walk.csv", "/campaigns/walk.csv"):
        rows = list(csv.DictReader(io.StringIO(client.get(path).text)))
        assert [(r["id"], r["title"]) for r in rows] == [(str(rid), "'=1+2")], path
    assert client.get("/campaigns/nope.geojson").status_code == 404
    asked = client.get("/campaigns/walk", headers={"Accept": "application/geo+json"})
    assert asked.headers["content-type"] == "application/geo+json" and asked.json()["features"][0]["id"] == rid
    assert "text/html" in client.get("/campaigns/walk", headers={"Accept": "text/html"}).headers["content-type"]


def test_the_feed_is_atom_of_the_newest_reports_in_the_area(client):
    rid = client.post(R, json=report(lat=GANGNAM[0], lon=GANGNAM[1], title="Deep & wide")).json()["report"]["id"]
    client.post(R, json=report())
    for path in ("/reports/feed.atom", f"{R}/feed.atom"):
        feed = client.get(path, params={"district": "11230", "lang": "en"})
        root = ET.fromstring(feed.content)
        ns = {"a": "http://www.w3.org/2005/Atom"}
        assert [e.find("a:id", ns).text for e in root.findall("a:entry", ns)] == [f"http://testserver/reports/{rid}"]
        assert root.find("a:entry/a:title", ns).text == "Pothole: Deep & wide"
        assert root.find("a:link", ns).get("href").endswith(f"{path}?district=11230&lang=en")


def test_a_language_the_city_does_not_offer_is_refused_or_not_taken(client, db):
    bad = client.post(f"{R}/subscriptions", json={"email": "a@example.org", "district": "11020", "language": "fr"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_language"
    ok = client.post(f"{R}/subscriptions?lang=en", json={"email": "b@example.org", "district": "11020"})
    assert ok.status_code == 201
    with db.session() as s:
        assert {x.email: x.language for x in s.query(Subscription)} == {"b@example.org": "en"}
    # A name asked for in a language the city does not offer comes in the city's own language.
    groups = client.get(f"{R}/categories", params={"lang": "fr"}).json()["groups"]
    assert groups[1]["name"] == "도로"
    assert client.get(f"{R}/categories", params={"lang": "en"}).json()["groups"][1]["name"] == "Roads"


PIN_PROPERTIES = {"id", "title", "status", "status_name", "category", "category_name", "colour", "url"}


def test_a_maps_pin_carries_only_what_the_pin_shows_and_the_report_json_the_rest(client):
    made = client.post(R, json=report(title="Deep hole", description="Near the bus", address_string="Sejong-daero"))
    rid = made.json()["report"]["id"]
    pins = client.get("/reports.geojson", params={"lang": "en"}).json()
    (pin,) = pins["features"]
    assert pin["id"] == rid and set(pin["properties"]) == PIN_PROPERTIES
    assert pin["properties"]["category"] == "roads-pothole" and pin["properties"]["title"] == "Deep hole"
    assert pin["properties"]["status_name"] == "Open" and pin["properties"]["category_name"] == "Pothole"
    full = client.get(f"/reports/{rid}.json").json()
    assert full["description"] == "Near the bus" and full["address_string"] == "Sejong-daero"
    assert {k: full[k] for k in ("id", "title", "status", "category")} == {
        k: pin["properties"][k] for k in ("id", "title", "status", "category")
    }


def test_the_public_map_its_json_and_its_pins_are_one_view(client):
    near = client.post(R, json=report(title="Jung-gu hole")).json()["report"]["id"]
    client.post(R, json=report(lat=GANGNAM[0], lon=GANGNAM[1], title="Gangnam hole"))
    asked = client.get("/reports", params={"district": "11020"}, headers={"Accept": "application/json"})
    assert asked.headers["content-type"].startswith("application/json")
    assert [i["id"] for i in asked.json()["items"]] == [near] and asked.json()["has_more"] is False
    pins = client.get("/reports", params={"district": "11020"}, headers={"Accept": "application/geo+json"})
    assert pins.headers["content-type"] == "application/geo+json"
    assert [(f["id"], set(f["properties"])) for f in pins.json()["features"]] == [(near, PIN_PROPERTIES)]
    page = client.get("/reports", params={"district": "11020"}, headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "Jung-gu hole" in page.text and "Gangnam hole" not in page.text


def _schema_of(spec: dict, path: str) -> dict:
    """The JSON response schema of GET `path`, its references followed one level."""
    schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_list_and_the_dashboard_keep_their_response_schema_in_the_openapi_document(client):
    spec = client.get("/api/openapi.json").json()
    listed = _schema_of(spec, R)
    assert {"items", "page", "page_size", "has_more", "total"} <= set(listed["properties"])
    item_ref = listed["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[1]
    item = spec["components"]["schemas"][item_ref]
    assert {"id", "status", "category", "title", "lat", "lon", "created_at", "overdue"} <= set(item["properties"])
    figures = _schema_of(spec, f"{R}/dashboard")
    assert {"total", "by_status", "by_district", "overdue", "median_days_to_fix", "heat"} <= set(figures["properties"])
    assert figures["properties"]["overdue"]["items"]["$ref"].endswith(f"/{item_ref}")
    assert "application/atom+xml" in spec["paths"][f"{R}/feed.atom"]["get"]["responses"]["200"]["content"]


def test_the_campaigns_page_and_its_json_are_one_view(client, db):
    make_user(db, "boss", "admin")
    admin = {"X-API-Key": make_key(db, "boss")}
    camp = {"title_ko": "걷기", "title_en": "Walk", "starts_at": "2020-01-01T00:00:00Z", "theme": "green"}
    assert client.put(f"{R}/campaigns/walk", json={**camp, "ends_at": "2099-01-01T00:00:00Z"}, headers=admin).is_success
    twin = client.get("/campaigns.json", params={"lang": "en"})
    asked = client.get("/campaigns", params={"lang": "en"}, headers={"Accept": "application/json"})
    assert asked.headers["content-type"].startswith("application/json") and asked.json() == twin.json()
    assert [(c["slug"], c["title"], c["colour"]) for c in twin.json()["items"]] == [("walk", "Walk", "#15803d")]
    page = client.get("/campaigns", params={"lang": "en"}, headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html") and "Walk" in page.text
