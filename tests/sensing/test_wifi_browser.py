"""The Wi-Fi coverage page in chromium, in Korean on a phone (390×844), with no tile server: the access points'
discs, the uncovered stops and the proposed sites drawn, the district table, the proposals downloadable."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from smartcity.core.geo import geo_index
from smartcity.core.places_import import import_places, parse_places
from smartcity.sensing import wifi
from tests import synthetic
from tests.conftest import make_user
from tests.helpers import BROWSER_TIMEOUT, browser_signin
from tests.sensing.helpers import stops_away_from

pytestmark = pytest.mark.browser


def test_the_coverage_page_on_a_phone_in_korean(live_app, page):
    db = live_app.db
    data = synthetic.wifi()
    wifi.import_access_points(db, data.data)
    with db.session() as s:
        aps = wifi.access_points(s)
    # Stops: one under each of three access points, and a row of four well away from all of them.
    far = stops_away_from(db, aps, 4)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["ref", "kind", "name_ko", "lat", "lon"])
    for i, a in enumerate(aps[:3]):
        writer.writerow([f"c{i}", "bus_stop", f"덮인 정류소 {i}", a.lat, a.lon])
    for i, (lat, lon) in enumerate(far):
        writer.writerow([f"f{i}", "bus_stop", f"먼 정류소 {i}", lat, lon])
    parsed = parse_places(out.getvalue().encode(), synthetic.SEOUL)
    with db.session() as s:
        import_places(s, parsed.places, "test", geo_index(db))
    make_user(db, "planner", "staff", department="11230-roads")

    browser_signin(page, live_app, "planner", "/staff/sensing/wifi")
    page.goto(f"{live_app.url}/staff/sensing/wifi?district={synthetic.GANGNAM}&n=3")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.locator("h1").inner_text() == "공공 와이파이 서비스 범위"
    svg = page.locator("#wifi-map")
    svg.wait_for(timeout=BROWSER_TIMEOUT)
    gangnam_aps = [a for a in aps if a.district == synthetic.GANGNAM]
    assert page.locator("#wifi-map circle.disc").count() == len(gangnam_aps)
    assert page.locator("#wifi-map circle.gap").count() >= 4
    assert page.locator("#wifi-map circle.site").count() >= 1
    row = page.locator(f"#wifi-districts tr[data-district='{synthetic.GANGNAM}']")
    assert "3 / 7" in row.inner_text()
    first = page.locator("#wifi-proposals tbody tr").first.inner_text()
    assert "먼 정류소" in first and "4" in first
    box = svg.bounding_box()
    assert box and 300 <= box["width"] <= 390
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing wider than the phone

    with page.expect_download() as got:
        page.click("#download-geojson")
    collection = json.loads(Path(got.value.path()).read_text(encoding="utf-8"))
    assert collection["type"] == "FeatureCollection"
    assert collection["features"][0]["properties"]["newly_covered"] == 4.0
