"""What the Community Mapping pages share: rendering, the form body, the reporter's remembered tokens,
the service's errors as messages by field, the category picker."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from smartcity.core.auth import Identity, resolve_identity
from smartcity.core.db import from_store
from smartcity.core.errors import SmartCityError
from smartcity.core.geo import geo_index
from smartcity.core.web import gettext, language_of, render
from smartcity.reports import directory
from smartcity.reports import service as S
from smartcity.reports.renderers import STATUS_COLOURS

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
    "invalid_bbox": "Choose a district or the map area.",
    "invalid_area": "Choose a district or the map area.",
    "unknown_district": "Choose a district or the map area.",
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
