"""The JSON API of Community Mapping under /api/reports, plus the area feed /reports/feed.atom.

Thin: each route turns the request into a service call (smartcity.reports.service) and the result into
JSON. Errors use the platform's shape {"error": {"code", "message", "details"}}.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError

from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.errors import InvalidInput
from smartcity.core.params import numbers, timestamp
from smartcity.core.web import CSV_RESPONSES, GEOJSON_RESPONSES, gettext, language_of
from smartcity.core.writer import writer
from smartcity.reports import service as S
from smartcity.reports.settings import ReportsSettings

router = APIRouter(tags=["reports"])
P = "/api/reports"

Worker = Annotated[Identity, Depends(Require("reports.work"))]
Manager = Annotated[Identity, Depends(Require("reports.manage"))]
Viewer = Annotated[Identity, Depends(Require("reports.dashboard"))]


def _db(request: Request):
    return request.app.state.db


def _split(value: str | None) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def _fingerprint(request: Request) -> str:
    ip = request.client.host if request.client else ""
    return f"{ip}|{request.headers.get('user-agent', '')}"


# --- taxonomy -----------------------------------------------------------------------------------------


@router.get(f"{P}/categories")
def categories(request: Request, campaign: str | None = None, lang: str | None = None) -> dict:
    """The taxonomy: groups (fields) with their categories (items), attributes included."""
    language = lang or language_of(request)
    with _db(request).session() as s:
        groups = S.list_groups(s)
        cats = S.list_categories(s, campaign=campaign)
        by_group = {g.code: g for g in groups}
        out = []
        for g in groups:
            items = [S.category_view(c, language, g) for c in cats if c.group_code == g.code]
            if items:
                out.append({"code": g.code, "name": S._loc(g, "name", language), "categories": items})
        extra = [S.category_view(c, language) for c in cats if c.group_code not in by_group]
        if extra:
            out.append({"code": "", "name": "", "categories": extra})
        return {"groups": out}


@router.get(f"{P}/categories/{{code}}")
def category(request: Request, code: str, lang: str | None = None) -> dict:
    with _db(request).session() as s:
        cat = S.get_category(s, code)
        return S.category_view(cat, lang or language_of(request))


class CategoryBody(BaseModel):
    group: str
    name_ko: str
    name_en: str
    description_ko: str = ""
    description_en: str = ""
    keywords: str = ""
    service_days: int = 7
    unit_kind: str = "civil"
    attributes: list[dict] = Field(default_factory=list)
    active: bool = True
    campaign: str | None = None


@router.put(f"{P}/categories/{{code}}")
def save_category(request: Request, code: str, body: CategoryBody, identity: Manager) -> dict:
    """Create or change a category (administrators)."""
    with _db(request).session() as s:
        cat = S.save_category(s, identity, S.CategoryIn(code=code, **body.model_dump()))
        return S.category_view(cat, language_of(request))


# --- reports: create --------------------------------------------------------------------------------------


class ContactIn(BaseModel):
    name: str | None = None
    email: str | None = None
    phone: str | None = None


class PhotoIn(BaseModel):
    filename: str = "photo"
    data: str = Field(description="the file, base64-encoded")


class ReportIn(BaseModel):
    category: str
    lat: float
    lon: float
    title: str
    description: str = ""
    address_string: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    contact: ContactIn | None = None
    show_name: bool = False
    idempotency_key: str | None = None
    campaign: str | None = None
    photos: list[PhotoIn] = Field(default_factory=list)


_CREATE_DOC = {
    "requestBody": {
        "content": {
            "application/json": {"schema": ReportIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "category": {"type": "string"},
                        "lat": {"type": "number"},
                        "lon": {"type": "number"},
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                        "address_string": {"type": "string"},
                        "attributes": {"type": "string", "description": "JSON object; or fields attribute[code]"},
                        "contact_name": {"type": "string"},
                        "contact_email": {"type": "string"},
                        "contact_phone": {"type": "string"},
                        "show_name": {"type": "boolean"},
                        "idempotency_key": {"type": "string"},
                        "campaign": {"type": "string"},
                        "photos": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                    "required": ["category", "lat", "lon", "title"],
                }
            },
        },
        "required": True,
    }
}


def _invalid_body(exc: ValidationError) -> InvalidInput:
    details = [
        {"field": ".".join(str(p) for p in e["loc"]), "code": "invalid", "problem": e["msg"]} for e in exc.errors()
    ]
    return InvalidInput("the request is not valid", details=details)


async def _new_report_from(request: Request, max_bytes: int) -> S.NewReport:
    ctype = request.headers.get("content-type", "")
    language = language_of(request)
    header_key = request.headers.get("idempotency-key")
    if ctype.startswith("multipart/form-data") or ctype.startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        attributes: dict[str, Any] = {}
        if form.get("attributes"):
            try:
                attributes = json.loads(str(form.get("attributes")))
            except ValueError:
                raise InvalidInput("attributes must be a JSON object", code="invalid_attributes") from None
            if not isinstance(attributes, dict):
                raise InvalidInput("attributes must be a JSON object", code="invalid_attributes")
        for key in form:
            if key.startswith("attribute[") and key.endswith("]"):
                inner = key[len("attribute[") :]
                multi = inner.endswith("][]")
                code = inner[:-3] if multi else inner[:-1]
                values = [str(v) for v in form.getlist(key)]
                attributes[code] = values if multi or len(values) > 1 else values[0]
        photos = []
        for item in form.getlist("photos"):
            if isinstance(item, str):
                raise InvalidInput("photos must be files", code="not_an_image")
            data = await item.read(max_bytes + 1)
            photos.append(S.Upload(item.filename or "photo", data, item.content_type or ""))
        contact = S.Contact(
            form.get("contact_name") or None, form.get("contact_email") or None, form.get("contact_phone") or None
        )
        missing = [f for f in ("category", "lat", "lon", "title") if not form.get(f)]
        if missing:
            raise InvalidInput(
                "the request is not valid",
                code="invalid",
                details=[{"field": f, "code": "required", "problem": "is required"} for f in missing],
            )
        return S.NewReport(
            category=str(form.get("category")),
            lat=form.get("lat"),
            lon=form.get("lon"),
            title=str(form.get("title")),
            description=str(form.get("description") or ""),
            address_string=str(form.get("address_string") or "") or None,
            attributes=attributes,
            photos=photos,
            contact=contact,
            show_name=str(form.get("show_name", "")).lower() in ("1", "true", "on", "yes"),
            idempotency_key=str(form.get("idempotency_key") or header_key or "") or None,
            source="web",
            language=language,
            campaign=str(form.get("campaign") or "") or None,
        )
    try:
        body = ReportIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid_body(exc) from None
    photos = []
    for i, p in enumerate(body.photos):
        try:
            data = base64.b64decode(p.data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                "a photo is not valid base64",
                code="not_an_image",
                details=[{"field": f"photos.{i}", "code": "not_an_image"}],
            ) from None
        photos.append(S.Upload(p.filename, data))
    return S.NewReport(
        category=body.category,
        lat=body.lat,
        lon=body.lon,
        title=body.title,
        description=body.description,
        address_string=body.address_string,
        attributes=body.attributes,
        photos=photos,
        contact=S.Contact(**body.contact.model_dump()) if body.contact else None,
        show_name=body.show_name,
        idempotency_key=body.idempotency_key or header_key,
        source="api",
        language=language,
        campaign=body.campaign,
    )


@router.post(P, status_code=201, openapi_extra=_CREATE_DOC)
async def create_report(request: Request, identity: CurrentIdentity) -> JSONResponse:
    """File a report: JSON (photos base64) or multipart (photos as files). An Idempotency-Key header or
    field makes a retry safe: the same report comes back (200) and nothing new is stored. The answer
    carries `feedback_token`, the reporter's secret for confirming or reopening after a fix."""
    new = await _new_report_from(request, request.app.state.context.settings_of(ReportsSettings).max_photo_bytes)
    language = language_of(request)

    def job(s) -> tuple[S.CreatedReport, dict]:
        created = S.create_report(s, identity, new)
        return created, S.detail_view(s, created.report, identity, language)

    # Through the store's single writer: many reports filed at once are committed together, not in a queue
    # of transactions waiting on each other's locks.
    created, view = await writer(_db(request)).arun(job)
    return JSONResponse(
        {"report": view, "feedback_token": created.feedback_token, "repeated": created.repeated},
        status_code=200 if created.repeated else 201,
    )


# --- reports: read ------------------------------------------------------------------------------------------


def _query(
    status,
    category,
    group,
    district,
    unit,
    campaign,
    bbox,
    near,
    created_after,
    created_before,
    updated_after,
    updated_before,
    overdue,
    q,
    order,
    page,
    page_size,
) -> S.ReportQuery:
    return S.ReportQuery(
        status=_split(status),
        category=_split(category),
        group=group,
        district=_split(district),
        unit=unit,
        campaign=campaign,
        bbox=numbers(bbox, 4, "bbox"),
        near=numbers(near, 3, "near"),
        created_after=timestamp(created_after, "created_after"),
        created_before=timestamp(created_before, "created_before"),
        updated_after=timestamp(updated_after, "updated_after"),
        updated_before=timestamp(updated_before, "updated_before"),
        overdue=overdue,
        text=q,
        order=order,
        page=page,
        page_size=page_size,
    )


class ListFilters:
    """Query parameters shared by the list, the queue and the CSV export."""

    def __init__(
        self,
        status: str | None = Query(None, description="comma-separated statuses"),
        category: str | None = Query(None, description="comma-separated category codes"),
        group: str | None = None,
        district: str | None = Query(None, description="comma-separated district codes"),
        unit: str | None = Query(None, description="a department code"),
        campaign: str | None = None,
        bbox: str | None = Query(None, description="west,south,east,north"),
        near: str | None = Query(None, description="lat,lon,radius_m"),
        created_after: str | None = None,
        created_before: str | None = None,
        updated_after: str | None = None,
        updated_before: str | None = None,
        overdue: bool = False,
        q: str | None = Query(None, description="text in title or description"),
        order: str = "created_desc",
        page: int = Query(1, ge=1),
        page_size: int = Query(50, ge=1, le=1000),
    ):
        self.query = _query(
            status,
            category,
            group,
            district,
            unit,
            campaign,
            bbox,
            near,
            created_after,
            created_before,
            updated_after,
            updated_before,
            overdue,
            q,
            order,
            page,
            page_size,
        )


def _page(page: S.ReportPage, language: str) -> dict:
    return {
        "items": [S.public_view(r, language) for r in page.items],
        "page": page.page,
        "page_size": page.page_size,
        "has_more": page.has_more,
        "total": page.total,
    }


@router.get(P)
def list_reports(request: Request, filters: Annotated[ListFilters, Depends()], with_total: bool = False) -> dict:
    """Reports (public view), filtered and paged."""
    filters.query.with_total = with_total
    with _db(request).session() as s:
        return _page(S.search(s, filters.query), language_of(request))


@router.get(f"{P}/nearby")
def nearby(
    request: Request, category: str, lat: float, lon: float, radius: Annotated[float, Query(gt=0, le=1000)] = S.NEARBY_M
) -> dict:
    """Open reports of the same category near a point (shown before filing: support one instead)."""
    with _db(request).session() as s:
        found = S.nearby(s, category, lat, lon, radius)
    return {
        "items": [
            {
                "id": n.id,
                "title": n.title,
                "status": n.status,
                "category": n.category,
                "lat": n.lat,
                "lon": n.lon,
                "distance_m": n.distance_m,
                "support_count": n.support_count,
                "created_at": n.created_at.isoformat(),
            }
            for n in found
        ]
    }


@router.get(f"{P}/queue")
def queue(
    request: Request,
    identity: Worker,
    unit: str | None = None,
    status: str | None = None,
    order: str = "due_asc",
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict:
    """The caller's unit's work queue (administrators: any unit), most urgent first."""
    with _db(request).session() as s:
        page_ = S.work_queue(s, identity, status=_split(status), page=page, page_size=page_size, order=order, unit=unit)
        out = _page(page_, language_of(request))
        for item, r in zip(out["items"], page_.items, strict=True):
            item["assignee_id"] = r.assignee_id
        return out


@router.get(f"{P}/overdue")
def overdue(request: Request, identity: Worker, unit: str | None = None) -> dict:
    with _db(request).session() as s:
        return {"items": [S.public_view(r, language_of(request)) for r in S.overdue(s, identity, unit=unit)]}


@router.get(f"{P}/photos/{{photo_id}}.jpg", response_class=FileResponse)
def photo(request: Request, photo_id: int):
    with _db(request).session() as s:
        path = S.photo_file(s, photo_id)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get(f"{P}/photos/{{photo_id}}/thumb.jpg", response_class=FileResponse)
def photo_thumb(request: Request, photo_id: int):
    with _db(request).session() as s:
        path = S.photo_file(s, photo_id, thumb=True)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


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


class TemplateBody(BaseModel):
    title: str
    text_ko: str
    text_en: str
    status: str | None = None
    department: str | None = None
    category: str | None = None


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


class CampaignBody(BaseModel):
    title_ko: str
    title_en: str
    starts_at: datetime
    ends_at: datetime
    description_ko: str = ""
    description_en: str = ""
    theme: str = ""
    district: str | None = None


@router.get(f"{P}/campaigns")
def campaigns(request: Request, running: bool = False) -> dict:
    from smartcity.core.db import utcnow

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


@router.get(f"{P}/campaigns/{{slug}}.geojson", response_class=Response, responses=GEOJSON_RESPONSES)
def campaign_geojson(request: Request, slug: str) -> Response:
    """A campaign's points as GeoJSON."""
    with _db(request).session() as s:
        body = S.campaign_geojson(s, slug, language_of(request))
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/geo+json")


@router.get(f"{P}/campaigns/{{slug}}.csv", response_class=Response, responses=CSV_RESPONSES)
def campaign_csv(request: Request, slug: str) -> Response:
    """A campaign's points as CSV."""
    with _db(request).session() as s:
        body = S.campaign_csv(s, slug, language_of(request))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{slug}.csv"'},
    )


@router.get(f"{P}/campaigns/{{slug}}")
def campaign(request: Request, slug: str) -> dict:
    language = language_of(request)
    with _db(request).session() as s:
        c = S.get_campaign(s, slug)
        view = S.campaign_view(c, language)
        view["categories"] = [S.category_view(cat, language) for cat in S.list_categories(s, campaign=slug)]
        return view


# --- dashboard -------------------------------------------------------------------------------------------------


@router.get(f"{P}/dashboard")
def dashboard(
    request: Request,
    identity: Viewer,
    district: str | None = None,
    unit: str | None = None,
    since: str | None = None,
    until: str | None = None,
    campaign: str | None = None,
) -> dict:
    """Counts by status, category, group and district; overdue items; median days to fix; heat map cells."""
    with _db(request).session() as s:
        d = S.dashboard(
            s,
            identity,
            district=district,
            unit=unit,
            since=timestamp(since, "since"),
            until=timestamp(until, "until"),
            campaign=campaign,
        )
        return S.dashboard_view(d, language_of(request))


@router.get(f"{P}/export.csv", response_class=Response, responses=CSV_RESPONSES)
def export_csv(
    request: Request, identity: Viewer, filters: Annotated[ListFilters, Depends()], include_contacts: bool = False
) -> Response:
    """Reports as CSV (staff: their unit). Contact columns only with include_contacts=true, if permitted."""
    with _db(request).session() as s:
        body = S.export_csv(
            s, identity, filters.query, include_contacts=include_contacts, language=language_of(request)
        )
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="reports.csv"'},
    )


# --- subscriptions and the feed ------------------------------------------------------------------------------


class SubscriptionBody(BaseModel):
    email: str
    district: str | None = None
    bbox: str | None = Field(None, description="west,south,east,north")
    language: str = "ko"


@router.post(f"{P}/subscriptions", status_code=201)
def subscribe(request: Request, body: SubscriptionBody, identity: CurrentIdentity) -> dict:
    """Email me new reports in a district or a box."""
    with _db(request).session() as s:
        sub = S.subscribe(
            s,
            body.email,
            district=body.district,
            bbox=S.parse_bbox(body.bbox) if body.bbox else None,
            language=body.language,
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
    title = f"{profile.name(language)} — {gettext(language, 'new reports')} ({area})"
    self_path = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    xml = S.atom_feed(entries, base_url=str(request.base_url), title=title, self_path=self_path)
    return Response(xml, media_type="application/atom+xml; charset=utf-8")


@router.get("/reports/feed.atom", response_class=Response)
def feed(request: Request, district: str | None = None, bbox: str | None = None) -> Response:
    """New reports in an area as an Atom feed (district=code or bbox=west,south,east,north)."""
    return _feed(request, district, bbox)


@router.get(f"{P}/feed.atom", response_class=Response)
def feed_api(request: Request, district: str | None = None, bbox: str | None = None) -> Response:
    return _feed(request, district, bbox)


# --- one report ---------------------------------------------------------------------------------------------------


@router.get(f"{P}/{{report_id}}")
def get_report(request: Request, report_id: int, identity: CurrentIdentity) -> dict:
    """A report with its photos and timeline (staff of its unit also see internal notes)."""
    with _db(request).session() as s:
        return S.detail_view(s, S.get_report(s, report_id), identity, language_of(request))


@router.get(f"{P}/{{report_id}}/contact")
def contact(request: Request, report_id: int, identity: Worker) -> dict:
    """The reporter's contact details (staff of the unit, administrators). Every read is audited."""
    with _db(request).session() as s:
        c = S.contact_of(s, identity, report_id)
    return {"contact": c.__dict__ if c else None}


@router.post(f"{P}/{{report_id}}/support")
def support(request: Request, report_id: int, identity: CurrentIdentity) -> dict:
    """Me too: count once per person (or browser)."""
    with _db(request).session() as s:
        n = S.support(s, identity, report_id, fingerprint=_fingerprint(request))
    return {"id": report_id, "support_count": n}


class TransitionBody(BaseModel):
    status: str
    text: str = ""
    template_id: int | None = None
    parent_id: int | None = None


@router.post(f"{P}/{{report_id}}/transition")
def transition(request: Request, report_id: int, body: TransitionBody, identity: Worker) -> dict:
    with _db(request).session() as s:
        r = S.transition(
            s, identity, report_id, body.status, text=body.text, template_id=body.template_id, parent_id=body.parent_id
        )
        return S.public_view(r, language_of(request))


class AssignBody(BaseModel):
    user_id: int | None = None


@router.post(f"{P}/{{report_id}}/assign")
def assign(request: Request, report_id: int, body: AssignBody, identity: Worker) -> dict:
    with _db(request).session() as s:
        r = S.assign(s, identity, report_id, body.user_id)
        return {"id": r.id, "assignee_id": r.assignee_id}


class NoteBody(BaseModel):
    text: str
    public: bool = False


@router.post(f"{P}/{{report_id}}/notes", status_code=201)
def note(request: Request, report_id: int, body: NoteBody, identity: Worker) -> dict:
    """An internal note (public=false) or a public update to the citizen (public=true)."""
    with _db(request).session() as s:
        return S.update_view(S.add_note(s, identity, report_id, body.text, public=body.public), language_of(request))


class ReassignBody(BaseModel):
    department: str
    reason: str = ""


@router.post(f"{P}/{{report_id}}/reassign")
def reassign(request: Request, report_id: int, body: ReassignBody, identity: Worker) -> dict:
    with _db(request).session() as s:
        return S.public_view(
            S.reassign(s, identity, report_id, body.department, reason=body.reason), language_of(request)
        )


class MergeBody(BaseModel):
    children: list[int] = Field(min_length=1)
    text: str = ""


@router.post(f"{P}/{{report_id}}/merge")
def merge(request: Request, report_id: int, body: MergeBody, identity: Worker) -> dict:
    """Mark `children` as duplicates of this report; their supports move here."""
    with _db(request).session() as s:
        return S.public_view(S.merge(s, identity, report_id, body.children, text=body.text), language_of(request))


class FeedbackBody(BaseModel):
    fixed: bool
    rating: int | None = None
    comment: str = ""
    token: str | None = None


@router.post(f"{P}/{{report_id}}/feedback")
def feedback(request: Request, report_id: int, body: FeedbackBody, identity: CurrentIdentity) -> dict:
    """The reporter confirms the fix (closed) or reopens it, and may rate it 1–5 (signed in or with the token)."""
    with _db(request).session() as s:
        r = S.feedback(
            s, identity, report_id, fixed=body.fixed, rating=body.rating, comment=body.comment, token=body.token
        )
        return S.public_view(r, language_of(request))
