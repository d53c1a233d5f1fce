"""The report form on a phone (Debian's chromium, 390×844): only the chosen category's extra questions show,
and another category's questions (required ones included) neither block sending nor are sent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from smartcity.reports.models import Report

pytestmark = pytest.mark.browser

FLOOD, POTHOLE = "flood-flooding", "roads-pothole"  # both have a required question


def visible_categories(page) -> list[str]:
    return [fs.get_attribute("data-category") for fs in page.locator("fieldset.attributes").all() if fs.is_visible()]


def test_only_the_chosen_categorys_questions_show_and_the_others_do_not_block(live_app, page):
    page.goto(live_app.url + "/reports/new?lang=en")
    page.wait_for_selector("#report-map[data-state=ready]", timeout=15000)
    assert visible_categories(page) == []  # no category yet: no extra questions at all
    assert page.locator("fieldset.attributes").count() > 2

    page.select_option("#category", FLOOD)
    assert visible_categories(page) == [FLOOD]
    page.select_option(f'select[name="attr.{FLOOD}.water_depth"]', "knee")

    page.select_option("#category", POTHOLE)
    assert visible_categories(page) == [POTHOLE]
    # The chosen category's required question is checked before sending.
    size = f'select[name="attr.{POTHOLE}.size"]'
    assert page.eval_on_selector(size, "el => el.validity.valueMissing")
    page.select_option(size, "medium")

    page.locator("#report-map").click(position={"x": 195, "y": 170})
    page.wait_for_selector("#report-map[data-inside=true]")
    page.fill("#title", "Pothole by the bus stop")
    with page.expect_request(lambda r: r.method == "POST" and "/reports" in r.url) as sent:
        page.click("#submit-report")
    page.wait_for_url("**/submitted")
    body = sent.value.post_data or ""
    assert f"attr.{POTHOLE}.size" in body
    assert f"attr.{FLOOD}." not in body  # the flood answer given earlier stays on the phone

    with live_app.db.session() as s:
        report = s.scalars(select(Report).order_by(Report.id.desc())).first()
    assert report is not None and report.attributes.get("size") == "medium"
    assert "water_depth" not in report.attributes
