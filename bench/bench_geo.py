"""Point → district lookups per second over the in-memory spatial index (real KOSTAT boundaries when
../shared is present, else the profile's approximate districts)."""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

from smartcity.core import geo
from smartcity.core.city import load_profile

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seoul"


def _index(detailed: bool) -> tuple[geo.GeoIndex, str]:
    profile = load_profile("seoul")
    name = "districts_detailed.geojson" if detailed else "districts.geojson"
    path = SHARED / name
    if path.exists():
        areas = geo.parse_boundaries(path.read_bytes(), profile)
        source = name
    else:
        areas = geo.approximate_districts(profile)
        source = "approximate"
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
