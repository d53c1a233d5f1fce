"""The Community Mapping pages for staff (the unit's queue, the work view, the dashboard) and for
administrators (routing, response templates, campaigns). Thin: every rule is in the service."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData, UploadFile

from smartcity.core.auth import Identity, Require
from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied, SmartCityError, TooLarge
from smartcity.core.i18n import N_, localized
from smartcity.core.render import render
from smartcity.core.web import language_of
from smartcity.reports import directory
from smartcity.reports import pages_common as C
from smartcity.reports import service as S
from smartcity.reports.settings import ReportsSettings

router = APIRouter(include_in_schema=False)


# --- staff: the queue and the work view -------------------------------------------------------------------

QUEUE_ORDERS = ("due_asc", "created_desc", "updated_desc", "support_desc")


@router.get("/staff/reports", response_class=HTMLResponse)
@router.get("/staff/reports.json")
@router.get("/staff/reports.geojson")
def queue(
    request: Request,
    identity: Annotated[Identity, Depends(Require("reports.work"))],
    status: str = "",
    overdue: int = 0,
    mine: int = 0,
    order: str = "due_asc",
    unit: str = "",
    page: int = 1,
    view: str = "list",
    size: int = 50,
):
    """The unit's queue as a table with bulk actions, or on a map (view=map: its pins are this route's
    .geojson twin), or as JSON."""
    lang = language_of(request)
    manager = identity.can("reports.manage")
    if not manager:
        if identity.department_code is None:
            raise PermissionDenied(N_("you belong to no unit"), code="other_unit")
        unit = identity.department_code
    statuses = [status] if status in S.STATUSES else sorted(S.OPEN_STATUSES)
    q = S.ReportQuery(
        status=statuses,
        unit=unit or None,
        overdue=bool(overdue),
        assignee_id=identity.user_id if mine else None,
        order=order if order in QUEUE_ORDERS else "due_asc",
        page=max(page, 1),
        page_size=min(max(size, 1), 1000),
        with_total=True,
    )
    with request.app.state.db.session() as s:
        result = S.search(s, q)
        filters = {"status": status, "overdue": overdue, "mine": mine, "order": order, "unit": unit}
        model = C.QueuePage(
            result=result,
            filters=filters,
            view="map" if view == "map" else "list",
            assignees=directory.usernames(s, [r.assignee_id for r in result.items]),
            units=[(d["code"], d["name"]) for d in directory.departments(s, lang)],
            unit_name=directory.unit_names(s, lang).get(unit, "") if unit else "",
            manager=manager,
            templates=[S.template_view(t, lang) for t in S.list_templates(s, identity)],
            members=directory.members(s, identity.department_id) if identity.department_id else [],
            bulk=request.session.pop("bulk", None),
        )
        return render(request, model, default="html")


@router.post("/staff/reports/bulk")
def bulk(request: Request, identity: Annotated[Identity, Depends(Require("reports.work"))], form: C.Form):
    """One change for the reports ticked in the queue (each in its own transaction: see S.bulk_action)."""
    action = str(form.get("action") or "")
    back = str(form.get("back") or "")
    try:
        ids = [int(v) for v in form.getlist("ids")]
        done = S.bulk_action(
            request.app.state.db,
            identity,
            ids,
            status=str(form.get("status") or "") or None if action == "status" else None,
            text=str(form.get("text") or ""),
            template_id=_int_or_none(form.get("template_id")) if action == "status" else None,
            department=str(form.get("department") or "") or None if action == "reassign" else None,
            assignee_id=_int_or_none(form.get("user_id")) if action == "assign" else None,
        )
        outcome = {"done": done.done, "refused": [{"id": k, **v} for k, v in done.refused.items()]}
    except (InvalidInput, NotFound, ValueError) as exc:
        err = exc if isinstance(exc, SmartCityError) else InvalidInput("not a report number", code="invalid_number")
        outcome = {"error": C.translated(request, C.ERROR_TEXT.get(err.code, err.message))}
    request.session["bulk"] = outcome
    # Back to the same queue view (its filters): a path on this site only.
    target = back if back.startswith("/staff/reports") and "//" not in back else "/staff/reports"
    return RedirectResponse(target, status_code=303)


def _work_context(request: Request, s, identity: Identity, report_id: int) -> dict:
    lang = language_of(request)
    report = S.get_report(s, report_id)
    if not S.can_work(identity, report):
        raise PermissionDenied(N_("this report belongs to another unit"), code="other_unit")
    view = C.report_detail(request, s, report_id)
    contact = S.contact_of(s, identity, report_id)  # audited: staff see it only here
    # The text goes to the reporter (their language); the title is for the staff member picking it (the page's).
    templates = [
        S.template_view(t, report.language, reader=lang) for t in S.list_templates(s, identity, report_id=report_id)
    ]
    members = directory.members(s, report.unit_id)
    departments = directory.departments(s, lang, except_id=report.unit_id)
    candidates = [
        n
        for n in S.nearby(s, report.category_code, report.lat, report.lon, radius_m=200, limit=10)
        if n.id != report.id
    ]
    allowed = [st for st in S.STATUSES if st in S.TRANSITIONS[report.status]]
    return dict(
        report=view,
        contact=contact,
        templates=templates,
        members=members,
        departments=departments,
        candidates=candidates,
        allowed=allowed,
        assignee_id=report.assignee_id,
        errors={},
        form={},
    )


@router.get("/staff/reports/{report_id:int}", response_class=HTMLResponse)
def work_view(request: Request, report_id: int, identity: Annotated[Identity, Depends(Require("reports.work"))]):
    with request.app.state.db.session() as s:
        return C.page(request, "work.html", **_work_context(request, s, identity, report_id))


def _staff_action(request: Request, identity: Identity, report_id: int, form: FormData, action, where: str):
    """Run one workflow action; on bad input re-render the work view with the error beside its form."""
    try:
        with request.app.state.db.session() as s:
            target = action(s)
    except (InvalidInput, NotFound, TooLarge) as exc:
        with request.app.state.db.session() as s:
            context = _work_context(request, s, identity, report_id)
            message = exc.message
            if exc.code == "illegal_transition":
                message = C.translated(request, "That change of status is not allowed from the current status.")
            elif exc.code in C.ERROR_TEXT:
                message = C.translated(request, C.ERROR_TEXT[exc.code])
            context.update(
                errors={where: message}, form={k: str(v) for k, v in form.items() if not isinstance(v, UploadFile)}
            )
            return C.page(request, "work.html", status_code=422, **context)
    return RedirectResponse(target or f"/staff/reports/{report_id}", status_code=303)


def _int_or_none(value: Any) -> int | None:
    text = str(value or "").strip().lstrip("#")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(
            N_("{text!r} is not a report number"), params={"text": text}, code="invalid_number"
        ) from None


Worker = Annotated[Identity, Depends(Require("reports.work"))]


@router.post("/staff/reports/{report_id:int}/status")
def change_status(request: Request, report_id: int, identity: Worker, form: C.Form):
    photo = form.get("after_photo")
    upload = None
    if isinstance(photo, UploadFile) and photo.filename:
        max_bytes = request.app.state.context.settings_of(ReportsSettings).max_photo_bytes
        photo.file.seek(0)
        # One byte over the limit is enough to say "too large" without reading a huge file into memory.
        upload = S.Upload(photo.filename, photo.file.read(max_bytes + 1), photo.content_type or "")

    def act(s):
        template = _int_or_none(form.get("template_id"))
        S.transition(
            s,
            identity,
            report_id,
            str(form.get("status") or ""),
            text=str(form.get("text") or ""),
            template_id=template,
            parent_id=_int_or_none(form.get("parent_id")),
            after_photo=upload,
        )

    return _staff_action(request, identity, report_id, form, act, "status")


@router.post("/staff/reports/{report_id:int}/assign")
def assign(request: Request, report_id: int, identity: Worker, form: C.Form):
    return _staff_action(
        request,
        identity,
        report_id,
        form,
        lambda s: S.assign(s, identity, report_id, _int_or_none(form.get("user_id"))) and None,
        "assign",
    )


@router.post("/staff/reports/{report_id:int}/note")
def note(request: Request, report_id: int, identity: Worker, form: C.Form):
    public = form.get("visibility") == "public"
    return _staff_action(
        request,
        identity,
        report_id,
        form,
        lambda s: S.add_note(s, identity, report_id, str(form.get("text") or ""), public=public) and None,
        "note",
    )


@router.post("/staff/reports/{report_id:int}/reassign")
def reassign(request: Request, report_id: int, identity: Worker, form: C.Form):
    def act(s):
        report = S.reassign(
            s, identity, report_id, str(form.get("department") or ""), reason=str(form.get("reason") or "")
        )
        # After sending it away the report may no longer be ours to see in the work view.
        return None if S.can_work(identity, report) else f"/reports/{report_id}"

    return _staff_action(request, identity, report_id, form, act, "reassign")


@router.post("/staff/reports/{report_id:int}/merge")
def merge(request: Request, report_id: int, identity: Worker, form: C.Form):
    def act(s):
        raw = str(form.get("children") or "").replace("#", "").replace(" ", ",")
        ids = [_int_or_none(x) for x in raw.split(",") if x.strip()]
        ids += [int(x) for x in form.getlist("child") if str(x).isdigit()]
        if not ids:
            raise InvalidInput(N_("name the duplicate reports to merge"), code="required")
        S.merge(s, identity, report_id, list(dict.fromkeys(ids)), text=str(form.get("text") or ""))

    return _staff_action(request, identity, report_id, form, act, "merge")


# --- the dashboard ----------------------------------------------------------------------------------------


def _dashboard(request: Request, s, identity: Identity, district: str, unit: str, days: int) -> S.Dashboard:
    since = datetime.now(UTC) - timedelta(days=days) if days > 0 else None
    return S.dashboard(s, identity, district=district or None, unit=unit or None, since=since)


Manager = Annotated[Identity, Depends(Require("reports.dashboard"))]


@router.get("/staff/dashboard", response_class=HTMLResponse)
@router.get("/staff/dashboard.json")
def dashboard(request: Request, identity: Manager, district: str = "", unit: str = "", days: int = 0):
    """The dashboard: the page, or its figures as JSON (/staff/dashboard.json, or Accept)."""
    lang = language_of(request)
    with request.app.state.db.session() as s:
        model = C.DashboardPage(
            figures=_dashboard(request, s, identity, district, unit, days),
            groups={g.code: localized(g, "name", lang) for g in S.list_groups(s)},
            categories={
                c.code: localized(c, "name", lang) for c in S.list_categories(s, everything=True, include_inactive=True)
            },
            districts=C.districts(request),
            filters={"district": district, "unit": unit, "days": days},
            manager=identity.can("reports.manage"),
        )
        return render(request, model, default="html")


@router.get("/staff/dashboard.csv")
def dashboard_csv(request: Request, identity: Manager, district: str = "", unit: str = "", days: int = 0):
    since = datetime.now(UTC) - timedelta(days=days) if days > 0 else None
    q = S.ReportQuery(district=[district] if district else None, unit=unit or None, created_after=since)
    with request.app.state.db.session() as s:
        return render(request, S.export_table(s, identity, q, language=language_of(request)), "csv")


# --- administrators ---------------------------------------------------------------------------------------

Admin = Annotated[Identity, Depends(Require("reports.manage"))]


def _routes_context(request: Request, s, category: str) -> dict:
    lang = language_of(request)
    cats = C.picker(s, lang)
    everything = [c for g in cats for c in g["items"]]
    category = category or (everything[0]["code"] if everything else "")
    table = S.routing_table(s, category=category) if category else []
    rules = directory.ruled_districts(s, category)
    departments = directory.departments(s, lang)
    return dict(
        groups=cats,
        category=category,
        table=table,
        all_rule=None in rules,
        departments=departments,
        district_names=C.district_names(request),
        districts=C.districts(request),
        errors={},
    )


@router.get("/admin/reports/routes", response_class=HTMLResponse)
def routes_page(request: Request, identity: Admin, category: str = ""):
    with request.app.state.db.session() as s:
        return C.page(request, "routes.html", **_routes_context(request, s, category))


@router.post("/admin/reports/routes")
def routes_save(request: Request, identity: Admin, form: C.Form):
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
            return C.page(request, "routes.html", status_code=422, **context)
    return RedirectResponse(f"/admin/reports/routes?category={category}", status_code=303)


def _templates_context(request: Request, s, identity: Identity, edit: int | None = None) -> dict:
    lang = language_of(request)
    units = directory.unit_names(s, lang)
    ids = directory.unit_codes(s)
    templates = []
    for t in S.list_templates(s, identity):
        view = S.template_view(t, lang)
        view["unit"] = units.get(ids.get(t.department_id), "") if t.department_id else ""
        view["department"] = ids.get(t.department_id, "")
        templates.append(view)
    editing = next((t for t in templates if t["id"] == edit), None)
    return dict(
        templates=templates,
        editing=editing,
        statuses=S.STATUSES,
        errors={},
        values=editing or {"title": "", "text_ko": "", "text_en": "", "status": "", "department": "", "category": ""},
    )


@router.get("/admin/reports/templates", response_class=HTMLResponse)
def templates_page(request: Request, identity: Admin, edit: int = 0):
    with request.app.state.db.session() as s:
        return C.page(request, "templates.html", **_templates_context(request, s, identity, edit or None))


@router.post("/admin/reports/templates")
def templates_save(request: Request, identity: Admin, form: C.Form):
    values = {
        k: str(form.get(k) or "")
        for k in ("id", "title", "text_ko", "text_en", "status", "department", "category", "action")
    }
    template_id = int(values["id"]) if values["id"].isdigit() else None
    try:
        with request.app.state.db.session() as s:
            if values["action"] == "delete" and template_id:
                S.delete_template(s, identity, template_id)
            else:
                S.save_template(
                    s,
                    identity,
                    S.TemplateIn(
                        values["title"],
                        values["text_ko"],
                        values["text_en"],
                        status=values["status"] or None,
                        department=values["department"] or None,
                        category=values["category"] or None,
                    ),
                    template_id,
                )
    except (InvalidInput, NotFound) as exc:
        with request.app.state.db.session() as s:
            context = _templates_context(request, s, identity, template_id)
            context.update(errors=C.errors_of(request, exc, "title"), values=values)
            return C.page(request, "templates.html", status_code=422, **context)
    return RedirectResponse("/admin/reports/templates", status_code=303)


def _day(value: str, tz, end: bool = False) -> datetime | None:
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day, time(23, 59, 59) if end else time(0, 0), tzinfo=tz).astimezone(UTC)


def _campaigns_context(request: Request, s, edit: str = "") -> dict:
    lang = language_of(request)
    campaigns = [C.campaign_card(c, lang) for c in S.list_campaigns(s)]
    counts: dict[str, list[dict]] = {}
    for cat in S.list_categories(s, everything=True, include_inactive=True):
        if cat.campaign is not None:
            counts.setdefault(cat.campaign.slug, []).append(S.category_view(cat, lang))
    for c in campaigns:
        c["categories"] = counts.get(c["slug"], [])
    editing = next((c for c in campaigns if c["slug"] == edit), None)
    tz = request.app.state.profile.tz
    values = {
        "slug": "",
        "title_ko": "",
        "title_en": "",
        "description_ko": "",
        "description_en": "",
        "theme": "#0f766e",
        "starts_at": datetime.now(tz).strftime("%Y-%m-%d"),
        "ends_at": (datetime.now(tz) + timedelta(days=30)).strftime("%Y-%m-%d"),
        "district": "",
    }
    if editing:
        camp = S.get_campaign(s, edit)
        values.update(
            slug=camp.slug,
            title_ko=camp.title_ko,
            title_en=camp.title_en,
            description_ko=camp.description_ko,
            description_en=camp.description_en,
            theme=editing["colour"],
            starts_at=camp.starts_at.astimezone(tz).strftime("%Y-%m-%d"),
            ends_at=camp.ends_at.astimezone(tz).strftime("%Y-%m-%d"),
            district=camp.district_code or "",
        )
    groups = [{"code": g.code, "name": localized(g, "name", lang)} for g in S.list_groups(s)]
    return dict(
        campaigns=campaigns,
        editing=editing,
        values=values,
        errors={},
        districts=C.districts(request),
        groups=groups,
        category_values={"campaign": edit or (campaigns[0]["slug"] if campaigns else "")},
    )


@router.get("/admin/reports/campaigns", response_class=HTMLResponse)
def campaigns_admin(request: Request, identity: Admin, edit: str = ""):
    with request.app.state.db.session() as s:
        return C.page(request, "campaigns_admin.html", **_campaigns_context(request, s, edit))


@router.post("/admin/reports/campaigns")
def campaigns_save(request: Request, identity: Admin, form: C.Form):
    tz = request.app.state.profile.tz
    values = {
        k: str(form.get(k) or "")
        for k in (
            "slug",
            "title_ko",
            "title_en",
            "description_ko",
            "description_en",
            "theme",
            "starts_at",
            "ends_at",
            "district",
        )
    }
    try:
        starts, ends = _day(values["starts_at"], tz), _day(values["ends_at"], tz, end=True)
        with request.app.state.db.session() as s:
            S.save_campaign(
                s,
                identity,
                S.CampaignIn(
                    values["slug"],
                    values["title_ko"],
                    values["title_en"],
                    starts,
                    ends,
                    description_ko=values["description_ko"],
                    description_en=values["description_en"],
                    theme=values["theme"],
                    district=values["district"] or None,
                ),
            )
    except InvalidInput as exc:
        with request.app.state.db.session() as s:
            context = _campaigns_context(request, s)
            context.update(errors=C.errors_of(request, exc, "slug"), values=values)
            return C.page(request, "campaigns_admin.html", status_code=422, **context)
    return RedirectResponse(f"/admin/reports/campaigns?edit={values['slug']}", status_code=303)


@router.post("/admin/reports/campaigns/categories")
def campaign_category_save(request: Request, identity: Admin, form: C.Form):
    values = {k: str(form.get(k) or "") for k in ("campaign", "code", "group", "name_ko", "name_en", "service_days")}
    try:
        days = int(values["service_days"] or 14)
        with request.app.state.db.session() as s:
            S.save_category(
                s,
                identity,
                S.CategoryIn(
                    values["code"],
                    values["group"],
                    values["name_ko"],
                    values["name_en"],
                    service_days=days,
                    campaign=values["campaign"],
                    unit_kind="civil",
                ),
            )
    except (InvalidInput, NotFound, ValueError) as exc:
        with request.app.state.db.session() as s:
            context = _campaigns_context(request, s, values["campaign"])
            message = exc.message if isinstance(exc, SmartCityError) else str(exc)
            if isinstance(exc, InvalidInput) and isinstance(exc.details, list) and exc.details:
                message = "; ".join(f"{d.get('field', '')}: {d.get('problem', '')}" for d in exc.details)
            context.update(errors={"category": message}, category_values=values)
            return C.page(request, "campaigns_admin.html", status_code=422, **context)
    return RedirectResponse(f"/admin/reports/campaigns?edit={values['campaign']}", status_code=303)
