"""Issue 12 items 6 and 14 in a real browser (Debian's chromium): staff tick reports in the queue and change
them at once with a template the page filters by status, and see the queue on the map; a signed-in citizen
finds "나의 신고" in the menu, their form filled in, and no "me too" on their own report."""

from __future__ import annotations

import pytest

from smartcity.reports import service as S
from tests.conftest import make_user
from tests.reports.helpers import CITY_HALL, new, sign_in, who

pytestmark = pytest.mark.browser


def test_staff_change_ticked_reports_at_once_and_see_the_queue_on_the_map(live_app, browser):
    db = live_app.db
    make_user(db, "roadie", "staff", department="11020-roads")
    with db.session() as s:
        ids = [S.create_report(s, who(db, "roadie"), new(title=f"Pothole {n}")).report.id for n in range(3)]
    context = browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    page = context.new_page()
    sign_in(page, live_app.url, "roadie")
    page.goto(live_app.url + "/staff/reports?lang=en")
    for rid in ids[:2]:
        page.check(f"tr[data-id='{rid}'] input[name=ids]")
    page.select_option("#bulk-status", "acknowledged")
    received = page.locator("#bulk-template option", has_text="Received")
    scheduled = page.locator("#bulk-template option", has_text="Work scheduled")  # written for in_progress
    assert received.is_enabled() and scheduled.is_disabled()
    assert page.locator("label[data-for=reassign]").is_hidden()
    page.select_option("#bulk-template", label="Received")
    page.click("#bulk-submit")
    page.wait_for_selector("#bulk-result")
    assert f"#{ids[0]}, #{ids[1]}" in page.locator("#bulk-result").inner_text()
    with db.session() as s:
        assert [S.get_report(s, rid).status for rid in ids] == ["acknowledged", "acknowledged", "open"]
    page.click("#map-view")
    page.wait_for_selector("#queue-map[data-pins-state=ready]", timeout=15000)
    assert page.locator("#queue-map path.pin").count() == 3
    context.close()


def test_a_citizen_finds_their_reports_and_cannot_me_too_their_own(live_app, page):
    db = live_app.db
    make_user(db, "minji", "citizen", display_name="김민지", email="minji@example.kr")
    make_user(db, "roadie", "staff", department="11020-roads")
    with db.session() as s:
        rid = S.create_report(s, who(db, "minji"), new(title="우리 집 앞 포트홀", where=CITY_HALL)).report.id
    with db.session() as s:
        S.transition(s, who(db, "roadie"), rid, "acknowledged", text="이번 주에 확인하겠습니다.")
    sign_in(page, live_app.url, "minji")
    page.goto(live_app.url + "/reports?lang=ko")
    page.get_by_role("link", name="나의 신고").first.click()
    page.wait_for_selector("#my-reports")
    item = page.locator(f"#my-reports li[data-id='{rid}']")
    assert "우리 집 앞 포트홀" in item.inner_text() and "이번 주에 확인하겠습니다." in item.inner_text()
    assert item.locator(".status-badge.status-acknowledged").count() == 1
    item.locator("a").first.click()
    page.wait_for_selector("article.report-page")
    assert page.locator("#support").count() == 0 and page.locator(".own-report").is_visible()
    page.goto(live_app.url + "/reports/new?lang=ko")
    assert page.locator("input[name=email]").input_value() == "minji@example.kr"
    assert page.locator("input[name=name]").input_value() == "김민지"
