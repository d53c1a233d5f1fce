"""The safety pages in a real browser (chromium): the guardian sees the ward move live and draws a safe
zone; the control room receives an SOS live and takes it through acknowledge → dispatch → resolve."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.safety.engine import get_engine
from smartcity.safety.models import Incident, Zone
from tests.conftest import eventually
from tests.helpers import BROWSER_TIMEOUT, browser_signin
from tests.safety.helpers import HOME, SCHOOL, east_of, fix, make_world

pytestmark = pytest.mark.browser
TIMEOUT = BROWSER_TIMEOUT


@pytest.fixture
def world(live_app):
    w = make_world(live_app.db)
    w.engine = get_engine(live_app.db)
    start = utcnow() - timedelta(minutes=5)
    for i, point in enumerate([HOME, (37.4975, 127.0610), SCHOOL]):
        w.engine.intake_sync(fix(w.device, start + timedelta(minutes=i), point, battery=64.0))
    return w


def test_the_guardian_sees_the_position_and_path_and_the_marker_moves_live(live_app, page, world):
    browser_signin(page, live_app, "mother", "/safety/guardian?lang=en")
    page.wait_for_selector("#map[data-safety=ready]", timeout=TIMEOUT)
    page.wait_for_selector("#live-state[data-state=live]", timeout=TIMEOUT)
    m = page.locator("#map")
    assert (m.get_attribute("data-marker-lat"), m.get_attribute("data-marker-lon")) == ("37.500300", "127.057000")
    assert m.get_attribute("data-path-points") == "3"
    assert page.locator(".person-marker").is_visible()
    assert page.locator("path.track").count() == 1
    assert page.locator("#battery").inner_text() == "64%"
    assert page.locator("#last-seen").inner_text() == "3 min ago"
    assert page.locator("path.zone.safe").count() == 1  # the school
    # A new fix reaches the engine while the page is open: the marker moves, the path grows.
    lat, lon = east_of(SCHOOL, 150)
    world.engine.intake_sync(fix(world.device, utcnow(), (lat, lon), battery=63.0))
    page.wait_for_selector(f'#map[data-marker-lon="{lon:.6f}"]', timeout=TIMEOUT)
    assert m.get_attribute("data-path-points") == "4"
    assert page.locator("#battery").inner_text() == "63%"
    assert page.locator("#last-seen").inner_text() == "just now"


def test_the_zone_editor_saves_a_circle_with_a_schedule(live_app, page, world):
    browser_signin(page, live_app, "mother", "/safety/guardian?lang=en")
    page.wait_for_selector("#map[data-safety=ready]", timeout=TIMEOUT)
    page.click("#new-zone")
    page.fill("input[name=name]", "Grandma's house")
    page.click("#zone-form button[type=submit]")
    assert "Tap the map" in page.locator("#zone-error").inner_text()  # no centre yet: nothing sent
    box = page.locator("#map").bounding_box()
    page.locator("#map").click(position={"x": 80, "y": box["height"] * 0.7})
    page.wait_for_selector("#map[data-draft=circle] path.zone.draft", timeout=TIMEOUT)
    page.fill("input[name=radius_m]", "150")
    page.click("#add-window")  # Monday to Friday, 08:30–15:00 by default
    page.click("#zone-form button[type=submit]")
    page.wait_for_selector("#zone-status:has-text('Saved.')", timeout=TIMEOUT)
    assert "Grandma's house" in page.locator("#zone-list").inner_text()
    assert page.locator("#zone-form").is_hidden()
    assert page.locator("path.zone.safe").count() == 2
    with live_app.db.session() as s:
        zone = s.scalars(select(Zone).where(Zone.name == "Grandma's house")).one()
        assert (zone.person_id, zone.kind, zone.radius_m) == (world.person_id, "safe", 150)
        assert zone.schedule == [{"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "15:00"}]
        assert 37.4 < zone.lat < 37.7 and 126.7 < zone.lon < 127.3


def test_the_console_receives_an_sos_live_and_takes_it_to_resolution(live_app, page, world):
    browser_signin(page, live_app, "op-gangnam", "/safety/console?lang=en")
    page.wait_for_selector("#live-state[data-state=live]", timeout=TIMEOUT)
    assert "No open incidents." in page.locator("#queue").inner_text()
    world.engine.intake_sync(fix(world.device, utcnow(), east_of(SCHOOL, 40), alarm="sos"))
    page.wait_for_selector("#queue .incident.new", timeout=TIMEOUT)  # highlighted, no sound
    page.wait_for_selector("#incident[data-status=open]", timeout=TIMEOUT)
    assert "Kim Haneul" in page.locator("#queue").inner_text()
    assert page.locator("#map").get_attribute("data-located") == "yes"
    assert page.title().startswith("(1) ")
    page.click("form[data-step=acknowledge] button")
    page.wait_for_selector("#incident[data-status=acknowledged] #timeline li[data-step=acknowledged]", timeout=TIMEOUT)
    page.check("form[data-step=dispatch] input[value='112']")
    page.fill("form[data-step=dispatch] input[name=reference]", "GN-0042")
    page.click("form[data-step=dispatch] button")
    page.wait_for_selector("#incident[data-status=dispatched] #timeline li[data-step=dispatched]", timeout=TIMEOUT)
    assert "GN-0042" in page.locator("#timeline").inner_text()
    page.fill("form[data-step=resolve] textarea[name=resolution]", "Found at the school gate")
    page.click("form[data-step=resolve] button")
    page.wait_for_selector("#incident[data-status=resolved] #location-hidden", timeout=TIMEOUT)
    assert page.locator("#map").get_attribute("data-located") == "no"
    assert page.locator(".person-marker").count() == 0  # the location is gone from the map too
    with live_app.db.session() as s:
        inc = s.scalars(select(Incident)).one()
        assert (inc.status, inc.dispatch_agency, inc.resolution) == ("resolved", "112", "Found at the school gate")
        assert inc.acknowledged_at < inc.dispatched_at < inc.resolved_at
    eventually(lambda: page.locator("#queue .empty").count() == 1)


def test_the_guardian_replays_a_past_day_and_sees_an_emergency_first(live_app, page, world):
    """A past day's path on the map (and not today's), with its fixes listed; an SOS in progress at the top,
    announced (role=alert), with the control room's steps."""
    # Seoul's calendar, two days back: the world's live fixes may fall on yesterday just after midnight.
    yesterday = (utcnow() + timedelta(hours=9)).date() - timedelta(days=2)
    noon = datetime(yesterday.year, yesterday.month, yesterday.day, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
    for i in range(5):
        world.engine.intake_sync(fix(world.device, noon + timedelta(minutes=i), east_of(HOME, 40 * i)))
    browser_signin(page, live_app, "mother", "/safety/guardian?lang=en")
    page.wait_for_selector("#map[data-safety=ready]", timeout=TIMEOUT)
    assert page.locator("#map").get_attribute("data-path-points") == "3"  # today's
    page.fill("#replay-form input[name=day]", yesterday.isoformat())
    page.click("#replay-form button[type=submit]")
    page.wait_for_selector("#map[data-safety=ready]", timeout=TIMEOUT)
    assert page.locator("#map").get_attribute("data-path-points") == "5"
    assert page.locator("#replay-fixes li").count() == 5
    assert f"Path of {yesterday.isoformat()}" in page.locator("#status").inner_text()
    assert page.locator("#urgent").count() == 0
    world.engine.intake_sync(fix(world.device, utcnow(), SCHOOL, alarm="sos"))
    page.goto(f"{live_app.url}/safety/guardian?lang=en")
    urgent = page.locator("[role=alert]#urgent")
    urgent.wait_for(timeout=TIMEOUT)
    assert "SOS: Open" in urgent.inner_text()
    box, tabs = urgent.bounding_box(), page.locator(".ward-tabs").bounding_box()
    assert box["y"] < tabs["y"]  # above everything else of the ward
    assert page.locator("#last-seen").inner_text() == "just now"
