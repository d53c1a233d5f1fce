"""Record a realistic position stream and the events the per-position engine of commit ce1d064 raised for it
(tests/safety/test_replay.py replays the stream through state.DeviceTable and expects the same).

    .venv/bin/python scripts/record_safety_stream.py

writes tests/safety/data/recorded_stream.json.gz. The engine is taken from git (`git show
ce1d064:src/smartcity/safety/engine.py`) and its own per-fix method (`_apply`) is driven the way its batch
commit drove it: duplicates (same device and fix time) dropped, each device's fixes of a batch in fix-time
order, devices in order of first appearance. Only the rules are recorded: nothing is stored. (A tool, not a
test: it drives that engine's own per-fix method, `_apply`, which no public call reaches without a store.)

The stream: people walking between a home (circle) and a school (polygon, some with a third circle zone),
two danger zones, GPS jitter and coarse fixes, fixes without accuracy, duplicates, late (out-of-order) fixes,
invalid fixes ("no fix yet" at 0,0), SOS alarms (some on invalid fixes), batteries running down and
recharged, trips outside the city, a few people with two devices."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import random
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "safety" / "data" / "recorded_stream.json.gz"
COMMIT = "ce1d064"
CENTER = (37.5665, 126.9780)
RULES = {"confirm_fixes": 2, "hysteresis_m": 30.0, "accuracy_max_m": 150.0}
LOW_BATTERY = 15
DISTRICTS = ["11110", "11140", "11170", "11200"]
CITY = (37.50, 126.90, 37.64, 127.06)  # south, west, north, east: fixes beyond are outside the city
BATCH_SIZES = (1, 7, 250, 0)  # 0: the whole stream as one batch
START_MS = 1_772_582_400_000  # 2026-03-04 00:00 UTC
M_LAT = 111_320.0
M_LON = M_LAT * math.cos(math.radians(CENTER[0]))


def district_of(lat: float, lon: float) -> int:
    if not (CITY[0] <= lat <= CITY[2] and CITY[1] <= lon <= CITY[3]):
        return -1
    return min(int((lon - CITY[1]) / (CITY[3] - CITY[1]) * len(DISTRICTS)), len(DISTRICTS) - 1)


def square(lat: float, lon: float, half_m: float, notch: bool) -> dict:
    dlat, dlon = half_m / M_LAT, half_m / M_LON
    ring = [(lon - dlon, lat - dlat), (lon + dlon, lat - dlat), (lon + dlon, lat + dlat)]
    if notch:  # an L-shaped yard: not convex, so its bounding box is not the shape
        ring.append((lon, lat + dlat))
        ring.append((lon, lat))
    ring += [(lon - dlon, lat + dlat), (lon - dlon, lat - dlat)]
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


def make_stream(seed: int = 13, people: int = 160) -> dict:
    rng = random.Random(seed)
    zones, devices, tracks = [], [], []
    zone_id = 1
    for danger in range(2):
        lat, lon = 37.57 + 0.01 * danger, 126.97 + 0.02 * danger
        if danger == 0:
            zones.append(
                {"id": zone_id, "kind": "danger", "person_id": None, "name": "construction site"}
                | {"lat": None, "lon": None, "radius_m": None, "geometry": square(lat, lon, 120, True)}
            )
        else:
            zones.append(
                {"id": zone_id, "kind": "danger", "person_id": None, "name": "river bank"}
                | {"lat": lat, "lon": lon, "radius_m": 90.0, "geometry": None}
            )
        zone_id += 1
    device_id = 1
    for person in range(1, people + 1):
        home = (rng.uniform(37.53, 37.61), rng.uniform(126.93, 127.03))
        if person % 6 == 0:  # lives by the construction site: walks through it
            home = (37.5685, 126.9685)
        school = (home[0] + rng.uniform(-0.012, 0.012), home[1] + rng.uniform(-0.015, 0.015))
        if person % 6 == 0:  # the way to school crosses the construction site
            school = (37.5718, 126.9722)
        if person % 11 == 0:  # goes to school near the river bank
            school = (37.5812, 126.9905)
        zones.append(
            {"id": zone_id, "kind": "safe", "person_id": person, "name": "home"}
            | {"lat": home[0], "lon": home[1], "radius_m": rng.choice([40.0, 80.0, 150.0]), "geometry": None}
        )
        zone_id += 1
        zones.append(
            {"id": zone_id, "kind": "safe", "person_id": person, "name": "school"}
            | {
                "lat": None,
                "lon": None,
                "radius_m": None,
                "geometry": square(school[0], school[1], rng.uniform(60, 200), person % 2 == 0),
            }
        )
        zone_id += 1
        if person % 3 == 0:
            park = (home[0] * 0.5 + school[0] * 0.5, home[1] * 0.5 + school[1] * 0.5)
            zones.append(
                {"id": zone_id, "kind": "safe", "person_id": person, "name": "park"}
                | {"lat": park[0], "lon": park[1], "radius_m": 60.0, "geometry": None}
            )
            zone_id += 1
        for _ in range(2 if person % 10 == 0 else 1):
            devices.append({"device_id": device_id, "person_id": person})
            tracks.append(_walk(rng, device_id, person, home, school, traveller=person % 13 == 0))
            device_id += 1
    fixes = [f for track in tracks for f in track]
    # Arrival order: by fix time plus network delay; a few arrive late (out of order), a few twice.
    arrivals = []
    for f in fixes:
        delay = rng.expovariate(1 / 800) + (rng.choice([0, 0, 60_000, 600_000]) if rng.random() < 0.04 else 0)
        arrivals.append((f[2] + delay, f))
        if rng.random() < 0.03:
            arrivals.append((f[2] + delay + rng.uniform(0, 120_000), f))
    arrivals.sort(key=lambda a: a[0])
    out = []
    for received, f in arrivals:
        row = list(f)
        row[3] = int(received)
        out.append(row)
    return {
        "center": list(CENTER),
        "rules": RULES,
        "low_battery": LOW_BATTERY,
        "districts": DISTRICTS,
        "zones": zones,
        "devices": devices,
        "columns": [
            "device_id",
            "person_id",
            "fix_time",
            "received_at",
            "lat",
            "lon",
            "speed",
            "accuracy",
            "battery",
            "alarm",
            "valid",
            "outside_city",
            "district",
        ],
        "fixes": out,
    }


def _walk(rng, device_id, person, home, school, traveller):
    """One device's day: at home, to school, at school, back home (or out of town), with jitter."""
    t = START_MS + rng.randrange(0, 600_000)
    battery = rng.uniform(8, 100)
    legs = [(home, 18), (school, 14), (school, 16), (home, 14)]
    if traveller:
        legs.insert(3, ((CITY[0] - 0.03, CITY[1] - 0.02), 10))
    lat, lon = home
    out = []
    for target, steps in legs:
        for i in range(steps):
            frac = (i + 1) / steps
            lat += (target[0] - lat) * frac
            lon += (target[1] - lon) * frac
            sigma = rng.choice([3, 8, 15, 40])
            jlat, jlon = lat + rng.gauss(0, sigma) / M_LAT, lon + rng.gauss(0, sigma) / M_LON
            accuracy = rng.choice([None, 5.0, 10.0, 20.0, 35.0, 60.0, 120.0, 220.0])
            battery -= rng.uniform(0, 1.2)
            if battery < 5 and rng.random() < 0.3:
                battery = rng.uniform(60, 100)  # recharged
            valid = rng.random() > 0.015
            alarm = "sos" if rng.random() < (0.006 if valid else 0.3) else None  # a panic button works without a fix
            plat, plon = (jlat, jlon) if valid else (0.0, 0.0)
            district = district_of(plat, plon) if valid else -1
            outside = valid and district == -1
            # Batteries report with a wobble of a few percent (and charge on and off): the flag's reset band matters.
            if rng.random() < 0.05:
                battery += rng.uniform(2, 12)
            wobble = min(max(battery + rng.uniform(-3, 3), 0.0), 100.0)
            reported = None if rng.random() < 0.1 else round(wobble, 1)
            speed = None if rng.random() < 0.2 else round(rng.uniform(0, 2.5), 2)
            out.append(
                [
                    device_id,
                    person,
                    t,
                    0,
                    round(plat, 7),
                    round(plon, 7),
                    speed,
                    accuracy,
                    reported,
                    alarm,
                    valid,
                    outside,
                    district,
                ]
            )
            t += rng.randrange(15_000, 90_000)
    return out


# --- today's engine, driven as its batch commit drove it ----------------------------------------------


def _load_old_engine():
    source = subprocess.run(
        ["git", "show", f"{COMMIT}:src/smartcity/safety/engine.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    path = Path("/tmp") / f"safety_engine_{COMMIT}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"safety_engine_{COMMIT}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def replay_old(stream: dict, batch_size: int) -> dict:
    from smartcity.core.geo import LocalPlane

    old = _load_old_engine()
    plane = LocalPlane(tuple(stream["center"]))
    engine = object.__new__(old.SafetyEngine)
    engine.plane = plane
    engine.rules = old.Rules(**stream["rules"])
    engine.settings = SimpleNamespace(safety_low_battery=stream["low_battery"])
    engine.person_zones = defaultdict(list)
    engine.danger_zones = []
    for z in stream["zones"]:
        row = SimpleNamespace(
            **{**z, "schedule": None, "geometry": json.dumps(z["geometry"]) if z["geometry"] else None}
        )
        shaped = old.zone_shape(row, plane)
        (engine.danger_zones if z["kind"] == "danger" else engine.person_zones[z["person_id"]]).append(shaped)
    districts = stream["districts"]
    states: dict[int, object] = {}
    stored: set = set()
    events, live = [], []
    fixes = stream["fixes"]
    size = batch_size or len(fixes)
    for start in range(0, len(fixes), size):
        batch = fixes[start : start + size]
        first_of: dict = {}
        for index, f in enumerate(batch):
            key = (f[0], f[2])
            if key not in first_of and key not in stored:
                first_of[key] = (start + index, f)
        stored.update(first_of)
        by_device: dict = defaultdict(list)
        for key, item in first_of.items():
            by_device[key[0]].append(item)
        row_live = {}
        for device_id, items in by_device.items():
            items.sort(key=lambda item: item[1][2])
            st = states.get(device_id) or old.LiveState(device_id, items[0][1][1])
            for row_index, f in items:
                p = old.Position(
                    str(device_id),
                    datetime.fromtimestamp(f[2] / 1000, UTC),
                    f[4],
                    f[5],
                    speed=f[6],
                    accuracy=f[7],
                    battery=f[8],
                    alarm=f[9],
                    valid=f[10],
                )
                p.received_at = datetime.fromtimestamp(f[3] / 1000, UTC)
                item = old._Item(p, SimpleNamespace(device_id=device_id, person_id=f[1]))
                item.outside_city = f[11]
                item.district_code = districts[f[12]] if f[12] >= 0 else None
                raised, moved = engine._apply(st, item)
                row_live[row_index] = moved
                events.extend(_event(e, row_index) for e in raised)
            states[device_id] = st
        live.extend(row_live.get(start + i, False) for i in range(len(batch)))
    return {"events": events, "live": live, "states": {str(d): _state(st) for d, st in sorted(states.items())}}


def _ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def _event(e, row: int) -> list:
    return [
        row,
        e.kind,
        e.person_id,
        e.device_id,
        e.zone.id if e.zone else None,
        _ms(e.at),
        e.lat,
        e.lon,
        e.district_code,
        e.data,
    ]


def _state(st) -> dict:
    zones = {
        key: [z["s"], z["c"], z["n"], _ms(datetime.fromisoformat(z["t"])) if z["t"] else None]
        for key, z in st.zones.items()
        if z["s"] is not None or z["c"] is not None or z["n"] or z["t"] is not None
    }
    return {
        "fix_time": _ms(st.fix_time) if st.fix_time else None,
        "lat": st.lat,
        "lon": st.lon,
        "battery": st.battery,
        "district": st.district_code,
        "flags": sorted(k for k, v in st.flags.items() if v),
        "zones": zones,
    }


def main() -> None:
    stream = make_stream()
    stream["expected"] = {str(size): replay_old(stream, size) for size in BATCH_SIZES}
    with gzip.open(OUT, "wt") as f:
        json.dump(stream, f, separators=(",", ":"))
    for size, result in stream["expected"].items():
        kinds = defaultdict(int)
        for e in result["events"]:
            kinds[e[1]] += 1
        print(f"batch {size}: {len(result['events'])} events {dict(kinds)}")
    print(f"{len(stream['fixes'])} fixes, {len(stream['devices'])} devices, {len(stream['zones'])} zones → {OUT}")


if __name__ == "__main__":
    main()
