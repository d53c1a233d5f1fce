"""Nearest cameras: `assets.service.nearest(db, "cctv", lat, lon, k=5)` over 110,000 cameras (goal: under
1 ms per query), through the real function on a real (temporary SQLite) store.

The synthetic cameras follow Gangnam's pattern: Gangnam's two camera lists (~8,800 cameras) are replayed
around every district's representative point, jittered, and kept inside the city, until there are 110,000.
The lists are the real ones where they are found (../shared/data/seoul or $SMARTCITY_REAL_DATA), else the
synthetic stand-ins of tests/synthetic.py (as many cameras, spread evenly over Gangnam: the real ones
cluster along streets). Queries are random points inside the city."""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time

from shapely import contains_xy

from tests import synthetic

GANGNAM_POINT = (37.49661, 127.06297)  # the profile's representative point of Gangnam-gu
CAMERA_LISTS = (("cctv_gangnam.csv", "latitude", "longitude"), ("cctv_gangnam_safety.csv", "위도(lat)", "경도(lng)"))


def _gangnam_offsets() -> tuple[list[tuple[float, float]], str]:
    """Every Gangnam camera as an offset from Gangnam's representative point, and where they came from."""
    import csv
    import io

    real, why = synthetic.real_data_dir()
    if real is not None and all((real / name).exists() for name, _, _ in CAMERA_LISTS):
        texts = [(real / name).read_text(encoding="utf-8-sig") for name, _, _ in CAMERA_LISTS]
        origin = "Gangnam's real camera lists"
    else:
        texts = [synthetic.national_cctv(n=1763).data.decode(), synthetic.safety_cctv(n=7007).data.decode()]
        origin = f"synthetic Gangnam camera lists ({why or 'real lists incomplete'})"
    offsets = []
    for text, (_, lat_col, lon_col) in zip(texts, CAMERA_LISTS, strict=True):
        for row in csv.DictReader(io.StringIO(text)):
            try:
                offsets.append((float(row[lat_col]) - GANGNAM_POINT[0], float(row[lon_col]) - GANGNAM_POINT[1]))
            except (KeyError, ValueError):
                continue  # the defective rows: what an import would skip
    return offsets, origin


def synthetic_cameras(n: int, seed: int = 42) -> tuple[list[tuple[float, float]], str]:
    from smartcity.core.city import load_profile

    profile = load_profile("seoul")
    outline = profile.outline_polygon
    rng = random.Random(seed)
    offsets, origin = _gangnam_offsets()
    pattern = f"{origin} replayed around each district"
    cams: list[tuple[float, float]] = []
    while len(cams) < n:
        d = rng.choice(profile.districts)
        dlat, dlon = rng.choice(offsets)
        lat = d.point[0] + dlat + rng.gauss(0, 0.0005)
        lon = d.point[1] + dlon + rng.gauss(0, 0.0005)
        if contains_xy(outline, lon, lat):
            cams.append((lat, lon))
    return cams, pattern


def run(quick: bool = False) -> dict:
    from sqlalchemy import insert

    from smartcity.assets import service
    from smartcity.assets.models import Asset
    from smartcity.core.city import load_profile
    from smartcity.core.db import Database, migrate
    from smartcity.core.geo import geo_index
    from smartcity.core.seed import seed_profile

    n_cams = 110_000
    n_queries = 5_000 if quick else 50_000
    cams, pattern = synthetic_cameras(n_cams)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate(url)
        db = Database(url)
        with db.session() as s:
            seed_profile(s, load_profile("seoul"))
        districts = geo_index(db).districts_at([c[0] for c in cams], [c[1] for c in cams])
        with db.session() as s:
            s.execute(
                insert(Asset),
                [
                    {
                        "kind": "cctv",
                        "name": f"camera {i}",
                        "lat": lat,
                        "lon": lon,
                        "attributes": {},
                        "district_code": d.code if d else None,
                        "source": "bench",
                        "key": f"b{i}",
                    }
                    for i, ((lat, lon), d) in enumerate(zip(cams, districts, strict=True))
                ],
            )
        t0 = time.perf_counter()
        service.nearest(db, "cctv", 37.5665, 126.9780, 5)  # builds the index from the store
        build_s = time.perf_counter() - t0

        rng = random.Random(7)
        queries = []
        outline = load_profile("seoul").outline_polygon
        west, south, east, north = load_profile("seoul").bbox
        while len(queries) < n_queries:
            lat, lon = rng.uniform(south, north), rng.uniform(west, east)
            if contains_xy(outline, lon, lat):
                queries.append((lat, lon))
        latencies, cpu = [], []
        for lat, lon in queries:
            c, t = time.thread_time(), time.perf_counter()
            service.nearest(db, "cctv", lat, lon, 5)
            latencies.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        latencies.sort()
        cpu.sort()
        # Correctness spot check against geodesic brute force on a sample.
        refs = service.asset_index(db).kind("cctv").refs
        mismatches = 0
        for lat, lon in queries[: 50 if quick else 200]:
            got = [round(d, 1) for _, d in service.nearest(db, "cctv", lat, lon, 5)]
            want = [round(d, 1) for _, d in service.nearest_brute_force(refs, lat, lon, 5)]
            mismatches += any(abs(a - b) > 0.2 for a, b in zip(got, want, strict=True))
        db.dispose()
    return {
        "cameras": n_cams,
        "density_pattern": pattern,
        "queries": n_queries,
        "k": 5,
        "index_build_seconds_from_store": round(build_s, 3),
        "query_ms_mean": round(statistics.fmean(latencies) * 1000, 4),
        "query_ms_p50": round(latencies[len(latencies) // 2] * 1000, 4),
        "query_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 4),
        # CPU time of the querying thread: what the query costs, without waiting for a shared CPU.
        "query_cpu_ms_p50": round(cpu[len(cpu) // 2] * 1000, 4),
        "query_cpu_ms_p99": round(cpu[int(len(cpu) * 0.99)] * 1000, 4),
        "queries_per_second": round(len(latencies) / sum(latencies)),
        "load_average_1min": round(__import__("os").getloadavg()[0], 2),
        "goal_ms": 1.0,
        "brute_force_mismatches": mismatches,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
