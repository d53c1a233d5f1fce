"""Public Wi-Fi coverage, computed on a metric plane: each access point covers a disc (its radius by
installation type), a district's share of area is the union of the discs inside it over its area, its share of
demand the demand points (bus stops, subway stations) within some disc over all of its demand points.

The gap finder proposes the next N sites: greedy maximum coverage over candidate sites (the uncovered demand
points themselves), each round the candidate that newly covers the most demand. Greedy is within 1 − 1/e of the
best choice of N sites; `best_sites` solves a small case exactly (OR-Tools CP-SAT) to say how far it really is.
Pure functions of their inputs: no store, no HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from smartcity.core.geo import transverse_mercator


@dataclass(frozen=True)
class Site:
    """A disc: an access point (or a proposed one) and the radius it covers, in metres."""

    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class DemandPoint:
    """A place people gather where Wi-Fi is wanted: a bus stop, a subway station."""

    kind: str
    name: str
    lat: float
    lon: float
    weight: float = 1.0


@dataclass(frozen=True)
class DistrictShape:
    code: str
    name: str
    geometry: shapely.Geometry  # in degrees (lon, lat)


@dataclass(frozen=True)
class DistrictCoverage:
    code: str
    name: str
    area_km2: float
    covered_km2: float
    demand: int
    demand_covered: int

    @property
    def area_share(self) -> float:
        return self.covered_km2 / self.area_km2 if self.area_km2 else 0.0

    @property
    def demand_share(self) -> float:
        return self.demand_covered / self.demand if self.demand else 0.0


@dataclass(frozen=True)
class Proposal:
    """A proposed site, in the order greedy chose it: the demand it newly covers and the running total."""

    rank: int
    lat: float
    lon: float
    radius_m: float
    newly_covered: float
    total_covered: float
    near: str  # the demand point it stands on


class Plane:
    """Degrees ↔ metres on a transverse Mercator plane centred on the city (pyproj): exact to well under
    0.01 % across a city, so a 100 m disc is a 100 m disc."""

    def __init__(self, center: tuple[float, float]):
        self._forward = transverse_mercator(center)

    def xy(self, lats: Sequence[float], lons: Sequence[float]) -> np.ndarray:
        if not len(lats):
            return np.zeros((0, 2))
        x, y = self._forward.transform(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        return np.column_stack([x, y])

    def back(self, xy: np.ndarray) -> np.ndarray:
        from pyproj.enums import TransformDirection

        lon, lat = self._forward.transform(xy[:, 0], xy[:, 1], direction=TransformDirection.INVERSE)
        return np.column_stack([lat, lon])

    def geometry(self, geom: shapely.Geometry) -> shapely.Geometry:
        def forward(coords: np.ndarray) -> np.ndarray:
            x, y = self._forward.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geom, forward)


def discs(plane: Plane, sites: Sequence[Site]) -> shapely.Geometry:
    """The union of the sites' discs on the plane (empty when there are none)."""
    if not sites:
        return shapely.Polygon()
    xy = plane.xy([s.lat for s in sites], [s.lon for s in sites])
    circles = shapely.buffer(shapely.points(xy), [s.radius_m for s in sites], quad_segs=16)
    return shapely.union_all(circles)


def covered_mask(plane: Plane, sites: Sequence[Site], demand: Sequence[DemandPoint]) -> np.ndarray:
    """For each demand point, whether some site's disc holds it (distance ≤ radius)."""
    covered = np.zeros(len(demand), dtype=bool)
    if not sites or not demand:
        return covered
    points = shapely.points(plane.xy([d.lat for d in demand], [d.lon for d in demand]))
    tree = shapely.STRtree(points)
    site_xy = plane.xy([s.lat for s in sites], [s.lon for s in sites])
    for radius in sorted({s.radius_m for s in sites}):
        same = np.array([s.radius_m == radius for s in sites])
        _, hit = tree.query(shapely.points(site_xy[same]), predicate="dwithin", distance=radius)
        covered[hit] = True
    return covered


def by_district(
    plane: Plane, sites: Sequence[Site], districts: Sequence[DistrictShape], demand: Sequence[DemandPoint]
) -> list[DistrictCoverage]:
    """Each district's covered area and demand. A demand point counts in the district holding it."""
    union = discs(plane, sites)
    covered = covered_mask(plane, sites, demand)
    lons = np.array([d.lon for d in demand], dtype=float)
    lats = np.array([d.lat for d in demand], dtype=float)
    out = []
    for district in districts:
        shape = plane.geometry(district.geometry)
        inside = shapely.contains_xy(district.geometry, lons, lats) if len(demand) else np.zeros(0, dtype=bool)
        out.append(
            DistrictCoverage(
                district.code,
                district.name,
                shape.area / 1e6,
                shapely.intersection(shape, union).area / 1e6 if not union.is_empty else 0.0,
                int(inside.sum()),
                int((inside & covered).sum()),
            )
        )
    return out


@dataclass(frozen=True)
class Instance:
    """A maximum-coverage problem: candidate sites, demand weights, and which demand each candidate covers."""

    candidates: np.ndarray  # (n, 2) lat, lon
    names: list[str]
    weights: np.ndarray  # (m,)
    covers: list[np.ndarray]  # per candidate, the indexes of the demand it covers


def instance(plane: Plane, demand: Sequence[DemandPoint], open_demand: np.ndarray, radius_m: float) -> Instance:
    """Candidates are the demand points not yet covered (a site where people are); each covers the uncovered
    demand within `radius_m` of it."""
    idx = np.flatnonzero(open_demand)
    chosen = [demand[i] for i in idx]
    xy = plane.xy([d.lat for d in chosen], [d.lon for d in chosen])
    points = shapely.points(xy)
    covers: list[list[int]] = [[] for _ in chosen]
    if len(chosen):
        cand, dem = shapely.STRtree(points).query(points, predicate="dwithin", distance=radius_m)
        for c, d in zip(cand.tolist(), dem.tolist(), strict=True):
            covers[c].append(d)
    return Instance(
        np.array([(d.lat, d.lon) for d in chosen]).reshape(-1, 2),
        [d.name for d in chosen],
        np.array([d.weight for d in chosen], dtype=float),
        [np.array(sorted(c), dtype=np.int64) for c in covers],
    )


def greedy(problem: Instance, n: int) -> list[tuple[int, float]]:
    """Up to `n` candidates, each the one newly covering the most weight (ties: the first); stops when no
    candidate adds any. Lazy evaluation: a candidate's gain only shrinks, so a stale gain is an upper bound."""
    import heapq

    covered = np.zeros(len(problem.weights), dtype=bool)
    heap = [(-float(problem.weights[c].sum()), i) for i, c in enumerate(problem.covers)]
    heapq.heapify(heap)
    chosen: list[tuple[int, float]] = []
    while heap and len(chosen) < n:
        _, i = heapq.heappop(heap)
        gain = float(problem.weights[problem.covers[i]][~covered[problem.covers[i]]].sum())
        if gain <= 0:
            continue
        if heap and gain < -heap[0][0]:
            heapq.heappush(heap, (-gain, i))
            continue
        covered[problem.covers[i]] = True
        chosen.append((i, gain))
    return chosen


def best_sites(problem: Instance, n: int, time_limit_s: float = 30.0) -> tuple[list[int], float, bool]:
    """The exact maximum coverage with `n` sites (CP-SAT): the chosen candidates, the weight covered, and
    whether the solver proved it optimal within the time limit."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    x = [model.new_bool_var(f"x{i}") for i in range(len(problem.covers))]
    by_demand: list[list[int]] = [[] for _ in range(len(problem.weights))]
    for i, covers in enumerate(problem.covers):
        for d in covers.tolist():
            by_demand[d].append(i)
    y = [model.new_bool_var(f"y{d}") for d in range(len(problem.weights))]
    for d, sites in enumerate(by_demand):
        model.add(y[d] <= sum(x[i] for i in sites))
    model.add(sum(x) <= n)
    # Integer weights for the solver: demand weights are counts here, scaled in case they are not.
    scale = 1000
    model.maximize(sum(int(round(w * scale)) * y[d] for d, w in enumerate(problem.weights.tolist())))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 2
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return [], 0.0, False
    chosen = [i for i in range(len(x)) if solver.value(x[i])]
    covered = np.zeros(len(problem.weights), dtype=bool)
    for i in chosen:
        covered[problem.covers[i]] = True
    return chosen, float(problem.weights[covered].sum()), status == cp_model.OPTIMAL


def propose(
    plane: Plane, sites: Sequence[Site], demand: Sequence[DemandPoint], n: int, radius_m: float
) -> list[Proposal]:
    """The next `n` sites (outdoor discs of `radius_m`) maximising newly covered demand, greedily."""
    open_demand = ~covered_mask(plane, sites, demand)
    problem = instance(plane, demand, open_demand, radius_m)
    total = 0.0
    out = []
    for rank, (i, gain) in enumerate(greedy(problem, n), start=1):
        total += gain
        lat, lon = problem.candidates[i]
        out.append(Proposal(rank, float(lat), float(lon), radius_m, gain, total, problem.names[i]))
    return out
