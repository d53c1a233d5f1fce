"""The web shell in a real browser (Debian's chromium through Playwright)."""

import pytest

from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.browser


def test_the_map_draws_every_district_outline_without_a_tile_server(live_app, page):
    page.goto(live_app.url + "/")
    page.wait_for_selector("#map[data-state=ready]", timeout=15000)
    outlines = page.locator("path.district")
    assert outlines.count() == 25
    assert page.locator("#map").get_attribute("data-district-count") == "25"
    assert "근사치" in page.locator(".map-notice.approximate").inner_text()  # demo boundaries say so
    box = page.locator("#map").bounding_box()
    assert box["height"] > 300  # the map fills the phone screen
    # Hovering a district names it, in Korean by default.
    page.locator('path.district[data-code="11230"]').hover(force=True)
    assert "강남구" in page.locator(".leaflet-tooltip").inner_text()


def test_the_map_degrades_gracefully_when_tiles_cannot_be_reached(sqlite_url, tmp_path, browser):
    from smartcity.app import create_app
    from smartcity.core.db import Database
    from tests.conftest import LiveServer, make_settings

    db = Database(sqlite_url)
    # A tile server that refuses connections, as on a machine with no internet.
    app = create_app(make_settings(sqlite_url, tmp_path, tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png"), db)
    with LiveServer(app) as server:
        page = browser.new_page()
        page.goto(server.url + "/?lang=en")
        page.wait_for_selector("#map[data-state=ready]", timeout=15000)
        assert page.locator("path.district").count() == 25
        page.wait_for_selector(".map-notice.no-tiles", timeout=15000)
        assert "district outlines are still shown" in page.locator(".map-notice.no-tiles").inner_text()
        page.close()
    db.dispose()


def test_sign_in_and_out_in_the_browser(live_app, page):
    make_user(live_app.db, "minji", "citizen", display_name="Kim Minji")
    page.goto(live_app.url + "/?lang=en")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill("minji")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "The username or password is not right."
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector(".who")
    assert page.locator(".who").inner_text() == "minji"
    assert page.url.rstrip("/") == live_app.url
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("link", name="Sign in").wait_for()


def test_language_switch(live_app, page):
    page.goto(live_app.url + "/")
    assert page.locator("html").get_attribute("lang") == "ko"
    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("link", name="Sign in").is_visible()
