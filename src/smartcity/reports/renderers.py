"""How Community Mapping's read models are rendered, registered with core.render through the module's
declaration: a page of reports (JSON, GeoJSON pins: only what a pin shows), reports as points (GeoJSON
with each pin's colour and page, CSV), the dashboard (JSON). Routes build the read model once and call
`render`; the pages' HTML renderings (templates in the page chrome) are in pages_common."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from smartcity.core.render import MEDIA_TYPES, feature_collection, json_response
from smartcity.core.web import language_of
from smartcity.reports.dashboard import Dashboard, dashboard_view
from smartcity.reports.queries import ReportPage
from smartcity.reports.views import ReportPoints, pin_view, public_view

STATUS_COLOURS = {
    "open": "#dc2626",
    "acknowledged": "#ea580c",
    "in_progress": "#ca8a04",
    "fixed": "#16a34a",
    "closed": "#4b5563",
    "duplicate": "#9ca3af",
    "not_responsible": "#7c3aed",
    "referred": "#2563eb",
}


def page_json(page: ReportPage, language: str) -> dict:
    return {
        "items": [public_view(r, language) for r in page.items],
        "page": page.page,
        "page_size": page.page_size,
        "has_more": page.has_more,
        "total": page.total,
    }


def page_json_response(request: Request, page: ReportPage) -> Response:
    return json_response(page_json(page, language_of(request)))


def page_geojson(request: Request, page: ReportPage) -> Response:
    """A page of reports as a map's pins: each pin's popup and its point, no more (`pin_view`)."""
    language = language_of(request)
    pins = ReportPoints("reports", [pin_view(r, language) for r in page.items], extra={"truncated": page.has_more})
    return points_geojson(request, pins)


def points_geojson(request: Request, points: ReportPoints) -> Response:
    collection = feature_collection(points)
    for feature in collection["features"]:
        properties = feature["properties"]
        properties["colour"] = STATUS_COLOURS.get(properties["status"], "#111827")
        properties["url"] = f"/reports/{feature['id']}"
    return json_response(
        collection, MEDIA_TYPES["geojson"], {"Content-Disposition": f'inline; filename="{points.name}.geojson"'}
    )


def dashboard_json(request: Request, d: Dashboard) -> Response:
    return json_response(dashboard_view(d, language_of(request)))
