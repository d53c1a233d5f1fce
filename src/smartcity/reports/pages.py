"""The web pages of Community Mapping for citizens (thin: every rule is in the service).

Citizens: /reports/new (the form, also a plain multipart POST), /reports (public map and list), /reports/{id}
(the public page, support, the reporter's confirm/reopen/rating), /reports/subscribe, /campaigns (the Atom
feed /reports/feed.atom is api.py's). Staff (/staff/reports, the work view, /staff/dashboard) and
administrators (/admin/reports/{routes,templates,campaigns}) are in pages_staff.py; what both share is in
pages_common.py.

Pages that scripts need have a Datasette-style `.json`/`.geojson` twin. Every form carries the CSRF token;
POST handlers re-render the page with the errors next to the fields and the values kept.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.datastructures import FormData, UploadFile

from smartcity.core.auth import verify_csrf
from smartcity.core.errors import Conflict, InvalidInput, TooLarge
from smartcity.core.geo import geo_index
from smartcity.core.i18n import localized
from smartcity.core.render import render
from smartcity.core.web import gettext, language_of
from smartcity.reports import directory
from smartcity.reports import pages_common as C
from smartcity.reports import service as S
from smartcity.reports.settings import ReportsSettings, public_url

router = APIRouter(include_in_schema=False)


# --- citizens: filing a report ----------------------------------------------------------------------------

REPORT_FIELDS = (
    "category",
    "lat",
    "lon",
    "title",
    "description",
    "address",
    "name",
    "email",
    "phone",
    "idempotency_key",
    "campaign",
)


def _new_context(request: Request, s, values: dict, errors: dict, campaign: str | None) -> dict:
    lang = language_of(request)
    own = request.app.state.context.settings_of(ReportsSettings)
    camp = C.campaign_card(S.get_campaign(s, campaign), lang) if campaign else None
    return dict(
        groups=C.picker(s, lang, campaign),
        values=values,
        errors=errors,
        campaign=camp,
        max_photos=own.max_photos,
        max_photo_mb=own.max_photo_bytes // 2**20,
        max_description=S.MAX_DESCRIPTION,
        allow_anonymous=own.allow_anonymous,
    )


@router.get("/reports/new", response_class=HTMLResponse)
def new_report_form(request: Request, category: str = "", lat: str = "", lon: str = "", campaign: str = ""):
    values = {
        "category": category,
        "lat": lat,
        "lon": lon,
        "idempotency_key": secrets.token_urlsafe(16),
        "campaign": campaign,
        "attributes": {},
    }
    with request.app.state.db.session() as s:
        values.update(directory.own_contact(s, C.identity_of(request)))
        return C.page(request, "new.html", **_new_context(request, s, values, {}, campaign or None))


def _read_report_form(form: FormData, max_bytes: int) -> tuple[dict, list[S.Upload]]:
    values: dict[str, Any] = {k: str(form.get(k) or "") for k in REPORT_FIELDS}
    values["show_name"] = form.get("show_name") == "1"
    prefix = f"attr.{values['category']}."
    attrs: dict[str, Any] = {}
    for key in set(form.keys()):
        if key.startswith(prefix):
            items = [str(v) for v in form.getlist(key) if str(v) != ""]
            attrs[key[len(prefix) :]] = items if len(items) > 1 or key.endswith("[]") else (items[0] if items else "")
    values["attributes"] = {k.removesuffix("[]"): v for k, v in attrs.items()}
    uploads = []
    for f in form.getlist("photos"):
        if isinstance(f, UploadFile) and f.filename:
            f.file.seek(0)
            # One byte over the limit is enough to say "too large" without reading a huge file into memory.
            uploads.append(S.Upload(f.filename, f.file.read(max_bytes + 1), f.content_type or ""))
    return values, uploads


@router.post("/reports/new", dependencies=[Depends(verify_csrf)])
def submit_report(request: Request, form: C.Form):
    identity = C.identity_of(request)
    own = request.app.state.context.settings_of(ReportsSettings)
    values, uploads = _read_report_form(form, own.max_photo_bytes)
    campaign = values["campaign"] or None
    db = request.app.state.db
    # The service checks every field at once and names each problem; the page only puts them by their fields.
    new = S.NewReport(
        category=values["category"],
        lat=values["lat"],
        lon=values["lon"],
        title=values["title"],
        description=values["description"],
        address_string=values["address"] or None,
        attributes=values["attributes"],
        photos=uploads,
        contact=S.Contact(values["name"], values["email"], values["phone"]),
        show_name=values["show_name"],
        idempotency_key=values["idempotency_key"] or None,
        source="web",
        language=language_of(request),
        campaign=campaign,
    )
    errors: dict[str, str] = {}
    for attempt in (1, 2):
        try:
            with db.session() as s:
                created = S.create_report(s, identity, new)
                report_id, token = created.report.id, created.feedback_token
            break
        except Conflict as exc:
            # The same kept report sent twice at once (a tab and the service worker): the other send has
            # committed by now, and a second try finds it by its key instead of showing an error.
            if exc.code != "idempotency_conflict" or attempt == 2:
                raise
        except (InvalidInput, TooLarge) as exc:
            errors = C.errors_of(request, exc)
            break
    if errors:
        with db.session() as s:
            return C.page(request, "new.html", status_code=422, **_new_context(request, s, values, errors, campaign))
    C.remember_token(request, report_id, token)
    return RedirectResponse(f"/reports/{report_id}/submitted", status_code=303)


@router.get("/reports/nearby.json")
def nearby_json(request: Request, category: str, lat: str, lon: str, radius: float = S.NEARBY_M):
    """Open reports of the same category near a point: the "is this already reported?" prompt."""
    lang = language_of(request)
    with request.app.state.db.session() as s:
        found = S.nearby(s, category, lat, lon, radius_m=radius)
        return {
            "items": [
                {
                    "id": n.id,
                    "title": n.title,
                    "status": n.status,
                    "status_name": S.status_name(n.status, lang),
                    "distance_m": n.distance_m,
                    "support_count": n.support_count,
                    "lat": n.lat,
                    "lon": n.lon,
                    "url": f"/reports/{n.id}",
                }
                for n in found
            ]
        }


@router.get("/reports/where.json")
def where_json(request: Request, lat: str, lon: str):
    """Which district a pin is in, or why it cannot be used (outside the city)."""
    lang = language_of(request)
    try:
        where = geo_index(request.app.state.db).locate(lat, lon)
    except InvalidInput as exc:
        return JSONResponse(
            {"inside": False, "code": exc.code, "message": gettext(lang, C.ERROR_TEXT.get(exc.code, exc.message))}
        )
    return {
        "inside": True,
        "district": where.district.code,
        "district_name": where.district.name(lang),
        "neighbourhood_name": where.neighbourhood.name(lang) if where.neighbourhood else None,
    }


@router.get("/reports/{report_id:int}/submitted", response_class=HTMLResponse)
def submitted(request: Request, report_id: int):
    base = public_url(request.app.state.settings)
    with request.app.state.db.session() as s:
        report = S.get_report(s, report_id)
        view = S.public_view(report, language_of(request))
        token = (request.session.get("report_tokens") or {}).get(str(report_id))
        return C.page(
            request,
            "submitted.html",
            report=view,
            public_url=f"{base}/reports/{report_id}",
            private_url=f"{base}/reports/{report_id}?token={token}" if token else None,
        )


# --- the public map ---------------------------------------------------------------------------------------

STATUS_FILTERS = {"unresolved": sorted(S.OPEN_STATUSES), "resolved": sorted(S.CLOSED_STATUSES)}


def _public_query(
    group: str, status: str, district: str, bbox: str = "", page: int = 1, page_size: int = 50
) -> S.ReportQuery:
    statuses = STATUS_FILTERS.get(status) or ([status] if status in S.STATUSES else None)
    return S.ReportQuery(
        group=group or None,
        status=statuses,
        district=[district] if district else None,
        bbox=S.parse_bbox(bbox) if bbox else None,
        page=page,
        page_size=page_size,
        include_duplicates=status == "duplicate",
    )


@router.get("/reports", response_class=HTMLResponse)
def reports_map(request: Request, group: str = "", status: str = "unresolved", district: str = "", page: int = 1):
    """The public map and list, or the same page as JSON or pins (by Accept)."""
    lang = language_of(request)
    with request.app.state.db.session() as s:
        model = C.ReportsMap(
            result=S.search(s, _public_query(group, status, district, page=max(page, 1))),
            groups=[{"code": g.code, "name": localized(g, "name", lang)} for g in S.list_groups(s)],
            districts=C.districts(request),
            filters={"group": group, "status": status, "district": district},
        )
        return render(request, model, default="html")


@router.get("/reports.geojson")
def reports_geojson(
    request: Request, group: str = "", status: str = "unresolved", district: str = "", bbox: str = "", limit: int = 1000
):
    """Pins for the public map (public fields only)."""
    with request.app.state.db.session() as s:
        result = S.search(s, _public_query(group, status, district, bbox, page_size=min(max(limit, 1), 1000)))
        return render(request, result, "geojson")


@router.get("/reports/{report_id:int}", response_class=HTMLResponse)
@router.get("/reports/{report_id:int}.json")
def report_page(request: Request, report_id: int, supported: int = 0):
    """A report's page, or the same as JSON (/reports/{id}.json, or Accept: application/json)."""
    with request.app.state.db.session() as s:
        model = C.ReportView(C.report_detail(request, s, report_id), supported=bool(supported))
        return render(request, model, default="html")


@router.get("/reports/mine", response_class=HTMLResponse)
@router.get("/reports/mine.json")
def my_reports(request: Request, page: int = 1):
    """The signed-in citizen's own reports ("나의 신고") with their status and latest update, or as JSON."""
    # The anonymous get the sign-in page (HTML) or 401 (JSON) from the service's NotAuthenticated.
    with request.app.state.db.session() as s:
        model = C.MyReportsPage(S.my_reports(s, C.identity_of(request), page=max(page, 1)))
        return render(request, model, default="html")


@router.post("/reports/{report_id:int}/support", dependencies=[Depends(verify_csrf)])
def support(request: Request, report_id: int):
    identity = C.identity_of(request)
    with request.app.state.db.session() as s:
        count = S.support(s, identity, report_id, fingerprint=None if identity.user_id else C.fingerprint(request))
    if C.wants_json(request):
        return {"id": report_id, "support_count": count}
    return RedirectResponse(f"/reports/{report_id}?supported=1", status_code=303)


@router.post("/reports/{report_id:int}/feedback", dependencies=[Depends(verify_csrf)])
def feedback(request: Request, report_id: int, form: C.Form):
    identity = C.identity_of(request)
    fixed = form.get("fixed") == "yes"
    rating_text = str(form.get("rating") or "")
    token = str(form.get("token") or "") or C.token_for(request, report_id)
    try:
        rating = int(rating_text) if rating_text else None
        with request.app.state.db.session() as s:
            S.feedback(
                s, identity, report_id, fixed=fixed, rating=rating, comment=str(form.get("comment") or ""), token=token
            )
    except (InvalidInput, ValueError) as exc:
        with request.app.state.db.session() as s:
            err = exc if isinstance(exc, InvalidInput) else InvalidInput("bad rating", code="invalid_rating")
            errors = C.errors_of(request, err, "comment")
            model = C.ReportView(C.report_detail(request, s, report_id), feedback_errors=errors)
            return render(request, model, "html", status_code=422)
    suffix = f"?token={token}" if token and not identity.user_id else ""
    return RedirectResponse(f"/reports/{report_id}{suffix}", status_code=303)


# --- subscriptions ----------------------------------------------------------------------------------------


@router.get("/reports/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request, district: str = "", bbox: str = ""):
    identity = C.identity_of(request)
    email = ""
    if identity.user_id:
        with request.app.state.db.session() as s:
            email = directory.email_of(s, identity.user_id)
    return C.page(
        request,
        "subscribe.html",
        districts=C.districts(request),
        errors={},
        values={"district": district, "bbox": bbox, "email": email, "area": "bbox" if bbox else "district"},
    )


@router.post("/reports/subscribe", dependencies=[Depends(verify_csrf)])
def subscribe(request: Request, form: C.Form):
    identity = C.identity_of(request)
    values = {k: str(form.get(k) or "") for k in ("email", "district", "bbox", "area")}
    try:
        with request.app.state.db.session() as s:
            by_box = values["area"] == "bbox" and values["bbox"]
            sub = S.subscribe(
                s,
                values["email"],
                district=None if by_box else (values["district"] or None),
                bbox=S.parse_bbox(values["bbox"]) if by_box else None,
                language=language_of(request),
                user_id=identity.user_id,
            )
            token = sub.token
    except InvalidInput as exc:
        return C.page(
            request,
            "subscribe.html",
            status_code=422,
            districts=C.districts(request),
            errors=C.errors_of(request, exc, "email"),
            values=values,
        )
    return C.page(request, "subscribed.html", email=values["email"], unsubscribe=f"/reports/unsubscribe/{token}")


@router.get("/reports/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_form(request: Request, token: str):
    return C.page(request, "unsubscribe.html", token=token, done=False)


@router.post("/reports/unsubscribe/{token}", dependencies=[Depends(verify_csrf)])
def unsubscribe(request: Request, token: str):
    with request.app.state.db.session() as s:
        S.unsubscribe(s, token)
    return C.page(request, "unsubscribe.html", token=token, done=True)


# --- campaigns, for everyone ------------------------------------------------------------------------------


@router.get("/campaigns", response_class=HTMLResponse)
@router.get("/campaigns.json")
def campaigns(request: Request):
    """The campaigns: the page, or the same cards as JSON (/campaigns.json, or Accept)."""
    lang = language_of(request)
    with request.app.state.db.session() as s:
        model = C.CampaignList([C.campaign_card(c, lang) for c in S.list_campaigns(s)])
        return render(request, model, default="html")


# Registered bottom up: the .csv and .geojson routes go before /campaigns/{slug}, which would take them.
@router.get("/campaigns/{slug}", response_class=HTMLResponse)
@router.get("/campaigns/{slug}.geojson")
@router.get("/campaigns/{slug}.csv")
def campaign_page(request: Request, slug: str):
    """A campaign: its page, its pins (GeoJSON) or its rows (CSV), one view (by extension or Accept)."""
    lang = language_of(request)
    with request.app.state.db.session() as s:
        model = C.CampaignPage(
            campaign=C.campaign_card(S.get_campaign(s, slug), lang),
            categories=[S.category_view(c, lang) for c in S.list_categories(s, campaign=slug)],
            points=S.campaign_points(s, slug, lang),
        )
        return render(request, model, default="html")
