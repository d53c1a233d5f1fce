"""Point → district lookups per second over the in-memory spatial index: the real KOSTAT boundaries where
they are found (../shared/data/seoul, or the folder SMARTCITY_REAL_DATA names), else the synthetic
stand-ins of tests/synthetic.py (the same 25 districts drawn around the profile's points; the detailed
one has as many vertices as the real detailed file)."""

from __future__ import annotations

import json
import random
import statistics
import time

from smartcity.core import geo
from smartcity.core.city import load_profile
from tests import synthetic


def _index(detailed: bool) -> tuple[geo.GeoIndex, str]:
    profile = load_profile("seoul")
    name = "districts_detailed.geojson" if detailed else "districts.geojson"
    real, _ = synthetic.real_data_dir()
    if real is not None and (real / name).exists():
        areas = geo.parse_boundaries((real / name).read_bytes(), profile)
        source = name
    else:
        collection = synthetic.districts(profile)
        areas = geo.parse_boundaries(synthetic.detailed(collection) if detailed else collection, profile)
        source = f"synthetic {name}"
    pairs = [(geo.Area(a.code, a.name_ko, a.name_en), a.geometry) for a in areas]
    return geo.GeoIndex(pairs, [], profile.outline_polygon), source


def run(quick: bool = False) -> dict:
    n = 20_000 if quick else 200_000
    rng = random.Random(42)
    west, south, east, north = load_profile("seoul").bbox
    points = [(rng.uniform(south, north), rng.uniform(west, east)) for _ in range(n)]
    out = {}
    for detailed in (False, True):
        index, source = _index(detailed)
        rounds = []
        for _ in range(3):
            t0 = time.perf_counter()
            for lat, lon in points:
                index.district_at(lat, lon)
            rounds.append(n / (time.perf_counter() - t0))
        lats, lons = zip(*points, strict=True)
        t0 = time.perf_counter()
        index.districts_at(lats, lons)
        vector = n / (time.perf_counter() - t0)
        out[source] = {
            "points": n,
            "single_lookups_per_second": round(statistics.median(rounds)),
            "vectorised_lookups_per_second": round(vector),
        }
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
