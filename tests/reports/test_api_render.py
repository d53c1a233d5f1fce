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
