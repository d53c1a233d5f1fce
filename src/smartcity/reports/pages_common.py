"""What the Community Mapping pages share: the page chrome, the pages' read models and their renderings
(HTML through a template, and the data twins), the form body, the reporter's remembered tokens, the
service's errors as messages by field, the category picker.

A page handler builds its read model once and returns `render(request, model, default="html")`; the
renderers registered for the model's type (the module's declaration) write it as the page or as its
`.json`/`.geojson`/`.csv` twin, so no handler chooses between them."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import h3
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import object_session
from starlette.datastructures import FormData

from smartcity.core.auth import Identity, resolve_identity
from smartcity.core.db import from_store
from smartcity.core.errors import SmartCityError
from smartcity.core.geo import geo_index
from smartcity.core.i18n import N_
from smartcity.core.render import json_response, part, template
from smartcity.core.web import gettext, language_of, render
from smartcity.reports import directory
from smartcity.reports import service as S
from smartcity.reports.renderers import STATUS_COLOURS, dashboard_json, page_geojson, page_json_response
from smartcity.reports.views import ReportPoints

THEME_COLOURS = {"accessible": "#7c3aed", "school": "#ea580c", "green": "#15803d", "safety": "#b91c1c"}


MAX_REMEMBERED = 20  # reports whose feedback token a browser keeps in its session


async def form_data(request: Request) -> FormData:
    """The posted form (cached by Starlette, so verify_csrf and the handler read it once)."""
    return await request.form()


Form = Annotated[FormData, Depends(form_data)]


def identity_of(request: Request) -> Identity:
    return resolve_identity(request)


def translated(request: Request, message: str) -> str:
    return gettext(language_of(request), message)


def campaign_card(camp, lang: str) -> dict:
    """A campaign for pages, with its theme as a colour (a hex colour, or a named theme, else teal)."""
    view = S.campaign_view(camp, lang)
    theme = (view["theme"] or "").strip()
    ok = re.fullmatch(r"#[0-9a-fA-F]{6}", theme)
    view["colour"] = theme if ok else THEME_COLOURS.get(theme, "#0f766e")
    return view


def _when(request: Request):
    """A formatter of ISO times in the city's time zone, for templates."""
    tz = request.app.state.profile.tz

    def fmt(value: Any, date_only: bool = False) -> str:
        if not value:
            return ""
        return from_store(value).astimezone(tz).strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M")

    return fmt


def page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    return render(
        request,
        f"reports/{template}",
        status_code=status_code,
        when=_when(request),
        status_colours=STATUS_COLOURS,
        status_name=lambda st: S.status_name(st, language_of(request)),
        **context,
    )


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def districts(request: Request) -> list[dict]:
    lang = language_of(request)
    return [{"code": a.code, "name": a.name(lang)} for a in geo_index(request.app.state.db).districts]


def district_names(request: Request) -> dict[str, str]:
    return {d["code"]: d["name"] for d in districts(request)}


def fingerprint(request: Request) -> str:
    """An anonymous browser's stable random id (in its signed session): supports count once per browser."""
    fp = request.session.get("fp")
    if not fp:
        fp = request.session["fp"] = secrets.token_urlsafe(16)
    return fp


def remember_token(request: Request, report_id: int, token: str) -> None:
    tokens = dict(request.session.get("report_tokens") or {})
    tokens[str(report_id)] = token
    request.session["report_tokens"] = dict(list(tokens.items())[-MAX_REMEMBERED:])


def token_for(request: Request, report_id: int) -> str | None:
    return request.query_params.get("token") or (request.session.get("report_tokens") or {}).get(str(report_id))


# --- error messages ---------------------------------------------------------------------------------------

# English msgids (translated by the catalogue) for the service's error codes.
ERROR_TEXT = {
    "required": N_("This is required."),
    "too_long": N_("This is too long."),
    "invalid_email": N_("This is not an email address."),
    "invalid_phone": N_("This is not a phone number."),
    "unknown_category": N_("Choose a category from the list."),
    "outside_city": N_("This place is outside the city. Move the pin inside the city limits."),
    "invalid_coordinates": N_("Place the pin on the map (or enter a latitude and longitude)."),
    "missing_attribute": N_("This is required for the chosen category."),
    "invalid_attribute": N_("This value is not valid."),
    "not_an_image": N_("Only JPEG, PNG or WebP photos are accepted."),
    "photo_too_large": N_("A photo is too large."),
    "too_many_photos": N_("Too many photos."),
    "campaign_closed": N_("This campaign is not running."),
    "csrf_failed": N_("The form has expired; reload the page and try again."),
    "invalid_rating": N_("Choose a rating from 1 to 5."),
    "invalid_bbox": N_("Choose a district or the map area."),
    "invalid_area": N_("Choose a district or the map area."),
    "unknown_district": N_("Choose a district or the map area."),
    "template_status": N_("This response template is for another status: choose one for the new status."),
    "no_reports": N_("Choose at least one report."),
    "after_photo_not_fixed": N_("A photo after the fix goes only with the status Fixed."),
    "one_action": N_("Choose one change: a status, a department or an assignee."),
}


# The form field an error without details belongs to, by its code.
FIELD_OF_CODE = {
    "outside_city": "location",
    "invalid_coordinates": "location",
    "unknown_category": "category",
    "not_an_image": "photos",
    "photo_too_large": "photos",
    "too_many_photos": "photos",
    "invalid_email": "email",
    "invalid_bbox": "area",
    "invalid_area": "area",
    "unknown_district": "area",
}


FIELD_OF = {
    "contact.name": "name",
    "contact.email": "email",
    "contact.phone": "phone",
    "lat": "location",
    "lon": "location",
    "address_string": "address",
}


def errors_of(request: Request, exc: SmartCityError, default_field: str = "form") -> dict[str, str]:
    """A service error → {form field: message in the page's language}."""
    errors: dict[str, str] = {}
    details = exc.details if isinstance(exc.details, list) else []
    for d in details:
        if not isinstance(d, dict):
            continue
        field = str(d.get("field") or default_field)
        if field.startswith("attribute[") and field.endswith("]"):
            field = "attr." + field[10:-1]
        field = FIELD_OF.get(field, field)
        code = d.get("code") or exc.code
        text = translated(request, ERROR_TEXT[code]) if code in ERROR_TEXT else str(d.get("problem") or exc.message)
        if code == "too_long" and d.get("limit"):
            text = f"{text} ({d['length']}/{d['limit']})"
        if code in ("invalid_attribute",) and d.get("problem"):
            text = f"{text} ({d['problem']})"
        if d.get("file"):
            text = f"{text} ({d['file']})"
        errors.setdefault(field, text)
    if not errors:
        code = exc.code
        field = FIELD_OF_CODE.get(code, default_field)
        errors[field] = translated(request, ERROR_TEXT[code]) if code in ERROR_TEXT else exc.message
    return errors


# --- the taxonomy for forms -------------------------------------------------------------------------------


def picker(s, lang: str, campaign: str | None = None) -> list[dict]:
    """Groups with their categories (and the categories' attribute definitions) for the picker."""
    groups = {g.code: g for g in S.list_groups(s)}
    out: dict[str, dict] = {}
    for cat in S.list_categories(s, campaign=campaign):
        group = groups.get(cat.group_code)
        view = S.category_view(cat, lang, group)
        entry = out.setdefault(cat.group_code, {"code": cat.group_code, "name": view["group_name"], "items": []})
        entry["items"].append(view)
    return list(out.values())


# --- one report -------------------------------------------------------------------------------------------


def _timeline_text(request: Request, entry: dict, units: dict[str, str]) -> str:
    """One timeline entry in words."""
    lang = language_of(request)
    kind, old, new = entry["kind"], entry.get("old"), entry.get("new")
    if kind == "created":
        return gettext(lang, "Reported")
    if kind == "status":
        return gettext(lang, "Status") + f": {S.status_name(old, lang) if old else ''} → {S.status_name(new, lang)}"
    if kind == "assign":
        return gettext(lang, "Assigned to") + f" {new}" if new else gettext(lang, "Unassigned")
    if kind == "note":
        return gettext(lang, "Internal note")
    if kind == "update":
        return gettext(lang, "Update")
    if kind == "reassign":
        return gettext(lang, "Sent to another department") + f": {units.get(old, old)} → {units.get(new, new)}"
    if kind == "merge":
        return gettext(lang, "Duplicates merged into this report") + f": #{(new or '').replace(',', ', #')}"
    if kind == "support":
        return gettext(lang, "Someone else has this problem too")
    if kind == "feedback":
        if new == "closed":
            return gettext(lang, "The reporter confirmed the fix")
        return gettext(lang, "The reporter says it is not fixed")
    return kind


def report_detail(request: Request, s, report_id: int) -> dict:
    lang = language_of(request)
    identity = identity_of(request)
    report = S.get_report(s, report_id)
    view = S.detail_view(s, report, identity, lang)
    units = directory.unit_names(s, lang)
    for entry in view["timeline"]:
        entry["label"] = _timeline_text(request, entry, units)
    token = token_for(request, report_id)
    view["can_feedback"] = report.status == "fixed" and S.is_reporter(s, identity, report, token)
    view["token"] = token if view["can_feedback"] and not identity.user_id else None
    view["district_name"] = district_names(request).get(report.district_code, report.district_code)
    view["parent_url"] = f"/reports/{report.parent_id}" if report.parent_id else None
    return view


# --- the pages' read models and their renderings ----------------------------------------------------------


@dataclass
class ReportView:
    """One report as its page shows it (`report_detail`), with the viewer's feedback form; its JSON twin is
    the detail without the reporter's secret, which goes into the page's form only."""

    report: dict
    supported: bool = False
    feedback_errors: dict[str, str] | None = None
    open_statuses: frozenset[str] = S.OPEN_STATUSES


def report_json(request: Request, model: ReportView) -> Response:
    return json_response({k: v for k, v in model.report.items() if k != "token"})


report_html = template("report.html", page)


@dataclass
class ReportsMap:
    """The public map and list: a page of the search, with the filters' choices; its twins are the page
    as JSON and as the map's pins."""

    result: S.ReportPage
    groups: list[dict]
    districts: list[dict]
    filters: dict[str, str]


def _map_context(request: Request, model: ReportsMap) -> dict:
    lang = language_of(request)
    return dict(
        items=[S.public_view(r, lang) for r in model.result.items],
        result=model.result,
        groups=model.groups,
        districts=model.districts,
        district_names={d["code"]: d["name"] for d in model.districts},
        filters=model.filters,
        query=urlencode({k: v for k, v in model.filters.items() if v}),
    )


reports_map_html = template("list.html", page, _map_context)


def reports_map_json(request: Request, model: ReportsMap) -> Response:
    return page_json_response(request, model.result)


def reports_map_geojson(request: Request, model: ReportsMap) -> Response:
    return page_geojson(request, model.result)


@dataclass
class QueuePage:
    """A unit's queue: a page of the search with the names the table shows and what the bulk form offers
    (templates, members, departments) and the last bulk action's outcome; its twins are the page as JSON
    and the map view's pins (GeoJSON)."""

    result: S.ReportPage
    filters: dict[str, Any]
    view: str  # list | map
    assignees: dict[int, str]
    units: list[tuple[str, str]]
    unit_name: str
    manager: bool
    templates: list[dict]
    members: list[dict]
    bulk: dict | None = None


def _queue_context(request: Request, model: QueuePage) -> dict:
    lang = language_of(request)
    items = [S.public_view(r, lang) for r in model.result.items]
    for view, r in zip(items, model.result.items, strict=True):
        view["assignee"] = model.assignees.get(r.assignee_id)
    query = urlencode({k: v for k, v in model.filters.items() if v})
    return dict(
        items=items,
        result=model.result,
        filters=model.filters,
        view=model.view,
        units=model.units if model.manager else [],
        departments=model.units,
        unit_name=model.unit_name,
        manager=model.manager,
        statuses=S.STATUSES,
        query=query,
        here=f"/staff/reports?{query}" if query else "/staff/reports",
        district_names=district_names(request),
        templates=model.templates,
        members=model.members,
        bulk=model.bulk,
    )


queue_html = template("queue.html", page, _queue_context)


def queue_json(request: Request, model: QueuePage) -> Response:
    return page_json_response(request, model.result)


def queue_geojson(request: Request, model: QueuePage) -> Response:
    return page_geojson(request, model.result)


@dataclass
class MyReportsPage:
    """A signed-in citizen's own reports ("나의 신고"), as their page lists them and as JSON: each report's
    public view with its latest public update."""

    mine: S.MyReports


def _mine_items(request: Request, model: MyReportsPage) -> list[dict]:
    lang = language_of(request)
    units: dict[str, str] | None = None
    items = []
    for r in model.mine.page.items:
        view = S.public_view(r, lang)
        entry = model.mine.last_update.get(r.id)
        if entry is not None:
            last = S.update_view(entry, lang)
            if last["kind"] == "reassign" and units is None:
                units = directory.unit_names(object_session(r), lang)
            last["label"] = _timeline_text(request, last, units or {})
            view["last_update"] = {k: last[k] for k in ("at", "kind", "label", "text", "status", "status_name")}
        else:
            view["last_update"] = None
        items.append(view)
    return items


def _mine_context(request: Request, model: MyReportsPage) -> dict:
    page = model.mine.page
    return dict(items=_mine_items(request, model), page=page.page, has_more=page.has_more)


my_reports_html = template("mine.html", page, _mine_context)


def my_reports_json(request: Request, model: MyReportsPage) -> Response:
    page = model.mine.page
    return json_response({"items": _mine_items(request, model), "page": page.page, "has_more": page.has_more})


@dataclass
class CampaignList:
    """The campaigns anyone may join, as cards (`campaign_card`); its JSON twin is the same cards."""

    campaigns: list[dict]


campaigns_html = template("campaigns.html", page)


def campaigns_json(request: Request, model: CampaignList) -> Response:
    return json_response({"items": model.campaigns})


@dataclass
class CampaignPage:
    """A campaign's page: the campaign, its categories and its reports as points (the twins: GeoJSON, CSV,
    JSON rows)."""

    campaign: dict
    categories: list[dict]
    points: ReportPoints


def _campaign_context(request: Request, model: CampaignPage) -> dict:
    count = sum(1 for row in model.points.rows if row["status"] != "duplicate")
    return dict(campaign=model.campaign, categories=model.categories, count=count)


campaign_html = template("campaign.html", page, _campaign_context)
campaign_geojson = part("points", "geojson")
campaign_csv = part("points", "csv")
campaign_json = part("points", "json")


@dataclass
class DashboardPage:
    """The dashboard's figures with the names its page shows them by and the filters' state; its JSON twin
    is the figures alone (as /api/reports/dashboard)."""

    figures: S.Dashboard
    groups: dict[str, str]
    categories: dict[str, str]
    districts: list[dict]
    filters: dict[str, Any]
    manager: bool


def _hexagon(cell: str) -> list[list[float]]:
    return [[round(lat, 6), round(lon, 6)] for lat, lon in h3.cell_to_boundary(cell)]


def _dashboard_context(request: Request, model: DashboardPage) -> dict:
    d = model.figures
    lang = language_of(request)
    return dict(
        d=d,
        groups=model.groups,
        categories=model.categories,
        heat=[{**h, "hexagon": _hexagon(h["cell"])} for h in d.heat],
        overdue=[S.public_view(r, lang) for r in d.overdue],
        districts=model.districts,
        district_names={x["code"]: x["name"] for x in model.districts},
        filters=model.filters,
        query=urlencode({k: v for k, v in model.filters.items() if v}),
        manager=model.manager,
        top_categories=sorted(d.by_category.items(), key=lambda kv: -kv[1])[:15],
    )


dashboard_html = template("dashboard.html", page, _dashboard_context)


def dashboard_page_json(request: Request, model: DashboardPage) -> Response:
    return dashboard_json(request, model.figures)
