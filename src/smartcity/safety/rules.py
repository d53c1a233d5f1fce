"""The safety rules as pure functions: zone shapes on the metric plane, what a fix says about a zone (its
verdict), the anti-drift zone rule, and the events a batch raises.

Nothing here reads the store or keeps state between calls: `state.DeviceTable` holds the state and calls
these, one fix at a time (`classify`, `step_zone`) or for a whole batch at once (`ZoneSet.verdicts`, the
same rule over arrays). Times are integer epoch milliseconds (UTC)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any, NamedTuple

import numpy as np
import shapely
from shapely.geometry import Point, shape

from smartcity.core.errors import InvalidInput
from smartcity.core.geo import LocalPlane

# Verdicts as small integers in arrays; the same meaning as classify's None / "in" / "out".
NONE, IN, OUT = 0, 1, 2
VERDICT_NAMES: tuple[str | None, ...] = (None, "in", "out")
VERDICT_CODES: dict[str | None, int] = {None: NONE, "in": IN, "out": OUT}


def to_ms(when: datetime) -> int:
    """A timezone-aware datetime as epoch milliseconds."""
    return (when - EPOCH) // MS


def from_ms(ms: int) -> datetime:
    return EPOCH + int(ms) * MS


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - EPOCH


# --- schedules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # Monday = 0
    start: dtime
    end: dtime

    def contains(self, local: datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.time() < self.end


def parse_schedule(raw: Any) -> list[Window]:
    """[{"days": [0,1,2,3,4], "start": "08:30", "end": "15:00"}, …] → windows, or InvalidInput."""
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        raise InvalidInput("a schedule is a list of {days, start, end}", code="invalid_schedule")
    windows = []
    for i, item in enumerate(raw):
        try:
            days = frozenset(int(d) for d in item["days"])
            start, end = dtime.fromisoformat(item["start"]), dtime.fromisoformat(item["end"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(
                f"schedule window {i}: needs days (0=Monday…6) and start/end as HH:MM", code="invalid_schedule"
            ) from None
        if not days or not days <= set(range(7)) or not start < end:
            raise InvalidInput(
                f"schedule window {i}: days are 0–6 and start must be before end", code="invalid_schedule"
            )
        windows.append(Window(days, start, end))
    return windows


# --- zones on the metric plane --------------------------------------------------------------------


@dataclass
class ZoneShape:
    """A zone as the rules check it: on the metric plane, with its size for the accuracy rule.

    Schedules are kept for the absence job (retention.check_absence); the fix-by-fix rules do not use them."""

    id: int
    kind: str  # safe | danger
    person_id: int | None
    name: str
    cx: float = 0.0
    cy: float = 0.0
    radius: float | None = None  # circles
    polygon: Any = None  # shapely geometry on the plane (polygons)
    size: float = 0.0  # radius, or the radius of a circle of the polygon's area
    schedule: list[Window] = field(default_factory=list)
    boundary: Any = None  # the polygon's rings, for distances
    key: str = ""  # str(id): the key of its state in a device's zone states

    def distance(self, x: float, y: float) -> float:
        """Signed distance in metres to the boundary: negative inside."""
        if self.radius is not None:
            return math.hypot(x - self.cx, y - self.cy) - self.radius
        d = self.boundary.distance(Point(x, y))
        return -d if shapely.contains_xy(self.polygon, x, y) else d


def zone_shape(zone: Any, plane: LocalPlane) -> ZoneShape:
    """A stored zone (safety.models.Zone, or anything with its fields) on the plane."""
    z = ZoneShape(
        zone.id, zone.kind, zone.person_id, zone.name, schedule=parse_schedule(zone.schedule), key=str(zone.id)
    )
    if zone.radius_m is not None:
        z.cx, z.cy = plane.xy(zone.lat, zone.lon)
        z.radius = float(zone.radius_m)
        z.size = z.radius
    else:
        geometry = zone.geometry
        geom = plane.geometry(shape(json.loads(geometry) if isinstance(geometry, str) else geometry))
        shapely.prepare(geom)
        z.polygon = geom
        z.boundary = geom.boundary
        z.size = math.sqrt(geom.area / math.pi)
    return z


# --- the anti-drift zone rule ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """How fixes become zone transitions (see docs/safety-service.md, "GPS drift")."""

    confirm_fixes: int = 2  # consecutive fixes that must agree before a transition counts
    hysteresis_m: float = 30.0  # exit only beyond the boundary plus this margin (or 20 % of the size)
    accuracy_max_m: float = 150.0  # fixes less precise than this never change a zone state
    default_accuracy_m: float = 20.0  # assumed when a device does not say

    def margin(self, zone: ZoneShape) -> float:
        return max(self.hysteresis_m, 0.2 * zone.size)


def classify(zone: ZoneShape, x: float, y: float, accuracy: float | None, rules: Rules) -> str | None:
    """What one fix says about a zone: "in", "out", or None (too imprecise, or inside the hysteresis band)."""
    acc = rules.default_accuracy_m if accuracy is None else accuracy
    if acc > rules.accuracy_max_m or acc > max(zone.size, rules.hysteresis_m) * 2:
        return None
    d = zone.distance(x, y)
    if d <= 0 and acc <= max(zone.size, rules.hysteresis_m):
        return "in"
    if d - acc > rules.margin(zone):
        return "out"
    return None


class ZoneState(NamedTuple):
    """One device's state for one zone.

    `confirmed`: where the device is as far as alerts go ("in", "out", or None before any verdict);
    `candidate`: the other state the latest usable fixes agree on, `agreeing` of them in a row, the first at
    `since` (ms). After a transition `since` stays the time it started from, until a fix agrees with the new
    confirmed state again."""

    confirmed: str | None = None
    candidate: str | None = None
    agreeing: int = 0
    since: int | None = None

    def settled(self) -> bool:
        """Nothing pending: a fix agreeing with `confirmed` would change nothing."""
        return self.candidate is None and self.agreeing == 0 and self.since is None

    def as_json(self) -> dict:
        return self._asdict()

    @classmethod
    def from_json(cls, value: dict | None) -> ZoneState:
        if not value:
            return EMPTY
        return cls(value.get("confirmed"), value.get("candidate"), int(value.get("agreeing") or 0), value.get("since"))


EMPTY = ZoneState()


def confirmed_of(stored: dict | None) -> str | None:
    """The confirmed state in a stored zone state: named keys, or the older {"s", "c", "n", "t"}."""
    if not stored:
        return None
    return stored["confirmed"] if "confirmed" in stored else stored.get("s")


Transition = tuple[str | None, str]  # (previous confirmed state, None the first time; new state)


def step_zone(
    state: ZoneState | None, verdict: str | None, at: int, rules: Rules
) -> tuple[ZoneState, Transition | None]:
    """Advance one zone's state with one fix's verdict (`at`: the fix time in ms); returns (new state,
    transition or None).

    A transition happens when `confirm_fixes` consecutive usable fixes agree on a state other than the
    confirmed one; a fix saying nothing (None) neither confirms nor breaks a run. The event of a transition
    is timed at the new state's `since`: the first of the agreeing fixes."""
    st = EMPTY if state is None else state
    if verdict is None:
        return st, None
    if verdict == st.confirmed:
        return (st if st.settled() else ZoneState(st.confirmed)), None
    # The same candidate: one more agreeing fix; another: a new run starts at this fix.
    agreeing, since = (st.agreeing + 1, st.since) if verdict == st.candidate else (1, at)
    st = ZoneState(st.confirmed, verdict, agreeing, since)
    if st.agreeing >= rules.confirm_fixes:
        return ZoneState(verdict, None, 0, st.since), (st.confirmed, verdict)
    return st, None


def zone_event(zone_kind: str, transition: Transition) -> str | None:
    """The event kind a zone transition raises, if any: entering a danger zone; arriving at or leaving a
    safe zone (the first verdict on a safe zone is where the person is, not a move)."""
    previous, now = transition
    if zone_kind == "danger":
        return "danger" if now == "in" else None
    if previous is None:
        return None
    return "arrival" if now == "in" else "departure"


# --- the same verdicts over arrays ----------------------------------------------------------------


class ZoneSet:
    """Zones as arrays, for the verdicts of many (fix, zone) pairs at once.

    Circles by distance to their centre on the metric plane; polygons by `shapely.contains_xy` and the
    distance to their boundary, which is only computed where the bounding box cannot decide (a fix farther
    from the box than the margin and its accuracy is "out" whatever the shape)."""

    def __init__(self, zones: list[ZoneShape], rules: Rules):
        self.zones = zones
        n = len(zones)
        self.ids = np.array([z.id for z in zones], dtype=np.int64)
        self.danger = np.array([z.kind == "danger" for z in zones], dtype=bool)
        self.circle = np.array([z.radius is not None for z in zones], dtype=bool)
        self.cx = np.array([z.cx for z in zones], dtype=np.float64)
        self.cy = np.array([z.cy for z in zones], dtype=np.float64)
        self.radius = np.array([z.radius if z.radius is not None else 0.0 for z in zones], dtype=np.float64)
        self.size = np.array([z.size for z in zones], dtype=np.float64)
        self.margin = np.array([rules.margin(z) for z in zones], dtype=np.float64)
        self.reach = np.maximum(self.size, rules.hysteresis_m)  # the accuracy limits: reach (in), 2 × reach
        # The numbers a verdict reads, one row per zone: gathered for a batch's pairs in one step.
        # `limit`: the coarsest accuracy that may say anything about the zone.
        limit = np.minimum(self.reach * 2, rules.accuracy_max_m)
        self.params = np.column_stack([self.reach, self.margin, self.circle, self.cx, self.cy, self.radius, limit])
        self.polygons = np.empty(n, dtype=object)
        self.boundaries = np.empty(n, dtype=object)
        self.box = np.zeros((n, 4))
        for i, z in enumerate(zones):
            if z.radius is None:
                self.polygons[i], self.boundaries[i] = z.polygon, z.boundary
                self.box[i] = z.polygon.bounds
        self.rules = rules

    def __len__(self) -> int:
        return len(self.zones)

    _ARRAYS = (
        "ids",
        "danger",
        "circle",
        "cx",
        "cy",
        "radius",
        "size",
        "margin",
        "reach",
        "params",
        "polygons",
        "boundaries",
        "box",
    )

    def extended(self, zones: list[ZoneShape]) -> ZoneSet:
        """This set with `zones` added at the end (indices already given out stay valid)."""
        more = ZoneSet(zones, self.rules)
        if not self.zones:
            return more
        out = object.__new__(ZoneSet)
        out.zones, out.rules = self.zones + zones, self.rules
        for name in self._ARRAYS:
            setattr(out, name, np.concatenate([getattr(self, name), getattr(more, name)]))
        return out

    def verdicts(self, zone: np.ndarray, x: np.ndarray, y: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
        """classify() for each pair (zone[i] an index into this set, the fix at x[i], y[i] with accuracy[i],
        NaN = not said): an int8 array of NONE / IN / OUT."""
        rules = self.rules
        acc = np.where(np.isnan(accuracy), rules.default_accuracy_m, accuracy)
        # One gather of every per-zone number; the circle distance is computed for every pair (cheaper than
        # picking the circles out) and replaced for the polygons.
        reach, margin, circle, cx, cy, radius, limit = self.params[zone].T
        usable = acc <= limit
        out = np.zeros(len(zone), dtype=np.int8)
        if not usable.any():
            return out
        d = np.hypot(x - cx, y - cy) - radius
        p = np.flatnonzero(usable & (circle == 0))
        if len(p):
            zp = zone[p]
            box = self.box[zp]
            xp, yp = x[p], y[p]
            dx = np.maximum(np.maximum(box[:, 0] - xp, xp - box[:, 2]), 0.0)
            dy = np.maximum(np.maximum(box[:, 1] - yp, yp - box[:, 3]), 0.0)
            near = np.hypot(dx, dy) - acc[p] <= margin[p]
            # Far from the box: certainly "out"; any finite distance above the margin says so.
            d[p[~near]] = np.inf
            q = p[near]
            if len(q):
                zq = zone[q]
                inside = shapely.contains_xy(self.polygons[zq], x[q], y[q])
                # Inside, how deep does not matter (any d ≤ 0 gives the same verdict); outside, the distance does.
                d[q[inside]] = -1.0
                o = q[~inside]
                if len(o):
                    d[o] = shapely.distance(self.boundaries[zone[o]], shapely.points(x[o], y[o]))
        out[usable & (d <= 0) & (acc <= reach)] = IN
        out[usable & (d - acc > margin)] = OUT
        return out


def step_zones(
    confirmed: np.ndarray,
    candidate: np.ndarray,
    agreeing: np.ndarray,
    since: np.ndarray,
    verdict: np.ndarray,
    at: np.ndarray,
    rules: Rules,
    no_time: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """step_zone over arrays (states as codes, `since` = `no_time` for None), for pairs whose verdict is not
    NONE: the new (confirmed, candidate, agreeing, since) and a mask of the pairs that made a transition (from
    the `confirmed` passed in to the verdict)."""
    agrees = verdict == confirmed
    same = ~agrees & (verdict == candidate)
    agreeing = np.where(agrees, 0, np.where(same, agreeing.astype(np.int64) + 1, 1))
    since = np.where(agrees, no_time, np.where(same, since, at))
    transition = ~agrees & (agreeing >= rules.confirm_fixes)
    candidate = np.where(agrees | transition, NONE, verdict).astype(np.int8)
    agreeing[transition] = 0
    confirmed = np.where(transition, verdict, confirmed).astype(np.int8)
    return confirmed, candidate, agreeing, since, transition


# --- what a batch raises --------------------------------------------------------------------------


@dataclass
class Raised:
    """An event a batch raises; turned into rows, notifications and incidents by alerts.raise_event.

    `row`: the index in its batch of the fix that raised it (-1 when not raised by a batch)."""

    kind: str
    person_id: int
    device_id: int
    at: datetime
    lat: float | None
    lon: float | None
    zone: ZoneShape | None = None
    data: dict = field(default_factory=dict)
    district_code: str | None = None
    row: int = -1

    def dedupe_key(self) -> str:
        """What makes it the same event when raised again (a replay after a crash): kind, device, zone, time."""
        return f"{self.kind}:{self.device_id}:{self.zone.id if self.zone else ''}:{to_ms(self.at)}"
