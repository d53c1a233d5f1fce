"""Maps and places without internet, in a real browser (Debian's chromium) on a 390x844 phone: the tile
server cannot be reached, yet typing "강남역" in the map's search takes the map there, the neighbourhoods'
names show at street zoom, the notice about the base map stays clear of the map's centre and names no
command, and a report's page says where it is in words."""

from __future__ import annotations

import pytest

from smartcity.app import create_app
from smartcity.core import geo
from smartcity.core.city import load_profile
from smartcity.core.db import Database
from tests.conftest import LiveServer, make_settings
from tests.reports.helpers import file_report

pytestmark = pytest.mark.browser
SEOUL = load_profile("seoul")
UNREACHABLE_TILES = "http://127.0.0.1:9/{z}/{x}/{y}.png"  # refuses connections, as with no internet


@pytest.fixture
def offline_city(sqlite_url, tmp_path, synthetic_dir):
    """A live server with the synthetic districts and neighbourhoods imported and a tile server that is down."""
    db = Database(sqlite_url)
    with db.session() as s:
        areas = geo.parse_boundaries((synthetic_dir / "districts.geojson").read_bytes(), SEOUL)
        geo.import_districts(s, areas, "districts.geojson")
    geo.invalidate(db)
    with db.session() as s:
        hoods = geo.parse_boundaries((synthetic_dir / "neighbourhoods.geojson").read_bytes(), SEOUL)
        geo.import_neighbourhoods(s, hoods, "neighbourhoods.geojson", geo.geo_index(db))
    geo.invalidate(db)
    app = create_app(make_settings(sqlite_url, tmp_path, tile_url=UNREACHABLE_TILES), db)
    with LiveServer(app) as server:
        server.db = db
        yield server
    db.dispose()


def test_search_takes_the_map_to_gangnam_station_and_the_offline_layer_names_the_streets(offline_city, page):
    page.goto(offline_city.url + "/")
    page.wait_for_selector("#map[data-state=ready]", timeout=15000)
    search = page.get_by_role("combobox", name="장소 검색")
    search.focus()  # the keyboard alone, from here on
    page.keyboard.type("강남역")
    listbox = page.get_by_role("listbox")
    listbox.get_by_role("option").first.wait_for(timeout=10000)
    assert listbox.get_by_role("option").first.inner_text().startswith("강남역")
    assert search.get_attribute("aria-expanded") == "true"
    assert search.get_attribute("aria-activedescendant") == listbox.get_by_role("option").first.get_attribute("id")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#map').dataset.searched === '강남역'", timeout=10000)

    station = _station(offline_city)
    center = page.evaluate("(() => { const c = window.smartcity.map.getCenter(); return [c.lat, c.lng]; })()")
    assert center == pytest.approx(station, abs=1e-4)
    assert int(page.locator("#map").get_attribute("data-zoom-now")) >= 16

    # Street zoom with no tiles: the neighbourhoods are outlined and named, among them the station's own.
    page.wait_for_function("Number(document.querySelector('#map').dataset.hoodLabels || 0) > 0", timeout=10000)
    hood = geo.geo_index(offline_city.db).neighbourhood_at(*station)
    assert hood is not None
    labels = page.locator(".hood-label").all_inner_texts()
    assert hood.name_ko in labels
    assert page.locator(".place-label", has_text="강남역").count() >= 1

    # The notice is there, small, clear of the centre, and tells nobody to run a command.
    notice = page.locator(".map-notice.no-tiles")
    notice.wait_for(timeout=15000)
    assert "smartcity" not in notice.inner_text() and "import" not in notice.inner_text()
    m, n = page.locator("#map").bounding_box(), notice.bounding_box()
    cx, cy = m["x"] + m["width"] / 2, m["y"] + m["height"] / 2
    assert not (n["x"] <= cx <= n["x"] + n["width"] and n["y"] <= cy <= n["y"] + n["height"])
    assert n["width"] * n["height"] < 0.1 * m["width"] * m["height"]
    for other in page.locator(".map-notice").all():
        b = other.bounding_box()
        assert not (b["x"] <= cx <= b["x"] + b["width"] and b["y"] <= cy <= b["y"] + b["height"])


def test_a_report_page_says_near_which_place_it_is(offline_city, page):
    station = _station(offline_city)
    rid = file_report(offline_city.db, where=(station[0] + 0.0004, station[1]))
    page.goto(offline_city.url + f"/reports/{rid}")
    near = page.locator("#near")
    page.wait_for_function("document.querySelector('#near').textContent.includes('근처')", timeout=10000)
    hood = geo.geo_index(offline_city.db).neighbourhood_at(station[0] + 0.0004, station[1])
    assert near.inner_text().startswith("강남역 근처, ")
    assert hood.name_ko in near.inner_text()


def _station(server) -> tuple[float, float]:
    from smartcity.core.places import geocoder

    hit = geocoder(server.db).search("강남역", "ko", limit=1)[0]
    return hit.lat, hit.lon
