"""The night route planner's pages for analysts: constraints in, a background run, then the routes on a map with
their stops and served demand, the comparison with the current routes and the downloads (GTFS, GeoJSON, CSV)."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from smartcity.analytics import planner_job
from smartcity.analytics.planner import Constraints, PlanError, route_limit_km
from smartcity.analytics.planner_job import COLOURS
from smartcity.analytics.planner_run import (
    OUTPUT_FILES,
    RUN_ID,
    checked_inputs,
    gazetteer_stops,
    options_from,
    runs_dir,
)
from smartcity.analytics.settings import AnalyticsSettings
from smartcity.core.auth import Identity, Require, verify_csrf
from smartcity.core.context import context_of
from smartcity.core.errors import InvalidInput, NotFound, SmartCityError
from smartcity.core.i18n import N_, translate
from smartcity.core.web import error_text, language_of, render

router = APIRouter(include_in_schema=False)
Analyst = Annotated[Identity, Depends(Require("analytics.analyse"))]
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


def _form_page(
    request: Request, values: dict, error: str | None = None, status_code: int = 200, running: dict | None = None
) -> HTMLResponse:
    return render(
        request, "analytics/planner.html", status_code=status_code, values=values, error=error, running=running
    )


BUSY = N_("A route plan is being made; start another when it has finished.")


def _running(request: Request, run_id: str) -> dict | None:
    """What a refused analyst is told of the run holding the planner: its link, who asked for it, when (the
    city's local time), its constraints, its step and progress. Only the id when its status cannot be read."""
    if not RUN_ID.match(run_id or ""):
        return None
    try:
        status = _status(_runs_dir(request) / run_id)
    except (OSError, ValueError):
        return {"id": run_id}
    started = ""
    if status.get("started"):
        zone = ZoneInfo(context_of(request.app.state.db).profile.timezone)
        started = datetime.fromtimestamp(status["started"], zone).strftime("%Y-%m-%d %H:%M")
    return {
        "id": run_id,
        "owner": status.get("owner", ""),
        "started": started,
        "constraints": status.get("constraints") or {},
        "step": STEPS.get(status.get("step", ""), STEPS["start"]),
        "percent": round(100 * float(status.get("progress") or 0)),
    }


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
    baseline = values["baseline"].encode() if values["baseline"].strip() else None
    try:
        if not stops_file:
            stops_file = await run_in_threadpool(gazetteer_stops, request.app.state.db)
        profile = context_of(request.app.state.db).profile
        await run_in_threadpool(checked_inputs, stops_file, profile, constraints, options, baseline)
        run_id = uuid.uuid4().hex
        job = planner_job.job_of(analyst.label, values, constraints, options)
        await run_in_threadpool(planner_job.start, settings, _runs_dir(request) / run_id, job, stops_file, baseline)
    except planner_job.Busy as busy:
        return _form_page(
            request, values, translate(lang, BUSY), status_code=409, running=_running(request, busy.run_id)
        )
    except (PlanError, InvalidInput) as exc:
        return _form_page(request, values, error_text(exc, lang), status_code=422)
    return RedirectResponse(f"/analytics/planner/runs/{run_id}", status_code=303)


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


LOST = N_("the planning process ended before it finished")
STEPS = {
    "start": N_("Starting"),
    "demand": N_("Reading the late-night demand"),
    "search": N_("Searching for routes"),
    "files": N_("Writing the GTFS feed and the files"),
}


@router.get("/analytics/planner/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, _analyst: Analyst):
    path = _run_dir(request, run_id)
    status = _status(path)
    if status["state"] in planner_job.WORKING and not planner_job.is_alive(_runs_dir(request), run_id):
        status = {**status, "state": "failed", "template": LOST, "params": {}}
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
        step=STEPS.get(status.get("step", ""), STEPS["start"]),
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
        "routes.parquet": "application/vnd.apache.parquet",
        "comparison.csv": "text/csv",
        "result.json": "application/json",
    }
    return FileResponse(path / name, media_type=media[name], filename=name)
