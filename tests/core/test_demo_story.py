"""The demo tells each role a working story (issue 12 item 3): the demo loaded as `smartcity demo` loads it,
then each role's main page read as that role reads it."""

from __future__ import annotations

import json
import math
import re

import pytest

from smartcity.core.city import load_profile
from smartcity.core.db import Database
from smartcity.core.demo import DEMO_PASSWORD, load_demo
from tests.conftest import signin


@pytest.fixture
def demo(db):
    lines = list(load_demo(db, load_profile("seoul")))
    assert lines
    return db


def _as(client, username: str) -> None:
    assert signin(client, username, DEMO_PASSWORD).status_code == 303


def test_the_staff_accounts_unit_has_reports_in_its_queue(demo, client):
    _as(client, "staff")
    queue = client.get("/staff/reports.json").json()
    assert queue["items"], "the demo staff account's queue is empty"


def test_the_overdue_share_of_unresolved_reports_is_realistic(demo, client):
    _as(client, "admin")
    unresolved = client.get("/staff/reports.json", params={"size": 1}).json()["total"]
    overdue = client.get("/staff/reports.json", params={"size": 1, "overdue": 1}).json()["total"]
    assert unresolved > 50
    assert 0.05 <= overdue / unresolved <= 0.40, (overdue, unresolved)


def test_the_operator_has_an_open_incident_in_their_district(demo, client):
    _as(client, "operator")
    answer = client.get("/api/safety/incidents").json()
    assert answer["district"] == "11230"
    assert [i for i in answer["incidents"] if i["status"] == "open"], answer


def test_the_demo_people_are_named_in_korean(demo, client):
    _as(client, "guardian")
    page = client.get("/safety/guardian?lang=ko").text
    names = [json.loads(f'"{n}"') for n in re.findall(r'"name": ?"([^"]+)"', page)]
    assert names and all(re.search("[가-힣]", n) for n in names), names
    assert not re.search(r"\b(Park|Kim|Lee|Choi) [A-Z][a-z]+", page)


@pytest.mark.parametrize(
    ("lang", "purpose", "report", "see"),
    [
        ("ko", "도시 서비스를 한곳에서", "신고하기", "신고 둘러보기"),
        ("en", "city services in one place", "Report a problem", "See reports"),
    ],
)
def test_the_home_page_says_what_the_site_is_for_and_offers_the_two_actions(client, lang, purpose, report, see):
    page = client.get(f"/?lang={lang}").text
    h1 = re.findall(r'<h1 class="home-purpose">([^<]+)</h1>', page)
    assert len(h1) == 1 and purpose in h1[0], h1
    actions = [(label, href) for href, label in re.findall(r'<a class="button[^"]*" href="([^"]+)">([^<]+)</a>', page)]
    assert actions[:2] == [(report, "/reports/new"), (see, "/reports")]  # the two main actions lead
    assert re.findall(r'<a class="button primary" href="([^"]+)">', page) == ["/reports/new"]
    pins = re.search(r'data-pins="([^"]+)"', page).group(1).replace("&#34;", '"')
    assert json.loads(pins) == ["/reports.geojson?limit=100"]


# --- in chromium, on a phone, with the demo loaded into the live server's store -------------------------


def _browser_signin(page, server, username: str, then: str) -> None:
    page.goto(f"{server.url}/signin?next={then}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{then.split('?')[0]}*")


@pytest.fixture
def demo_server(sqlite_url, request):
    """The demo loaded before the server starts, as `smartcity demo` does (no job of the app writes beside it)."""
    store = Database(sqlite_url)
    list(load_demo(store, load_profile("seoul")))
    store.dispose()
    return request.getfixturevalue("live_app")


def test_the_guardian_sees_their_ward_at_street_zoom_on_a_phone(demo_server, page):
    assert page.viewport_size == {"width": 390, "height": 844}
    _browser_signin(page, demo_server, "guardian", "/safety/guardian?lang=ko")
    page.wait_for_selector("#map[data-state=ready][data-marker-lat]")
    page.wait_for_timeout(800)  # any later fit (the districts') would have landed by now
    # The zoom as drawn: the home zone (80 m radius) measured on screen, metres per pixel at zoom z being
    # 156543.03·cos(lat)/2^z; the attribute the page keeps must agree with it.
    width = page.evaluate(
        "Math.max(...[...document.querySelectorAll('path.zone.safe')].map((e) => e.getBoundingClientRect().width))"
    )
    drawn = math.log2(width * 156543.03 * math.cos(math.radians(37.4985)) / 160)
    assert drawn >= 14.9, (drawn, width)
    assert int(page.get_attribute("#map", "data-zoom-now")) == round(drawn)
    assert page.evaluate("document.querySelector('.person-marker') !== null")


def test_the_home_map_shows_recent_reports(demo_server, page):
    page.goto(f"{demo_server.url}/?lang=ko")
    page.wait_for_selector("#map[data-pin-count]")
    assert int(page.get_attribute("#map", "data-pin-count")) > 20
    assert page.locator(".home-pin").count() > 20
    assert page.locator(".home-actions a").nth(0).get_attribute("href") == "/reports/new"
    assert page.locator(".home-actions a").nth(1).get_attribute("href") == "/reports"
