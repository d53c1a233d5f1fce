"""The night route planner (Owl Bus): late-night demand on cells → demand clusters → candidate stops →
bus routes that serve the most demand within the city's constraints.

Methods, by name (docs/analytics.md, "Night routes"):
- demand clusters: DBSCAN (scikit-learn) over the hottest cells' centres on a metric plane; cells in no
  cluster are isolated spots a night bus does not detour for;
- candidate stops: each clustered cell's nearest stop within walking distance takes the cell's demand;
- routes: the vehicle routing problem with optional stops ("prize-collecting" VRP) solved by OR-Tools'
  routing library: one vehicle per route from a virtual depot (so a route is an open line between two
  terminals), a disjunction per stop whose penalty is its demand, a distance dimension capped at the
  longest route the constraints allow; first solution by parallel cheapest insertion, then guided local
  search within a time limit;
- distances: straight line on the plane × a road factor (no street network is downloaded).

The module is pure: plain values in, plain values out; the CLI, the pages and the GTFS export read it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import h3
import numpy as np
from scipy.spatial import cKDTree

from smartcity.core.errors import InvalidInput
from smartcity.core.geo import LocalPlane
from smartcity.core.i18n import N_
from smartcity.core.text import decode

NIGHT_HOURS = range(0, 6)
MIN_HEADWAY, MAX_HEADWAY = 30, 50
# Demand is turned into integer penalties; this keeps the sum of every penalty far inside int64.
_PENALTY_BUDGET = 10**13
# Stop types in Seoul's list that no bus serves (the Han river ferry piers).
NOT_BUS_STOPS = frozenset({"한강선착장"})


class PlanError(InvalidInput):
    """A constraint that cannot be met, or planner input that cannot be used; the message names which."""

    code = "plan_constraint"


@dataclass(frozen=True)
class Stop:
    id: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Constraints:
    """What the city asks of the night network."""

    routes: int
    headway_min: int = 40
    fleet: int = 100
    max_km: float | None = None  # one way, terminal to terminal
    max_round_trip_min: float | None = None


@dataclass(frozen=True)
class PlannerOptions:
    """How the city is modelled (the analytics settings give these in a deployment)."""

    road_factor: float = 1.3  # road distance / straight line
    speed_kmh: float = 25.0  # average bus speed at night, stops included
    layover_min: float = 10.0  # per round trip, at the two terminals
    capture_rate: float = 0.02  # share of a served cell's late-night demand that rides the bus
    hot_cells: int = 1250
    walk_m: float = 500.0
    cluster_eps_m: float = 1500.0
    cluster_min_cells: int = 3
    max_candidates: int = 500
    time_limit_s: float = 20.0


@dataclass(frozen=True)
class Candidate:
    """A stop the planner may use, with the demand of the cells that walk to it."""

    stop: Stop
    demand: float
    cluster: int = 0
    cells: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cluster:
    id: int
    cells: int
    demand: float
    lat: float
    lon: float


@dataclass(frozen=True)
class Route:
    number: int
    name: str
    stops: tuple[Stop, ...]
    km: float
    round_trip_min: float
    buses: int
    demand: float
    riders: float


@dataclass
class Plan:
    routes: list[Route]
    constraints: Constraints
    options: PlannerOptions
    candidates: list[Candidate]
    clusters: list[Cluster] = field(default_factory=list)
    demand_night: float = 0.0  # every cell's demand in hours 0–5
    max_km: float = 0.0  # the longest route the constraints allow (one way)
    method: str = "or-tools"

    @property
    def demand_served(self) -> float:
        return sum(r.demand for r in self.routes)

    @property
    def buses(self) -> int:
        return sum(r.buses for r in self.routes)

    @property
    def km(self) -> float:
        return sum(r.km for r in self.routes)


# -- inputs ------------------------------------------------------------------------------------------------


def night_demand(rows: Iterable[tuple[str, int, float]]) -> dict[str, float]:
    """Demand per cell over hours 0–5 from (cell, hour, count) rows; refuses a set with none."""
    demand: dict[str, float] = {}
    for cell, hour, count in rows:
        if int(hour) in NIGHT_HOURS and count > 0:
            demand[cell] = demand.get(cell, 0.0) + float(count)
    if not demand:
        raise PlanError(N_("there is no demand in hours 0–5: import late-night demand data first"), code="no_demand")
    return demand


def read_stops(data: bytes) -> list[Stop]:
    """Bus stops from Seoul's stop list (ARS_ID, 정류소명, X좌표, Y좌표, 정류소타입) or any id,name,lat,lon
    CSV; a row whose coordinates do not read is refused by its line."""
    reader = csv.DictReader(io.StringIO(decode(data)))
    columns = set(reader.fieldnames or ())
    seoul = {"ARS_ID", "정류소명", "X좌표", "Y좌표"} <= columns
    if not seoul and not {"id", "lat", "lon"} <= columns:
        raise PlanError(
            N_("the stop list needs the columns id, name, lat, lon (or Seoul's ARS_ID, 정류소명, X좌표, Y좌표)"),
            code="stop_columns",
        )
    stops: list[Stop] = []
    for line, row in enumerate(reader, start=2):
        if seoul and row.get("정류소타입") in NOT_BUS_STOPS:
            continue
        try:
            if seoul:
                stop = Stop(row["ARS_ID"].strip(), row["정류소명"].strip(), float(row["Y좌표"]), float(row["X좌표"]))
            else:
                stop = Stop(row["id"].strip(), (row.get("name") or "").strip(), float(row["lat"]), float(row["lon"]))
        except (TypeError, ValueError):
            raise PlanError(
                N_("line {line} of the stop list has no readable coordinates"), code="stop_row", params={"line": line}
            ) from None
        stops.append(stop)
    return stops


def check_inside(stops: Sequence[Stop], bbox: tuple[float, float, float, float]) -> None:
    """Refuses stops outside the city's extent (west, south, east, north), naming the first of them."""
    west, south, east, north = bbox
    outside = [s.id for s in stops if not (west <= s.lon <= east and south <= s.lat <= north)]
    if outside:
        raise PlanError(
            N_("{count} stops are outside the city: {ids}"),
            code="stops_outside_city",
            params={"count": len(outside), "ids": ", ".join(outside[:5])},
        )


def read_baseline(data: bytes) -> dict[str, list[str]]:
    """Current night routes as the analyst enters them: a CSV of route,stop (stops in order), or one line per
    route `N26: 12345 12346 …`."""
    text = decode(data).strip()
    routes: dict[str, list[str]] = {}
    first = text.splitlines()[0].lower().replace(" ", "") if text else ""
    if first.startswith("route,stop"):
        for row in csv.DictReader(io.StringIO(text)):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            if row.get("route") and row.get("stop"):
                routes.setdefault(row["route"], []).append(row["stop"])
    else:
        for line in text.splitlines():
            if ":" in line:
                name, stops = line.split(":", 1)
                if stops.split():
                    routes[name.strip()] = stops.replace(",", " ").split()
    if not routes:
        raise PlanError(
            N_("the baseline lists no route: write one line per route, 'name: stop stop …', or a route,stop CSV"),
            code="baseline_empty",
        )
    return routes


# -- the plane and distances -------------------------------------------------------------------------------


def _plane(points: Sequence[tuple[float, float]]) -> LocalPlane:
    lat = sum(p[0] for p in points) / len(points)
    lon = sum(p[1] for p in points) / len(points)
    return LocalPlane((lat, lon))


def _xy(plane: LocalPlane, points: Sequence[tuple[float, float]]) -> np.ndarray:
    if not points:
        return np.zeros((0, 2))
    arr = np.asarray(points, dtype=float)
    return np.column_stack(((arr[:, 1] - plane.lon0) * plane.kx, (arr[:, 0] - plane.lat0) * plane.ky))


def road_km(stops: Sequence[Stop], options: PlannerOptions) -> float:
    """A route's one-way length through its stops in order, straight lines × the road factor."""
    if len(stops) < 2:
        return 0.0
    xy = _xy(_plane([(s.lat, s.lon) for s in stops]), [(s.lat, s.lon) for s in stops])
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum()) * options.road_factor / 1000


def round_trip_min(km: float, options: PlannerOptions) -> float:
    return 2 * km / options.speed_kmh * 60 + options.layover_min


def buses_needed(round_trip: float, headway_min: int) -> int:
    return max(1, math.ceil(round_trip / headway_min - 1e-9))


def _route(
    number: int, stops: Sequence[Stop], demand: float, options: PlannerOptions, headway: int, name: str = ""
) -> Route:
    km = road_km(stops, options)
    rt = round_trip_min(km, options)
    return Route(
        number=number,
        name=name or f"N{number}",
        stops=tuple(stops),
        km=round(km, 3),
        round_trip_min=round(rt, 1),
        buses=buses_needed(rt, headway),
        demand=demand,
        riders=round(demand * options.capture_rate, 1),
    )


# -- constraints -------------------------------------------------------------------------------------------


def route_limit_km(constraints: Constraints, options: PlannerOptions) -> float:
    """The longest one-way route the constraints allow: the maximum length, the maximum round trip, and the
    fleet shared equally between the routes (each route's round trip ≤ its buses × the headway, so the
    routes together never need more buses than the fleet). Refuses constraints no route can meet."""
    c = constraints
    if c.routes < 1:
        raise PlanError(N_("the number of routes must be at least 1"), code="routes")
    if not MIN_HEADWAY <= c.headway_min <= MAX_HEADWAY:
        raise PlanError(
            N_("the headway must be between {low} and {high} minutes, not {headway}"),
            code="headway",
            params={"low": MIN_HEADWAY, "high": MAX_HEADWAY, "headway": c.headway_min},
        )
    least = buses_needed(options.layover_min, c.headway_min)
    if c.fleet < c.routes * least:
        raise PlanError(
            N_("a fleet of {fleet} buses cannot run {routes} routes: each route needs at least {least} bus(es)"),
            code="fleet",
            params={"fleet": c.fleet, "routes": c.routes, "least": least},
        )
    if c.max_km is not None and c.max_km <= 0:
        raise PlanError(N_("the maximum route length must be more than 0 km"), code="max_km")
    per_route = c.fleet // c.routes
    limits = [(per_route * c.headway_min - options.layover_min) * options.speed_kmh / 120]
    if c.max_round_trip_min is not None:
        if c.max_round_trip_min <= options.layover_min:
            raise PlanError(
                N_("a round trip of {minutes} minutes leaves no time to drive after the {layover} minutes' layover"),
                code="max_round_trip",
                params={"minutes": c.max_round_trip_min, "layover": options.layover_min},
            )
        limits.append((c.max_round_trip_min - options.layover_min) * options.speed_kmh / 120)
    if c.max_km is not None:
        limits.append(c.max_km)
    return min(limits)


# -- clusters and candidate stops --------------------------------------------------------------------------


def candidates(
    demand: Mapping[str, float], stops: Sequence[Stop], options: PlannerOptions
) -> tuple[list[Candidate], list[Cluster]]:
    """The hottest cells clustered (DBSCAN), each clustered cell's demand given to its nearest stop within
    walking distance; the stops with the most demand, at most `max_candidates`."""
    from sklearn.cluster import DBSCAN

    if not demand:
        raise PlanError(N_("there is no demand in hours 0–5: import late-night demand data first"), code="no_demand")
    if not stops:
        raise PlanError(N_("there are no bus stops to plan with"), code="no_stops")
    hot = sorted(demand.items(), key=lambda kv: (-kv[1], kv[0]))[: options.hot_cells]
    centres = [h3.cell_to_latlng(cell) for cell, _ in hot]
    plane = _plane(centres)
    cell_xy = _xy(plane, centres)
    labels = DBSCAN(eps=options.cluster_eps_m, min_samples=options.cluster_min_cells).fit(cell_xy).labels_
    stop_xy = _xy(plane, [(s.lat, s.lon) for s in stops])
    dist, nearest = cKDTree(stop_xy).query(cell_xy)

    by_stop: dict[int, list[int]] = {}
    clusters: list[Cluster] = []
    for label in sorted(set(labels) - {-1}):
        members = np.flatnonzero(labels == label)
        weights = np.array([hot[i][1] for i in members])
        lat, lon = np.average(np.asarray(centres)[members], axis=0, weights=weights)
        clusters.append(Cluster(int(label) + 1, len(members), float(weights.sum()), float(lat), float(lon)))
        for i in members:
            if dist[i] <= options.walk_m:
                by_stop.setdefault(int(nearest[i]), []).append(int(i))
    found = [
        Candidate(
            stops[s],
            float(sum(hot[i][1] for i in cells)),
            int(labels[cells[0]]) + 1,
            tuple(hot[i][0] for i in cells),
        )
        for s, cells in by_stop.items()
    ]
    found.sort(key=lambda c: (-c.demand, c.stop.id))
    if not found:
        raise PlanError(
            N_("no bus stop is within {walk} m of a late-night demand cluster"),
            code="no_candidates",
            params={"walk": int(options.walk_m)},
        )
    return found[: options.max_candidates], clusters


# -- routes ------------------------------------------------------------------------------------------------


def _matrix(cands: Sequence[Candidate], options: PlannerOptions) -> np.ndarray:
    """Metres between candidates (road factor applied), with a virtual depot as node 0 at no distance."""
    points = [(c.stop.lat, c.stop.lon) for c in cands]
    xy = _xy(_plane(points), points)
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)) * options.road_factor
    m = np.zeros((len(cands) + 1, len(cands) + 1), dtype=np.int64)
    m[1:, 1:] = np.rint(d).astype(np.int64)
    return m


def solve(cands: Sequence[Candidate], constraints: Constraints, options: PlannerOptions) -> list[Route]:
    """Routes over the candidates serving the most demand: OR-Tools vehicle routing with optional stops."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2
    from ortools.util import optional_boolean_pb2

    limit_m = int(route_limit_km(constraints, options) * 1000)
    n = len(cands)
    matrix = _matrix(cands, options)
    manager = pywrapcp.RoutingIndexManager(n + 1, constraints.routes, 0)
    routing = pywrapcp.RoutingModel(manager)
    transit = routing.RegisterTransitMatrix(matrix.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(transit)
    routing.AddDimension(transit, 0, limit_m, True, "distance")
    # A route is a line between two terminals: one stop alone is no route, so a used route has two or more.
    routing.AddConstantDimension(1, n + 2, True, "stops")
    count = routing.GetDimensionOrDie("stops")
    solver = routing.solver()
    for v in range(constraints.routes):
        end = count.CumulVar(routing.End(v))
        solver.Add(solver.IsEqualCstVar(end, 1) + solver.IsGreaterOrEqualCstVar(end, 3) >= 1)
    total = sum(c.demand for c in cands) or 1.0
    # Dropping a stop must always cost more than any detour could save, so demand comes first and length
    # only breaks ties: a rider is worth far more than the longest route's metres.
    scale = max(1.0, min(_PENALTY_BUDGET / total, 10.0 * (limit_m + 1) * constraints.routes))
    for i, c in enumerate(cands, start=1):
        routing.AddDisjunction([manager.NodeToIndex(i)], max(1, int(round(c.demand * scale))))

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    # Swapping a served stop for unserved ones can take several moves through states the two-stop rule
    # forbids; the large-neighbourhood operators rebuild whole paths and so reach those plans.
    operators = params.local_search_operators
    for name in ("use_path_lns", "use_full_path_lns", "use_inactive_lns", "use_extended_swap_active"):
        setattr(operators, name, optional_boolean_pb2.BOOL_TRUE)
    params.time_limit.FromMilliseconds(max(1, int(options.time_limit_s * 1000)))
    # Guided local search starts from the greedy routes, so the plan never serves less than greedy does.
    seed = _greedy_paths(cands, matrix[1:, 1:], limit_m, constraints.routes)
    seed = [[i + 1 for i in path] for path in seed] + [[] for _ in range(constraints.routes - len(seed))]
    routing.CloseModelWithParameters(params)
    initial = routing.ReadAssignmentFromRoutes(seed, True)
    solution = routing.SolveFromAssignmentWithParameters(initial, params) if initial else None
    if solution is None:
        solution = routing.SolveWithParameters(params)
    if solution is None:
        raise PlanError(N_("no set of routes meets the constraints"), code="no_solution")
    paths: list[list[int]] = []
    for v in range(constraints.routes):
        index = solution.Value(routing.NextVar(routing.Start(v)))
        paths.append([])
        while not routing.IsEnd(index):
            paths[-1].append(manager.IndexToNode(index) - 1)
            index = solution.Value(routing.NextVar(index))
    return _routes(cands, paths, constraints, options)


def _greedy_paths(cands: Sequence[Candidate], matrix: np.ndarray, limit_m: float, routes: int) -> list[list[int]]:
    """Each route grown from the busiest stop left, at either end, by the stop with the most demand per added
    metre that keeps it within the length limit (`matrix`: metres between candidates)."""
    left = set(range(len(cands)))
    paths: list[list[int]] = []
    for _ in range(routes):
        if len(left) < 2:
            break
        path = [min(left, key=lambda i: (-cands[i].demand, i))]
        left.discard(path[0])
        length = 0.0
        while True:
            best: tuple[float, int, bool, float] | None = None
            for i in left:
                for at_end in (True, False):
                    add = float(matrix[path[-1] if at_end else path[0], i])
                    if length + add <= limit_m:
                        score = cands[i].demand / (add + 1.0)
                        if best is None or score > best[0]:
                            best = (score, i, at_end, add)
            if best is None:
                break
            _, i, at_end, add = best
            path = path + [i] if at_end else [i] + path
            left.discard(i)
            length += add
        if len(path) < 2:
            break
        paths.append(path)
    return paths


def _routes(
    cands: Sequence[Candidate], paths: Iterable[Sequence[int]], constraints: Constraints, options: PlannerOptions
) -> list[Route]:
    routes: list[Route] = []
    for path in paths:
        if len(path) >= 2:
            demand = sum(cands[i].demand for i in path)
            stops = [cands[i].stop for i in path]
            routes.append(_route(len(routes) + 1, stops, demand, options, constraints.headway_min))
    return routes


def greedy(cands: Sequence[Candidate], constraints: Constraints, options: PlannerOptions) -> list[Route]:
    """The comparison method (and the routing search's first solution): greedy route growing."""
    limit_m = int(route_limit_km(constraints, options) * 1000)
    paths = _greedy_paths(cands, _matrix(cands, options)[1:, 1:], limit_m, constraints.routes)
    return _routes(cands, paths, constraints, options)


def plan_routes(
    demand: Mapping[str, float],
    stops: Sequence[Stop],
    constraints: Constraints,
    options: PlannerOptions | None = None,
    *,
    method: str = "or-tools",
) -> Plan:
    """Night routes for `demand` (cell → late-night count) over `stops`, within `constraints`."""
    options = options or PlannerOptions()
    limit = route_limit_km(constraints, options)
    cands, clusters = candidates(demand, stops, options)
    build = greedy if method == "greedy" else solve
    routes = build(cands, constraints, options)
    if not routes:
        raise PlanError(
            N_("no route of two or more stops fits within {km} km: allow longer routes or a larger fleet"),
            code="no_solution",
            params={"km": round(limit, 1)},
        )
    return Plan(
        routes=routes,
        constraints=constraints,
        options=options,
        candidates=cands,
        clusters=clusters,
        demand_night=float(sum(demand.values())),
        max_km=round(limit, 3),
        method=method,
    )


# -- comparison against the current routes -----------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One network's row of the comparison table."""

    network: str
    routes: int
    stops: int
    km: float
    buses: int
    demand_covered: float
    share: float


def covered(demand: Mapping[str, float], stops: Iterable[Stop], walk_m: float) -> float:
    """Late-night demand of every cell whose centre is within walking distance of one of `stops` (each cell
    once): the measure both networks of a comparison are read by."""
    stops = list(stops)
    if not stops or not demand:
        return 0.0
    cells = list(demand)
    centres = [h3.cell_to_latlng(c) for c in cells]
    plane = _plane(centres)
    dist, _ = cKDTree(_xy(plane, [(s.lat, s.lon) for s in stops])).query(_xy(plane, centres))
    return float(sum(demand[c] for c, d in zip(cells, dist, strict=True) if d <= walk_m))


def baseline_routes(
    baseline: Mapping[str, Sequence[str]], stops: Sequence[Stop], constraints: Constraints, options: PlannerOptions
) -> list[Route]:
    """The analyst's current routes as routes (stop ids in order); refuses stop ids the stop list lacks."""
    by_id = {s.id: s for s in stops}
    unknown = [sid for ids in baseline.values() for sid in ids if sid not in by_id]
    if unknown:
        raise PlanError(
            N_("the baseline names stops the stop list does not have: {ids}"),
            code="baseline_stops",
            params={"ids": ", ".join(unknown[:5])},
        )
    return [
        _route(n, [by_id[sid] for sid in ids], 0.0, options, constraints.headway_min, name)
        for n, (name, ids) in enumerate(baseline.items(), start=1)
    ]


def compare(plan: Plan, demand: Mapping[str, float], baseline: Sequence[Route] | None) -> list[Comparison]:
    """The comparison table: the planned network, and the baseline's when there is one."""

    def row(name: str, routes: Sequence[Route]) -> Comparison:
        served = {s.id: s for r in routes for s in r.stops}
        amount = covered(demand, served.values(), plan.options.walk_m)
        share = amount / plan.demand_night if plan.demand_night else 0.0
        return Comparison(
            name,
            len(routes),
            len(served),
            round(sum(r.km for r in routes), 2),
            sum(r.buses for r in routes),
            round(amount, 1),
            round(share, 4),
        )

    rows = [row("planned", plan.routes)]
    if baseline is not None:
        rows.append(row("baseline", baseline))
    return rows
