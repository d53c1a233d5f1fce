"""The JSON API of what Community Mapping is set up with and what follows reports, under /api/reports: the
taxonomy, routing, response templates and campaigns (administrators set them up, anyone reads them),
subscriptions and the area feed (also at /reports/feed.atom). Included by api.py's router, ahead of its
/api/reports/{report_id} routes."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import localized, pick
from smartcity.core.render import render
from smartcity.core.web import CSV_RESPONSES, GEOJSON_RESPONSES, body_of, gettext, language_of
from smartcity.reports import service as S

router = APIRouter(tags=["reports"])
P = "/api/reports"

Worker = Annotated[Identity, Depends(Require("reports.work"))]
Manager = Annotated[Identity, Depends(Require("reports.manage"))]


def _db(request: Request):
    return request.app.state.db


# --- taxonomy -----------------------------------------------------------------------------------------


@router.get(f"{P}/categories")
def categories(request: Request, campaign: str | None = None, lang: str | None = None) -> dict:
    """The taxonomy: groups (fields) with their categories (items), attributes included; `lang`, one of the
    city's languages, names them (default: the request's language)."""
    language = language_of(request)
    with _db(request).session() as s:
        groups = S.list_groups(s)
        cats = S.list_categories(s, campaign=campaign)
        by_group = {g.code: g for g in groups}
        out = []
        for g in groups:
            items = [S.category_view(c, language, g) for c in cats if c.group_code == g.code]
            if items:
                out.append({"code": g.code, "name": localized(g, "name", language), "categories": items})
        extra = [S.category_view(c, language) for c in cats if c.group_code not in by_group]
        if extra:
            out.append({"code": "", "name": "", "categories": extra})
        return {"groups": out}


@router.get(f"{P}/categories/{{code}}")
def category(request: Request, code: str, lang: str | None = None) -> dict:
    with _db(request).session() as s:
        cat = S.get_category(s, code)
        return S.category_view(cat, language_of(request))


CategoryBody = body_of(S.CategoryIn, exclude=("code",))


@router.put(f"{P}/categories/{{code}}")
def save_category(request: Request, code: str, body: CategoryBody, identity: Manager) -> dict:
    """Create or change a category (administrators)."""
    with _db(request).session() as s:
        cat = S.save_category(s, identity, S.CategoryIn(code=code, **body.model_dump()))
        return S.category_view(cat, language_of(request))


# --- routing, templates ------------------------------------------------------------------------------------


@router.get(f"{P}/routing")
def routing(request: Request, identity: Worker, category: str | None = None, district: str | None = None) -> dict:
    """The routing table: every category × district with its unit; `explicit` marks administrators' rules."""
    with _db(request).session() as s:
        return {"routes": [r.__dict__ for r in S.routing_table(s, category=category, district=district)]}


class RouteBody(BaseModel):
    category: str
    district: str | None = None
    department: str


@router.put(f"{P}/routing")
def set_route(request: Request, body: RouteBody, identity: Manager) -> dict:
    with _db(request).session() as s:
        S.set_route(s, identity, body.category, body.district, body.department)
    return {"category": body.category, "district": body.district, "department": body.department}


@router.delete(f"{P}/routing", status_code=204)
def delete_route(request: Request, identity: Manager, category: str, district: str | None = None) -> Response:
    with _db(request).session() as s:
        S.delete_route(s, identity, category, district)
    return Response(status_code=204)


TemplateBody = body_of(S.TemplateIn)


@router.get(f"{P}/templates")
def templates(request: Request, identity: Worker, report_id: int | None = None, status: str | None = None) -> dict:
    language = language_of(request)
    with _db(request).session() as s:
        return {
            "items": [
                S.template_view(t, language) for t in S.list_templates(s, identity, report_id=report_id, status=status)
            ]
        }


@router.post(f"{P}/templates", status_code=201)
def create_template(request: Request, body: TemplateBody, identity: Worker) -> dict:
    with _db(request).session() as s:
        return S.template_view(S.save_template(s, identity, S.TemplateIn(**body.model_dump())), language_of(request))


@router.put(f"{P}/templates/{{template_id}}")
def change_template(request: Request, template_id: int, body: TemplateBody, identity: Worker) -> dict:
    with _db(request).session() as s:
        return S.template_view(
            S.save_template(s, identity, S.TemplateIn(**body.model_dump()), template_id), language_of(request)
        )


@router.delete(f"{P}/templates/{{template_id}}", status_code=204)
def delete_template(request: Request, template_id: int, identity: Worker) -> Response:
    with _db(request).session() as s:
        S.delete_template(s, identity, template_id)
    return Response(status_code=204)


# --- campaigns -----------------------------------------------------------------------------------------------


CampaignBody = body_of(S.CampaignIn, exclude=("slug",))


@router.get(f"{P}/campaigns")
def campaigns(request: Request, running: bool = False) -> dict:
    language = language_of(request)
    with _db(request).session() as s:
        items = S.list_campaigns(s, running_at=utcnow() if running else None)
        return {"items": [S.campaign_view(c, language) for c in items]}


@router.put(f"{P}/campaigns/{{slug}}")
def save_campaign(request: Request, slug: str, body: CampaignBody, identity: Manager) -> dict:
    with _db(request).session() as s:
        return S.campaign_view(
            S.save_campaign(s, identity, S.CampaignIn(slug=slug, **body.model_dump())), language_of(request)
        )


def _campaign_points(request: Request, slug: str, fmt: str) -> Response:
    with _db(request).session() as s:
        return render(request, S.campaign_points(s, slug, language_of(request)), fmt)


@router.get(f"{P}/campaigns/{{slug}}.geojson", response_class=Response, responses=GEOJSON_RESPONSES)
def campaign_geojson(request: Request, slug: str) -> Response:
    """A campaign's points as GeoJSON."""
    return _campaign_points(request, slug, "geojson")


@router.get(f"{P}/campaigns/{{slug}}.csv", response_class=Response, responses=CSV_RESPONSES)
def campaign_csv(request: Request, slug: str) -> Response:
    """A campaign's points as CSV."""
    return _campaign_points(request, slug, "csv")


@router.get(f"{P}/campaigns/{{slug}}")
def campaign(request: Request, slug: str) -> dict:
    language = language_of(request)
    with _db(request).session() as s:
        c = S.get_campaign(s, slug)
        view = S.campaign_view(c, language)
        view["categories"] = [S.category_view(cat, language) for cat in S.list_categories(s, campaign=slug)]
        return view


# --- subscriptions and the feed ------------------------------------------------------------------------------


class SubscriptionBody(BaseModel):
    email: str
    district: str | None = None
    bbox: str | None = Field(None, description="west,south,east,north")
    language: str | None = Field(None, description="one of the city's languages; default: the request's")


@router.post(f"{P}/subscriptions", status_code=201)
def subscribe(request: Request, body: SubscriptionBody, identity: CurrentIdentity) -> dict:
    """Email me new reports in a district or a box."""
    offered = request.app.state.profile.languages
    language = pick([body.language], offered) if body.language else language_of(request)
    if language is None:
        raise InvalidInput(
            f"language must be one of {', '.join(offered)}",
            code="invalid_language",
            details=[{"field": "language", "code": "invalid_language", "problem": f"one of {', '.join(offered)}"}],
        )
    with _db(request).session() as s:
        sub = S.subscribe(
            s,
            body.email,
            district=body.district,
            bbox=S.parse_bbox(body.bbox) if body.bbox else None,
            language=language,
            user_id=identity.user_id,
        )
        return {
            "id": sub.id,
            "district": sub.district_code,
            "bbox": [sub.west, sub.south, sub.east, sub.north] if sub.west is not None else None,
        }


@router.post(f"{P}/subscriptions/{{token}}/delete")
def unsubscribe(request: Request, token: str) -> dict:
    """Unsubscribe: the address of every message's List-Unsubscribe header, where a mail client POSTs
    "List-Unsubscribe=One-Click" (RFC 8058; the token is the credential, so no CSRF token is asked)."""
    with _db(request).session() as s:
        S.unsubscribe(s, token)
    return {"unsubscribed": True}


@router.get(f"{P}/subscriptions/{{token}}/delete", include_in_schema=False)
def unsubscribe_link(token: str) -> RedirectResponse:
    """A GET never unsubscribes (mail scanners fetch every link): older messages' links and mail clients
    without one-click land on the confirm page, whose button POSTs."""
    return RedirectResponse(f"/reports/unsubscribe/{quote(token, safe='')}", status_code=303)


def _feed(request: Request, district: str | None, bbox: str | None) -> Response:
    language = language_of(request)
    with _db(request).session() as s:
        entries = S.feed_entries(s, district=district, bbox=S.parse_bbox(bbox) if bbox else None, language=language)
    profile = request.app.state.profile
    area = district or bbox or profile.name(language)
    title = profile.name(language) + " — " + gettext(language, "new reports") + f" ({area})"
    return render(request, S.as_feed(entries, title), "atom")


@router.get("/reports/feed.atom", response_class=Response)
def feed(request: Request, district: str | None = None, bbox: str | None = None) -> Response:
    """New reports in an area as an Atom feed (district=code or bbox=west,south,east,north)."""
    return _feed(request, district, bbox)


ATOM_RESPONSES = {
    200: {"content": {"application/atom+xml": {"schema": {"type": "string"}}}, "description": "An Atom 1.0 feed"}
}


@router.get(f"{P}/feed.atom", response_class=Response, responses=ATOM_RESPONSES)
def feed_api(request: Request, district: str | None = None, bbox: str | None = None) -> Response:
    """New reports in an area as an Atom feed (district=code or bbox=west,south,east,north)."""
    return _feed(request, district, bbox)
