"""The night route planner: constraints kept, the optimum of a small instance found, bad constraints named."""

from __future__ import annotations

import csv
import itertools
import math
import random

import h3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartcity.analytics.planner import (
    Candidate,
    Constraints,
    PlanError,
    PlannerOptions,
    Stop,
    baseline_routes,
    check_inside,
    compare,
    greedy,
    night_demand,
    plan_routes,
    read_baseline,
    read_stops,
    road_km,
    route_limit_km,
    solve,
)
from smartcity.core.geo import haversine_m
from tests.conftest import seoul_data
from tests.synthetic import SEOUL

FAST = PlannerOptions(time_limit_s=0.3)


def path_km(stops, road_factor: float) -> float:
    """A route's length measured apart from the planner: great-circle metres × the road factor."""
    return sum(haversine_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(stops)) * road_factor / 1000


def random_candidates(rng: random.Random, n: int, span_deg: float = 0.03) -> list[Candidate]:
    return [
        Candidate(
            Stop(f"s{i}", f"stop {i}", 37.5 + rng.random() * span_deg, 127.0 + rng.random() * span_deg),
            float(rng.randint(1, 100)),
        )
        for i in range(n)
    ]


def brute_force_best(cands: list[Candidate], routes: int, limit_km: float, options: PlannerOptions) -> float:
    """The most demand any set of `routes` disjoint routes (two stops or more, each within the limit) serves:
    every assignment of stops to routes, each route's shortest order."""
    best = 0.0
    n = len(cands)
    for assignment in itertools.product(range(routes + 1), repeat=n):
        groups = [[cands[i] for i in range(n) if assignment[i] == r] for r in range(1, routes + 1)]
        if any(len(g) == 1 for g in groups):
            continue
        ok = all(
            not g or min(road_km([c.stop for c in order], options) for order in itertools.permutations(g)) <= limit_km
            for g in groups
        )
        if ok:
            best = max(best, sum(c.demand for g in groups for c in g))
    return best


@pytest.mark.parametrize("seed", [1, 3, 4, 11, 29])
def test_small_instance_reaches_the_brute_force_optimum(seed):
    rng = random.Random(seed)
    cands = random_candidates(rng, 7)
    constraints = Constraints(routes=2, headway_min=40, fleet=20, max_km=2.5)
    limit = route_limit_km(constraints, FAST)
    best = brute_force_best(cands, 2, limit, FAST)
    found = solve(cands, constraints, PlannerOptions(time_limit_s=1.0))
    assert best > 0
    assert sum(r.demand for r in found) >= best
    for route in found:  # the solver's metres are rounded per hop: a few metres over at most
        assert road_km(route.stops, FAST) <= limit + 0.005


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(3, 10),
    routes=st.integers(1, 3),
    headway=st.integers(30, 50),
    extra_buses=st.integers(0, 6),
    max_km=st.floats(0.5, 8.0),
)
def test_routes_keep_the_constraints(seed, n, routes, headway, extra_buses, max_km):
    cands = random_candidates(random.Random(seed), n, span_deg=0.05)
    constraints = Constraints(routes=routes, headway_min=headway, fleet=routes + extra_buses, max_km=max_km)
    limit = route_limit_km(constraints, FAST)
    found = solve(cands, constraints, FAST)
    assert len(found) <= routes
    assert sum(r.buses for r in found) <= constraints.fleet
    used: list[str] = []
    for route in found:
        ids = [s.id for s in route.stops]
        assert len(ids) >= 2
        assert len(set(ids)) == len(ids)
        used += ids
        km = path_km(route.stops, FAST.road_factor)
        assert km <= min(max_km, limit) * 1.005 + 0.002
        round_trip = 2 * km / FAST.speed_kmh * 60 + FAST.layover_min
        assert route.buses == math.ceil(round(round_trip, 1) / headway - 1e-6)
        assert route.demand == sum(c.demand for c in cands if c.stop.id in ids)
    assert len(set(used)) == len(used), "a stop served by two routes counts its demand twice"


def test_the_solver_serves_at_least_what_greedy_serves():
    cands = random_candidates(random.Random(5), 60, span_deg=0.1)
    constraints = Constraints(routes=3, headway_min=40, fleet=30, max_km=6)
    planned = sum(r.demand for r in solve(cands, constraints, PlannerOptions(time_limit_s=2)))
    assert planned >= sum(r.demand for r in greedy(cands, constraints, FAST))


def city(seed: int = 7) -> tuple[dict[str, float], list[Stop]]:
    """A grid of stops 400 m apart and late-night demand around three hubs, with a few isolated cells."""
    rng = random.Random(seed)
    stops = [
        Stop(f"{i:05d}", f"정류소 {i}", 37.48 + (i // 30) * 0.0036, 126.95 + (i % 30) * 0.0045) for i in range(900)
    ]
    demand: dict[str, float] = {}
    for hub in ((37.50, 127.00), (37.54, 127.03), (37.52, 127.05)):
        for _ in range(400):
            cell = h3.latlng_to_cell(rng.gauss(hub[0], 0.006), rng.gauss(hub[1], 0.008), 8)
            demand[cell] = demand.get(cell, 0.0) + rng.randint(5, 40)
    return demand, stops


def test_a_plan_covers_more_than_a_baseline_of_few_stops():
    demand, stops = city()
    constraints = Constraints(routes=3, headway_min=40, fleet=24, max_km=8)
    plan = plan_routes(demand, stops, constraints, PlannerOptions(time_limit_s=2))
    assert 1 <= len(plan.routes) <= 3 and plan.buses <= 24
    assert {c.cluster for c in plan.candidates} <= {c.id for c in plan.clusters}
    assert all(r.riders == pytest.approx(r.demand * plan.options.capture_rate, abs=0.1) for r in plan.routes)
    far = [s.id for s in stops[:3]]  # a corner of the grid, away from the hubs
    base = baseline_routes(read_baseline(f"N00: {' '.join(far)}\n".encode()), stops, constraints, plan.options)
    planned, baseline = compare(plan, demand, base)
    assert planned.network == "planned" and baseline.network == "baseline"
    assert baseline.stops == 3 and baseline.km == pytest.approx(path_km(base[0].stops, 1.3), rel=0.01)
    assert planned.demand_covered > baseline.demand_covered
    assert 0 < planned.share <= 1


def test_baseline_as_csv_keeps_the_stop_order():
    text = "route,stop\nN26,00003\nN26,00001\nN37,00002\nN37,00004\n"
    assert read_baseline(text.encode()) == {"N26": ["00003", "00001"], "N37": ["00002", "00004"]}


@pytest.mark.parametrize(
    ("constraints", "code", "words"),
    [
        (Constraints(routes=9, headway_min=40, fleet=5), "fleet", "fleet of 5 buses cannot run 9 routes"),
        (Constraints(routes=3, headway_min=20, fleet=30), "headway", "between 30 and 50 minutes, not 20"),
        (Constraints(routes=0, headway_min=40, fleet=30), "routes", "at least 1"),
        (Constraints(routes=2, headway_min=40, fleet=8, max_round_trip_min=5), "max_round_trip", "layover"),
        (Constraints(routes=2, headway_min=40, fleet=8, max_km=-1), "max_km", "more than 0 km"),
    ],
)
def test_impossible_constraints_are_named(constraints, code, words):
    demand, stops = city()
    with pytest.raises(PlanError) as caught:
        plan_routes(demand, stops, constraints, FAST)
    assert caught.value.code == code
    assert words in caught.value.message


def test_routes_too_short_for_any_two_stops_are_refused():
    demand, stops = city()
    with pytest.raises(PlanError) as caught:
        plan_routes(demand, stops, Constraints(routes=2, headway_min=40, fleet=8, max_km=0.05), FAST)
    assert caught.value.code == "no_solution" and "0.1 km" in caught.value.message


def test_no_demand_at_night_is_refused():
    cell = h3.latlng_to_cell(37.5, 127.0, 8)
    with pytest.raises(PlanError, match="no demand in hours 0–5"):
        night_demand([(cell, 12, 40), (cell, 23, 10), (cell, 3, 0)])
    assert night_demand([(cell, 12, 40), (cell, 3, 5), (cell, 4, 2)]) == {cell: 7.0}


def test_stops_outside_the_city_are_named():
    inside = Stop("00001", "시청", 37.5663, 126.9779)
    busan = Stop("99999", "부산역", 35.1151, 129.0414)
    check_inside([inside], SEOUL.bbox)
    with pytest.raises(PlanError, match="1 stops are outside the city: 99999"):
        check_inside([inside, busan], SEOUL.bbox)


def test_a_baseline_naming_unknown_stops_is_refused():
    _, stops = city()
    with pytest.raises(PlanError, match="does not have: 77777"):
        baseline_routes({"N1": ["00001", "77777"]}, stops, Constraints(routes=1), FAST)


def test_a_stop_list_with_unreadable_coordinates_names_the_line():
    with pytest.raises(PlanError, match="line 3"):
        read_stops(b"id,name,lat,lon\n1,a,37.5,127.0\n2,b,north,127.1\n")
    with pytest.raises(PlanError, match="needs the columns"):
        read_stops(b"x,y\n1,2\n")


@pytest.mark.real_data
def test_real_stops_and_boardings_give_night_routes():
    stops = read_stops(seoul_data("bus_stops.csv").read_bytes())
    assert len(stops) > 10_000 and all(s.id for s in stops)
    check_inside(stops, SEOUL.bbox)
    by_ars = {s.id: s for s in stops}
    demand: dict[str, float] = {}
    with seoul_data("bus_stop_boardings_2026-03-04.csv").open(encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            stop = by_ars.get(row["ARS"].strip().zfill(5))
            if stop is not None and row["승차_일평균"].strip():
                cell = h3.latlng_to_cell(stop.lat, stop.lon, 8)
                demand[cell] = demand.get(cell, 0.0) + float(row["승차_일평균"])
    constraints = Constraints(routes=3, headway_min=40, fleet=30, max_km=20)
    plan = plan_routes(demand, stops, constraints, PlannerOptions(time_limit_s=5, hot_cells=300))
    assert len(plan.routes) == 3 and plan.buses <= 30
    for route in plan.routes:
        assert all(s.id in by_ars for s in route.stops)
        assert path_km(route.stops, 1.3) <= 20.1


def test_the_gazetteers_bus_stops_are_the_stop_list_when_none_is_given(db):
    from smartcity.analytics.planner_run import gazetteer_stops
    from smartcity.core.places import Place

    with pytest.raises(PlanError, match="no bus stops yet"):
        gazetteer_stops(db)
    with db.session() as s:
        s.add(Place(kind="bus_stop", ref="01111", name_ko="효자동", name_en="Hyoja-dong", lat=37.5832, lon=126.9714))
        s.add(
            Place(
                kind="subway_station", ref="150", name_ko="서울역", name_en="Seoul Station", lat=37.5547, lon=126.9707
            )
        )
        s.commit()
    assert read_stops(gazetteer_stops(db)) == [Stop("01111", "효자동", 37.5832, 126.9714)]


def test_the_comparison_reads_a_hand_entered_baseline_by_the_same_measures():
    """The comparison table's baseline row against sums made apart from the planner: km by great circles ×
    the road factor, buses from the round trip at the night speed and the headway, demand of every cell whose
    centre is within a walk of a baseline stop (each cell once, a stop on two routes once)."""
    demand, stops = city()
    constraints = Constraints(routes=2, headway_min=40, fleet=20, max_km=8)
    plan = plan_routes(demand, stops, constraints, PlannerOptions(time_limit_s=1))
    entered = "N26: 00159 00160 00161 00162 00163 00164\nN37: 00251 00221 00191 00161\n"
    base = baseline_routes(read_baseline(entered.encode()), stops, constraints, plan.options)
    _, row = compare(plan, demand, base)
    by_id = {s.id: s for s in stops}
    lines = [[by_id[i] for i in line.split(": ")[1].split()] for line in entered.splitlines()]
    km = [path_km(line, plan.options.road_factor) for line in lines]
    buses = [
        math.ceil((2 * k / plan.options.speed_kmh * 60 + plan.options.layover_min) / constraints.headway_min)
        for k in km
    ]
    distinct = {s.id: s for line in lines for s in line}
    near = [
        c
        for c in demand
        if any(haversine_m(*h3.cell_to_latlng(c), s.lat, s.lon) <= plan.options.walk_m for s in distinct.values())
    ]
    assert (row.network, row.routes, row.stops) == ("baseline", 2, 9)
    assert row.km == pytest.approx(sum(km), rel=0.01)
    assert row.buses == sum(buses)
    assert row.demand_covered == pytest.approx(sum(demand[c] for c in near), abs=0.1)
    assert row.share == pytest.approx(sum(demand[c] for c in near) / sum(demand.values()), abs=1e-4)
    assert 0 < row.demand_covered < plan.demand_night
