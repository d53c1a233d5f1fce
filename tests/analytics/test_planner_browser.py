"""The night route planner's pages in chromium, in Korean on a phone (390×844): an analyst's constraints, the run
in the background, the routes drawn with their stops, the comparison with the current routes, the GTFS download;
an impossible constraint is named on the form."""

from __future__ import annotations

from datetime import date

import gtfs_kit
import pytest

from smartcity.analytics import synthetic
from smartcity.analytics.planner_run import runs_dir
from smartcity.analytics.settings import AnalyticsSettings, data_dir
from smartcity.core.city import load_profile
from smartcity.core.db import Database
from smartcity.core.places import Place
from tests.conftest import LiveServer, make_settings, make_user
from tests.helpers import BROWSER_TIMEOUT, browser_signin

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url, tmp_path):
    from smartcity.app import create_app

    settings = make_settings(sqlite_url, tmp_path, analytics_planner_seconds=2)
    profile = load_profile("seoul")
    phone = data_dir(settings, settings.of(AnalyticsSettings)) / "phone"
    synthetic.generate(synthetic.hubs_from(profile, seed=3), 60_000, phone, start=date(2026, 3, 2), days=1, seed=3)
    db = Database(sqlite_url)
    with LiveServer(create_app(settings, db)) as live:
        live.db, live.settings = db, settings
        yield live
    db.dispose()


def wait_until_planned(page, server) -> None:
    """The run's page settles on done or failed. Its own process starts Python, OR-Tools and DuckDB afresh: on a
    loaded machine that alone took most of a minute, so it is given three; a failed run fails the test with what
    the page and the run's log say."""
    page.wait_for_selector("#planner-run[data-state=done], #planner-run[data-state=failed]", timeout=180_000)
    if page.locator("#planner-run").get_attribute("data-state") != "done":
        log = runs_dir(server.settings) / page.url.rstrip("/").rsplit("/", 1)[-1] / "log.txt"
        said = log.read_text(encoding="utf-8", errors="replace") if log.exists() else "(no log)"
        pytest.fail(f"the plan failed: {page.locator('#planner-error').inner_text()}\n{said}")


def stops_csv(tmp_path):
    path = tmp_path / "stops.csv"
    rows = [
        f"{i:05d},정류소 {i},{37.45 + (i // 50) * 0.0045:.6f},{126.82 + (i % 50) * 0.0068:.6f}" for i in range(2500)
    ]
    path.write_text("id,name,lat,lon\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_an_analyst_plans_night_routes_on_a_phone_in_korean(server, page, tmp_path):
    make_user(server.db, "analyst1", "analyst")
    browser_signin(page, server, "analyst1", "/analytics/planner")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.locator("h1").inner_text() == "심야버스 노선"

    page.fill("#routes", "9")
    page.fill("#fleet", "5")
    page.click("#planner-form button[type=submit]")
    error = page.locator("#planner-error").inner_text()
    assert error == "버스 5대로는 노선 9개를 운행할 수 없습니다. 노선마다 버스가 1대 이상 필요합니다."

    page.fill("#routes", "3")
    page.fill("#max_km", "15")
    page.fill("#headway", "40")
    page.fill("#fleet", "20")
    page.set_input_files("#stops", str(stops_csv(tmp_path)))
    page.fill("#baseline", "N26: 00100 00101 00102 00103\nN37: 01200 01250 01300")
    page.click("#planner-form button[type=submit]")
    # The search runs in a process of its own; the page follows it with a progress bar, then shows the routes.
    progress = page.locator("#planner-progress")
    progress.wait_for(timeout=BROWSER_TIMEOUT)
    assert 0 <= float(progress.get_attribute("value")) < 1
    wait_until_planned(page, server)
    assert page.locator("h1").inner_text() == "제안하는 심야 노선"

    rows = page.locator("#planner-routes tbody tr")
    drawn = page.locator("#planner-map g.route")
    assert 1 <= rows.count() <= 3 and drawn.count() == rows.count()
    stops_listed = sum(int(rows.nth(i).locator("td").first.inner_text()) for i in range(rows.count()))
    assert page.locator("#planner-map circle.stop").count() == stops_listed
    assert page.locator("#planner-map polyline.baseline").count() == 2

    # The script's city map draws the same routes, stops and the current routes; the SVG is then only the fallback.
    page.wait_for_selector(f"#planner-citymap[data-route-count='{rows.count()}']", timeout=BROWSER_TIMEOUT)
    citymap = page.locator("#planner-citymap")
    assert citymap.get_attribute("data-stop-count") == str(stops_listed)
    assert citymap.locator("path.planner-route").count() == rows.count()
    assert citymap.locator("path.planner-stop").count() == stops_listed
    assert citymap.locator("path.planner-baseline").count() == 2
    assert int(citymap.get_attribute("data-cell-count")) == citymap.locator("path.hot-cell").count() > 0
    assert citymap.locator("path.hot-cell.served").count() > 0
    assert sorted(citymap.locator("path.planner-route").evaluate_all("ps => ps.map(p => p.dataset.route)")) == sorted(
        drawn.nth(i).get_attribute("data-route") for i in range(drawn.count())
    )
    assert page.locator("#planner-svg").is_hidden()
    buses = sum(int(rows.nth(i).locator("td").nth(3).inner_text()) for i in range(rows.count()))
    assert buses <= 20
    networks = page.locator("#planner-comparison tbody th").all_inner_texts()
    assert networks == ["제안 노선", "현재 노선"]

    with page.expect_download(timeout=BROWSER_TIMEOUT) as download:
        page.click("#download-gtfs")
    saved = tmp_path / "gtfs.zip"
    download.value.save_as(saved)
    feed = gtfs_kit.read_feed(saved, dist_units="km")
    assert sorted(feed.routes["route_id"]) == sorted(
        drawn.nth(i).get_attribute("data-route") for i in range(drawn.count())
    )
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390


def test_with_no_stop_list_the_gazetteers_bus_stops_are_used_and_a_citizen_is_refused(server, page):
    with server.db.session() as s:
        s.add_all(
            Place(
                kind="bus_stop",
                ref=f"{i}",
                name_ko=f"정류소 {i}",
                name_en=f"Stop {i}",
                lat=37.45 + (i // 50) * 0.0045,
                lon=126.82 + (i % 50) * 0.0068,
            )
            for i in range(2500)
        )
        s.commit()
    make_user(server.db, "citizen1", "citizen")
    browser_signin(page, server, "citizen1", "/")
    assert page.goto(server.url + "/analytics/planner").status == 403

    make_user(server.db, "analyst2", "analyst")
    page.context.clear_cookies()
    browser_signin(page, server, "analyst2", "/analytics/planner")
    page.fill("#routes", "2")
    page.fill("#fleet", "10")
    page.click("#planner-form button[type=submit]")
    wait_until_planned(page, server)
    ids = {page.locator("#planner-map circle.stop").nth(i).get_attribute("data-stop") for i in range(3)}
    assert ids <= {str(i) for i in range(2500)}
