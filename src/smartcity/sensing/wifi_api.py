"""Public Wi-Fi routes: status reports in (HTTP batch, an API key holding `sensing.submit`), and for staff
(`sensing.manage`) the access points with their latest status, an access point's history, coverage per
district and the proposed sites (JSON, and GeoJSON/CSV downloads); the coverage page (/staff/sensing/wifi) in
Korean and English. Thin: the rules are in wifi.py and coverage.py."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from smartcity.core.auth import Identity, Require
from smartcity.core.errors import InvalidInput
from smartcity.core.render import Points, render
from smartcity.core.web import language_of
from smartcity.core.web import render as page
from smartcity.sensing import wifi
from smartcity.sensing.api import json_batch

router = APIRouter(tags=["sensing"])
Sender = Annotated[Identity, Depends(Require("sensing.submit"))]
Manager = Annotated[Identity, Depends(Require("sensing.manage"))]
MAX_BODY = 2 * 1024 * 1024
MAX_REPORTS = 20_000
Count = Annotated[int, Query(ge=0, le=wifi.MAX_PROPOSALS, description="proposed sites")]


@router.post("/api/sensing/wifi/status")
async def post_status(request: Request, _sender: Sender) -> dict:
    """Status reports, a JSON array (or one object) of {"access_point": id, "time", "up", "clients"}: each
    stored once (a repeat counts as a duplicate) or refused with its index, code and reason."""
    reports = json_batch(await request.body(), MAX_BODY, MAX_REPORTS, "status reports")
    from starlette.concurrency import run_in_threadpool

    outcome = await run_in_threadpool(wifi.record_status, request.app.state.db, reports, "http")
    return outcome.as_dict()


@router.get("/api/sensing/wifi/access-points")
def access_points(request: Request, _manager: Manager, district: str | None = None) -> dict:
    db = request.app.state.db
    with db.session() as s:
        found = wifi.access_points(s, db, district=district)
        status = wifi.latest_status(s)
    rows = [a.as_dict() | {"status": status.get(a.id)} for a in found]
    return {"access_points": rows, "count": len(rows)}


@router.get("/api/sensing/wifi/access-points/{access_point}/status")
def status_history(
    request: Request,
    access_point: int,
    _manager: Manager,
    start: Annotated[int | None, Query(ge=0, le=2**40, description="epoch seconds; default: a day before end")] = None,
    end: Annotated[int | None, Query(ge=0, le=2**40, description="epoch seconds; default: now")] = None,
) -> dict:
    end = int(time.time()) + 1 if end is None else end
    start = end - 86400 if start is None else start
    with request.app.state.db.session() as s:
        return {"access_point": access_point, "status": wifi.status_history(s, access_point, start, end)}


@router.get("/api/sensing/wifi/coverage")
def coverage(request: Request, _manager: Manager, district: str | None = None, proposals: Count = 0) -> dict:
    """Coverage per district (share of area, share of demand points), the uncovered demand and, with
    `proposals`, the next sites the gap finder proposes."""
    return wifi.coverage_view(
        request.app.state.db, language_of(request), district=district, proposals=proposals
    ).as_dict()


@router.get("/api/sensing/wifi/proposals.{fmt}")
def proposals(request: Request, fmt: str, _manager: Manager, n: Count = 10, district: str | None = None) -> Response:
    """The proposed sites as GeoJSON or CSV (a download)."""
    if fmt not in ("geojson", "csv", "json"):
        raise InvalidInput("the format is geojson, csv or json", code="unknown_format")
    view = wifi.coverage_view(request.app.state.db, language_of(request), district=district, proposals=n)
    return render(request, Points("wifi_proposals", [wifi.proposal_dict(p) for p in view.proposals]), fmt)


@router.get("/staff/sensing/wifi", response_class=HTMLResponse, include_in_schema=False)
def coverage_page(request: Request, _manager: Manager, district: str = "", n: Count = 10) -> HTMLResponse:
    lang = language_of(request)
    db = request.app.state.db
    view = wifi.coverage_view(db, lang, district=district or None, proposals=n)
    return page(
        request,
        "sensing/wifi_coverage.html",
        view=view,
        totals=view.totals(),
        n=n,
        chosen=district,
        all_districts=wifi.district_names(db, lang),
        drawing=wifi.drawing(db, view, district or None),
    )
