"""Trends of reports per category and district, on both stores: reports filed through the reports service at
crafted local times, so the weekly counts, their rolling mean and the weekday × hour profile are known."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from smartcity.analytics import trends
from smartcity.reports.models import Report
from tests.conftest import make_key, make_user
from tests.reports.helpers import CITY_HALL, GANGNAM, file_report

# Seoul is UTC+9: 00:00 UTC on Monday 2 March is Monday 09:00 local, 13:00 UTC on 18 March is Wednesday 22:00.
MONDAY_9 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
WEDNESDAY_22 = datetime(2026, 3, 18, 13, 0, tzinfo=UTC)
# 18:00 UTC on Sunday 8 March is 03:00 on Monday 9 March in Seoul: the local week and hour, not UTC's.
SUNDAY_UTC = datetime(2026, 3, 8, 18, 0, tzinfo=UTC)


def _filed_at(db, when: datetime, **kw) -> None:
    rid = file_report(db, **kw)
    with db.session() as s:
        s.execute(update(Report).where(Report.id == rid).values(created_at=when))


@pytest.fixture
def reports(db):
    for _ in range(2):
        _filed_at(db, MONDAY_9, where=CITY_HALL)
    for _ in range(4):
        _filed_at(db, WEDNESDAY_22, where=CITY_HALL)
    _filed_at(db, SUNDAY_UTC, where=GANGNAM)
    return db


def test_weekly_counts_with_empty_weeks_and_rolling_mean(reports):
    events = trends.report_events(reports)
    rows = trends.series(events, window=2, category="roads-pothole", district="11020")
    assert [(r["period"], r["count"], r["trend"], r["residual"]) for r in rows] == [
        ("2026-03-02", 2, 2.0, 0.0),
        ("2026-03-09", 0, 1.0, -1.0),
        ("2026-03-16", 4, 2.0, 2.0),
    ]
    gangnam = trends.series(events, district="11230")
    assert [(r["period"], r["count"]) for r in gangnam] == [("2026-03-09", 1)]


def test_profile_is_in_local_weekday_and_hour(reports):
    events = trends.report_events(reports)
    grid = trends.profile(events, district="11020")
    assert grid.sum() == 6 and grid[0, 9] == 2 and grid[2, 22] == 4
    assert trends.profile(events, district="11230")[0, 3] == 1  # Monday 03:00 local, Sunday in UTC
    monthly = trends.series(events, period="month", category="roads-pothole")
    assert sorted((r["district"], r["count"]) for r in monthly) == [("11020", 6), ("11230", 1)]


def test_the_page_plots_and_downloads_for_analysts_only(client, reports):
    make_user(reports, "analyst1", "analyst")
    make_user(reports, "citizen1", "citizen")
    analyst = {"X-API-Key": make_key(reports, "analyst1")}
    page = client.get("/analytics/trends?district=11020&window=2&lang=ko", headers=analyst)
    assert page.status_code == 200
    assert 'data-period="2026-03-16" data-count="4"' in page.text
    assert 'data-day="2" data-hour="22" data-count="4"' in page.text
    assert "<polyline" in page.text
    got = client.get("/analytics/trends.csv?district=11020&window=2", headers=analyst)
    assert got.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r["period"], r["count"], r["trend"]) for r in rows] == [
        ("2026-03-02", "2", "2.0"),
        ("2026-03-09", "0", "1.0"),
        ("2026-03-16", "4", "2.0"),
    ]
    assert client.get("/analytics/trends.csv?period=day", headers=analyst).status_code == 422
    citizen = {"X-API-Key": make_key(reports, "citizen1")}
    assert client.get("/analytics/trends", headers=citizen).status_code == 403
