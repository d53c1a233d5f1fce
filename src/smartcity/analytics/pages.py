"""The analyst's pages: the saved analyses with a form for a new one (kinds of data, hours, days), and a run's
page — its progress, the hot spots on the city map with an hour slider, demand per hour as an SVG plot, and
downloads. Rendering only: every rule is in service.py."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from smartcity.analytics import service
from smartcity.analytics.engine import KINDS
from smartcity.core.auth import Identity, Require
from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import N_, translate
from smartcity.core.web import language_of, render

router = APIRouter(include_in_schema=False)
Analyst = Annotated[Identity, Depends(Require("analytics.analyse"))]
KIND_LABELS = {"phone": N_("Phone activity"), "taxi": N_("Taxi trips"), "boardings": N_("Bus boardings")}
DAY_LABELS = {"all": N_("Every day"), "weekday": N_("Weekdays"), "weekend": N_("Weekends")}
CLASS_LABELS = {
    "hot_99": N_("Hot spot (99%)"),
    "hot_95": N_("Hot spot (95%)"),
    "hot_90": N_("Hot spot (90%)"),
    "not_significant": N_("Not significant"),
    "cold_90": N_("Cold spot (90%)"),
    "cold_95": N_("Cold spot (95%)"),
    "cold_99": N_("Cold spot (99%)"),
}


@router.get("/analytics", response_class=HTMLResponse)
def home(request: Request, who: Analyst, error: str = ""):
    return render(
        request,
        "analytics/home.html",
        analyses=service.analyses(request.app.state.db, who),
        kinds=KINDS,
        kind_labels=KIND_LABELS,
        day_labels=DAY_LABELS,
        error=error,
    )


@router.post("/analytics")
async def create(request: Request, who: Analyst):
    form = await request.form()
    try:
        hours = [int(h) for h in form.getlist("hours")]
        rerun = str(form.get("rerun_hours") or "").strip()
        spec = service.AnalysisSpec(
            name=str(form.get("name") or ""),
            kinds=[str(k) for k in form.getlist("kinds")],
            hours=hours,
            day_type=str(form.get("day_type") or "all"),
            shared=form.get("shared") == "on",
            rerun_hours=int(rerun) if rerun else None,
            start=str(form.get("start") or ""),
            end=str(form.get("end") or ""),
        )
        db = request.app.state.db
        analysis = service.save(db, who, spec)
    except (InvalidInput, ValueError) as exc:
        message = exc.message if isinstance(exc, InvalidInput) else "hours: whole numbers"
        return home(request, who, error=message)
    run = service.start_run(db, request.app.state.context.settings, who, analysis)
    return RedirectResponse(f"/analytics/runs/{run}", status_code=303)


@router.post("/analytics/analyses/{analysis_id}/runs")
def rerun(request: Request, analysis_id: int, who: Analyst):
    run = service.start_run(request.app.state.db, request.app.state.context.settings, who, analysis_id)
    return RedirectResponse(f"/analytics/runs/{run}", status_code=303)


@router.get("/analytics/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: int, who: Analyst):
    db = request.app.state.db
    status = service.run_status(db, who, run_id)
    rows = service.results(db, who, run_id) if status["status"] == "done" else []
    counts = {}
    for r in rows:
        counts[r["significance"]] = counts.get(r["significance"], 0) + 1
    hourly = service.hourly(db, request.app.state.context.settings, who, run_id) if rows else []
    return render(
        request,
        "analytics/run.html",
        run=status,
        rows=rows,
        counts=counts,
        class_labels=CLASS_LABELS,
        plot=hour_plot(hourly, translate(language_of(request), "Demand per hour")),
        hours=sorted({h["hour"] for h in hourly}),
    )


def hour_plot(hourly: list[dict], label: str, width: int = 360, height: int = 140) -> str:
    """Demand per local hour as a bar chart in SVG (drawn on the server: no chart script to load)."""
    totals = [0] * 24
    for h in hourly:
        totals[h["hour"]] += h["count"]
    top = max(totals) or 1
    bar = width / 24
    parts = [
        f'<svg viewBox="0 0 {width} {height + 16}" role="img" aria-label="{escape(label)}" class="hour-plot" xmlns="http://www.w3.org/2000/svg">'
    ]
    for hour, total in enumerate(totals):
        tall = (height - 4) * total / top
        parts.append(
            f'<rect x="{hour * bar + 1:.1f}" y="{height - tall:.1f}" width="{bar - 2:.1f}" height="{tall:.1f}" '
            f'fill="#1d4ed8" data-hour="{hour}" data-count="{total}"><title>{hour}: {total}</title></rect>'
        )
        if hour % 3 == 0:
            parts.append(
                f'<text x="{hour * bar + bar / 2:.1f}" y="{height + 13}" font-size="10" '
                f'text-anchor="middle">{hour}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def _trend_rows(
    request: Request, period: str, window: int, category: str, district: str, start: str = "", end: str = ""
):
    from smartcity.analytics import trends

    events = trends.events_within(trends.report_events(request.app.state.db), *trends.period_of(start, end))
    rows = trends.series(events, period=period, window=window, category=category, district=district)
    return trends, events, rows


SOURCE_LABELS = {
    "reports": N_("Citizens' reports"),
    "incidents": N_("Safety incidents"),
    "pm25": N_("Ultrafine dust (PM2.5, daily mean)"),
}


@dataclass
class PeriodQuery:
    """Which daily series: the source, a category and the period (local days, both included, either open)."""

    source: str = "reports"
    category: str = ""
    start: str = ""
    end: str = ""


@dataclass
class DaysQuery(PeriodQuery):
    """A daily series of one district, or of all of them added up (`district` empty)."""

    district: str = ""


Period = Annotated[PeriodQuery, Depends()]
Days = Annotated[DaysQuery, Depends()]


def _period_days(request: Request, q: PeriodQuery):
    """The source's rows in the period (a person's source withheld under k, `trends.source_days`)."""
    from smartcity.analytics import trends

    return trends.within(trends.source_days(request.app.state.db, q.source), *trends.period_of(q.start, q.end))


def _days(request: Request, q: DaysQuery):
    from smartcity.analytics import trends

    days = _period_days(request, q)
    # PM2.5 is one quantity: the reports' and incidents' categories do not apply.
    category = "" if q.source == "pm25" else q.category
    found = trends.decompose(days, how=trends.SOURCES[q.source], category=category, district=q.district)
    return trends, days, found


def _nothing_recorded(q: PeriodQuery) -> InvalidInput:
    # An empty file would read as "nothing happened"; the period may simply be outside the data.
    return InvalidInput(
        f"nothing of {q.source} was recorded between {q.start or 'the first day'} and {q.end or 'the last day'}",
        code="empty_period",
    )


@router.get("/analytics/trends", response_class=HTMLResponse)
def trends_page(request: Request, who: Analyst, q: Days, period: str = "week", window: int = 4):
    lang = language_of(request)
    source, category, district, start, end = q.source, q.category, q.district, q.start, q.end
    try:
        trends, days, daily = _days(request, q)
        rows: list[dict] = []
        grid = None
        if source == "reports":
            _, events, rows = _trend_rows(request, period, window, category, district, start, end)
            grid = trends.profile(events, category=category, district=district)
    except InvalidInput as exc:
        return HTMLResponse(escape(exc.message), status_code=422)
    weekdays = [translate(lang, d) for d in WEEKDAYS]
    # The choices name only what is published: a district or kind whose every count is withheld is not offered.
    shown = days[days["value"].notna()]
    k = trends.k_anonymity(request.app.state.db) if source in trends.PERSONAL else None
    return render(
        request,
        "analytics/trends.html",
        source=source,
        sources=SOURCE_LABELS,
        rows=rows,
        daily=daily["rows"],
        weekly=daily["weekly"],
        period=period,
        window=window,
        category=category,
        district=district,
        start=start,
        end=end,
        empty_period=bool(start or end) and not daily["rows"],
        categories=sorted(set(shown["category"])) if source != "pm25" else [],
        districts=sorted(d for d in set(shown["district"]) if d),
        k=k,
        withheld_days=sum(1 for r in daily["rows"] if r["suppressed"]),
        series_svg=trends.series_plot(rows, translate(lang, "Reports per period and their rolling mean"))
        if rows
        else "",
        profile_svg=trends.profile_plot(grid, translate(lang, "Reports per weekday and hour"), weekdays)
        if grid is not None
        else "",
        days_svg=trends.days_plot(
            daily["rows"],
            translate(lang, "Per day, with the trend (7-day centred mean)"),
            translate(lang, "withheld: fewer than {k}", k=k) if k else "",
        ),
        weekly_svg=trends.weekly_plot(daily["weekly"], translate(lang, "The weekly season"), weekdays)
        if daily["weekly"]
        else "",
    )


@router.get("/analytics/trends.csv")
def trends_csv(
    request: Request,
    who: Analyst,
    period: str = "week",
    window: int = 4,
    category: str = "",
    district: str = "",
    start: str = "",
    end: str = "",
):
    from fastapi.responses import Response

    try:
        trends, _, rows = _trend_rows(request, period, window, category, district, start, end)
    except InvalidInput as exc:
        return HTMLResponse(escape(exc.message), status_code=422)
    return Response(
        trends.series_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="report-trends.csv"'},
    )


@router.get("/analytics/trends/days.csv")
def trend_days_csv(request: Request, who: Analyst, q: Days):
    """The daily series of a source with its trend, weekly season and residual."""
    return _days_file(request, q, "csv")


@router.get("/analytics/trends/days.parquet")
def trend_days_parquet(request: Request, who: Analyst, q: Days):
    """The same daily series as typed Parquet."""
    return _days_file(request, q, "parquet")


@router.get("/analytics/trends/days.geojson")
def trend_days_geojson(request: Request, who: Analyst, q: Period):
    """The daily series of every district on its polygon, the values as properties."""
    from fastapi.responses import JSONResponse

    from smartcity.analytics import trends
    from smartcity.core.geo import geo_index

    db = request.app.state.db
    try:
        days = _period_days(request, q)
        if (q.start or q.end) and days.empty:
            raise _nothing_recorded(q)
    except InvalidInput as exc:
        return HTMLResponse(escape(exc.message), status_code=422)
    shapes = geo_index(db).districts_geojson(language_of(request))
    body = trends.days_geojson(
        days,
        shapes,
        how=trends.SOURCES[q.source],
        category="" if q.source == "pm25" else q.category,
        source=q.source,
        period=(q.start, q.end),
        k=trends.k_anonymity(db) if q.source in trends.PERSONAL else None,
    )
    return JSONResponse(
        body,
        media_type="application/geo+json",
        headers={"Content-Disposition": f'attachment; filename="{q.source}-days.geojson"'},
    )


def _days_file(request: Request, q: DaysQuery, fmt: str):
    from fastapi.responses import Response

    try:
        trends, _, found = _days(request, q)
        if (q.start or q.end) and not found["rows"]:
            raise _nothing_recorded(q)
    except InvalidInput as exc:
        return HTMLResponse(escape(exc.message), status_code=422)
    if fmt == "csv":
        body, media = trends.days_csv(found["rows"]), "text/csv; charset=utf-8"
    else:
        body, media = trends.days_parquet(found["rows"]), "application/vnd.apache.parquet"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{q.source}-days.{fmt}"'}
    )
