"""Community Mapping in a real browser (Debian's chromium through Playwright, a phone-sized window): a citizen
files a report on the map, "me too" on a nearby duplicate, a staff member works a report through to fixed while
the citizen's page shows each step, the public map's pins and the dashboard's heat map."""

from __future__ import annotations

import pytest

from smartcity.core.auth import ANONYMOUS
from smartcity.reports import service as S
from tests.conftest import make_user
from tests.reports.helpers import CITY_HALL, GANGNAM, jpeg, sign_in

pytestmark = pytest.mark.browser


def file_report(db, where=CITY_HALL, **kw) -> int:
    kw.setdefault("title", "A pothole")
    kw.setdefault("attributes", {"size": "small"})
    with db.session() as s:
        return S.create_report(
            s, ANONYMOUS, S.NewReport(category="roads-pothole", lat=where[0], lon=where[1], **kw)
        ).report.id


def test_a_citizen_files_a_report_on_the_map_and_sees_its_page(live_app, page):
    page.goto(live_app.url + "/reports/new?lang=en")
    page.wait_for_selector("#report-map[data-state=ready]", timeout=15000)
    page.locator("#report-map").click(position={"x": 195, "y": 170})  # the middle of the city
    page.wait_for_selector("#report-map[data-inside=true]")
    assert page.locator("#where-text").inner_text()  # the district the pin is in
    assert page.locator("#lat").input_value() and page.locator("#lon").input_value()
    page.select_option("#category", "roads-pothole")
    assert page.locator('fieldset[data-category="roads-pothole"]').is_visible()
    page.select_option('select[name="attr.roads-pothole.size"]', "large")
    page.fill("#title", "Pothole at the crossing")
    page.fill("#description", "Deep enough to hurt a cyclist.")
    assert page.locator("#description-count").inner_text() == "30 / 4000"
    page.set_input_files("#photos", files=[{"name": "hole.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
    assert page.locator("#photo-preview img").count() == 1
    page.click("#submit-report")
    page.wait_for_url("**/submitted")
    number = page.locator("#report-number").inner_text()
    page.get_by_role("link", name="See your report").click()
    page.wait_for_selector("article.report-page")
    assert number in page.locator("h1").inner_text() and "Pothole at the crossing" in page.locator("h1").inner_text()
    assert page.locator(".photos img").count() == 1
    page.wait_for_selector("#report-map[data-zoom-now='16']", timeout=15000)  # the map shows the spot
    assert page.locator("#report-map path.leaflet-interactive").count() >= 1


def test_a_pin_outside_the_city_is_refused_on_the_spot(live_app, page):
    page.goto(live_app.url + "/reports/new?lang=en&lat=35.1796&lon=129.0756")  # Busan
    page.wait_for_selector("#report-map[data-inside=false]", timeout=15000)
    assert "outside the city" in page.locator("#where-text").inner_text()


def test_the_nearby_duplicate_prompt_and_me_too(live_app, page):
    rid = file_report(live_app.db, title="Pothole already reported")
    near = (CITY_HALL[0] + 0.0002, CITY_HALL[1])
    page.goto(live_app.url + f"/reports/new?lang=en&category=roads-pothole&lat={near[0]}&lon={near[1]}")
    item = page.wait_for_selector(f"#nearby li[data-id='{rid}']", timeout=15000)
    assert "Pothole already reported" in item.inner_text()
    page.locator(f"#nearby li[data-id='{rid}'] button.me-too").click()
    page.wait_for_selector("#nearby .supported")
    with live_app.db.session() as s:
        assert S.get_report(s, rid).support_count == 1
    # Another category at the same place: no prompt.
    page.select_option("#category", "roads-sidewalk")
    page.wait_for_selector("#nearby", state="hidden")


def test_staff_work_a_report_to_fixed_and_the_citizen_sees_every_step(live_app, browser):
    make_user(live_app.db, "roadie", "staff", department="11020-roads")
    rid = file_report(live_app.db, title="Broken asphalt")
    staff = browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    page = staff.new_page()
    sign_in(page, live_app.url, "roadie")
    page.goto(live_app.url + "/staff/reports")
    page.locator(f"tr[data-id='{rid}'] a").first.click()
    page.wait_for_selector("#status-form")
    steps = [("acknowledged", "We will inspect it this week."), ("in_progress", None), ("fixed", "Resurfaced.")]
    for status, text in steps:
        page.check(f"#status-form input[name=status][value={status}]")
        if text is None:  # a response template fills the answer
            page.select_option("#status-form select.template-pick", label="Work scheduled")
            assert page.locator("#status-text").input_value()
        else:
            page.fill("#status-text", text)
        page.locator("#status-form button[type=submit]").click()
        page.wait_for_selector(f"article.work[data-status={status}]")
    page.check("#note-form input[value=internal]")
    page.fill("#note-text", "Crew B did it.")
    page.locator("#note-form button[type=submit]").click()
    page.wait_for_selector(".timeline .internal")
    staff.close()

    citizen = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    view = citizen.new_page()
    view.goto(live_app.url + f"/reports/{rid}?lang=en")
    entries = view.locator("#timeline li")
    statuses = [entries.nth(i).get_attribute("data-status") for i in range(entries.count())]
    assert statuses == ["open", "acknowledged", "in_progress", "fixed"]
    timeline = view.locator("#timeline").inner_text()
    assert "We will inspect it this week." in timeline and "Resurfaced." in timeline and "Crew B" not in timeline
    citizen.close()


def test_the_public_map_and_the_dashboard(live_app, browser):
    make_user(live_app.db, "boss", "admin")
    for where in (CITY_HALL, GANGNAM, (GANGNAM[0] + 0.001, GANGNAM[1])):
        file_report(live_app.db, where=where)
    context = browser.new_context(locale="ko-KR", viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(live_app.url + "/reports")
    page.wait_for_selector("#reports-map[data-pins-state=ready]", timeout=15000)
    assert page.locator("path.pin").count() == 3
    assert page.locator(".report-item").count() == 3
    sign_in(page, live_app.url, "boss")
    page.goto(live_app.url + "/staff/dashboard")
    page.wait_for_selector("#heat-map[data-state=ready]", timeout=15000)
    assert page.locator("#total").inner_text() == "3"
    assert page.locator("path.heat-cell").count() == 2  # two resolution-8 cells
    assert page.locator("#csv-link").get_attribute("href").startswith("/staff/dashboard.csv")
    context.close()
