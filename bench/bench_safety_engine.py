"""The safety engine alone: the rules over a batch of positions already decoded, validated and stored
(`DeviceTable.slots_of` + `apply` + `commit`; no store, no HTTP), at 100,000 devices with 3 zones each (a
circle home, a polygon school — every other one L-shaped —, a circle park) and a danger zone, in batches of
1,000 and 5,000. Goal: ≥ 200,000 positions/s (≤ 5 µs each).

Each device stays at one of its places (home, school, park, or somewhere else in the city) and moves to
another now and then, with GPS jitter, varying and sometimes missing accuracy, a battery running down: so
fixes confirm zones, start and break candidate runs, and make transitions, as a city's devices do.

    python -m bench.bench_safety_engine [quick] [profile]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

BOX = (37.48, 126.90, 37.60, 127.10)  # south, west, north, east: inside Seoul
CENTER = (37.5665, 126.9780)
MOVE_P = 0.05  # chance per fix that a device goes to another of its places


def build_table(n_devices: int, rng: np.random.Generator):
    """A loaded DeviceTable, and where each device's places are (lat, lon per place: home, school, park, away)."""
    from shapely.geometry import Polygon

    from smartcity.core.geo import LocalPlane
    from smartcity.safety.rules import Rules, ZoneShape
    from smartcity.safety.state import DeviceTable

    plane = LocalPlane(CENTER)
    table = DeviceTable(plane, Rules(), low_battery=15, districts=[f"d{i}" for i in range(25)])
    lat = rng.uniform(BOX[0], BOX[2], n_devices)
    lon = rng.uniform(BOX[1], BOX[3], n_devices)
    places = np.empty((n_devices, 4, 2))
    places[:, 0] = np.c_[lat, lon]
    places[:, 1] = np.c_[lat + 0.006, lon + 0.004]
    places[:, 2] = np.c_[lat - 0.004, lon + 0.008]
    places[:, 3] = np.c_[rng.uniform(BOX[0], BOX[2], n_devices), rng.uniform(BOX[1], BOX[3], n_devices)]
    zones = []
    zone_id = 1
    xs, ys = (places[..., 1] - plane.lon0) * plane.kx, (places[..., 0] - plane.lat0) * plane.ky
    for d in range(n_devices):
        person = d + 1
        zones.append(ZoneShape(zone_id, "safe", person, "home", cx=xs[d, 0], cy=ys[d, 0], radius=80.0, size=80.0))
        x, y, h = xs[d, 1], ys[d, 1], 120.0
        ring = [(x - h, y - h), (x + h, y - h), (x + h, y + h)]
        ring += [(x, y + h), (x, y), (x - h, y + h)] if d % 2 else [(x - h, y + h)]
        poly = Polygon(ring)
        size = float(np.sqrt(poly.area / np.pi))
        zones.append(ZoneShape(zone_id + 1, "safe", person, "school", polygon=poly, boundary=poly.boundary, size=size))
        zones.append(ZoneShape(zone_id + 2, "safe", person, "park", cx=xs[d, 2], cy=ys[d, 2], radius=60.0, size=60.0))
        zone_id += 3
    danger = Polygon([(-300, -300), (300, -300), (300, 300), (-300, 300)])
    zones.append(ZoneShape(zone_id, "danger", None, "site", polygon=danger, boundary=danger.boundary, size=340.0))
    import shapely

    for z in zones:
        if z.polygon is not None:
            shapely.prepare(z.polygon)
    table.load([{"device_id": d + 1, "person_id": d + 1} for d in range(n_devices)], zones)
    return table, places


class Stream:
    """Fixes of random devices, each at its current place with jitter."""

    def __init__(self, places: np.ndarray, rng: np.random.Generator):
        self.places, self.rng = places, rng
        n = len(places)
        self.at = rng.integers(0, 4, n)
        self.battery = rng.uniform(10, 100, n)
        self.time = 1_772_582_400_000
        self.m_lat, self.m_lon = 1 / 111_320, 1 / (111_320 * np.cos(np.radians(CENTER[0])))

    def batch(self, size: int):
        from smartcity.core.intake import POSITION_SCHEMA, Columns

        rng, n = self.rng, len(self.places)
        device = rng.integers(0, n, size)
        moving = rng.random(size) < MOVE_P
        self.at[device[moving]] = rng.integers(0, 4, int(moving.sum()))
        where = self.places[device, self.at[device]]
        jitter = rng.normal(0, 1, (size, 2)) * rng.choice([3.0, 8.0, 15.0, 40.0], (size, 1))
        self.battery[device] -= rng.uniform(0, 0.2, size)
        self.battery[self.battery < 5] = 100.0
        cols = Columns.empty(POSITION_SCHEMA, size)
        cols["device_id"] = device + 1
        cols["person_id"] = device + 1
        cols["fix_time"] = self.time + np.arange(size) * 3
        cols["received_at"] = cols["fix_time"]
        self.time += size * 3
        cols["lat"] = where[:, 0] + jitter[:, 0] * self.m_lat
        cols["lon"] = where[:, 1] + jitter[:, 1] * self.m_lon
        cols["speed"] = rng.uniform(0, 2, size)
        accuracy = rng.choice([5.0, 10.0, 20.0, 35.0, 80.0, 200.0, np.nan], size)
        cols["accuracy"] = accuracy
        cols["battery"] = self.battery[device]
        cols["valid"] = np.ones(size, dtype=bool)
        cols["sos"] = rng.random(size) < 0.0005
        cols["outside_city"] = np.zeros(size, dtype=bool)
        cols["district"] = rng.integers(0, 25, size).astype(np.int32)
        cols["stored"] = np.ones(size, dtype=bool)
        return cols


def _feed(table, batches: list) -> tuple[float, float, int]:
    """slots_of + apply + commit for each batch: (wall seconds, CPU seconds, events)."""
    events = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for cols in batches:
        cols["slot"] = table.slots_of(cols["device_id"], cols["person_id"])
        result = table.apply(cols)
        table.commit(result)
        events += len(result.events)
    return time.perf_counter() - t0, time.process_time() - c0, events


def run(quick: bool = False, profile: bool = False) -> dict:
    n = 5_000 if quick else 100_000
    total = 50_000 if quick else 500_000
    rng = np.random.default_rng(5)
    t0 = time.perf_counter()
    table, places = build_table(n, rng)
    results: dict = {"devices": n, "zones": 3 * n + 1, "engine": "DeviceTable (columnar)"}
    results["load_seconds"] = round(time.perf_counter() - t0, 1)
    stream = Stream(places, rng)
    _feed(table, [stream.batch(5000) for _ in range(4 * n // 5000)])  # every device has a state
    for size in (1000, 5000):
        batches = [stream.batch(size) for _ in range(total // size)]
        if profile:
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                _feed(table, batches[: len(batches) // 4])
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        wall, cpu, events = _feed(table, batches)
        results[f"batch_{size}"] = {
            "positions": total,
            "positions_per_second": round(total / wall),
            "cpu_us_per_position": round(cpu / total * 1e6, 2),
            # What one core gives when nothing else runs (the machine is shared: wall time counts the others).
            "positions_per_cpu_second": round(total / cpu),
            "events": events,
        }
    results["load_average"] = round(os.getloadavg()[0], 1)
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run("quick" in sys.argv[1:], "profile" in sys.argv[1:]), indent=2))
