"""Open311 GeoReport v2 for Community Mapping, at /open311/v2/ (discovery also at /open311/discovery.*).

A wire-format adapter: it turns GeoReport requests into `reports.service` calls and results back into the
spec's XML or JSON; every rule lives in the service. What it speaks:

    GET  discovery.{xml,json}                      endpoints, formats, contact, key service
    GET  services.{xml,json}                       service list (with group and keywords)
    GET  services/{service_code}.{xml,json}        service definition (attributes of every datatype)
    POST requests.{xml,json}                       new service request (api_key; media upload as in v2.1)
    GET  requests.{xml,json}                       search (spec filters and defaults, common extensions)
    GET  requests/{service_request_id}.{xml,json}  one request (a list of one, as the spec says)
    GET  tokens/{token}.{xml,json}                 token → service_request_id
    GET  servicerequestupdates.{xml,json}          mySociety extension: public updates in a time window
    POST servicerequestupdates.{xml,json}          mySociety extension: a partner's update (idempotent)

Errors under /open311 are answered in the spec's format (`<errors><error><code>…` / `[{"code", "description"}]`)
with the matching HTTP status: 400 bad or missing parameter, 403 missing rights or invalid api_key, 404 not found,
409 a submission in flight, 413 a file too large. Details of the rules in docs/open311.md.

Beside it: `open311_cli.py` (the `smartcity open311 keys …` command; Open311 keys are core API keys with scope
"open311"), `open311_wire.py` (the error format, XML/JSON output, parameters, tokens, names, times),
`open311_search.py` (GET requests, the hot path) and `open311_edge.py` (what every /open311 request
goes through before a route).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from smartcity.core.auth import Identity
from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.i18n import N_, gettext, localized, translate
from smartcity.core.places import place_for
from smartcity.core.writer import writer
from smartcity.reports import service as S
from smartcity.reports.models import Report
from smartcity.reports.open311_edge import Open311Edge, refuse_bad_text
from smartcity.reports.open311_search import _RequestsRoute, find_requests, get_requests
from smartcity.reports.open311_wire import (
    BASE,
    CHANGESET,
    DEFAULT_DAYS,
    FROM_MYSOCIETY,
    MAX_REQUESTS,
    MYSOCIETY_STATUS,
    PREFIX,
    SPECIFICATION,
    _base_url,
    _csv_param,
    _db,
    _format,
    _from,
    _key_of,
    _partner,
    _stamp,
    _through,
    _truthy,
    _tz,
    _w3c,
    check_jurisdiction,
    language,
    report_of_token,
    respond,
)
from smartcity.reports.settings import ReportsSettings, public_url

router = APIRouter(tags=["open311"], include_in_schema=False)


READ = ["GET", "HEAD"]  # every read path answers HEAD as it answers GET, without the body


# --- discovery --------------------------------------------------------------------------------------------


def discovery(request: Request, fmt: str) -> Response:
    fmt = _format(fmt)
    profile = request.app.state.profile
    lang = language(request)
    base = _base_url(request)
    site = f"{public_url(request.app.state.settings)}/reports"
    contact = profile.name(lang) + " " + gettext(lang, "Community Mapping") + f" — {site}"
    key_service = gettext(lang, "API keys are issued by the city's administrators (smartcity open311 keys create NAME)")
    doc = {
        "changeset": CHANGESET,
        "contact": contact,
        "key_service": key_service,
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": f"{base}{BASE}",
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return respond(fmt, "discovery", doc)


@router.api_route(f"{BASE}/discovery.{{fmt}}", methods=READ)
def discovery_v2(request: Request, fmt: str) -> Response:
    return discovery(request, fmt)


@router.api_route(f"{PREFIX}/discovery.{{fmt}}", methods=READ)
def discovery_root(request: Request, fmt: str) -> Response:
    return discovery(request, fmt)


# --- services ---------------------------------------------------------------------------------------------


def _service(view: dict) -> dict:
    return {
        "service_code": view["code"],
        "service_name": view["name"],
        "description": view["description"],
        "metadata": view["metadata"],
        "type": "realtime",
        "keywords": ", ".join(view["keywords"]),
        "group": view["group_name"],
    }


@router.api_route(f"{BASE}/services.{{fmt}}", methods=READ)
def services(request: Request, fmt: str) -> Response:
    fmt = _format(fmt)
    check_jurisdiction(request)
    lang = language(request)
    with _db(request).session() as s:
        groups = {g.code: g for g in S.list_groups(s)}
        views = [S.category_view(c, lang, groups.get(c.group_code)) for c in S.list_categories(s)]
    return respond(fmt, "services", [_service(v) for v in views])


@router.api_route(f"{BASE}/services/{{service_code}}.{{fmt}}", methods=READ)
def service_definition(request: Request, service_code: str, fmt: str) -> Response:
    fmt = _format(fmt)
    check_jurisdiction(request)
    lang = language(request)
    with _db(request).session() as s:
        try:
            category = S.get_category(s, service_code)
        except InvalidInput:
            raise NotFound(f"no service {service_code!r}", code="unknown_service") from None
        if category.campaign_id is not None or not category.active:
            raise NotFound(f"no service {service_code!r}", code="unknown_service")
        view = S.category_view(category, lang)
    attributes = [
        {
            "variable": a["variable"],
            "code": a["code"],
            "datatype": a["datatype"],
            "required": a["required"],
            "datatype_description": a["datatype_description"],
            "order": a["order"],
            "description": a["description"],
            **({"values": a["values"]} if "values" in a else {}),
        }
        for a in view["attributes"]
    ]
    return respond(fmt, "service_definition", {"service_code": view["code"], "attributes": attributes})


# --- POST requests ----------------------------------------------------------------------------------------

ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]{1,80})\](\[\])?$")


def _attributes(form) -> dict[str, Any]:
    """attribute[code]=v; a code given more than once (attribute[code]=a&attribute[code]=b, FixMyStreet's form
    of a multi-select answer, or attribute[code][]=a&attribute[code][]=b) is a list: the service takes it
    for a multivaluelist and refuses it for any other datatype."""
    out: dict[str, Any] = {}
    for key, value in form.multi_items():
        m = ATTRIBUTE.match(key)
        if not m:
            continue
        if isinstance(value, UploadFile):
            raise InvalidInput(
                f"{key} must be text, not a file",
                code="invalid_attribute",
                details=[{"field": key, "problem": "must be text, not a file"}],
            )
        code = m.group(1)
        if code in out or m.group(2):
            existing = out.get(code)
            out[code] = [*(existing if isinstance(existing, list) else [] if existing is None else [existing]), value]
        else:
            out[code] = value
    return out


def _title(description: str, service_name: str) -> str:
    """Open311 has no title: the first line of the description (cut to 100 characters), else the service."""
    first = next((line.strip() for line in description.splitlines() if line.strip()), "")
    return first[:100] or service_name


def _text(params, name: str) -> str:
    value = params.get(name)
    if isinstance(value, UploadFile):
        raise InvalidInput(f"{name} must be text", code="invalid_parameter")
    return value or ""


def _placed(s, address: str, address_id: str, lang: str) -> tuple[str, str]:
    """lat and long of the place `address_string` names, through the city's geocoder (a request sent with
    only an address), or the Open311 error saying what to send instead."""
    if not address:
        if address_id:
            raise InvalidInput(
                "this city cannot place an address_id: send lat and long, or an address_string naming a place",
                code="cannot_geocode",
            )
        raise InvalidInput("a location is required: lat and long, or an address_string", code="required")
    place = place_for(s.info["db"], address, lang)
    if place is None:
        raise InvalidInput(
            f"this city cannot place an address it does not know ({address!r}): send lat and long, or an "
            "address_string naming a place (a station, a stop, an office, a neighbourhood)",
            code="cannot_geocode",
        )
    return repr(place.lat), repr(place.lon)


def create_job(settings, params, files: list, idempotency_key: str | None, key: str | None, lang: str, tz):
    """The POST requests work as a job for the store's writer (core.writer): it runs in the writer's group
    transaction, in a savepoint of its own, so nothing is stored unless everything is valid."""

    def job(s) -> tuple[dict, bool]:
        identity = _partner(s, key)  # the key first: strangers learn nothing about the rules
        return _create(s, identity, settings, params, files, idempotency_key, lang, tz)

    return job


def _create(
    s, identity: Identity, settings, params, files: list, idempotency_key: str | None, lang: str, tz
) -> tuple[dict, bool]:
    code = _text(params, "service_code").strip()
    if not code:
        raise InvalidInput(
            "service_code is required", code="required", details=[{"field": "service_code", "problem": "is required"}]
        )
    lat, lon = _text(params, "lat").strip(), _text(params, "long").strip()
    if bool(lat) != bool(lon):
        raise InvalidInput("lat and long go together: give both or neither", code="invalid_coordinates")
    if not lat:
        lat, lon = _placed(s, _text(params, "address_string").strip(), _text(params, "address_id").strip(), lang)
    description = _text(params, "description")
    first = _text(params, "first_name").strip()
    last = _text(params, "last_name").strip()
    email, phone = _text(params, "email").strip(), _text(params, "phone").strip()
    contact = (
        S.Contact(f"{first} {last}".strip() or None, email or None, phone or None)
        if (first or last or email or phone)
        else None
    )
    media_urls = [v for v in params.getlist("media_url") if isinstance(v, str)]  # FixMyStreet may send several
    try:
        category = S.get_category(s, code)
    except InvalidInput:
        category = None
    if category is None or category.campaign_id is not None or not category.active:
        raise NotFound(f"unknown service_code {code!r}", code="unknown_service")
    service_name = localized(category, "name", lang)
    # A partner moving its history over keeps each request's own time, with an import key; any other key's
    # requested_datetime is ignored and named in the notice as not kept.
    given = _text(params, "requested_datetime").strip()
    requested_at = _w3c(given, "requested_datetime", tz) if given and S.may_import(identity) else None
    new = S.NewReport(
        category=code,
        lat=lat,
        lon=lon,
        title=_title(description, service_name),
        description=description,
        address_string=_text(params, "address_string") or None,
        attributes=_attributes(params),
        photos=files,
        contact=contact,
        show_name=_truthy(_text(params, "show_name")),
        idempotency_key=idempotency_key,
        source="open311",
        language=lang,
        media_urls=media_urls,
        lenient=True,
        requested_at=requested_at,
    )
    created = S.create_report(s, identity, new)
    report = created.report
    out = {
        # The spec answers with service_request_id or token, not both: we file synchronously, so the id.
        "service_request_id": str(report.id),
        "service_notice": _service_notice(
            report,
            created,
            [n for n in _not_kept(params) if not (requested_at and n == "requested_datetime")],
            lang,
            tz,
        ),
        "account_id": str(identity.user_id) if identity.user_id else None,
    }
    return out, created.repeated


# What POST requests reads; any other field is named in the service_notice as not kept.
READ_FIELDS = frozenset(
    {
        "api_key",
        "jurisdiction_id",
        "service_code",
        "lat",
        "long",
        "description",
        "address_string",
        "email",
        "first_name",
        "last_name",
        "phone",
        "media_url",
        "media",
        "show_name",
        "locale",
        "lang",
        "idempotency_key",
    }
)


PHOTO_FIELD = re.compile(r"^(?:media|photo[0-9]{1,3})$")  # the v2.1 draft's media; FixMyStreet's photo1…photoN


def _not_kept(params) -> list[str]:
    """Fields a partner sent that the report does not keep (device_id, account_id, address_id, …)."""
    names = []
    for key, value in params.multi_items():
        if key in READ_FIELDS or ATTRIBUTE.match(key) or PHOTO_FIELD.match(key) or key in names:
            continue
        if isinstance(value, UploadFile) or (value or "").strip():
            names.append(key[:40])
    return names


def _service_notice(report: Report, created: S.CreatedReport, not_kept: list[str], lang: str, tz) -> str:
    """When the city expects to have handled it, and every word about what was sent but not kept as sent."""
    due = report.due_at.astimezone(tz).strftime("%Y-%m-%d")
    parts = [translate(lang, "expected by {due}", due=due)]
    if report.media_urls:
        parts.append(
            gettext(
                lang,
                N_("media_url kept as a link (its photo is fetched in the background)")
                if report.media_fetch == "pending"
                else N_("media_url kept as a link (not fetched)"),
            )
        )
    for n in created.notices:
        parts.append(
            translate(
                lang, "{field} dropped: {problem}", field=n["field"].removeprefix("contact."), problem=n["problem"]
            )
        )
    if not_kept:
        parts.append(translate(lang, "not kept: {fields}", fields=", ".join(not_kept)))
    return "; ".join(parts)


@router.post(f"{BASE}/requests.{{fmt}}")
async def post_request(request: Request, fmt: str) -> Response:
    fmt = _format(fmt)
    settings = request.app.state.settings
    own = request.app.state.context.settings_of(ReportsSettings)
    try:
        form = await request.form(max_files=own.max_photos + 1)
    except Exception as exc:  # a malformed multipart body is the client's error, in our format
        raise InvalidInput(f"the request body cannot be read: {exc}", code="invalid_body") from None
    refuse_bad_text(request)
    params = form
    check_jurisdiction(request, params)
    files = []
    for name, item in sorted(
        ((k, v) for k, v in form.multi_items() if PHOTO_FIELD.match(k)),
        key=lambda kv: (kv[0] == "media", len(kv[0]), kv[0]),
    ):  # photo1…photoN, then media
        if isinstance(item, UploadFile):
            data = await item.read(own.max_photo_bytes + 1)
            files.append(S.Upload(item.filename or name, data, item.content_type or ""))
    idem = request.headers.get("idempotency-key") or _text(params, "idempotency_key") or None
    lang = language(request, form)
    job = create_job(settings, params, files, idem, _key_of(request, params), lang, _tz(request))
    out, repeated = await writer(_db(request)).arun(job)
    return respond(fmt, "service_requests", [out], status_code=200 if repeated else 201)


def on_install(app) -> None:
    """Called by reports.install after the router is included: GET requests goes first in the app's routes
    (POST requests.{fmt} only partly matches it and is still served by the FastAPI route below); the edge
    (`Open311Edge`) wraps the app for paths under /open311."""
    app.router.routes.insert(
        0, _RequestsRoute(f"{BASE}/requests.{{fmt}}", get_requests, methods=["GET"], include_in_schema=False)
    )
    origins = _csv_param(app.state.context.settings_of(ReportsSettings).open311_cors_origins)
    app.add_middleware(Open311Edge, origins=origins)


@router.api_route(f"{BASE}/requests/{{service_request_id}}.{{fmt}}", methods=READ)
def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
    fmt = _format(fmt)
    check_jurisdiction(request)
    if not service_request_id.isdigit():
        raise NotFound(f"no service request {service_request_id!r}")
    q = S.ReportQuery(ids=[int(service_request_id)], page_size=1)
    items = find_requests(
        _db(request),
        q,
        _base_url(request),
        language(request),
        _truthy(request.query_params.get("extensions")),
        _tz(request),
    )
    if not items:
        raise NotFound(f"no service request {service_request_id!r}")
    return respond(fmt, "service_requests", items)


@router.api_route(f"{BASE}/tokens/{{token}}.{{fmt}}", methods=READ)
def get_token(request: Request, token: str, fmt: str) -> Response:
    fmt = _format(fmt)
    check_jurisdiction(request)
    settings = request.app.state.settings
    rid = report_of_token(token, settings)
    if rid is None:
        raise NotFound("no such token")
    try:
        with _db(request).session() as s:
            S.get_report(s, rid)
    except NotFound:
        raise NotFound("no such token") from None
    return respond(fmt, "service_requests", [{"service_request_id": str(rid), "token": token}])


# --- mySociety servicerequestupdates ------------------------------------------------------------------------


@router.api_route(f"{BASE}/servicerequestupdates.{{fmt}}", methods=READ)
def get_updates(request: Request, fmt: str) -> Response:
    """Public updates of every request in a window (default: the last 90 days), oldest first, at most 1000.
    Updates that came from a partner (they carry its update_id) are not sent back out."""
    fmt = _format(fmt)
    params = request.query_params
    check_jurisdiction(request)
    tz = _tz(request)
    start, end = _w3c(params.get("start_date"), "start_date", tz), _w3c(params.get("end_date"), "end_date", tz)
    if start is None and end is None:
        start = utcnow() - timedelta(days=DEFAULT_DAYS)
    start, end = _from(start), _through(end)
    rid = params.get("service_request_id")
    if rid is not None and not rid.isdigit():
        raise InvalidInput("service_request_id must be a request id", code="invalid_parameter")
    with _db(request).session() as s:
        found = S.updates_since(s, start=start, end=end, report_id=int(rid) if rid else None, limit=MAX_REQUESTS)
        out = [
            {
                "update_id": str(u.id),
                "service_request_id": str(u.report_id),
                "status": MYSOCIETY_STATUS.get(u.status, u.status.upper()),
                "updated_datetime": _stamp(u.at, tz),
                "description": u.text,
                "media_url": u.media_url,
                "external_status_code": u.status,
            }
            for u in found
            if not u.external_id
        ]
    return respond(fmt, "service_request_updates", out)


def post_update_work(db, params, key: str | None, tz) -> dict:
    with db.session() as s:
        identity = _partner(s, key)
        return _post_update(s, identity, params, tz)


def _post_update(s, identity: Identity, params, tz) -> dict:
    for name in ("update_id", "service_request_id", "status", "description"):
        if not _text(params, name).strip():
            raise InvalidInput(
                f"{name} is required", code="required", details=[{"field": name, "problem": "is required"}]
            )
    _w3c(_text(params, "updated_datetime"), "updated_datetime", tz)  # checked; the update is timed on arrival
    status_in = _text(params, "status").strip().upper()
    if status_in not in FROM_MYSOCIETY:
        raise InvalidInput(
            f"unknown status {status_in!r}",
            code="invalid_status",
            details=[{"field": "status", "problem": f"unknown {status_in!r}: one of {', '.join(FROM_MYSOCIETY)}"}],
        )
    status, loose = FROM_MYSOCIETY[status_in]
    rid = _text(params, "service_request_id").strip()
    if not rid.isdigit():
        raise NotFound(f"no service request {rid!r}")
    outcome = S.partner_update(
        s,
        identity,
        int(rid),
        _text(params, "description"),
        status=status,
        loose=loose,
        external_id=_text(params, "update_id").strip(),
        media_url=_text(params, "media_url").strip() or None,
    )
    # Beyond the extension's update_id: the request's status now and, if the asked one was not applied or a
    # field was dropped, why.
    said = [outcome.refused] if outcome.refused else []
    said += [f"{n['field']} dropped: {n['problem']}" for n in outcome.notices]
    return {
        "update_id": str(outcome.entry.id),
        "status": MYSOCIETY_STATUS.get(outcome.status, outcome.status.upper()),
        "service_notice": "; ".join(said) or None,
    }


@router.post(f"{BASE}/servicerequestupdates.{{fmt}}")
async def post_update(request: Request, fmt: str) -> Response:
    fmt = _format(fmt)
    try:
        form = await request.form(max_files=0)
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"the request body cannot be read: {exc}", code="invalid_body") from None
    refuse_bad_text(request)
    check_jurisdiction(request, form)
    out = await run_in_threadpool(post_update_work, _db(request), form, _key_of(request, form), _tz(request))
    return respond(fmt, "service_request_updates", [out])
