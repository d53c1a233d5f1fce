"""Day-by-day trends of the safety service's incidents and of each district's PM2.5, read through the functions
those modules export (counts only; daily means from the roll-ups), split by the classical additive decomposition
on both stores. The data are crafted as trend + weekly season, so both parts are known exactly."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from smartcity.analytics import trends
from smartcity.safety import service as safety
from smartcity.safety.models import Incident
from smartcity.sensing import service as sensing
from smartcity.sensing.intake import store_now, validate
from tests.conftest import make_key, make_settings, make_user

KST = timezone(timedelta(hours=9))
SEASON = [3, -1, -1, -1, -1, 0, 1]  # Monday first; sums to 0
FIRST = date(2026, 3, 2)  # a Monday
DAYS = 14


@pytest.fixture
def settings(db_url, tmp_path):
    """k = 1: no count is withheld, so the crafted series reads back whole (withholding under k is
    test_trends_suppression.py's)."""
    return make_settings(db_url, tmp_path, analytics_k_anonymity=1)


def _incidents(db) -> list[int]:
    """Per day t (from a Monday) 2 + t + SEASON[weekday] SOS incidents in Jung-gu at 10:00 local, plus
    three danger incidents in Gangnam on the second Sunday at 23:30 UTC (Monday in Seoul)."""
    with db.session() as s:
        person = safety.add_person(s, "child", "민준")
        expected = []
        for t in range(DAYS):
            n = 2 + t + SEASON[t % 7]
            expected.append(n)
            at = datetime.combine(FIRST + timedelta(days=t), datetime.min.time(), KST) + timedelta(hours=10)
            s.add_all(
                Incident(kind="sos", person_id=person.id, district_code="11020", opened_at=at, lat=37.5665, lon=126.978)
                for _ in range(n)
            )
        late_sunday = datetime(2026, 3, 15, 23, 30, tzinfo=UTC)
        s.add_all(
            Incident(kind="danger", person_id=person.id, district_code="11230", opened_at=late_sunday) for _ in range(3)
        )
    return expected


def test_incident_counts_are_per_local_day_district_and_kind_without_persons(db):
    expected = _incidents(db)
    with db.session() as s:
        rows = safety.incident_counts(s)
    assert all(set(r) == {"day", "district", "kind", "count"} for r in rows)
    jung = [(r["day"], r["count"]) for r in rows if r["district"] == "11020"]
    assert jung == [((FIRST + timedelta(days=t)).isoformat(), expected[t]) for t in range(DAYS)]
    assert [r for r in rows if r["district"] == "11230"] == [
        {"day": "2026-03-16", "district": "11230", "kind": "danger", "count": 3}
    ]
    with db.session() as s:
        bounded = safety.incident_counts(s, start=datetime(2026, 3, 14, tzinfo=UTC))
    assert {r["day"] for r in bounded} == {"2026-03-14", "2026-03-15", "2026-03-16"}


def test_incidents_decompose_into_the_crafted_trend_and_weekly_season(db):
    _incidents(db)
    found = trends.decompose(trends.incident_days(db, k=1), how="count", district="11020")
    rows = found["rows"]
    assert [r["day"] for r in rows] == [(FIRST + timedelta(days=t)).isoformat() for t in range(DAYS)]
    assert found["weekly"] == pytest.approx(SEASON)
    for t, r in enumerate(rows):
        if 3 <= t < DAYS - 3:  # the centred 7-day mean needs three days on each side
            assert r["trend"] == pytest.approx(2 + t) and r["residual"] == pytest.approx(0)
        else:
            assert r["trend"] is None and r["residual"] is None
    everywhere = trends.decompose(trends.incident_days(db, k=1), how="count")
    assert everywhere["rows"][-1] == {**everywhere["rows"][-1], "day": "2026-03-16", "value": 3, "filled": False}
    danger = trends.decompose(trends.incident_days(db, k=1), how="count", category="danger")
    assert [r["value"] for r in danger["rows"]] == [3] and danger["weekly"] is None


def _sensor_list(points: list[tuple[str, float, float]]) -> bytes:
    return ("시리얼,위도,경도\n" + "".join(f"{s},{lat},{lon}\n" for s, lat, lon in points)).encode()


def test_pm25_district_daily_means_from_the_rollups_decompose(db):
    sensing.import_sensors(
        db,
        _sensor_list(
            [("V02Q0000001", 37.5665, 126.978), ("V02Q0000002", 37.5651, 126.9895), ("V02Q0000003", 37.49596, 127.0585)]
        ),
    )
    with db.session() as s:
        district = {r["serial"]: r["district"] for r in sensing.sensors(s)}
    assert district["V02Q0000001"] == district["V02Q0000002"] != district["V02Q0000003"]
    now = int(time.time())
    today = datetime.fromtimestamp(now, KST).date()
    first = today - timedelta(days=DAYS)
    first -= timedelta(days=first.weekday())  # a Monday, still within the raw retention
    want = []
    readings = []
    for t in range((today - first).days):
        mean = 20 + 0.5 * t + 2 * SEASON[t % 7]
        want.append(mean)
        noon = int(datetime.combine(first + timedelta(days=t), datetime.min.time(), KST).timestamp()) + 12 * 3600
        # Two sensors 5 µg/m³ either side of the district's mean, three readings each; Gangnam's sensor far off.
        for i in range(3):
            at = noon + 600 * i
            readings += [
                {"sensor": "V02Q0000001", "quantity": "pm25", "time": at, "value": mean - 5},
                {"sensor": "V02Q0000002", "quantity": "pm25", "time": at, "value": mean + 5},
                {"sensor": "V02Q0000003", "quantity": "pm25", "time": at, "value": 80.0},
            ]
    outcome = store_now(db, validate(db, readings, "http", now=now))
    assert not outcome.refused
    sensing.roll_up(db, now=now)

    with db.session() as s:
        means = sensing.district_daily_means(s, "pm25")
    jung = [r for r in means if r["district"] == district["V02Q0000001"]]
    assert [r["mean"] for r in jung] == pytest.approx(want)
    assert {(r["readings"], r["sensors"]) for r in jung} == {(6, 2)}

    found = trends.decompose(trends.pm25_days(db), how="mean", district=district["V02Q0000001"])
    assert found["weekly"] == pytest.approx([2 * v for v in SEASON])
    inner = [r for r in found["rows"] if r["trend"] is not None]
    assert len(inner) == len(want) - 6
    assert all(r["trend"] == pytest.approx(20 + 0.5 * t) for t, r in enumerate(found["rows"]) if r["trend"] is not None)
    # The city's mean of two districts' means: Gangnam's flat 80 adds 30 to every day, nothing to the season.
    both = trends.decompose(trends.pm25_days(db), how="mean")
    assert [r["value"] for r in both["rows"]] == pytest.approx([(m + 80) / 2 for m in want])


def test_the_page_shows_incident_trend_and_season_to_analysts_only(client, db):
    _incidents(db)
    make_user(db, "analyst1", "analyst")
    make_user(db, "citizen1", "citizen")
    analyst = {"X-API-Key": make_key(db, "analyst1")}
    page = client.get("/analytics/trends?source=incidents&district=11020&lang=ko", headers=analyst)
    assert page.status_code == 200
    assert 'data-day="2026-03-02" data-value="5"' in page.text
    assert 'data-weekday="0" data-seasonal="3"' in page.text and 'data-weekday="6" data-seasonal="1"' in page.text
    assert 'id="season-method"' in page.text
    got = client.get("/analytics/trends/days.csv?source=incidents&district=11020", headers=analyst)
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r["day"], r["value"], r["trend"]) for r in rows[3:5]] == [
        ("2026-03-05", "4.0", "5.0"),
        ("2026-03-06", "5.0", "6.0"),
    ]
    assert client.get("/analytics/trends/days.csv?source=people", headers=analyst).status_code == 422
    citizen = {"X-API-Key": make_key(db, "citizen1")}
    assert client.get("/analytics/trends?source=incidents", headers=citizen).status_code == 403
    assert client.get("/analytics/trends/days.csv?source=incidents", headers=citizen).status_code == 403


def test_the_daily_series_downloads_as_typed_parquet(client, db):
    """Issue 17's downloads: the trend's days as Parquet, typed, with the same numbers as the crafted series."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = _incidents(db)
    make_user(db, "analyst1", "analyst")
    analyst = {"X-API-Key": make_key(db, "analyst1")}
    got = client.get("/analytics/trends/days.parquet?source=incidents&district=11020", headers=analyst)
    assert got.status_code == 200
    assert got.headers["content-disposition"] == 'attachment; filename="incidents-days.parquet"'
    table = pq.read_table(io.BytesIO(got.content))
    assert table.schema.field("day").type == pa.date32() and table.schema.field("filled").type == pa.bool_()
    rows = table.to_pylist()
    assert [(r["day"], r["value"]) for r in rows] == [(FIRST + timedelta(days=t), expected[t]) for t in range(DAYS)]
    assert rows[0]["trend"] is None and rows[3]["trend"] == pytest.approx(5)
    assert rows[0]["seasonal"] == pytest.approx(SEASON[0])
    page = client.get("/analytics/trends?source=incidents&district=11020", headers=analyst)
    assert (
        'href="/analytics/trends/days.parquet?source=incidents&amp;category=&amp;district=11020&amp;start=&amp;end="'
        in page.text
    )
    assert client.get("/analytics/trends/days.parquet?source=people", headers=analyst).status_code == 422
    make_user(db, "citizen1", "citizen")
    citizen = {"X-API-Key": make_key(db, "citizen1")}
    assert client.get("/analytics/trends/days.parquet?source=incidents", headers=citizen).status_code == 403


def test_a_period_is_chosen_and_an_empty_or_impossible_one_is_named(client, db):
    """Issue 17 (pick the period; empty periods and bad days get a clear message, no file that reads as 'nothing
    happened'): the days of the chosen period only, on the page and in both downloads."""
    expected = _incidents(db)
    make_user(db, "analyst1", "analyst")
    analyst = {"X-API-Key": make_key(db, "analyst1")}
    query = "source=incidents&district=11020&start=2026-03-05&end=2026-03-08"
    got = client.get(f"/analytics/trends/days.csv?{query}", headers=analyst)
    assert got.status_code == 200
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r["day"], float(r["value"])) for r in rows] == [
        ((FIRST + timedelta(days=t)).isoformat(), expected[t]) for t in range(3, 7)
    ]
    page = client.get(f"/analytics/trends?{query}&lang=en", headers=analyst)
    assert 'data-day="2026-03-05"' in page.text and 'data-day="2026-03-09"' not in page.text
    assert 'data-day="2026-03-04"' not in page.text
    assert 'id="start" name="start" type="date" value="2026-03-05"' in page.text

    empty = "source=incidents&start=2027-01-01&end=2027-01-31"
    shown = client.get(f"/analytics/trends?{empty}&lang=ko", headers=analyst)
    assert shown.status_code == 200
    assert "선택한 기간에는 기록이 없습니다: 2027-01-01 – 2027-01-31" in shown.text
    for fmt in ("csv", "parquet"):
        refused = client.get(f"/analytics/trends/days.{fmt}?{empty}", headers=analyst)
        assert refused.status_code == 422
        assert refused.text == "nothing of incidents was recorded between 2027-01-01 and 2027-01-31"
    backwards = client.get("/analytics/trends?source=incidents&start=2026-03-08&end=2026-03-05", headers=analyst)
    assert backwards.status_code == 422
    assert backwards.text == "the period starts on 2026-03-08, after it ends on 2026-03-05"
    bad_day = client.get("/analytics/trends/days.csv?source=incidents&start=2026-13-01", headers=analyst)
    assert bad_day.status_code == 422 and "YYYY-MM-DD, not 2026-13-01" in bad_day.text
    weekly = client.get("/analytics/trends.csv?start=2027-01-01&end=2026-01-01", headers=analyst)
    assert weekly.status_code == 422


def test_the_daily_series_downloads_as_geojson_per_district(client, db):
    """Issue 17, session 24: the series per district on the district's polygon (core.geo's), values as
    properties; counts share the period's days; the period and bad periods as the other downloads."""
    from shapely.geometry import Point, shape

    expected = _incidents(db)
    make_user(db, "analyst1", "analyst")
    analyst = {"X-API-Key": make_key(db, "analyst1")}
    got = client.get("/analytics/trends/days.geojson?source=incidents", headers=analyst)
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/geo+json")
    features = {f["properties"]["district"]: f for f in got.json()["features"]}
    assert len(features) == 25  # Seoul's districts, each drawn
    jung, gangnam = features["11020"], features["11230"]
    assert shape(jung["geometry"]).contains(Point(126.978, 37.5665))
    assert not shape(gangnam["geometry"]).contains(Point(126.978, 37.5665))
    days = [(FIRST + timedelta(days=t)).isoformat() for t in range(DAYS)]
    assert [jung["properties"][d] for d in days] == expected and jung["properties"]["2026-03-16"] == 0
    assert jung["properties"]["total"] == sum(expected)
    assert [r["day"] for r in jung["properties"]["series"]] == [*days, "2026-03-16"]
    assert gangnam["properties"]["2026-03-16"] == 3 and gangnam["properties"]["2026-03-02"] == 0
    assert all(f["properties"]["total"] == 0 for c, f in features.items() if c not in ("11020", "11230"))

    bounded = client.get(
        "/analytics/trends/days.geojson?source=incidents&category=sos&start=2026-03-10&end=2026-03-12", headers=analyst
    ).json()
    jung = next(f for f in bounded["features"] if f["properties"]["district"] == "11020")["properties"]
    assert [r["day"] for r in jung["series"]] == ["2026-03-10", "2026-03-11", "2026-03-12"]
    assert (jung["start"], jung["end"], jung["category"]) == ("2026-03-10", "2026-03-12", "sos")
    assert jung["total"] == sum(expected[8:11])
    for query in ("start=2026-03-12&end=2026-03-10", "start=10%20March", "start=2027-01-01"):
        refused = client.get(f"/analytics/trends/days.geojson?source=incidents&{query}", headers=analyst)
        assert refused.status_code == 422, query
    make_user(db, "citizen1", "citizen")
    citizen = {"X-API-Key": make_key(db, "citizen1")}
    assert client.get("/analytics/trends/days.geojson?source=incidents", headers=citizen).status_code == 403
