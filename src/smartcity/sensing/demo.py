"""The demo's sensors: synthetic S-DoT-like sensors across the city and their last day of readings (made up;
the real list and exports are imported by `smartcity sensing import-…`, never shipped)."""

from __future__ import annotations

import math
import random
import time
from datetime import datetime

import shapely

from smartcity.core.context import context_of
from smartcity.core.errors import SmartCityError
from smartcity.sensing import service
from smartcity.sensing.intake import SENSORS, store_now, validate
from smartcity.sensing.quantities import QUANTITIES
from smartcity.sensing.sensors import KIND

DEMO_SOURCE = "demo (synthetic)"
STEP_S = 600
QUANTITY_NAMES = [q.name for q in QUANTITIES]


def _level(quantity: str, hour: float, rng: random.Random) -> float:
    """A plausible value with a daily rhythm (warmer and louder by day, dust peaking at rush hours)."""
    day = math.sin((hour - 9) / 24 * 2 * math.pi)  # highest mid-afternoon
    rush = math.exp(-((hour - 8.5) ** 2) / 2) + math.exp(-((hour - 18.5) ** 2) / 2)
    value = {
        "pm10": 35 + 25 * rush + rng.gauss(0, 6),
        "pm25": 18 + 14 * rush + rng.gauss(0, 3),
        "temperature": 14 + 6 * day + rng.gauss(0, 0.4),
        "humidity": 60 - 15 * day + rng.gauss(0, 2),
        "noise": 52 + 10 * max(day, 0) + 6 * rush + rng.gauss(0, 2),
        "illuminance": max(0.0, 40_000 * day) + rng.uniform(0, 50),
        "wind": abs(2 + rng.gauss(0, 1)),
        "uv": max(0.0, 6 * day),
        "vibration": abs(rng.gauss(0.2, 0.1)),
    }[quantity]
    return round(max(value, 0.0), 2)


def load(db, profile, sensors: int = 40, seed: int = 16) -> str:
    """Synthetic sensors (idempotent: none added when the demo's are there) and 24 hours of readings."""
    with db.session() as s:
        known = {r["serial"] for r in service.sensors(s)}
    rng = random.Random(seed)
    serials = [f"DEMO{n:07d}" for n in range(1, sensors + 1)]
    if set(serials) <= known:
        return "demo sensors: already there"
    from smartcity.assets import service as assets

    outline = profile.outline_polygon
    west, south, east, north = outline.bounds
    with db.session() as s:
        for serial in serials:
            if serial in known:
                continue
            while True:
                lat, lon = rng.uniform(south, north), rng.uniform(west, east)
                if not shapely.contains_xy(outline, lon, lat):
                    continue
                try:
                    with s.begin_nested():
                        assets.create_asset(
                            s, KIND, lat, lon, name=f"S-DoT {serial}", source=DEMO_SOURCE, external_id=serial
                        )
                    break
                except SmartCityError:  # a point between district outlines: try another
                    continue
    SENSORS.drop(db)
    now = int(time.time()) // STEP_S * STEP_S
    tz = context_of(db).profile.tz
    readings = []
    for serial in serials:
        for at in range(now - 86400 + STEP_S, now + 1, STEP_S):
            local = datetime.fromtimestamp(at, tz)
            hour = local.hour + local.minute / 60
            for quantity in QUANTITY_NAMES:
                readings.append(
                    {"sensor": serial, "quantity": quantity, "time": at, "value": _level(quantity, hour, rng)}
                )
    from smartcity.sensing.air import demo_episode

    demo_episode(db, readings, now)  # a district crossing into 나쁨: the air map and alerts show it
    outcome = store_now(db, validate(db, readings, "import"))
    service.roll_up(db)
    return f"demo sensors: {sensors} synthetic sensors, {outcome.stored} readings of the last 24 hours"
