"""The night route planner's pages for analysts: constraints in, a background run, then the routes on a map with
their stops and served demand, the comparison with the current routes and the downloads (GTFS, GeoJSON, CSV)."""

from __future__ import annotations

import json
import math
import threading
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.datastructures import UploadFile

from smartcity.analytics.planner import Constraints, PlanError, route_limit_km
from smartcity.analytics.planner_run import (
    OUTPUT_FILES,
    RUN_ID,
    agency_of,
    demand_of,
    gazetteer_stops,
    make_plan,
    options_from,
    runs_dir,
    write_outputs,
    write_status,
)
from smartcity.analytics.settings import AnalyticsSettings
from smartcity.core.auth import Identity, Require, verify_csrf
from smartcity.core.errors import InvalidInput, NotFound, SmartCityError
from smartcity.core.i18n import N_
from smartcity.core.web import error_text, language_of, render

router = APIRouter(include_in_schema=False)
Analyst = Annotated[Identity, Depends(Require("analytics.analyse"))]
COLOURS = ("#1d4ed8", "#b91c1c", "#047857", "#7c3aed", "#c2410c", "#0e7490", "#be185d", "#4d7c0f", "#92400e")
MAX_STOPS_FILE = 20 * 1024 * 1024


def _runs_dir(request: Request) -> Path:
    return runs_dir(request.app.state.settings)


def _run_dir(request: Request, run_id: str) -> Path:
    path = _runs_dir(request) / run_id
    if not RUN_ID.match(run_id) or not (path / "status.json").exists():
        raise NotFound(N_("no route plan {id}"), params={"id": run_id})
    return path


def _status(path: Path) -> dict:
    return json.loads((path / "status.json").read_text(encoding="utf-8"))


def _form_page(request: Request, values: dict, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    return render(request, "analytics/planner.html", status_code=status_code, values=values, error=error)


DEFAULTS = {"routes": "9", "max_km": "30", "headway": "40", "fleet": "90", "baseline": ""}


@router.get("/analytics/planner", response_class=HTMLResponse)
def planner_page(request: Request, _analyst: Analyst):
    return _form_page(request, DEFAULTS)


NOT_NUMBERS = N_("the routes, headway and fleet must be whole numbers, and the maximum length a number of km")


def _number(form, name: str, kind: type):
    text = str(form.get(name) or "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise InvalidInput(NOT_NUMBERS, code=name) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(NOT_NUMBERS, code=name)
    return value


@router.post("/analytics/planner", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)])
async def start_plan(request: Request, analyst: Analyst):
    """Check the constraints at once (a refusal names which), then plan in the background."""
    form = await request.form(max_files=2, max_fields=10)
    values = {k: str(form.get(k) or "") for k in DEFAULTS}
    lang = language_of(request)
    settings = request.app.state.settings
    options = options_from(settings.of(AnalyticsSettings))
    try:
        routes = _number(form, "routes", int)
        fleet = _number(form, "fleet", int)
        headway = _number(form, "headway", int)
        if routes is None or fleet is None or headway is None:
            raise InvalidInput(N_("give the number of routes, the headway and the fleet"), code="constraints")
        constraints = Constraints(
            routes=routes, headway_min=headway, fleet=fleet, max_km=_number(form, "max_km", float)
        )
        route_limit_km(constraints, options)
        upload = form.get("stops")
        stops_file = (
            await upload.read(MAX_STOPS_FILE + 1) if isinstance(upload, UploadFile) and upload.filename else b""
        )
        if len(stops_file) > MAX_STOPS_FILE:
            raise InvalidInput(N_("the stop list is larger than 20 MB"), code="stops")
    except (PlanError, InvalidInput) as exc:
        return _form_page(request, values, error_text(exc, lang), status_code=422)
    run_id = uuid.uuid4().hex
    path = _runs_dir(request) / run_id
    path.mkdir(parents=True)
    write_status(path, state="running", owner=analyst.label, constraints=values)
    profile = request.app.state.profile
    baseline = values["baseline"].encode() if values["baseline"].strip() else None
    db = request.app.state.db

    def run() -> None:
        try:
            stops = stops_file or gazetteer_stops(db)
            night = make_plan(demand_of(settings, ("phone",)), stops, profile, constraints, options, baseline)
            write_outputs(night, agency_of(profile, settings.site_url), path)
            (path / "result.json").write_text(json.dumps(_result(night), ensure_ascii=False), encoding="utf-8")
            write_status(path, state="done", owner=analyst.label, constraints=values)
        except SmartCityError as exc:
            write_status(
                path, state="failed", owner=analyst.label, constraints=values, template=exc.template, params=exc.params
            )
        except Exception as exc:  # the page says the run failed instead of spinning for ever
            write_status(path, state="failed", owner=analyst.label, constraints=values, template=str(exc), params={})
            raise

    threading.Thread(target=run, name=f"night-plan-{run_id[:8]}", daemon=True).start()
    return RedirectResponse(f"/analytics/planner/runs/{run_id}", status_code=303)


def _result(night) -> dict:
    served = {c.stop.id: c.demand for c in night.plan.candidates}
    on_routes = {s.id for r in night.plan.routes for s in r.stops}
    return {
        "routes": [
            {
                "name": r.name,
                "colour": COLOURS[i % len(COLOURS)],
                "km": r.km,
                "round_trip_min": r.round_trip_min,
                "buses": r.buses,
                "demand": r.demand,
                "riders": r.riders,
                "stops": [
                    {"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon, "demand": served.get(s.id, 0.0)}
                    for s in r.stops
                ],
            }
            for i, r in enumerate(night.plan.routes)
        ],
        "cells": _hot_cells(night, on_routes),
        "baseline": [
            {"name": r.name, "stops": [{"id": s.id, "lat": s.lat, "lon": s.lon} for s in r.stops]}
            for r in night.baseline or ()
        ],
        "comparison": [c.__dict__ for c in night.comparison],
        "max_km": night.plan.max_km,
    }


def _hot_cells(night, on_routes: set[str]) -> list[dict]:
    """The clustered hot cells as hexagons (lat, lon rings) with their demand, marked when a route's stop serves
    them: what the script's map shades under the routes."""
    import h3

    return [
        {
            "cell": cell,
            "demand": night.demand.get(cell, 0.0),
            "served": c.stop.id in on_routes,
            "ring": [[round(lat, 6), round(lon, 6)] for lat, lon in h3.cell_to_boundary(cell)],
        }
        for c in night.plan.candidates
        for cell in c.cells
    ]


def _map(result: dict, width: int = 360, height: int = 300) -> dict:
    """The routes and their stops projected into the SVG's box (equirectangular around the routes)."""
    points = [(s["lat"], s["lon"]) for r in result["routes"] + result["baseline"] for s in r["stops"]]
    if not points:
        return {"width": width, "height": height, "routes": [], "baseline": []}
    lat0 = sum(p[0] for p in points) / len(points)
    kx = math.cos(math.radians(lat0))
    xs = [p[1] * kx for p in points]
    ys = [p[0] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-6)
    pad = 14
    scale = min((width - 2 * pad) / span, (height - 2 * pad) / span)

    def at(s: dict) -> tuple[float, float]:
        return (
            round(pad + (s["lon"] * kx - min(xs)) * scale, 1),
            round(height - pad - (s["lat"] - min(ys)) * scale, 1),
        )

    top = max((s["demand"] for r in result["routes"] for s in r["stops"]), default=1.0) or 1.0
    routes = [
        {
            "name": r["name"],
            "colour": r.get("colour", COLOURS[i % len(COLOURS)]),
            "path": " ".join(f"{x},{y}" for x, y in map(at, r["stops"])),
            "stops": [{**s, "xy": at(s), "r": round(2 + 6 * math.sqrt(s["demand"] / top), 1)} for s in r["stops"]],
        }
        for i, r in enumerate(result["routes"])
    ]
    baseline = [
        {"name": r["name"], "path": " ".join(f"{x},{y}" for x, y in map(at, r["stops"]))} for r in result["baseline"]
    ]
    return {"width": width, "height": height, "routes": routes, "baseline": baseline}


@router.get("/analytics/planner/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, _analyst: Analyst):
    path = _run_dir(request, run_id)
    status = _status(path)
    result = map_ = error = None
    if status["state"] == "done":
        result = json.loads((path / "result.json").read_text(encoding="utf-8"))
        map_ = _map(result)
    elif status["state"] == "failed":
        error = error_text(SmartCityError(status["template"], params=status["params"]), language_of(request))
    return render(
        request,
        "analytics/planner_run.html",
        run_id=run_id,
        status=status,
        result=result,
        map=map_,
        error=error,
        files=OUTPUT_FILES,
    )


@router.get("/analytics/planner/runs/{run_id}/{name}")
def run_file(request: Request, run_id: str, name: str, _analyst: Analyst):
    path = _run_dir(request, run_id)
    # result.json: what the page's script draws on the city map (routes, stops, hot cells).
    if name not in (*OUTPUT_FILES, "result.json") or not (path / name).exists():
        raise NotFound(N_("no route plan {id}"), params={"id": run_id})
    media = {
        "gtfs.zip": "application/zip",
        "routes.geojson": "application/geo+json",
        "comparison.csv": "text/csv",
        "result.json": "application/json",
    }
    return FileResponse(path / name, media_type=media[name], filename=name)
