"""The JSON API of Community Mapping's reports under /api/reports: filing, searching, one report and its
workflow, the dashboard and the export. The taxonomy, routing, templates, campaigns, subscriptions and the
feed are api_city.py's, included here.

Thin: each route turns the request into a service call (smartcity.reports.service) and the result into
JSON (or CSV, through core.render). Errors use the platform's shape {"error": {"code", "message", "details"}}.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.errors import InvalidInput
from smartcity.core.params import numbers, timestamp
from smartcity.core.render import render
from smartcity.core.web import CSV_RESPONSES, body_of, language_of
from smartcity.core.writer import writer
from smartcity.reports import api_city
from smartcity.reports import service as S
from smartcity.reports.renderers import page_json
from smartcity.reports.settings import ReportsSettings

router = APIRouter(tags=["reports"])
# Its routes go ahead of /api/reports/{report_id}, which would take /api/reports/campaigns for a report.
router.include_router(api_city.router)
P = "/api/reports"

Worker = Annotated[Identity, Depends(Require("reports.work"))]
Viewer = Annotated[Identity, Depends(Require("reports.dashboard"))]


# --- response schemas ------------------------------------------------------------------------------------
# Routes that answer through core.render return a Response; these document the JSON form in the OpenAPI
# document (and schemathesis checks the answers against them).


class ReportOut(BaseModel):
    """A report as anyone may see it (`views.public_view`)."""

    id: int
    status: str
    status_name: str
    open311_status: str
    category: str
    category_name: str
    group: str
    title: str
    description: str
    address_string: str | None
    lat: float
    lon: float
    district: str
    neighbourhood: str | None
    attributes: dict[str, Any]
    unit: str
    unit_name: str
    reporter_name: str | None
    source: str
    campaign_id: int | None
    parent_id: int | None
    support_count: int
    photo_count: int
    media_urls: list[str]
    rating: int | None
    created_at: str
    updated_at: str
    due_at: str
    fixed_at: str | None
    overdue: bool


class ReportListOut(BaseModel):
    """A page of reports; `total` only when asked for (with_total)."""

    items: list[ReportOut]
    page: int
    page_size: int
    has_more: bool
    total: int | None


class HeatCell(BaseModel):
    cell: str
    lat: float
    lon: float
    count: int


# A unit's or district's figures: the service's read model, with its nested rows typed for the schema.
DashboardOut = body_of(S.Dashboard, name="DashboardOut", overdue=list[ReportOut], heat=list[HeatCell])


def _db(request: Request):
    return request.app.state.db


def _split(value: str | None) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def _fingerprint(request: Request) -> str:
    ip = request.client.host if request.client else ""
    return f"{ip}|{request.headers.get('user-agent', '')}"


# --- reports: create --------------------------------------------------------------------------------------


class PhotoIn(BaseModel):
    filename: str = "photo"
    data: str = Field(description="the file, base64-encoded")


# What a partner or the platform itself decides (source, language, links, import times) is not the body's.
ReportIn = body_of(
    S.NewReport,
    exclude=("source", "language", "external_id", "media_urls", "lenient", "requested_at"),
    lat=float,
    lon=float,
    contact=(body_of(S.Contact) | None, None),
    photos=(list[PhotoIn], Field(default_factory=list)),
)


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
        **body.model_dump(exclude={"contact", "photos", "idempotency_key"}),
        photos=photos,
        contact=S.Contact(**body.contact.model_dump()) if body.contact else None,
        idempotency_key=body.idempotency_key or header_key,
        source="api",
        language=language,
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
        self.query = S.ReportQuery(
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


@router.get(P, response_model=ReportListOut)
def list_reports(request: Request, filters: Annotated[ListFilters, Depends()], with_total: bool = False) -> Response:
    """Reports (public view), filtered and paged."""
    filters.query.with_total = with_total
    with _db(request).session() as s:
        return render(request, S.search(s, filters.query), "json")


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
        out = page_json(page_, language_of(request))
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


# --- dashboard -------------------------------------------------------------------------------------------------


@router.get(f"{P}/dashboard", response_model=DashboardOut)
def dashboard(
    request: Request,
    identity: Viewer,
    district: str | None = None,
    unit: str | None = None,
    since: str | None = None,
    until: str | None = None,
    campaign: str | None = None,
) -> Response:
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
        return render(request, d, "json")


@router.get(f"{P}/export.csv", response_class=Response, responses=CSV_RESPONSES)
def export_csv(
    request: Request, identity: Viewer, filters: Annotated[ListFilters, Depends()], include_contacts: bool = False
) -> Response:
    """Reports as CSV (staff: their unit). Contact columns only with include_contacts=true, if permitted."""
    with _db(request).session() as s:
        table = S.export_table(
            s, identity, filters.query, include_contacts=include_contacts, language=language_of(request)
        )
    return render(request, table, "csv")


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
