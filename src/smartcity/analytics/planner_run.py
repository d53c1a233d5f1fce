"""A night route plan from the imported demand, and its renderings: routes as GeoJSON and as typed Parquet (a
row per route stop), the comparison table as CSV and the GTFS feed. The CLI and the planner page both run it;
nothing is written unless the whole plan was made (the files land together, or none does)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from smartcity.analytics.gtfs import Agency, gtfs_zip
from smartcity.analytics.planner import (
    Comparison,
    Constraints,
    Plan,
    PlanError,
    PlannerOptions,
    Route,
    Stop,
    baseline_routes,
    check_inside,
    compare,
    night_demand,
    plan_routes,
    read_baseline,
    read_stops,
)
from smartcity.analytics.settings import AnalyticsSettings, data_dir
from smartcity.core.city import CityProfile
from smartcity.core.i18n import N_

OUTPUT_FILES = ("routes.geojson", "routes.parquet", "comparison.csv", "gtfs.zip")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class NightPlan:
    plan: Plan
    comparison: list[Comparison]
    baseline: list[Route] | None
    demand: dict[str, float]


def options_from(analytics: AnalyticsSettings, **overrides) -> PlannerOptions:
    """The planner's model of the city as the deployment's settings give it."""
    values = {
        "road_factor": analytics.road_factor,
        "speed_kmh": analytics.night_speed_kmh,
        "layover_min": analytics.layover_min,
        "capture_rate": analytics.capture_rate,
        "time_limit_s": analytics.planner_seconds,
    }
    return PlannerOptions(**{**values, **overrides})


def demand_of(settings, kinds: Iterable[str]) -> dict[str, float]:
    """Late-night demand per cell (hours 0–5, both day types) of the imported kinds, small counts suppressed."""
    from smartcity.analytics.cells import demand

    found = demand(settings, tuple(kinds), range(0, 6))
    return night_demand(zip(found["cell"], found["hour"], found["count"], strict=True))


def gazetteer_stops(db) -> bytes:
    """The bus stops of the city's gazetteer (`smartcity import places`) as a stop list."""
    from sqlalchemy import select

    from smartcity.core.places import Place

    with db.session() as s:
        rows = s.execute(select(Place.ref, Place.name_ko, Place.lat, Place.lon).where(Place.kind == "bus_stop")).all()
    if not rows:
        raise PlanError(
            N_("the city has no bus stops yet: import the stop list (smartcity import places) or upload one"),
            code="no_stops",
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("id", "name", "lat", "lon"))
    writer.writerows(rows)
    return out.getvalue().encode()


def checked_inputs(
    stops_file: bytes,
    profile: CityProfile,
    constraints: Constraints,
    options: PlannerOptions,
    baseline_file: bytes | None = None,
) -> tuple[list[Stop], list[Route] | None]:
    """The stop list and the baseline's routes, or the PlanError/InvalidInput that names what is wrong with
    them: the page asks before it starts a run, so a bad file is refused on the form, not by a failed run."""
    stops = read_stops(stops_file)
    check_inside(stops, profile.bbox)
    baseline_ids = read_baseline(baseline_file) if baseline_file else None
    base = baseline_routes(baseline_ids, stops, constraints, options) if baseline_ids else None
    return stops, base


def make_plan(
    demand: dict[str, float],
    stops_file: bytes,
    profile: CityProfile,
    constraints: Constraints,
    options: PlannerOptions,
    baseline_file: bytes | None = None,
) -> NightPlan:
    """Every check first (stops inside the city, the baseline's stops known, the constraints), then the plan."""
    stops, base = checked_inputs(stops_file, profile, constraints, options, baseline_file)
    plan = plan_routes(demand, stops, constraints, options)
    return NightPlan(plan, compare(plan, demand, base), base, demand)


def routes_geojson(night: NightPlan) -> dict:
    """Each route as a line with its figures, and each of its stops as a point with the demand it serves."""
    served = {c.stop.id: c.demand for c in night.plan.candidates}
    features: list[dict] = []
    for route in night.plan.routes:
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[s.lon, s.lat] for s in route.stops]},
                "properties": {
                    "kind": "route",
                    "route": route.name,
                    "km": route.km,
                    "round_trip_min": route.round_trip_min,
                    "buses": route.buses,
                    "headway_min": night.plan.constraints.headway_min,
                    "demand": route.demand,
                    "riders": route.riders,
                    "stops": [s.id for s in route.stops],
                },
            }
        )
        features += [_stop_feature(s, route.name, served.get(s.id, 0.0), n) for n, s in enumerate(route.stops, 1)]
    for route in night.baseline or ():
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[s.lon, s.lat] for s in route.stops]},
                "properties": {"kind": "baseline", "route": route.name, "km": route.km, "buses": route.buses},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _stop_feature(stop: Stop, route: str, demand: float, order: int) -> dict:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [stop.lon, stop.lat]},
        "properties": {
            "kind": "stop",
            "route": route,
            "order": order,
            "id": stop.id,
            "name": stop.name,
            "demand": demand,
        },
    }


def _parquet_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("network", pa.string()),  # planned | baseline
            ("route", pa.string()),
            ("stop_order", pa.int32()),  # from 1, along the route
            ("stop_id", pa.string()),
            ("stop_name", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("stop_demand", pa.float64()),  # late-night demand the stop serves; null on the baseline
            ("route_km", pa.float64()),
            ("round_trip_min", pa.float64()),
            ("buses", pa.int32()),
            ("headway_min", pa.int32()),
            ("route_demand", pa.float64()),
            ("riders", pa.float64()),
        ]
    )


def routes_parquet(night: NightPlan) -> bytes:
    """One row per stop of each route (planned, then the baseline), with its route's figures: the GeoJSON's
    content as a typed table. Demand comes from cells counted from k records or more only (`demand_of`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    served = {c.stop.id: c.demand for c in night.plan.candidates}
    headway = night.plan.constraints.headway_min
    rows = []
    for network, routes in (("planned", night.plan.routes), ("baseline", night.baseline or ())):
        for route in routes:
            for order, stop in enumerate(route.stops, 1):
                rows.append(
                    {
                        "network": network,
                        "route": route.name,
                        "stop_order": order,
                        "stop_id": stop.id,
                        "stop_name": stop.name,
                        "lat": stop.lat,
                        "lon": stop.lon,
                        "stop_demand": served.get(stop.id, 0.0) if network == "planned" else None,
                        "route_km": route.km,
                        "round_trip_min": route.round_trip_min,
                        "buses": route.buses,
                        "headway_min": headway,
                        "route_demand": route.demand,
                        "riders": route.riders,
                    }
                )
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=_parquet_schema()), sink)
    return sink.getvalue()


def comparison_csv(rows: list[Comparison]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(Comparison.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return out.getvalue()


def agency_of(profile: CityProfile, url: str) -> Agency:
    return Agency(name=profile.name(profile.language), url=url, timezone=profile.timezone, lang=profile.language)


def write_outputs(night: NightPlan, agency: Agency, out: Path) -> list[Path]:
    """routes.geojson, routes.parquet, comparison.csv and gtfs.zip in `out`: made in a folder beside it, then
    moved in, so a failure leaves `out` as it was."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "routes.geojson": json.dumps(routes_geojson(night), ensure_ascii=False).encode(),
        "routes.parquet": routes_parquet(night),
        "comparison.csv": comparison_csv(night.comparison).encode(),
        "gtfs.zip": gtfs_zip(night.plan, agency),
    }
    staging = Path(tempfile.mkdtemp(prefix=".plan-", dir=out))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        for name in files:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / name for name in OUTPUT_FILES]


def runs_dir(settings) -> Path:
    """Where the planner page keeps its runs, one folder each (status.json, result.json and the outputs)."""
    return data_dir(settings, settings.of(AnalyticsSettings)) / "plans"


def write_status(path: Path, **status) -> None:
    """A run's status.json, replaced whole (a reader never sees half of it); its time is the run's last change."""
    tmp = path / "status.json.tmp"
    tmp.write_text(json.dumps(status, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path / "status.json")


def prune_runs(settings, now: float | None = None) -> list[str]:
    """Delete the page's runs whose last change (status.json: started, done or failed) is older than the
    retention setting. A run still "running" that old lost its process long ago, so it goes too. Only folders
    named like a run are touched."""
    keep_s = settings.of(AnalyticsSettings).planner_keep_days * 86_400
    cutoff = (time.time() if now is None else now) - keep_s
    root = runs_dir(settings)
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.iterdir()):
        status = path / "status.json"
        if not (path.is_dir() and RUN_ID.match(path.name)):
            continue
        changed = status.stat().st_mtime if status.exists() else path.stat().st_mtime
        if changed < cutoff:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed
