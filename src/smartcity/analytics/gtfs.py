"""A plan's routes as a GTFS feed (agency, stops, routes, trips, stop_times, calendar, frequencies, shapes),
zipped: each route runs both ways every `headway` minutes through the night window, 23:30 to 05:30 the next
morning, written as 29:30:00 because GTFS counts a service day's times past midnight on from 24:00."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from smartcity.analytics.planner import Plan, PlannerOptions, Route, Stop, road_km

NIGHT_START_S = 23 * 3600 + 30 * 60
NIGHT_END_S = 29 * 3600 + 30 * 60  # 05:30 the next morning, on the same service day


@dataclass(frozen=True)
class Agency:
    name: str
    url: str
    timezone: str
    lang: str = "ko"
    id: str = "night"


def gtfs_time(seconds: int) -> str:
    """HH:MM:SS with hours past 23 kept (GTFS service-day time)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _offsets(stops: Sequence[Stop], options: PlannerOptions) -> list[tuple[int, float]]:
    """Seconds from the first stop and kilometres travelled at each stop."""
    out = [(0, 0.0)]
    for i in range(1, len(stops)):
        km = out[-1][1] + road_km(stops[i - 1 : i + 1], options)
        # Whole seconds, and at least one per hop, so times never go backwards or repeat.
        seconds = max(out[-1][0] + 1, round(km / options.speed_kmh * 3600))
        out.append((seconds, km))
    return out


def feed_tables(
    routes: Sequence[Route], agency: Agency, options: PlannerOptions, headway_min: int, start: date
) -> dict[str, str]:
    """The feed's files as CSV text, by file name."""
    stops: dict[str, Stop] = {s.id: s for r in routes for s in r.stops}
    tables: dict[str, list[dict[str, object]]] = {
        name: [] for name in ("routes", "trips", "stop_times", "frequencies", "shapes")
    }
    for route in routes:
        route_id = route.name
        tables["routes"].append(
            {
                "route_id": route_id,
                "agency_id": agency.id,
                "route_short_name": route.name,
                "route_long_name": f"{route.stops[0].name} – {route.stops[-1].name}",
                "route_type": 3,
            }
        )
        for direction, ordered in enumerate((route.stops, tuple(reversed(route.stops)))):
            trip_id = f"{route_id}-{direction}"
            shape_id = trip_id
            tables["trips"].append(
                {
                    "route_id": route_id,
                    "service_id": "night",
                    "trip_id": trip_id,
                    "trip_headsign": ordered[-1].name,
                    "direction_id": direction,
                    "shape_id": shape_id,
                }
            )
            for seq, (stop, (offset, km)) in enumerate(zip(ordered, _offsets(ordered, options), strict=True), 1):
                at = gtfs_time(NIGHT_START_S + offset)
                tables["stop_times"].append(
                    {
                        "trip_id": trip_id,
                        "arrival_time": at,
                        "departure_time": at,
                        "stop_id": stop.id,
                        "stop_sequence": seq,
                        "shape_dist_traveled": round(km, 3),
                    }
                )
                tables["shapes"].append(
                    {
                        "shape_id": shape_id,
                        "shape_pt_lat": stop.lat,
                        "shape_pt_lon": stop.lon,
                        "shape_pt_sequence": seq,
                        "shape_dist_traveled": round(km, 3),
                    }
                )
            tables["frequencies"].append(
                {
                    "trip_id": trip_id,
                    "start_time": gtfs_time(NIGHT_START_S),
                    "end_time": gtfs_time(NIGHT_END_S),
                    "headway_secs": headway_min * 60,
                    "exact_times": 1,
                }
            )
    return {
        "agency.txt": _table(
            [
                {
                    "agency_id": agency.id,
                    "agency_name": agency.name,
                    "agency_url": agency.url,
                    "agency_timezone": agency.timezone,
                    "agency_lang": agency.lang,
                }
            ],
            ("agency_id", "agency_name", "agency_url", "agency_timezone", "agency_lang"),
        ),
        "stops.txt": _table(
            [{"stop_id": s.id, "stop_name": s.name, "stop_lat": s.lat, "stop_lon": s.lon} for s in stops.values()],
            ("stop_id", "stop_name", "stop_lat", "stop_lon"),
        ),
        "routes.txt": _table(
            tables["routes"], ("route_id", "agency_id", "route_short_name", "route_long_name", "route_type")
        ),
        "trips.txt": _table(
            tables["trips"], ("route_id", "service_id", "trip_id", "trip_headsign", "direction_id", "shape_id")
        ),
        "stop_times.txt": _table(
            tables["stop_times"],
            ("trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence", "shape_dist_traveled"),
        ),
        "calendar.txt": _table(
            [
                {
                    "service_id": "night",
                    **dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"), 1),
                    "start_date": start.strftime("%Y%m%d"),
                    "end_date": (start + timedelta(days=365)).strftime("%Y%m%d"),
                }
            ],
            (
                "service_id",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
                "start_date",
                "end_date",
            ),
        ),
        "frequencies.txt": _table(
            tables["frequencies"], ("trip_id", "start_time", "end_time", "headway_secs", "exact_times")
        ),
        "shapes.txt": _table(
            tables["shapes"],
            ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence", "shape_dist_traveled"),
        ),
    }


def gtfs_zip(plan: Plan, agency: Agency, start: date | None = None) -> bytes:
    """The plan's routes as a zipped GTFS feed."""
    tables = feed_tables(plan.routes, agency, plan.options, plan.constraints.headway_min, start or date.today())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in tables.items():
            zf.writestr(name, text)
    return out.getvalue()


def write_gtfs(plan: Plan, agency: Agency, path: Path, start: date | None = None) -> Path:
    path.write_bytes(gtfs_zip(plan, agency, start))
    return path
