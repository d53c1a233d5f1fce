"""The air-quality map and a sensor's page in chromium, in Korean on a phone (390×844), with no tile server:
the demo's sensors are drawn in their bands' colours with the bad district among them, a dot leads to the
sensor's page with its plots, and axe-core finds nothing serious on either page."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartcity.core.city import load_profile
from smartcity.core.db import Database
from smartcity.sensing import air
from smartcity.sensing.demo import load
from tests.helpers import BROWSER_TIMEOUT

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


def _serious(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']}: {' '.join(v['nodes'][0]['target'])}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def air_demo(sqlite_url):
    """The air demo stored before the app serves (ask for it before `live_app`): loaded beside the running
    app's jobs, the loader waited out SQLite's busy timeout on a loaded machine ("database is locked")."""
    db = Database(sqlite_url)
    try:
        load(db, load_profile("seoul"), sensors=12)
    finally:
        db.dispose()


def test_the_air_map_and_a_sensor_page_on_a_phone_in_korean(air_demo, live_app, page):
    with live_app.db.session() as s:
        levels = {r["serial"]: r for r in air.sensor_levels(s)}
    bad = sorted(serial for serial, r in levels.items() if r["band"].rank >= air.BAD.rank)
    assert bad, "the demo has a district in 나쁨"

    page.goto(live_app.url + "/air")
    page.wait_for_selector("#air-map[data-state=ready]", timeout=BROWSER_TIMEOUT)
    page.wait_for_selector("#air-map[data-sensor-count='12']", timeout=BROWSER_TIMEOUT)
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.locator("h1").inner_text() == "대기질"
    assert page.locator(".air-legend li").all_inner_texts()[:4] == ["좋음", "보통", "나쁨", "매우나쁨"]
    dot = page.locator(f"path.air-dot[data-serial='{bad[0]}']")
    assert dot.get_attribute("data-band") in ("bad", "very_bad")
    assert dot.get_attribute("fill") == levels[bad[0]]["band"].colour
    district = levels[bad[0]]["district"]
    assert page.locator(f"#air-districts tr[data-district='{district}']").get_attribute("data-band") in (
        "bad",
        "very_bad",
    )
    assert page.locator("path.district[data-band]").count() >= 1  # the districts filled with their bands
    assert _serious(page) == []

    dot.dispatch_event("click")
    page.wait_for_url(f"**/air/sensors/{bad[0]}", timeout=BROWSER_TIMEOUT)
    assert page.locator("h1").inner_text() == f"센서 {bad[0]}"
    assert page.locator("#plot-day svg path[stroke='#0f172a']").count() == 1  # the 24 hours' line
    # Every reading of the day as a table: one every 10 minutes (the oldest may have just left the 24 hours).
    assert page.locator("#table-day tbody tr").count() in (143, 144)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    assert _serious(page) == []
