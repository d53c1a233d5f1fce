"""The web pages of Community Mapping (thin: every rule is in service.py).

Citizens: /reports/new (the form, also a plain multipart POST), /reports (public map and list), /reports/{id}
(the public page, support, the reporter's confirm/reopen/rating), /reports/subscribe, /campaigns (the Atom
feed /reports/feed.atom is api.py's). Staff: /staff/reports (the unit's queue), /staff/reports/{id} (the work
view), /staff/dashboard. Administrators: /admin/reports/{routes,templates,campaigns}.

Pages that scripts need have a Datasette-style `.json`/`.geojson` twin. Every form carries the CSRF token;
POST handlers re-render the page with the errors next to the fields and the values kept.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import h3
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import select
from starlette.datastructures import FormData, UploadFile

from smartcity.core.auth import Identity, Require, resolve_identity, verify_csrf
from smartcity.core.db import from_store
from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied, SmartCityError, TooLarge
from smartcity.core.geo import geo_index
from smartcity.core.i18n import localized
from smartcity.core.models import Department, User
from smartcity.core.web import add_nav, gettext, language_of, render
from smartcity.reports import service as S
from smartcity.reports.models import Route

router = APIRouter(include_in_schema=False)

add_nav("Report a problem", "/reports/new")
add_nav("Reports", "/reports")
add_nav("Campaigns", "/campaigns")
add_nav("Work queue", "/staff/reports", "reports.work")
add_nav("Dashboard", "/staff/dashboard", "reports.dashboard")
add_nav("Routing", "/admin/reports/routes", "reports.manage")

STATUS_COLOURS = {"open": "#dc2626", "acknowledged": "#ea580c", "in_progress": "#ca8a04", "fixed": "#16a34a",
                  "closed": "#4b5563", "duplicate": "#9ca3af", "not_responsible": "#7c3aed", "referred": "#2563eb"}
THEME_COLOURS = {"accessible": "#7c3aed", "school": "#ea580c", "green": "#15803d", "safety": "#b91c1c"}
MAX_REMEMBERED = 20  # reports whose feedback token a browser keeps in its session


async def form_data(request: Request) -> FormData:
    """The posted form (cached by Starlette, so verify_csrf and the handler read it once)."""
    return await request.form()


Form = Annotated[FormData, Depends(form_data)]


def _identity(request: Request) -> Identity:
    return resolve_identity(request)


def _t(request: Request, message: str) -> str:
    return gettext(language_of(request), message)


def _campaign_view(camp, lang: str) -> dict:
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


def _page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    return render(request, f"reports/{template}", status_code=status_code, when=_when(request),
                  status_colours=STATUS_COLOURS, status_name=lambda st: S.status_name(st, language_of(request)),
                  **context)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _districts(request: Request) -> list[dict]:
    lang = language_of(request)
    return [{"code": a.code, "name": a.name(lang)} for a in geo_index(request.app.state.db).districts]


def _district_names(request: Request) -> dict[str, str]:
    return {d["code"]: d["name"] for d in _districts(request)}


def _fingerprint(request: Request) -> str:
    """An anonymous browser's stable random id (in its signed session): supports count once per browser."""
    fp = request.session.get("fp")
    if not fp:
        fp = request.session["fp"] = secrets.token_urlsafe(16)
    return fp


def _remember_token(request: Request, report_id: int, token: str) -> None:
    tokens = dict(request.session.get("report_tokens") or {})
    tokens[str(report_id)] = token
    request.session["report_tokens"] = dict(list(tokens.items())[-MAX_REMEMBERED:])


def _token_for(request: Request, report_id: int) -> str | None:
    return request.query_params.get("token") or (request.session.get("report_tokens") or {}).get(str(report_id))


# --- error messages ---------------------------------------------------------------------------------------

# English msgids (translated by the catalogue) for the service's error codes.
ERROR_TEXT = {
    "required": "This is required.",
    "too_long": "This is too long.",
    "invalid_email": "This is not an email address.",
    "invalid_phone": "This is not a phone number.",
    "unknown_category": "Choose a category from the list.",
    "outside_city": "This place is outside the city. Move the pin inside the city limits.",
    "invalid_coordinates": "Place the pin on the map (or enter a latitude and longitude).",
    "missing_attribute": "This is required for the chosen category.",
    "invalid_attribute": "This value is not valid.",
    "not_an_image": "Only JPEG, PNG or WebP photos are accepted.",
    "photo_too_large": "A photo is too large.",
    "too_many_photos": "Too many photos.",
    "campaign_closed": "This campaign is not running.",
    "csrf_failed": "The form has expired; reload the page and try again.",
    "invalid_rating": "Choose a rating from 1 to 5.",
}
FIELD_OF = {"contact.name": "name", "contact.email": "email", "contact.phone": "phone", "lat": "location",
            "lon": "location", "address_string": "address"}


def _errors_of(request: Request, exc: SmartCityError, default_field: str = "form") -> dict[str, str]:
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
        text = _t(request, ERROR_TEXT[code]) if code in ERROR_TEXT else str(d.get("problem") or exc.message)
        if code == "too_long" and d.get("limit"):
            text = f"{text} ({d['length']}/{d['limit']})"
        if code in ("invalid_attribute",) and d.get("problem"):
            text = f"{text} ({d['problem']})"
        if d.get("file"):
            text = f"{text} ({d['file']})"
        errors.setdefault(field, text)
    if not errors:
        code = exc.code
        field = {"outside_city": "location", "invalid_coordinates": "location", "unknown_category": "category",
                 "not_an_image": "photos", "photo_too_large": "photos", "too_many_photos": "photos"}.get(
            code, default_field)
        errors[field] = _t(request, ERROR_TEXT[code]) if code in ERROR_TEXT else exc.message
    return errors


# --- the taxonomy for forms -------------------------------------------------------------------------------


def _picker(s, lang: str, campaign: str | None = None) -> list[dict]:
    """Groups with their categories (and the categories' attribute definitions) for the picker."""
    groups = {g.code: g for g in S.list_groups(s)}
    out: dict[str, dict] = {}
    for cat in S.list_categories(s, campaign=campaign):
        group = groups.get(cat.group_code)
        view = S.category_view(cat, lang, group)
        entry = out.setdefault(cat.group_code, {"code": cat.group_code, "name": view["group_name"], "items": []})
        entry["items"].append(view)
    return list(out.values())


# --- citizens: filing a report ----------------------------------------------------------------------------

REPORT_FIELDS = ("category", "lat", "lon", "title", "description", "address", "name", "email", "phone",
                 "idempotency_key", "campaign")


def _new_context(request: Request, s, values: dict, errors: dict, campaign: str | None) -> dict:
    lang = language_of(request)
    settings = request.app.state.settings
    camp = _campaign_view(S.get_campaign(s, campaign), lang) if campaign else None
    return dict(groups=_picker(s, lang, campaign), values=values, errors=errors, campaign=camp,
                max_photos=settings.reports_max_photos, max_photo_mb=settings.reports_max_photo_bytes // 2**20,
                max_description=S.MAX_DESCRIPTION, allow_anonymous=settings.reports_allow_anonymous)


@router.get("/reports/new", response_class=HTMLResponse)
def new_report_form(request: Request, category: str = "", lat: str = "", lon: str = "", campaign: str = ""):
    values = {"category": category, "lat": lat, "lon": lon, "idempotency_key": secrets.token_urlsafe(16),
              "campaign": campaign, "attributes": {}}
    with request.app.state.db.session() as s:
        return _page(request, "new.html", **_new_context(request, s, values, {}, campaign or None))


def _read_report_form(form: FormData, max_bytes: int) -> tuple[dict, list[S.Upload]]:
    values: dict[str, Any] = {k: str(form.get(k) or "") for k in REPORT_FIELDS}
    values["show_name"] = form.get("show_name") == "1"
    prefix = f"attr.{values['category']}."
    attrs: dict[str, Any] = {}
    for key in set(form.keys()):
        if key.startswith(prefix):
            items = [str(v) for v in form.getlist(key) if str(v) != ""]
            attrs[key[len(prefix):]] = items if len(items) > 1 or key.endswith("[]") else (items[0] if items else "")
    values["attributes"] = {k.removesuffix("[]"): v for k, v in attrs.items()}
    uploads = []
    for f in form.getlist("photos"):
        if isinstance(f, UploadFile) and f.filename:
            f.file.seek(0)
            # One byte over the limit is enough to say "too large" without reading a huge file into memory.
            uploads.append(S.Upload(f.filename, f.file.read(max_bytes + 1), f.content_type or ""))
    return values, uploads


@router.post("/reports/new", dependencies=[Depends(verify_csrf)])
def submit_report(request: Request, form: Form):
    settings = request.app.state.settings
    identity = _identity(request)
    values, uploads = _read_report_form(form, settings.reports_max_photo_bytes)
    campaign = values["campaign"] or None
    db = request.app.state.db
    # The service checks every field at once and names each problem; the page only puts them by their fields.
    new = S.NewReport(
        category=values["category"], lat=values["lat"], lon=values["lon"], title=values["title"],
        description=values["description"], address_string=values["address"] or None,
        attributes=values["attributes"], photos=uploads,
        contact=S.Contact(values["name"], values["email"], values["phone"]), show_name=values["show_name"],
        idempotency_key=values["idempotency_key"] or None, source="web", language=language_of(request),
        campaign=campaign)
    errors: dict[str, str] = {}
    try:
        with db.session() as s:
            created = S.create_report(s, identity, new)
            report_id, token = created.report.id, created.feedback_token
    except (InvalidInput, TooLarge) as exc:
        errors = _errors_of(request, exc)
    if errors:
        with db.session() as s:
            return _page(request, "new.html", status_code=422,
                         **_new_context(request, s, values, errors, campaign))
    _remember_token(request, report_id, token)
    return RedirectResponse(f"/reports/{report_id}/submitted", status_code=303)


@router.get("/reports/nearby.json")
def nearby_json(request: Request, category: str, lat: str, lon: str, radius: float = S.NEARBY_M):
    """Open reports of the same category near a point: the "is this already reported?" prompt."""
    lang = language_of(request)
    with request.app.state.db.session() as s:
        found = S.nearby(s, category, lat, lon, radius_m=radius)
        return {"items": [{"id": n.id, "title": n.title, "status": n.status,
                           "status_name": S.status_name(n.status, lang), "distance_m": n.distance_m,
                           "support_count": n.support_count, "lat": n.lat, "lon": n.lon,
                           "url": f"/reports/{n.id}"} for n in found]}


@router.get("/reports/where.json")
def where_json(request: Request, lat: str, lon: str):
    """Which district a pin is in, or why it cannot be used (outside the city)."""
    lang = language_of(request)
    try:
        where = geo_index(request.app.state.db).locate(lat, lon)
    except InvalidInput as exc:
        return JSONResponse({"inside": False, "code": exc.code,
                             "message": gettext(lang, ERROR_TEXT.get(exc.code, exc.message))})
    return {"inside": True, "district": where.district.code, "district_name": where.district.name(lang),
            "neighbourhood_name": where.neighbourhood.name(lang) if where.neighbourhood else None}


@router.get("/reports/{report_id:int}/submitted", response_class=HTMLResponse)
def submitted(request: Request, report_id: int):
    base = request.app.state.settings.reports_public_url.rstrip("/")
    with request.app.state.db.session() as s:
        report = S.get_report(s, report_id)
        view = S.public_view(report, language_of(request))
        token = (request.session.get("report_tokens") or {}).get(str(report_id))
        return _page(request, "submitted.html", report=view, public_url=f"{base}/reports/{report_id}",
                     private_url=f"{base}/reports/{report_id}?token={token}" if token else None)


# --- the public map ---------------------------------------------------------------------------------------

STATUS_FILTERS = {"unresolved": sorted(S.OPEN_STATUSES), "resolved": sorted(S.CLOSED_STATUSES)}


def _public_query(group: str, status: str, district: str, bbox: str = "", page: int = 1,
                  page_size: int = 50) -> S.ReportQuery:
    statuses = STATUS_FILTERS.get(status) or ([status] if status in S.STATUSES else None)
    return S.ReportQuery(group=group or None, status=statuses, district=[district] if district else None,
                         bbox=S.parse_bbox(bbox) if bbox else None, page=page, page_size=page_size,
                         include_duplicates=status == "duplicate")


def _pin(view: dict) -> dict:
    return {"type": "Feature", "id": view["id"], "geometry": {"type": "Point", "coordinates": [view["lon"],
                                                                                                view["lat"]]},
            "properties": {"id": view["id"], "title": view["title"], "status": view["status"],
                           "status_name": view["status_name"], "category_name": view["category_name"],
                           "colour": STATUS_COLOURS.get(view["status"], "#111827"), "url": f"/reports/{view['id']}",
                           "created_at": view["created_at"], "support_count": view["support_count"]}}


@router.get("/reports", response_class=HTMLResponse)
def reports_map(request: Request, group: str = "", status: str = "unresolved", district: str = "", page: int = 1):
    lang = language_of(request)
    with request.app.state.db.session() as s:
        result = S.search(s, _public_query(group, status, district, page=max(page, 1)))
        items = [S.public_view(r, lang) for r in result.items]
        groups = [{"code": g.code, "name": localized(g, "name", lang)} for g in S.list_groups(s)]
        query = {k: v for k, v in {"group": group, "status": status, "district": district}.items() if v}
        return _page(request, "list.html", items=items, result=result, groups=groups, districts=_districts(request),
                     filters={"group": group, "status": status, "district": district}, query=urlencode(query),
                     district_names=_district_names(request))


@router.get("/reports.geojson")
def reports_geojson(request: Request, group: str = "", status: str = "unresolved", district: str = "",
                    bbox: str = "", limit: int = 1000):
    """Pins for the public map (public fields only)."""
    lang = language_of(request)
    with request.app.state.db.session() as s:
        result = S.search(s, _public_query(group, status, district, bbox, page_size=min(max(limit, 1), 1000)))
        return JSONResponse({"type": "FeatureCollection", "truncated": result.has_more,
                             "features": [_pin(S.public_view(r, lang)) for r in result.items]},
                            media_type="application/geo+json")


# --- one report -------------------------------------------------------------------------------------------


def _timeline_text(request: Request, entry: dict, units: dict[str, str]) -> str:
    """One timeline entry in words."""
    lang = language_of(request)
    t = lambda m: gettext(lang, m)  # noqa: E731
    kind, old, new = entry["kind"], entry.get("old"), entry.get("new")
    if kind == "created":
        return t("Reported")
    if kind == "status":
        return f"{t('Status')}: {S.status_name(old, lang) if old else ''} → {S.status_name(new, lang)}"
    if kind == "assign":
        return f"{t('Assigned to')} {new}" if new else t("Unassigned")
    if kind == "note":
        return t("Internal note")
    if kind == "update":
        return t("Update")
    if kind == "reassign":
        return f"{t('Sent to another department')}: {units.get(old, old)} → {units.get(new, new)}"
    if kind == "merge":
        return f"{t('Duplicates merged into this report')}: #{(new or '').replace(',', ', #')}"
    if kind == "support":
        return t("Someone else has this problem too")
    if kind == "feedback":
        return t("The reporter confirmed the fix") if new == "closed" else t("The reporter says it is not fixed")
    return kind


def _unit_names(s, lang: str) -> dict[str, str]:
    return {d.code: localized(d, "name", lang) for d in s.scalars(select(Department))}


def _detail(request: Request, s, report_id: int) -> dict:
    lang = language_of(request)
    identity = _identity(request)
    report = S.get_report(s, report_id)
    view = S.detail_view(s, report, identity, lang)
    units = _unit_names(s, lang)
    for entry in view["timeline"]:
        entry["label"] = _timeline_text(request, entry, units)
    token = _token_for(request, report_id)
    view["can_feedback"] = report.status == "fixed" and S.is_reporter(s, identity, report, token)
    view["token"] = token if view["can_feedback"] and not identity.user_id else None
    view["district_name"] = _district_names(request).get(report.district_code, report.district_code)
    view["parent_url"] = f"/reports/{report.parent_id}" if report.parent_id else None
    return view


@router.get("/reports/{report_id:int}", response_class=HTMLResponse)
def report_page(request: Request, report_id: int, supported: int = 0):
    with request.app.state.db.session() as s:
        view = _detail(request, s, report_id)
        return _page(request, "report.html", report=view, supported=bool(supported),
                     open_statuses=S.OPEN_STATUSES)


@router.get("/reports/{report_id:int}.json")
def report_json(request: Request, report_id: int):
    with request.app.state.db.session() as s:
        view = _detail(request, s, report_id)
        view.pop("token", None)
        return view


@router.post("/reports/{report_id:int}/support", dependencies=[Depends(verify_csrf)])
def support(request: Request, report_id: int):
    identity = _identity(request)
    with request.app.state.db.session() as s:
        count = S.support(s, identity, report_id, fingerprint=None if identity.user_id else _fingerprint(request))
    if _wants_json(request):
        return {"id": report_id, "support_count": count}
    return RedirectResponse(f"/reports/{report_id}?supported=1", status_code=303)


@router.post("/reports/{report_id:int}/feedback", dependencies=[Depends(verify_csrf)])
def feedback(request: Request, report_id: int, form: Form):
    identity = _identity(request)
    fixed = form.get("fixed") == "yes"
    rating_text = str(form.get("rating") or "")
    token = str(form.get("token") or "") or _token_for(request, report_id)
    try:
        rating = int(rating_text) if rating_text else None
        with request.app.state.db.session() as s:
            S.feedback(s, identity, report_id, fixed=fixed, rating=rating, comment=str(form.get("comment") or ""),
                       token=token)
    except (InvalidInput, ValueError) as exc:
        with request.app.state.db.session() as s:
            view = _detail(request, s, report_id)
            err = exc if isinstance(exc, InvalidInput) else InvalidInput("bad rating", code="invalid_rating")
            return _page(request, "report.html", status_code=422, report=view, supported=False,
                         open_statuses=S.OPEN_STATUSES, feedback_errors=_errors_of(request, err, "comment"))
    suffix = f"?token={token}" if token and not identity.user_id else ""
    return RedirectResponse(f"/reports/{report_id}{suffix}", status_code=303)


# --- subscriptions ----------------------------------------------------------------------------------------


@router.get("/reports/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request, district: str = "", bbox: str = ""):
    identity = _identity(request)
    email = ""
    if identity.user_id:
        with request.app.state.db.session() as s:
            email = (s.get(User, identity.user_id).email or "")
    return _page(request, "subscribe.html", districts=_districts(request), errors={},
                 values={"district": district, "bbox": bbox, "email": email, "area": "bbox" if bbox else "district"})


@router.post("/reports/subscribe", dependencies=[Depends(verify_csrf)])
def subscribe(request: Request, form: Form):
    identity = _identity(request)
    values = {k: str(form.get(k) or "") for k in ("email", "district", "bbox", "area")}
    try:
        with request.app.state.db.session() as s:
            by_box = values["area"] == "bbox" and values["bbox"]
            sub = S.subscribe(s, values["email"], district=None if by_box else (values["district"] or None),
                              bbox=S.parse_bbox(values["bbox"]) if by_box else None,
                              language=language_of(request), user_id=identity.user_id)
            token = sub.token
    except InvalidInput as exc:
        code = exc.code
        field = {"invalid_email": "email", "invalid_bbox": "area", "invalid_area": "area",
                 "unknown_district": "area"}.get(code, "email")
        message = _t(request, ERROR_TEXT.get(code, "Choose a district or the map area."))
        return _page(request, "subscribe.html", status_code=422, districts=_districts(request),
                     errors={field: message}, values=values)
    return _page(request, "subscribed.html", email=values["email"], unsubscribe=f"/reports/unsubscribe/{token}")


@router.get("/reports/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_form(request: Request, token: str):
    return _page(request, "unsubscribe.html", token=token, done=False)


@router.post("/reports/unsubscribe/{token}", dependencies=[Depends(verify_csrf)])
def unsubscribe(request: Request, token: str):
    with request.app.state.db.session() as s:
        S.unsubscribe(s, token)
    return _page(request, "unsubscribe.html", token=token, done=True)


# --- staff: the queue and the work view -------------------------------------------------------------------

QUEUE_ORDERS = ("due_asc", "created_desc", "updated_desc", "support_desc")


@router.get("/staff/reports", response_class=HTMLResponse)
def queue(request: Request, identity: Annotated[Identity, Depends(Require("reports.work"))], status: str = "",
          overdue: int = 0, mine: int = 0, order: str = "due_asc", unit: str = "", page: int = 1):
    lang = language_of(request)
    manager = identity.can("reports.manage")
    if not manager:
        if identity.department_code is None:
            raise PermissionDenied("you belong to no unit", code="other_unit")
        unit = identity.department_code
    statuses = [status] if status in S.STATUSES else sorted(S.OPEN_STATUSES)
    q = S.ReportQuery(status=statuses, unit=unit or None, overdue=bool(overdue),
                      assignee_id=identity.user_id if mine else None,
                      order=order if order in QUEUE_ORDERS else "due_asc", page=max(page, 1), page_size=50,
                      with_total=True)
    with request.app.state.db.session() as s:
        result = S.search(s, q)
        items = [S.public_view(r, lang) for r in result.items]
        assignees = {u.id: u.username for u in s.scalars(select(User).where(
            User.id.in_([r.assignee_id for r in result.items if r.assignee_id])))}
        for view, r in zip(items, result.items, strict=True):
            view["assignee"] = assignees.get(r.assignee_id)
        units = sorted(((d.code, localized(d, "name", lang)) for d in s.scalars(
            select(Department).where(Department.kind == "department"))), key=lambda x: x[0]) if manager else []
        unit_name = _unit_names(s, lang).get(unit, "") if unit else ""
        filters = {"status": status, "overdue": overdue, "mine": mine, "order": order, "unit": unit}
        query = urlencode({k: v for k, v in filters.items() if v})
        return _page(request, "queue.html", items=items, result=result, filters=filters, units=units,
                     unit_name=unit_name, manager=manager, statuses=S.STATUSES, query=query,
                     district_names=_district_names(request))


def _work_context(request: Request, s, identity: Identity, report_id: int) -> dict:
    lang = language_of(request)
    report = S.get_report(s, report_id)
    if not S.can_work(identity, report):
        raise PermissionDenied("this report belongs to another unit", code="other_unit")
    view = _detail(request, s, report_id)
    contact = S.contact_of(s, identity, report_id)  # audited: staff see it only here
    templates = [S.template_view(t, report.language) for t in S.list_templates(s, identity, report_id=report_id)]
    members = [{"id": u.id, "name": u.display_name or u.username, "username": u.username}
               for u in s.scalars(select(User).where(User.department_id == report.unit_id, User.active.is_(True))
                                  .order_by(User.username))]
    departments = [{"code": d.code, "name": localized(d, "name", lang)} for d in s.scalars(
        select(Department).where(Department.kind == "department", Department.id != report.unit_id)
        .order_by(Department.code))]
    candidates = [n for n in S.nearby(s, report.category_code, report.lat, report.lon, radius_m=200, limit=10)
                  if n.id != report.id]
    allowed = [st for st in S.STATUSES if st in S.TRANSITIONS[report.status]]
    return dict(report=view, contact=contact, templates=templates, members=members, departments=departments,
                candidates=candidates, allowed=allowed, assignee_id=report.assignee_id, errors={}, form={})


@router.get("/staff/reports/{report_id:int}", response_class=HTMLResponse)
def work_view(request: Request, report_id: int, identity: Annotated[Identity, Depends(Require("reports.work"))]):
    with request.app.state.db.session() as s:
        return _page(request, "work.html", **_work_context(request, s, identity, report_id))


def _staff_action(request: Request, identity: Identity, report_id: int, form: FormData, action, where: str):
    """Run one workflow action; on bad input re-render the work view with the error beside its form."""
    try:
        with request.app.state.db.session() as s:
            target = action(s)
    except (InvalidInput, NotFound) as exc:
        with request.app.state.db.session() as s:
            context = _work_context(request, s, identity, report_id)
            message = exc.message
            if exc.code == "illegal_transition":
                message = _t(request, "That change of status is not allowed from the current status.")
            elif exc.code in ERROR_TEXT:
                message = _t(request, ERROR_TEXT[exc.code])
            context.update(errors={where: message}, form={k: str(v) for k, v in form.items()
                                                          if not isinstance(v, UploadFile)})
            return _page(request, "work.html", status_code=422, **context)
    return RedirectResponse(target or f"/staff/reports/{report_id}", status_code=303)


def _int_or_none(value: Any) -> int | None:
    text = str(value or "").strip().lstrip("#")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a report number", code="invalid_number") from None


Worker = Annotated[Identity, Depends(Require("reports.work"))]


@router.post("/staff/reports/{report_id:int}/status")
def change_status(request: Request, report_id: int, identity: Worker, form: Form):
    def act(s):
        template = _int_or_none(form.get("template_id"))
        S.transition(s, identity, report_id, str(form.get("status") or ""), text=str(form.get("text") or ""),
                     template_id=template, parent_id=_int_or_none(form.get("parent_id")))

    return _staff_action(request, identity, report_id, form, act, "status")


@router.post("/staff/reports/{report_id:int}/assign")
def assign(request: Request, report_id: int, identity: Worker, form: Form):
    return _staff_action(request, identity, report_id, form,
                         lambda s: S.assign(s, identity, report_id, _int_or_none(form.get("user_id"))) and None,
                         "assign")


@router.post("/staff/reports/{report_id:int}/note")
def note(request: Request, report_id: int, identity: Worker, form: Form):
    public = form.get("visibility") == "public"
    return _staff_action(request, identity, report_id, form,
                         lambda s: S.add_note(s, identity, report_id, str(form.get("text") or ""), public=public)
                         and None, "note")


@router.post("/staff/reports/{report_id:int}/reassign")
def reassign(request: Request, report_id: int, identity: Worker, form: Form):
    def act(s):
        report = S.reassign(s, identity, report_id, str(form.get("department") or ""),
                            reason=str(form.get("reason") or ""))
        # After sending it away the report may no longer be ours to see in the work view.
        return None if S.can_work(identity, report) else f"/reports/{report_id}"

    return _staff_action(request, identity, report_id, form, act, "reassign")


@router.post("/staff/reports/{report_id:int}/merge")
def merge(request: Request, report_id: int, identity: Worker, form: Form):
    def act(s):
        raw = str(form.get("children") or "").replace("#", "").replace(" ", ",")
        ids = [_int_or_none(x) for x in raw.split(",") if x.strip()]
        ids += [int(x) for x in form.getlist("child") if str(x).isdigit()]
        if not ids:
            raise InvalidInput("name the duplicate reports to merge", code="required")
        S.merge(s, identity, report_id, list(dict.fromkeys(ids)), text=str(form.get("text") or ""))

    return _staff_action(request, identity, report_id, form, act, "merge")


# --- the dashboard ----------------------------------------------------------------------------------------


def _dashboard(request: Request, s, identity: Identity, district: str, unit: str, days: int) -> S.Dashboard:
    since = datetime.now(UTC) - timedelta(days=days) if days > 0 else None
    return S.dashboard(s, identity, district=district or None, unit=unit or None, since=since)


def _hexagon(cell: str) -> list[list[float]]:
    return [[round(lat, 6), round(lon, 6)] for lat, lon in h3.cell_to_boundary(cell)]


Manager = Annotated[Identity, Depends(Require("reports.dashboard"))]


@router.get("/staff/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, identity: Manager, district: str = "", unit: str = "", days: int = 0):
    lang = language_of(request)
    with request.app.state.db.session() as s:
        d = _dashboard(request, s, identity, district, unit, days)
        groups = {g.code: localized(g, "name", lang) for g in S.list_groups(s)}
        categories = {c.code: localized(c, "name", lang)
                      for c in S.list_categories(s, everything=True, include_inactive=True)}
        heat = [{**h, "hexagon": _hexagon(h["cell"])} for h in d.heat]
        overdue = [S.public_view(r, lang) for r in d.overdue]
        query = urlencode({k: v for k, v in {"district": district, "unit": unit, "days": days}.items() if v})
        return _page(request, "dashboard.html", d=d, groups=groups, categories=categories, heat=heat,
                     overdue=overdue, districts=_districts(request), district_names=_district_names(request),
                     filters={"district": district, "unit": unit, "days": days}, query=query,
                     manager=identity.can("reports.manage"), top_categories=sorted(
                         d.by_category.items(), key=lambda kv: -kv[1])[:15])


@router.get("/staff/dashboard.json")
def dashboard_json(request: Request, identity: Manager, district: str = "", unit: str = "", days: int = 0):
    with request.app.state.db.session() as s:
        return S.dashboard_view(_dashboard(request, s, identity, district, unit, days), language_of(request))


@router.get("/staff/dashboard.csv")
def dashboard_csv(request: Request, identity: Manager, district: str = "", unit: str = "", days: int = 0):
    since = datetime.now(UTC) - timedelta(days=days) if days > 0 else None
    q = S.ReportQuery(district=[district] if district else None, unit=unit or None, created_after=since)
    with request.app.state.db.session() as s:
        body = S.export_csv(s, identity, q, language=language_of(request))
    return PlainTextResponse(body, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="reports.csv"'})


# --- administrators ---------------------------------------------------------------------------------------

Admin = Annotated[Identity, Depends(Require("reports.manage"))]


def _routes_context(request: Request, s, category: str) -> dict:
    lang = language_of(request)
    cats = _picker(s, lang)
    everything = [c for g in cats for c in g["items"]]
    category = category or (everything[0]["code"] if everything else "")
    table = S.routing_table(s, category=category) if category else []
    rules = {r.district_code for r in s.scalars(select(Route).where(Route.category_code == category))}
    departments = [{"code": d.code, "name": localized(d, "name", lang)} for d in s.scalars(
        select(Department).where(Department.kind == "department").order_by(Department.code))]
    return dict(groups=cats, category=category, table=table, all_rule=None in rules, departments=departments,
                district_names=_district_names(request), districts=_districts(request), errors={})


@router.get("/admin/reports/routes", response_class=HTMLResponse)
def routes_page(request: Request, identity: Admin, category: str = ""):
    with request.app.state.db.session() as s:
        return _page(request, "routes.html", **_routes_context(request, s, category))


@router.post("/admin/reports/routes")
def routes_save(request: Request, identity: Admin, form: Form):
    category = str(form.get("category") or "")
    district = str(form.get("district") or "") or None
    try:
        with request.app.state.db.session() as s:
            if form.get("action") == "delete":
                S.delete_route(s, identity, category, district)
            else:
                S.set_route(s, identity, category, district, str(form.get("department") or ""))
    except (InvalidInput, NotFound) as exc:
        with request.app.state.db.session() as s:
            context = _routes_context(request, s, category)
            context["errors"] = {"route": exc.message}
            return _page(request, "routes.html", status_code=422, **context)
    return RedirectResponse(f"/admin/reports/routes?category={category}", status_code=303)


def _templates_context(request: Request, s, identity: Identity, edit: int | None = None) -> dict:
    lang = language_of(request)
    units = _unit_names(s, lang)
    ids = {d.id: d.code for d in s.scalars(select(Department))}
    templates = []
    for t in S.list_templates(s, identity):
        view = S.template_view(t, lang)
        view["unit"] = units.get(ids.get(t.department_id), "") if t.department_id else ""
        view["department"] = ids.get(t.department_id, "")
        templates.append(view)
    editing = next((t for t in templates if t["id"] == edit), None)
    return dict(templates=templates, editing=editing, statuses=S.STATUSES, errors={},
                values=editing or {"title": "", "text_ko": "", "text_en": "", "status": "", "department": "",
                                   "category": ""})


@router.get("/admin/reports/templates", response_class=HTMLResponse)
def templates_page(request: Request, identity: Admin, edit: int = 0):
    with request.app.state.db.session() as s:
        return _page(request, "templates.html", **_templates_context(request, s, identity, edit or None))


@router.post("/admin/reports/templates")
def templates_save(request: Request, identity: Admin, form: Form):
    values = {k: str(form.get(k) or "") for k in ("id", "title", "text_ko", "text_en", "status", "department",
                                                    "category", "action")}
    template_id = int(values["id"]) if values["id"].isdigit() else None
    try:
        with request.app.state.db.session() as s:
            if values["action"] == "delete" and template_id:
                S.delete_template(s, identity, template_id)
            else:
                S.save_template(s, identity, S.TemplateIn(
                    values["title"], values["text_ko"], values["text_en"], status=values["status"] or None,
                    department=values["department"] or None, category=values["category"] or None), template_id)
    except (InvalidInput, NotFound) as exc:
        with request.app.state.db.session() as s:
            context = _templates_context(request, s, identity, template_id)
            context.update(errors=_errors_of(request, exc, "title"), values=values)
            return _page(request, "templates.html", status_code=422, **context)
    return RedirectResponse("/admin/reports/templates", status_code=303)


def _day(value: str, tz, end: bool = False) -> datetime | None:
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day, time(23, 59, 59) if end else time(0, 0), tzinfo=tz).astimezone(UTC)


def _campaigns_context(request: Request, s, edit: str = "") -> dict:
    lang = language_of(request)
    campaigns = [_campaign_view(c, lang) for c in S.list_campaigns(s)]
    counts: dict[str, list[dict]] = {}
    for cat in S.list_categories(s, everything=True, include_inactive=True):
        if cat.campaign is not None:
            counts.setdefault(cat.campaign.slug, []).append(S.category_view(cat, lang))
    for c in campaigns:
        c["categories"] = counts.get(c["slug"], [])
    editing = next((c for c in campaigns if c["slug"] == edit), None)
    tz = request.app.state.profile.tz
    values = {"slug": "", "title_ko": "", "title_en": "", "description_ko": "", "description_en": "",
              "theme": "#0f766e", "starts_at": datetime.now(tz).strftime("%Y-%m-%d"),
              "ends_at": (datetime.now(tz) + timedelta(days=30)).strftime("%Y-%m-%d"), "district": ""}
    if editing:
        camp = S.get_campaign(s, edit)
        values.update(slug=camp.slug, title_ko=camp.title_ko, title_en=camp.title_en,
                      description_ko=camp.description_ko, description_en=camp.description_en, theme=editing["colour"],
                      starts_at=camp.starts_at.astimezone(tz).strftime("%Y-%m-%d"),
                      ends_at=camp.ends_at.astimezone(tz).strftime("%Y-%m-%d"), district=camp.district_code or "")
    groups = [{"code": g.code, "name": localized(g, "name", lang)} for g in S.list_groups(s)]
    return dict(campaigns=campaigns, editing=editing, values=values, errors={}, districts=_districts(request),
                groups=groups, category_values={"campaign": edit or (campaigns[0]["slug"] if campaigns else "")})


@router.get("/admin/reports/campaigns", response_class=HTMLResponse)
def campaigns_admin(request: Request, identity: Admin, edit: str = ""):
    with request.app.state.db.session() as s:
        return _page(request, "campaigns_admin.html", **_campaigns_context(request, s, edit))


@router.post("/admin/reports/campaigns")
def campaigns_save(request: Request, identity: Admin, form: Form):
    tz = request.app.state.profile.tz
    values = {k: str(form.get(k) or "") for k in ("slug", "title_ko", "title_en", "description_ko", "description_en",
                                                    "theme", "starts_at", "ends_at", "district")}
    try:
        starts, ends = _day(values["starts_at"], tz), _day(values["ends_at"], tz, end=True)
        with request.app.state.db.session() as s:
            S.save_campaign(s, identity, S.CampaignIn(
                values["slug"], values["title_ko"], values["title_en"], starts, ends,
                description_ko=values["description_ko"], description_en=values["description_en"],
                theme=values["theme"], district=values["district"] or None))
    except InvalidInput as exc:
        with request.app.state.db.session() as s:
            context = _campaigns_context(request, s)
            context.update(errors=_errors_of(request, exc, "slug"), values=values)
            return _page(request, "campaigns_admin.html", status_code=422, **context)
    return RedirectResponse(f"/admin/reports/campaigns?edit={values['slug']}", status_code=303)


@router.post("/admin/reports/campaigns/categories")
def campaign_category_save(request: Request, identity: Admin, form: Form):
    values = {k: str(form.get(k) or "") for k in ("campaign", "code", "group", "name_ko", "name_en", "service_days")}
    try:
        days = int(values["service_days"] or 14)
        with request.app.state.db.session() as s:
            S.save_category(s, identity, S.CategoryIn(values["code"], values["group"], values["name_ko"],
                                                      values["name_en"], service_days=days,
                                                      campaign=values["campaign"], unit_kind="civil"))
    except (InvalidInput, NotFound, ValueError) as exc:
        with request.app.state.db.session() as s:
            context = _campaigns_context(request, s, values["campaign"])
            message = exc.message if isinstance(exc, SmartCityError) else str(exc)
            if isinstance(exc, InvalidInput) and isinstance(exc.details, list) and exc.details:
                message = "; ".join(f"{d.get('field', '')}: {d.get('problem', '')}" for d in exc.details)
            context.update(errors={"category": message}, category_values=values)
            return _page(request, "campaigns_admin.html", status_code=422, **context)
    return RedirectResponse(f"/admin/reports/campaigns?edit={values['campaign']}", status_code=303)


# --- campaigns, for everyone ------------------------------------------------------------------------------


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns(request: Request):
    lang = language_of(request)
    with request.app.state.db.session() as s:
        items = [_campaign_view(c, lang) for c in S.list_campaigns(s)]
        return _page(request, "campaigns.html", campaigns=items)


@router.get("/campaigns/{slug}.geojson")
def campaign_geojson(request: Request, slug: str):
    lang = language_of(request)
    with request.app.state.db.session() as s:
        data = S.campaign_geojson(s, slug, lang)
    for feature in data["features"]:
        feature["properties"]["colour"] = STATUS_COLOURS.get(feature["properties"]["status"], "#111827")
        feature["properties"]["url"] = f"/reports/{feature['id']}"
    return JSONResponse(data, media_type="application/geo+json",
                        headers={"Content-Disposition": f'inline; filename="{slug}.geojson"'})


@router.get("/campaigns/{slug}.csv")
def campaign_csv(request: Request, slug: str):
    with request.app.state.db.session() as s:
        body = S.campaign_csv(s, slug, language_of(request))
    return PlainTextResponse(body, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{slug}.csv"'})


@router.get("/campaigns/{slug}", response_class=HTMLResponse)
def campaign_page(request: Request, slug: str):
    lang = language_of(request)
    with request.app.state.db.session() as s:
        camp = _campaign_view(S.get_campaign(s, slug), lang)
        cats = [S.category_view(c, lang) for c in S.list_categories(s, campaign=slug)]
        count = len(S.search(s, S.ReportQuery(campaign=slug, page_size=1000)).items)
        return _page(request, "campaign.html", campaign=camp, categories=cats, count=count)
