"""The analyst's flow in chromium, in Korean on a phone (390×844), with no tile server: sign in, ask for the night's
hot spots, watch the run finish, see the hot cells on the map, slide to one hour; axe-core finds nothing serious."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analytics.conftest import night_cluster
from tests.conftest import make_settings, make_user
from tests.helpers import BROWSER_TIMEOUT, browser_signin

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


def test_an_analyst_sees_night_hot_spots_on_the_map(live_app, page, sqlite_url, tmp_path):
    centre, lonely = night_cluster(make_settings(sqlite_url, tmp_path))  # the app's own data folder
    make_user(live_app.db, "analyst", "analyst")
    browser_signin(page, live_app, "analyst", "/analytics")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.locator("h1").inner_text() == "분석"
    assert _serious(page) == []

    page.fill("#name", "심야 핫스팟")
    page.click("button.primary")
    page.wait_for_selector(".analytics-run[data-status=done]", timeout=BROWSER_TIMEOUT)
    page.wait_for_selector("#analytics-map[data-state=ready]", timeout=BROWSER_TIMEOUT)
    hot = page.locator(f"path[data-cell='{centre}']")
    assert hot.get_attribute("data-class") == "hot_99"
    assert page.locator(f"path[data-cell='{lonely}']").count() == 0  # under k: never drawn
    assert "핫스팟 (99%)" in page.locator(".legend").inner_text()
    assert page.locator("svg.hour-plot rect[data-hour='1']").get_attribute("data-count") != "0"

    page.locator("#hour").fill("1")  # the slider's second stop: 01:00, the only hour with demand
    page.wait_for_function("() => document.getElementById('hour-shown').textContent === '1:00'")
    assert page.locator("path[data-cell]").count() >= 7
    assert _serious(page) == []
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390
