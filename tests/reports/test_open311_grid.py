"""The grid cells an Open311 area query reads cover every point of its circle or box."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.core.geo import haversine_m
from smartcity.reports.models import grid_cell
from smartcity.reports.queries import grid_cells
from smartcity.reports.service import Circle
from tests.reports.helpers import destination


@settings(max_examples=300, deadline=None)
@given(
    lat=st.floats(37.40, 37.70),
    lon=st.floats(126.75, 127.20),
    radius=st.floats(1, 3000),
    bearing=st.floats(0, 2 * math.pi),
    share=st.floats(0, 1),
)
def test_every_point_of_a_circle_is_in_its_box_and_one_of_its_cells(lat, lon, radius, bearing, share):
    circle = Circle(lat, lon, radius)
    west, south, east, north = circle.box
    cells = grid_cells(west, south, east, north, circle)
    assert cells is not None
    plat, plon = destination(lat, lon, bearing, radius * share)
    if haversine_m(lat, lon, plat, plon) <= radius:
        assert south <= plat <= north and west <= plon <= east
        assert grid_cell(plat, plon) in cells


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(-80, 80), lon=st.floats(-170, 170), radius=st.floats(1, 50_000), bearing=st.floats(0, 2 * math.pi))
def test_the_box_holds_the_circles_edge_anywhere_on_earth(lat, lon, radius, bearing):
    west, south, east, north = Circle(lat, lon, radius).box
    plat, plon = destination(lat, lon, bearing, radius * (1 - 1e-9))
    assert south <= plat <= north and west <= plon <= east


@given(
    west=st.floats(126.8, 127.1),
    south=st.floats(37.45, 37.65),
    w=st.floats(0, 0.05),
    h=st.floats(0, 0.05),
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
)
def test_every_point_of_a_box_is_in_one_of_its_cells(west, south, w, h, fx, fy):
    cells = grid_cells(west, south, west + w, south + h)
    assert cells is not None
    assert grid_cell(south + h * fy, west + w * fx) in cells


def test_a_large_area_reads_the_lat_lon_index_instead():
    assert grid_cells(126.7, 37.4, 127.3, 37.75) is None
    assert len(grid_cells(126.97, 37.56, 126.98, 37.57)) <= 9


def test_stored_timestamps_come_out_in_the_citys_local_time_in_every_kind_of_zone():
    import random
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from smartcity.reports.open311_wire import LocalTime

    rng = random.Random(5)
    for name in ("Asia/Seoul", "Asia/Kolkata", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe"):
        tz = ZoneInfo(name)
        local = LocalTime(tz)
        for _ in range(3000):
            when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(0, 2 * 365 * 86400), microseconds=rng.randrange(0, 10**6)
            )
            expected = when.astimezone(tz).isoformat(timespec="seconds")
            assert local(when.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")) == expected  # SQLite
            assert local(when) == expected  # PostgreSQL


def test_requests_keeps_get_and_post_apart_and_names_both_on_a_wrong_method(client):
    r = client.delete("/open311/v2/requests.json")
    assert r.status_code == 405 and r.json()[0]["code"] == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    assert client.post("/open311/v2/requests.json", data={}).json()[0]["description"] == "api_key is required"
    assert client.get("/open311/v2/requests.json").status_code == 200
