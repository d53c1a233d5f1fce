"""The grid cells an Open311 area query reads cover every point of its circle or box."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.reports.models import grid_cell
from smartcity.reports.open311 import METRES_PER_DEGREE, grid_cells


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(37.40, 37.70), lon=st.floats(126.75, 127.20), radius=st.floats(1, 3000),
       bearing=st.floats(0, 2 * math.pi), share=st.floats(0, 1))
def test_every_point_of_a_circle_is_in_one_of_its_cells(lat, lon, radius, bearing, share):
    kx = METRES_PER_DEGREE * math.cos(math.radians(lat))
    dlat, dlon = radius / METRES_PER_DEGREE, radius / kx
    cells = grid_cells(lon - dlon, lat - dlat, lon + dlon, lat + dlat, (lat, lon, kx, radius))
    assert cells is not None
    d = radius * share
    plat, plon = lat + d * math.cos(bearing) / METRES_PER_DEGREE, lon + d * math.sin(bearing) / kx
    assert grid_cell(plat, plon) in cells


@given(west=st.floats(126.8, 127.1), south=st.floats(37.45, 37.65), w=st.floats(0, 0.05), h=st.floats(0, 0.05),
       fx=st.floats(0, 1), fy=st.floats(0, 1))
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

    from smartcity.reports.open311 import LocalTime

    rng = random.Random(5)
    for name in ("Asia/Seoul", "Asia/Kolkata", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe"):
        tz = ZoneInfo(name)
        local = LocalTime(tz)
        for _ in range(3000):
            when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 2 * 365 * 86400),
                                                                 microseconds=rng.randrange(0, 10**6))
            expected = when.astimezone(tz).isoformat(timespec="seconds")
            assert local(when.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")) == expected  # SQLite
            assert local(when) == expected  # PostgreSQL


def test_requests_keeps_get_and_post_apart_and_names_both_on_a_wrong_method(client):
    r = client.delete("/open311/v2/requests.json")
    assert r.status_code == 405 and r.json()[0]["code"] == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    assert client.post("/open311/v2/requests.json", data={}).json()[0]["description"] == "api_key is required"
    assert client.get("/open311/v2/requests.json").status_code == 200
