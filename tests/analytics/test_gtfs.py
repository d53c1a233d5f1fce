"""The planner's GTFS feed, read back by gtfs-kit and held to the GTFS Schedule rules it relies on."""

from __future__ import annotations

import io
import random
import zipfile
from datetime import date

import gtfs_kit
import h3
import pandas as pd
import pytest

from smartcity.analytics.gtfs import Agency, gtfs_zip
from smartcity.analytics.planner import Constraints, PlannerOptions, Stop, plan_routes

AGENCY = Agency(name="서울 심야버스", url="https://night.example.org", timezone="Asia/Seoul")
REQUIRED = {
    "agency.txt": {"agency_name", "agency_url", "agency_timezone"},
    "stops.txt": {"stop_id", "stop_lat", "stop_lon"},
    "routes.txt": {"route_id", "route_type"},
    "trips.txt": {"route_id", "service_id", "trip_id"},
    "stop_times.txt": {"trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence"},
    "calendar.txt": {"service_id", "monday", "sunday", "start_date", "end_date"},
    "frequencies.txt": {"trip_id", "start_time", "end_time", "headway_secs"},
}


def seconds(text: str) -> int:
    h, m, s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + s


@pytest.fixture(scope="module")
def plan():
    rng = random.Random(17)
    stops = [Stop(f"{i:05d}", f"정류소 {i}", 37.49 + (i // 20) * 0.004, 126.97 + (i % 20) * 0.005) for i in range(400)]
    demand: dict[str, float] = {}
    for hub in ((37.51, 127.00), (37.53, 127.04)):
        for _ in range(300):
            cell = h3.latlng_to_cell(rng.gauss(hub[0], 0.006), rng.gauss(hub[1], 0.008), 8)
            demand[cell] = demand.get(cell, 0.0) + rng.randint(5, 40)
    return plan_routes(demand, stops, Constraints(routes=3, headway_min=35, fleet=18), PlannerOptions(time_limit_s=1))


@pytest.fixture(scope="module")
def feed_path(plan, tmp_path_factory):
    path = tmp_path_factory.mktemp("gtfs") / "gtfs.zip"
    path.write_bytes(gtfs_zip(plan, AGENCY, start=date(2026, 12, 1)))
    return path


def test_gtfs_kit_reads_the_feed_and_finds_nothing_broken(plan, feed_path):
    feed = gtfs_kit.read_feed(feed_path, dist_units="km")
    quality = dict(gtfs_kit.assess_quality(feed).itertuples(index=False))
    assert quality["assessment"] == "good feed", quality
    assert len(feed.routes) == len(plan.routes) and len(feed.trips) == 2 * len(plan.routes)
    stats = gtfs_kit.compute_trip_stats(feed)
    by_route = stats.groupby("route_id")["distance"].max()
    for route in plan.routes:
        assert by_route[route.name] == pytest.approx(route.km, rel=0.01)


def test_frequencies_run_the_night_through_past_midnight(plan, feed_path):
    feed = gtfs_kit.read_feed(feed_path, dist_units="km")
    assert set(feed.frequencies["start_time"]) == {"23:30:00"}
    assert set(feed.frequencies["end_time"]) == {"29:30:00"}
    assert set(feed.frequencies["headway_secs"]) == {35 * 60}
    expanded = gtfs_kit.expand_frequencies(feed)
    runs = -(-6 * 3600 // (35 * 60))  # departures every 35 minutes from 23:30 until before 05:30
    assert len(expanded.trips) == 2 * len(plan.routes) * runs
    last = expanded.stop_times["departure_time"].map(seconds).max()
    assert last > 24 * 3600, "the night's late trips keep service-day times past 24:00"


def test_every_file_keeps_the_schedule_rules(plan, feed_path):
    with zipfile.ZipFile(feed_path) as zf:
        tables = {name: pd.read_csv(io.BytesIO(zf.read(name)), dtype=str) for name in zf.namelist()}
    for name, columns in REQUIRED.items():
        assert name in tables, name
        assert columns <= set(tables[name].columns), name
        assert not tables[name][sorted(columns)].isna().any().any(), name
    stops, trips, times = tables["stops.txt"], tables["trips.txt"], tables["stop_times.txt"]
    assert stops["stop_id"].is_unique and trips["trip_id"].is_unique
    assert set(times["stop_id"]) <= set(stops["stop_id"])
    assert set(trips["route_id"]) <= set(tables["routes.txt"]["route_id"])
    assert set(trips["service_id"]) <= set(tables["calendar.txt"]["service_id"])
    assert set(tables["frequencies.txt"]["trip_id"]) <= set(trips["trip_id"])
    for _, trip in times.groupby("trip_id"):
        ordered = trip.assign(seq=trip["stop_sequence"].astype(int)).sort_values("seq")
        at = ordered["departure_time"].map(seconds)
        assert at.is_monotonic_increasing and at.is_unique
        assert ordered["stop_id"].is_unique, "a trip calls at a stop once"
    served = {s.id for r in plan.routes for s in r.stops}
    assert set(stops["stop_id"]) == served
