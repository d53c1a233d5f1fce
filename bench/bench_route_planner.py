"""The night route planner (issue 17): 9 routes over the hottest 1,250 cells — goal under 60 s — and the demand
the OR-Tools routes serve beside the greedy route-growing baseline.

Stops and hubs: the real Seoul stop and station lists where they are found (../shared/data/seoul, or the folder
SMARTCITY_REAL_DATA names), else a grid of stops over the city and the profile's district points. Demand is
SYNTHETIC: late-night phone activity drawn around the hubs (analytics/synthetic.py's hubs: nightlife and
transfer hubs weigh three times more), counted on H3 resolution-8 cells."""

from __future__ import annotations

import time

import h3
import numpy as np

from smartcity.analytics import synthetic as night
from smartcity.analytics.planner import (
    Constraints,
    Plan,
    PlannerOptions,
    Stop,
    candidates,
    compare,
    greedy,
    read_stops,
    solve,
)
from smartcity.core.city import load_profile
from tests import synthetic

CONSTRAINTS = Constraints(routes=9, headway_min=40, fleet=90, max_km=30)


def _stops_and_hubs(profile) -> tuple[list[Stop], night.Hubs, str]:
    real, _ = synthetic.real_data_dir()
    if real is not None and (real / "bus_stops.csv").exists():
        stops_file = (real / "bus_stops.csv").read_bytes()
        stations = real / "subway_stations.csv"
        hubs = night.hubs_from(profile, stops_file, stations.read_bytes() if stations.exists() else None, seed=17)
        return read_stops(stops_file), hubs, "real Seoul stops and stations"
    west, south, east, north = profile.bbox
    stops = [
        Stop(
            f"{i:05d}", f"stop {i}", south + (i // 100) * (north - south) / 100, west + (i % 100) * (east - west) / 100
        )
        for i in range(10_000)
    ]
    return stops, night.hubs_from(profile, seed=17), "a grid of synthetic stops, the profile's district points"


def _demand(hubs: night.Hubs, records: int, rng: np.random.Generator, res: int) -> dict[str, float]:
    weight = hubs.weight * np.where(hubs.night, 3.0, 1.0)
    pick = rng.choice(len(weight), size=records, p=weight / weight.sum())
    lat = hubs.lat[pick] + rng.normal(0, 0.004, records)
    lon = hubs.lon[pick] + rng.normal(0, 0.005, records)
    cells, counts = np.unique([h3.latlng_to_cell(a, b, res) for a, b in zip(lat, lon, strict=True)], return_counts=True)
    return {str(c): float(n) for c, n in zip(cells, counts, strict=True) if n >= 10}  # k-anonymity: 10


def run(quick: bool = False) -> dict:
    """At resolution 8 (the default; Seoul has fewer than 1,250 such cells with late-night demand, so every
    one counts) and at resolution 9, where the hottest 1,250 are a choice among many."""
    profile = load_profile("seoul")
    stops, hubs, source = _stops_and_hubs(profile)
    out = {"data": f"{source}; SYNTHETIC late-night demand"}
    for res in (8, 9):
        out[f"h3_resolution_{res}"] = _plan(stops, hubs, res, quick)
    return out


def _plan(stops: list[Stop], hubs: night.Hubs, res: int, quick: bool) -> dict:
    rng = np.random.default_rng(17)
    demand = _demand(hubs, 60_000 if quick else 1_000_000, rng, res)
    options = PlannerOptions(hot_cells=300 if quick else 1250, time_limit_s=5 if quick else 30)

    started = time.perf_counter()
    cands, clusters = candidates(demand, stops, options)
    prepared = time.perf_counter() - started
    baseline = greedy(cands, CONSTRAINTS, options)
    greedy_s = time.perf_counter() - started - prepared
    routes = solve(cands, CONSTRAINTS, options)
    total = time.perf_counter() - started

    def plan_of(found, method):
        return Plan(found, CONSTRAINTS, options, cands, clusters, float(sum(demand.values())), 0.0, method)

    planned, greedy_row = (
        compare(plan_of(r, m), demand, None)[0] for r, m in ((routes, "or-tools"), (baseline, "greedy"))
    )
    served, served_greedy = sum(r.demand for r in routes), sum(r.demand for r in baseline)
    return {
        "cells_with_demand": len(demand),
        "hot_cells": options.hot_cells,
        "clusters": len(clusters),
        "candidate_stops": len(cands),
        "constraints": {
            "routes": CONSTRAINTS.routes,
            "max_km": CONSTRAINTS.max_km,
            "headway_min": CONSTRAINTS.headway_min,
            "fleet": CONSTRAINTS.fleet,
        },
        "search": "parallel cheapest insertion, seeded by greedy, then guided local search; path LNS operators on",
        "time_limit_s": options.time_limit_s,
        "seconds_candidates": round(prepared, 2),
        "seconds_greedy": round(greedy_s, 2),
        "seconds_total": round(total, 2),
        "goal_seconds": 60,
        "met": total < 60,
        "routes": len(routes),
        "buses": sum(r.buses for r in routes),
        "km": round(sum(r.km for r in routes), 1),
        "demand_served": served,
        "demand_served_greedy": served_greedy,
        "served_vs_greedy": round(served / served_greedy, 4) if served_greedy else None,
        "share_covered": planned.share,
        "share_covered_greedy": greedy_row.share,
    }
