"""JSON routes of the analytics module (analysts): save an analysis, run it, follow its progress, take its cells
as JSON, GeoJSON (H3 hexagons), CSV or Parquet, publish it to the open data catalogue."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated

import h3
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from smartcity.analytics import service
from smartcity.core.auth import Identity, Require
from smartcity.core.errors import InvalidInput
from smartcity.core.web import body_of

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
Analyst = Annotated[Identity, Depends(Require("analytics.analyse"))]
AnalysisBody = body_of(service.AnalysisSpec)
FORMATS = ("json", "geojson", "csv", "parquet")


@router.get("/analyses")
def list_analyses(request: Request, who: Analyst) -> list[dict]:
    """The caller's analyses and the shared ones, newest first, each with its latest run."""
    return service.analyses(request.app.state.db, who)


@router.post("/analyses", status_code=201)
def save_analysis(request: Request, body: AnalysisBody, who: Analyst) -> dict:  # type: ignore[valid-type]
    """Save an analysis: hot spots of the demand of `kinds` over local `hours` on `day_type` days."""
    return {"id": service.save(request.app.state.db, who, service.AnalysisSpec(**body.model_dump()))}


@router.post("/analyses/{analysis_id}/runs", status_code=202)
def run_analysis(request: Request, analysis_id: int, who: Analyst) -> dict:
    """Start a run in the background; follow it at /api/analytics/runs/{id}."""
    db = request.app.state.db
    return {"run": service.start_run(db, request.app.state.context.settings, who, analysis_id)}


@router.post("/analyses/{analysis_id}/publication")
def publish(request: Request, analysis_id: int, who: Analyst, published: bool = True) -> dict:
    """Publish (or withdraw) the analysis's latest result as open data: aggregated, suppressed cells only."""
    service.set_published(request.app.state.db, who, analysis_id, published)
    return {"published": published}


@router.get("/runs/{run_id}")
def run_status(request: Request, run_id: int, who: Analyst) -> dict:
    return service.run_status(request.app.state.db, who, run_id)


@router.get("/runs/{run_id}/hourly.json")
def run_hourly(request: Request, run_id: int, who: Analyst) -> list[dict]:
    """Demand per cell and local hour of the run's analysis (cell-hours under k records left out)."""
    return service.hourly(request.app.state.db, request.app.state.context.settings, who, run_id)


@router.get("/runs/{run_id}/cells.{fmt}")
def run_cells(request: Request, run_id: int, fmt: str, who: Analyst) -> Response:
    """A run's cells (cell, count, z, p, significance) as json, geojson (hexagons), csv or parquet."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format: one of {', '.join(FORMATS)}", code="invalid_format")
    db = request.app.state.db
    rows = service.results(db, who, run_id)
    status = service.run_status(db, who, run_id)
    period = {"start": status["start"], "end": status["end"]}
    name = f"analytics-run-{run_id}"
    if fmt == "json":
        return JSONResponse(rows)
    if fmt == "geojson":
        return JSONResponse(geojson(rows, period), media_type="application/geo+json")
    # The period goes with every row: a file passed on alone still says which days it counts.
    dated = [{**r, "period_start": period["start"], "period_end": period["end"]} for r in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "period_start", "period_end"])
        writer.writeheader()
        writer.writerows(dated)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    import pyarrow as pa
    import pyarrow.parquet as pq

    for r in dated:
        r["period_start"] = date.fromisoformat(r["period_start"]) if r["period_start"] else None
        r["period_end"] = date.fromisoformat(r["period_end"]) if r["period_end"] else None
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(dated, schema=_SCHEMA()), sink)
    return Response(
        sink.getvalue(),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{name}.parquet"'},
    )


COLUMNS = ["cell", "count", "z", "p", "significance"]


def _SCHEMA():  # noqa: N802 - built on first use: pyarrow is not imported with the app
    import pyarrow as pa

    return pa.schema(
        [
            ("cell", pa.string()),
            ("count", pa.int64()),
            ("z", pa.float64()),
            ("p", pa.float64()),
            ("significance", pa.string()),
            ("period_start", pa.date32()),
            ("period_end", pa.date32()),
        ]
    )


def geojson(rows: list[dict], period: dict | None = None) -> dict:
    """Cells as GeoJSON polygons (their H3 hexagon, lon/lat), the other columns as properties; the analysis's
    period (local days, None: open) as the collection's member `period`."""
    features = []
    for r in rows:
        ring = [[lon, lat] for lat, lon in h3.cell_to_boundary(r["cell"])]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
                "properties": r,
            }
        )
    collection: dict = {"type": "FeatureCollection", "features": features}
    if period is not None:
        collection["period"] = period
    return collection
