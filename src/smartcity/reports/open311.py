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

Also here: the `smartcity open311 keys …` command (Open311 keys are core API keys with scope "open311").
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_to_bytes
from xml.etree import ElementTree as ET

import click
import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import select
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from smartcity.core import accounts
from smartcity.core.auth import Identity, identity_of_user
from smartcity.core.db import from_store, utcnow
from smartcity.core.errors import (
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    SmartCityError,
    TooLarge,
)
from smartcity.core.geo import geo_index
from smartcity.core.i18n import gettext, localized, negotiate, pick, translate
from smartcity.core.models import Department
from smartcity.core.params import integer, number, timestamp
from smartcity.core.web import register_error_format
from smartcity.core.writer import writer
from smartcity.reports import queries
from smartcity.reports import service as S
from smartcity.reports.models import Category, Report

PREFIX = "/open311"
BASE = f"{PREFIX}/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# When this endpoint's behaviour last changed (discovery's `changeset`): bump it with the adapter.
CHANGESET = "2025-01-15T00:00:00Z"
MEDIA_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
MAX_REQUESTS = 1000  # the spec's default (and our largest) page
DEFAULT_DAYS = 90  # the spec's default window of requested_datetime
DEFAULT_RADIUS_M = 1000.0
MAX_RADIUS_M = 50_000.0
NAMES_TTL_S = 30.0  # category and unit names are cached this long per process

# Our statuses in mySociety's servicerequestupdates vocabulary, and back.
MYSOCIETY_STATUS = {
    "open": "OPEN",
    "acknowledged": "INVESTIGATING",
    "in_progress": "IN_PROGRESS",
    "fixed": "FIXED",
    "closed": "CLOSED",
    "duplicate": "DUPLICATE",
    "not_responsible": "NOT_COUNCILS_RESPONSIBILITY",
    "referred": "INTERNAL_REFERRAL",
}
# A partner's status (FixMyStreet sends OPEN/CLOSED, or its extended statuses) → (our status, loose): a
# loose "open"/"closed" is Open311's two words (S.partner_update); "closed" as such is closed without a fix.
FROM_MYSOCIETY = {
    "OPEN": ("open", True),
    "REOPEN": ("open", True),
    "FOR_TRIAGE": ("open", True),
    "CLOSED": ("closed", True),
    "FIXED": ("fixed", False),
    "IN_PROGRESS": ("in_progress", False),
    "ACTION_SCHEDULED": ("in_progress", False),
    "INVESTIGATING": ("acknowledged", False),
    "NOT_COUNCILS_RESPONSIBILITY": ("not_responsible", False),
    "INTERNAL_REFERRAL": ("referred", False),
    "DUPLICATE": ("duplicate", False),
    "NO_FURTHER_ACTION": ("closed", False),
    "CANCELLED": ("closed", False),
}

router = APIRouter(tags=["open311"], include_in_schema=False)
READ = ["GET", "HEAD"]  # every read path answers HEAD as it answers GET, without the body


# --- errors ---------------------------------------------------------------------------------------------


def http_status(exc: SmartCityError) -> int:
    """The spec's status for a platform error: bad input is 400, a refused key 403."""
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, (NotAuthenticated, PermissionDenied)):
        return 403
    if isinstance(exc, (NotFound, Conflict, TooLarge)):
        return exc.status
    return exc.status if 400 <= exc.status < 600 else 500


def error_list(exc: SmartCityError) -> list[dict]:
    """Each error once: one entry per detail ("attribute[size]: is required"), else the message."""
    status = http_status(exc)
    errors = []
    if isinstance(exc.details, list):
        for d in exc.details:
            if isinstance(d, dict) and d.get("problem"):
                where = d.get("field") or d.get("attribute") or d.get("file")
                errors.append({"code": status, "description": f"{where}: {d['problem']}" if where else d["problem"]})
    return errors or [{"code": status, "description": exc.message}]


def render_error(request: Request, exc: SmartCityError) -> Response:
    """Every platform error under /open311 (validation and 404s included) in Open311's own format."""
    fmt = "xml" if request.url.path.endswith(".xml") else "json"
    return respond(fmt, "errors", error_list(exc), status_code=http_status(exc))


register_error_format(PREFIX, render_error)  # once per process, at import


# --- output ---------------------------------------------------------------------------------------------

# A list in the XML is written as repeated child elements; their names, by the list's name.
XML_ITEMS = {
    "errors": "error",
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "service_request_updates": "request_update",
    "media_urls": "media_url",
    "notes": "note",
}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))  # characters XML 1.0 cannot carry at all


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, list):
        name = XML_ITEMS[element.tag]
        for item in value:
            _fill(ET.SubElement(element, name), item)
    else:
        element.text = _xml_text(value)


def to_xml(root: str, value: Any) -> bytes:
    """A UTF-8 XML document; ElementTree escapes every text (no string building with user text)."""
    element = ET.Element(root)
    _fill(element, value)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="utf-8", xml_declaration=False)


def respond(fmt: str, root: str, value: Any, status_code: int = 200) -> Response:
    body = to_xml(root, value) if fmt == "xml" else orjson.dumps(value)
    return Response(body, status_code=status_code, media_type=MEDIA_TYPES[fmt])


def _format(fmt: str) -> str:
    if fmt not in MEDIA_TYPES:
        raise NotFound(f"no such format {fmt!r}: use xml or json")
    return fmt


# --- request helpers ------------------------------------------------------------------------------------


def language(request: Request, form=None) -> str:
    """`locale` (or `lang`) beats Accept-Language, which beats the city's language (ko in Seoul)."""
    profile = request.app.state.profile
    given = [request.query_params.get("locale"), request.query_params.get("lang")]
    if form is not None:
        given[:0] = [form.get("locale"), form.get("lang")]
    return (pick(given, profile.languages) or negotiate(request.headers.get("accept-language", ""), profile.languages)
            or profile.language)


def check_jurisdiction(request: Request, params=None) -> None:
    """One city per server: its jurisdiction_id is the profile's key ("seoul"); anything else is unknown."""
    value = (params if params is not None else request.query_params).get("jurisdiction_id")
    if value and value.strip().lower() not in jurisdictions(request):
        raise NotFound(f"unknown jurisdiction_id {value!r}", code="unknown_jurisdiction")


def jurisdictions(request: Request) -> set[str]:
    profile = request.app.state.profile
    return {profile.key.lower(), profile.name_en.lower()}


def _w3c(value: str | None, name: str, tz) -> datetime | None:
    """A W3C (ISO 8601) datetime; without a zone it is taken as the city's local time."""
    return timestamp(value, name, tz=tz, code="invalid_date")


def _through(value: datetime | None) -> datetime | None:
    """An upper bound given to the second as the whole of that second: times are shown to the second, so
    `end_date` equal to a request's shown requested_datetime must include it (stored times have microseconds)."""
    if value is None:
        return None
    return value.replace(microsecond=0) + timedelta(microseconds=999_999)


def _from(value: datetime | None) -> datetime | None:
    """A lower bound from the start of its second, for the same reason."""
    return value.replace(microsecond=0) if value is not None else None


def _stamp(value: datetime | None, tz) -> str | None:
    """A W3C datetime in the city's time zone (2024-05-01T09:30:00+09:00)."""
    return value.astimezone(tz).isoformat(timespec="seconds") if value else None


def _csv_param(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


KEY_SCOPES = ("open311", S.IMPORT_KEY_SCOPE)  # an import key may also give requested_datetime (history)


def _partner(session, key: str | None) -> Identity:
    """The partner system behind an api_key (an Open311-scoped core API key)."""
    if not key:  # the spec: a missing api_key is 403, as an invalid one
        raise NotAuthenticated("api_key is required", code="api_key_required")
    row = accounts.find_api_key(session, key.strip())
    if row is None or row.scope not in KEY_SCOPES or (row.user is not None and not row.user.active):
        raise NotAuthenticated("the api_key is not valid or was revoked", code="invalid_api_key")
    if row.user is not None:
        return identity_of_user(row.user, "key", row)
    return Identity(via="key", key_id=row.id, key_name=row.name, key_scope=row.scope)


def _key_of(request: Request, params) -> str | None:
    auth = request.headers.get("authorization", "")
    header = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key")
    return params.get("api_key") or request.query_params.get("api_key") or header


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _db(request: Request):
    return request.app.state.db


def _tz(request: Request):
    return request.app.state.profile.tz


# --- tokens (we answer synchronously; a token is the request's id, signed) -------------------------------


def token_for(report_id: int, settings) -> str:
    sig = hmac.new(settings.signing_key().encode(), f"open311-token:{report_id}".encode(), hashlib.sha256)
    return f"{report_id}-{sig.hexdigest()[:20]}"


def report_of_token(token: str, settings) -> int | None:
    rid, _, _sig = token.partition("-")
    if not rid.isdigit() or not hmac.compare_digest(token, token_for(int(rid), settings)):
        return None
    return int(rid)


# --- names: category and unit names from an in-memory map (no join, no N+1) -----------------------------


def names(db) -> tuple[dict, dict]:
    """({category code: (name_ko, name_en)}, {unit id: (code, name_ko, name_en)}), refreshed every 30 s."""
    cached = db.cache.get("open311.names")
    now = time.monotonic()
    if cached and cached[0] > now:
        return cached[1], cached[2]
    with db.engine.connect() as conn:
        cats = {c: (ko, en) for c, ko, en in conn.execute(select(Category.code, Category.name_ko, Category.name_en))}
        units = {i: (c, ko, en) for i, c, ko, en in conn.execute(
            select(Department.id, Department.code, Department.name_ko, Department.name_en))}
    db.cache["open311.names"] = (now + NAMES_TTL_S, cats, units)
    return cats, units


# --- discovery --------------------------------------------------------------------------------------------


def discovery(request: Request, fmt: str) -> Response:
    fmt = _format(fmt)
    profile, settings = request.app.state.profile, request.app.state.settings
    lang = language(request)
    base = _base_url(request)
    site = f"{settings.reports_public_url.rstrip('/')}/reports"
    contact = f"{profile.name(lang)} {gettext(lang, 'Community Mapping')} — {site}"
    key_service = gettext(lang, "API keys are issued by the city's administrators (smartcity open311 keys create NAME)")
    doc = {
        "changeset": CHANGESET,
        "contact": contact,
        "key_service": key_service,
        "endpoints": [{
            "specification": SPECIFICATION,
            "url": f"{base}{BASE}",
            "changeset": CHANGESET,
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
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
    attributes = [{
        "variable": a["variable"],
        "code": a["code"],
        "datatype": a["datatype"],
        "required": a["required"],
        "datatype_description": a["datatype_description"],
        "order": a["order"],
        "description": a["description"],
        **({"values": a["values"]} if "values" in a else {}),
    } for a in view["attributes"]]
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
            raise InvalidInput(f"{key} must be text, not a file", code="invalid_attribute",
                               details=[{"field": key, "problem": "must be text, not a file"}])
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


def create_job(settings, params, files: list, idempotency_key: str | None, key: str | None, lang: str, tz):
    """The POST requests work as a job for the store's writer (core.writer): it runs in the writer's group
    transaction, in a savepoint of its own, so nothing is stored unless everything is valid."""

    def job(s) -> tuple[dict, bool]:
        identity = _partner(s, key)  # the key first: strangers learn nothing about the rules
        return _create(s, identity, settings, params, files, idempotency_key, lang, tz)

    return job


def _create(s, identity: Identity, settings, params, files: list, idempotency_key: str | None, lang: str,
            tz) -> tuple[dict, bool]:
    code = _text(params, "service_code").strip()
    if not code:
        raise InvalidInput("service_code is required", code="required",
                           details=[{"field": "service_code", "problem": "is required"}])
    lat, lon = _text(params, "lat").strip(), _text(params, "long").strip()
    if bool(lat) != bool(lon):
        raise InvalidInput("lat and long go together: give both or neither", code="invalid_coordinates")
    if not lat:
        if _text(params, "address_string").strip() or _text(params, "address_id").strip():
            raise InvalidInput("this city cannot place an address: send lat and long (address_string may come "
                               "with them as a description of the place)", code="cannot_geocode")
        raise InvalidInput("a location is required: lat and long", code="required")
    description = _text(params, "description")
    first = _text(params, "first_name").strip()
    last = _text(params, "last_name").strip()
    email, phone = _text(params, "email").strip(), _text(params, "phone").strip()
    contact = S.Contact(f"{first} {last}".strip() or None, email or None, phone or None) \
        if (first or last or email or phone) else None
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
        category=code, lat=lat, lon=lon, title=_title(description, service_name), description=description,
        address_string=_text(params, "address_string") or None, attributes=_attributes(params),
        photos=files, contact=contact, show_name=_truthy(_text(params, "show_name")),
        idempotency_key=idempotency_key, source="open311", language=lang, media_urls=media_urls, lenient=True,
        requested_at=requested_at,
    )
    created = S.create_report(s, identity, new)
    report = created.report
    out = {
        # The spec answers with service_request_id or token, not both: we file synchronously, so the id.
        "service_request_id": str(report.id),
        "service_notice": _service_notice(report, created, [n for n in _not_kept(params)
                                                            if not (requested_at and n == "requested_datetime")],
                                          lang, tz),
        "account_id": str(identity.user_id) if identity.user_id else None,
    }
    return out, created.repeated


# What POST requests reads; any other field is named in the service_notice as not kept.
READ_FIELDS = frozenset({"api_key", "jurisdiction_id", "service_code", "lat", "long", "description", "address_string",
                         "email", "first_name", "last_name", "phone", "media_url", "media", "show_name", "locale",
                         "lang", "idempotency_key"})
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
        parts.append(gettext(lang, "media_url kept as a link (its photo is fetched in the background)"
                             if report.media_fetch == "pending" else "media_url kept as a link (not fetched)"))
    for n in created.notices:
        parts.append(translate(lang, "{field} dropped: {problem}", field=n["field"].removeprefix("contact."),
                               problem=n["problem"]))
    if not_kept:
        parts.append(translate(lang, "not kept: {fields}", fields=", ".join(not_kept)))
    return "; ".join(parts)


@router.post(f"{BASE}/requests.{{fmt}}")
async def post_request(request: Request, fmt: str) -> Response:
    fmt = _format(fmt)
    settings = request.app.state.settings
    try:
        form = await request.form(max_files=settings.reports_max_photos + 1)
    except Exception as exc:  # a malformed multipart body is the client's error, in our format
        raise InvalidInput(f"the request body cannot be read: {exc}", code="invalid_body") from None
    refuse_bad_text(request)
    params = form
    check_jurisdiction(request, params)
    files = []
    for name, item in sorted(((k, v) for k, v in form.multi_items() if PHOTO_FIELD.match(k)),
                             key=lambda kv: (kv[0] == "media", len(kv[0]), kv[0])):  # photo1…photoN, then media
        if isinstance(item, UploadFile):
            data = await item.read(settings.reports_max_photo_bytes + 1)
            files.append(S.Upload(item.filename or name, data, item.content_type or ""))
    idem = request.headers.get("idempotency-key") or _text(params, "idempotency_key") or None
    lang = language(request, form)
    job = create_job(settings, params, files, idem, _key_of(request, params), lang, _tz(request))
    out, repeated = await writer(_db(request)).arun(job)
    return respond(fmt, "service_requests", [out], status_code=200 if repeated else 201)


# --- GET requests: the hot path ---------------------------------------------------------------------------
#
# Plain SQL on the pool's DBAPI connection (no ORM, no per-request SQLAlchemy compile), the page's ids from
# the service's own query builder (`queries.terms` rendered by `queries.page_sql`), so a filter means the
# same here as on every other surface. Category and unit names come from `names()`; timestamps are read as
# stored and formatted here.

COLUMNS = ("id", "status", "category_code", "title", "description", "unit_id", "address_string", "lat", "lon",
           "created_at", "updated_at", "due_at", "photo_count", "media_urls")
EXTRA_COLUMNS = ("parent_id", "support_count", "district_code", "attributes")
NOTE_KINDS = ("status", "update", "reassign", "feedback")


class LocalTime:
    """Stored timestamps as W3C datetimes in the city's time zone (2024-05-01T09:30:00+09:00), fast.

    SQLite hands back naive UTC text: the zone's offset is looked up once per UTC hour (and then only added),
    unless the offset changes within that hour or is not whole minutes (then the exact, slower way).
    PostgreSQL hands back aware datetimes."""

    def __init__(self, tz):
        self.tz = tz
        self.hours: dict[str, tuple[timedelta, str, str | None] | None] = {}

    def _hour(self, key: str) -> tuple[timedelta, str, str | None] | None:
        start = datetime.fromisoformat(f"{key}:00:00").replace(tzinfo=UTC)
        first, last = start.astimezone(self.tz), (start + timedelta(seconds=3599)).astimezone(self.tz)
        off = first.utcoffset()
        if off != last.utcoffset() or off.total_seconds() % 60:
            return None
        if len(self.hours) > 50_000:
            self.hours.clear()
        text = first.isoformat(timespec="seconds")
        # A whole-hour offset leaves minutes and seconds alone: the local text is this hour's + the stored ":MM:SS".
        return off, text[19:], text[:13] if not off.total_seconds() % 3600 else None

    def __call__(self, value) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            key = value[:13]
            hour = self.hours.get(key, False)
            if hour is False:
                hour = self.hours[key] = self._hour(key)
            if hour is not None:
                if hour[2] is not None:
                    return hour[2] + value[13:19] + hour[1]
                return (datetime.fromisoformat(value[:19]) + hour[0]).isoformat() + hour[1]
            value = from_store(value)
        return value.astimezone(self.tz).isoformat(timespec="seconds")


_local_times: dict = {}


def local_time(tz) -> LocalTime:
    found = _local_times.get(tz)
    if found is None:
        found = _local_times[tz] = LocalTime(tz)
    return found


def _when(value, tz) -> str | None:
    """A stored timestamp (SQLite: naive UTC text, as core.db.UTCDateTime keeps it; PostgreSQL: aware) as a
    W3C datetime in the city's time zone."""
    return local_time(tz)(value)


def _no_campaign(slug: str) -> int:
    raise InvalidInput("Open311 has no campaign filter", code="invalid_parameter")


def _fetch(conn, db, sqlite: bool, q: S.ReportQuery, units: dict, extensions: bool, size: int):
    """The page's rows (only the needed columns: the ids come from `queries.page_sql` as a subquery, so the
    table is read for just these rows, in one round trip), their photos' ids and their public notes."""
    sql = queries.SqlText(sqlite)
    mark = sql.mark
    cols = ", ".join(COLUMNS + EXTRA_COLUMNS if extensions else COLUMNS)
    look = queries.Lookups(unit_id=lambda code: next((i for i, u in units.items() if u[0] == code), None),
                           campaign_id=_no_campaign, extent=geo_index(db).extent.bounds, now=utcnow())
    page = queries.page_sql(sql, queries.terms(q, look), "created_desc", size, (max(q.page, 1) - 1) * size)
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT {cols} FROM reports WHERE id IN ({page}) ORDER BY created_at DESC, id DESC",
                    sql.values)
        rows = cur.fetchall()
        photos: dict[int, list[int]] = {}
        entries: dict[int, list] = {}
        if not rows:
            return rows, photos, entries
        with_photos = [r[0] for r in rows if r[12]]
        if with_photos:
            cur.execute(f"SELECT report_id, id FROM report_photos WHERE report_id IN "
                        f"({', '.join([mark] * len(with_photos))}) ORDER BY report_id, position, id", with_photos)
            for rid, pid in cur.fetchall():
                photos.setdefault(rid, []).append(pid)
        ids = [r[0] for r in rows]
        cur.execute(f"SELECT report_id, id, \"at\", kind, status, \"text\" FROM report_updates WHERE report_id IN "
                    f"({', '.join([mark] * len(ids))}) AND public = {mark} AND kind IN "
                    f"({', '.join([mark] * len(NOTE_KINDS))}) ORDER BY report_id, \"at\", id",
                    [*ids, True, *NOTE_KINDS])
        for e in cur.fetchall():
            entries.setdefault(e[0], []).append(e)
    finally:
        cur.close()
    return rows, photos, entries


def _read(db, q: S.ReportQuery, units: dict, extensions: bool, size: int):
    """`_fetch` on a pooled DBAPI connection; read-only, so a connection the database dropped (a restart) is
    thrown away and the read tried once more on a fresh one."""
    sqlite = db.engine.dialect.name == "sqlite"
    for attempt in (1, 2):
        conn = db.engine.raw_connection()
        try:
            return _fetch(conn.driver_connection, db, sqlite, q, units, extensions, size)
        except db.engine.dialect.loaded_dbapi.OperationalError:
            conn.invalidate()
            if attempt == 2:
                raise
        finally:
            conn.close()
    raise AssertionError("unreachable")


def report_query(params, tz, now: datetime | None = None) -> tuple[S.ReportQuery, bool]:
    """The service's query for GET requests' parameters, and whether extensions were asked for.

    service_request_id overrides every other filter (spec). Without any date filter the window is the
    last 90 days of requested_datetime; start_date..end_date may span 90 days at most."""
    extensions = _truthy(params.get("extensions"))
    size = integer(params.get("page_size"), "page_size", default=MAX_REQUESTS, lo=1, hi=MAX_REQUESTS)
    page = integer(params.get("page"), "page", default=1, lo=1, hi=1_000_000)
    ids = _csv_param(params.get("service_request_id"))
    if ids:
        if not all(i.isdigit() for i in ids) or len(ids) > MAX_REQUESTS:
            raise InvalidInput("service_request_id is a comma-separated list of request ids", code="invalid_parameter",
                               details=[{"field": "service_request_id", "problem": "numbers, comma-separated"}])
        return S.ReportQuery(ids=[int(i) for i in ids], page=page, page_size=size), extensions
    q = S.ReportQuery(page=page, page_size=size)
    codes = _csv_param(params.get("service_code"))
    if codes:
        q.category = codes
    statuses = _csv_param(params.get("status"))
    if statuses:
        wanted: set[str] = set()
        for st in statuses:
            st = st.lower()
            if st == "open":
                wanted |= S.OPEN_STATUSES
            elif st == "closed":
                wanted |= S.CLOSED_STATUSES
            elif st in S.STATUSES:  # extension: our detailed statuses
                wanted.add(st)
            else:
                raise InvalidInput(f"unknown status {st!r}: use open or closed", code="invalid_status",
                                   details=[{"field": "status", "problem": "use open or closed"}])
        q.status = sorted(wanted)
    start, end = _w3c(params.get("start_date"), "start_date", tz), _w3c(params.get("end_date"), "end_date", tz)
    q.updated_after = _w3c(params.get("updated_after"), "updated_after", tz)
    q.updated_before = _w3c(params.get("updated_before"), "updated_before", tz)
    window = timedelta(days=DEFAULT_DAYS)
    if start and end:
        if end < start:
            raise InvalidInput("end_date is before start_date", code="invalid_date")
        if end - start > window:
            raise InvalidInput(f"start_date and end_date may not span more than {DEFAULT_DAYS} days",
                               code="invalid_date", details=[{"field": "end_date", "problem": "span over 90 days"}])
    elif start:
        end = start + window
    elif end:
        start = end - window
    elif not (q.updated_after or q.updated_before):
        start = (now or utcnow()) - window
    q.created_after, q.created_before = _from(start), _through(end)
    q.updated_after, q.updated_before = _from(q.updated_after), _through(q.updated_before)
    lat, lon = number(params.get("lat"), "lat", lo=-90, hi=90), number(params.get("long"), "long", lo=-180, hi=180)
    radius = number(params.get("radius"), "radius", lo=1, hi=MAX_RADIUS_M)
    if (lat is None) != (lon is None):
        raise InvalidInput("lat and long go together", code="invalid_parameter",
                           details=[{"field": "lat/long", "problem": "give both or neither"}])
    if lat is not None:
        q.near = (lat, lon, radius or DEFAULT_RADIUS_M)
    elif radius is not None:
        raise InvalidInput("radius needs lat and long", code="invalid_parameter")
    if params.get("bbox"):
        q.bbox = S.parse_bbox(params["bbox"])
    if params.get("agency_responsible"):
        q.unit = params["agency_responsible"].strip()
    return q, extensions


def _json_list(value) -> list:
    """A JSON list column as read on the DBAPI connection (SQLite: text; PostgreSQL: already decoded)."""
    if value is None:
        return []
    return (orjson.loads(value) or []) if isinstance(value, (str, bytes)) else list(value)


def _description(title: str, description: str) -> str:
    if not description or description.startswith(title):
        return description or title
    return f"{title}\n\n{description}"


def find_requests(db, q: S.ReportQuery, base: str, lang: str, extensions: bool, tz) -> list[dict]:
    """GET requests: the page's ids from an index, then only the needed columns of just those rows, their
    first photos and their status notes (one query each, never one per row); names from memory."""
    cats, units = names(db)
    ko = lang == "ko"
    size = min(max(q.page_size, 1), MAX_REQUESTS)
    rows, photos, entries = _read(db, q, units, extensions, size)
    when = local_time(tz)
    out = []
    open_statuses = S.OPEN_STATUSES
    no_unit = ("", "", "")
    for r in rows:
        rid, status, code = r[0], r[1], r[2]
        unit = units.get(r[5], no_unit)
        cat = cats.get(code, (code, code))
        notes = entries.get(rid, ())
        pids = photos.get(rid, ())
        links = _json_list(r[13])  # a partner's media_url links, shown as given
        item = {
            "service_request_id": str(rid),
            "status": "open" if status in open_statuses else "closed",
            "status_notes": next((e[5] for e in reversed(notes) if e[5]), None) if notes else None,
            "service_name": cat[0] if ko else cat[1],
            "service_code": code,
            "description": _description(r[3], r[4]),
            "agency_responsible": unit[1] if ko else unit[2],
            "service_notice": None,
            "requested_datetime": when(r[9]),
            "updated_datetime": when(r[10]),
            "expected_datetime": when(r[11]),
            "address": r[6],
            "address_id": None,
            "zipcode": None,
            "lat": r[7],
            "long": r[8],
            "media_url": f"{base}/api/reports/photos/{pids[0]}.jpg" if pids else links[0] if links else None,
        }
        if extensions:
            parent, support, district, attributes = r[14:18]
            if isinstance(attributes, (str, bytes)):  # SQLite keeps JSON as text
                attributes = orjson.loads(attributes)
            item.update({
                "detailed_status": MYSOCIETY_STATUS.get(status, status.upper()),
                "detailed_status_name": S.status_name(status, lang),
                "agency_code": unit[0],
                "district": district,
                "duplicate_of": str(parent) if parent else None,
                "support_count": support,
                "media_urls": [f"{base}/api/reports/photos/{p}.jpg" for p in pids] + links,
                "attributes": [{"code": k, "value": ",".join(v) if isinstance(v, list) else v}
                               for k, v in (attributes or {}).items()],
                "notes": [{"update_id": str(e[1]), "datetime": when(e[2]), "type": e[3],
                           "status": MYSOCIETY_STATUS.get(e[4], e[4].upper()), "description": e[5]}
                          for e in notes],
            })
        out.append(item)
    return out


def get_requests(request: Request) -> Response:
    """GET requests.{fmt}: a bare Starlette route (sync, so in the thread pool) put first in the app's routes
    by `on_install`: no walk through the included routers, no dependency solving on the hot path; errors
    still reach the platform's handlers, which answer in Open311's format."""
    fmt = _format(request.path_params["fmt"])
    params = request.query_params
    check_jurisdiction(request)
    tz = _tz(request)
    q, extensions = report_query(params, tz)
    items = find_requests(_db(request), q, _base_url(request), language(request), extensions, tz)
    return respond(fmt, "service_requests", items)


class _RequestsRoute(Route):
    """The bare GET route; a method it does not serve gets a 405 naming POST too (the FastAPI route's)."""

    async def handle(self, scope, receive, send) -> None:
        if scope["method"] not in self.methods:
            raise StarletteHTTPException(405, headers={"Allow": "GET, HEAD, POST"})
        await self.app(scope, receive, send)


def on_install(app) -> None:
    """Called by reports.install after the router is included: GET requests goes first in the app's routes
    (POST requests.{fmt} only partly matches it and is still served by the FastAPI route below); the edge
    (`Open311Edge`) wraps the app for paths under /open311."""
    app.router.routes.insert(0, _RequestsRoute(f"{BASE}/requests.{{fmt}}", get_requests, methods=["GET"],
                                               include_in_schema=False))
    origins = _csv_param(app.state.settings.open311_cors_origins)
    app.add_middleware(Open311Edge, origins=origins)


# --- the edge: what every /open311 request goes through before a route -------------------------------------

MAX_QUERY_BYTES = 8192  # a longer query string is refused (414) in the spec's error format
CORS_HEADERS = ["Content-Type", "Accept-Language", "Idempotency-Key", "X-API-Key", "Authorization"]
# The paths under /open311 and the methods each answers (OPTIONS names them in Allow).
PATHS = [
    (re.compile(rf"^{BASE}/(requests|servicerequestupdates)\.[a-z]+$"), "GET, HEAD, POST, OPTIONS"),
    (re.compile(rf"^({PREFIX}|{BASE})/discovery\.[a-z]+$"), "GET, HEAD, OPTIONS"),
    (re.compile(rf"^{BASE}/(services|services/[^/]+|requests/[^/]+|tokens/[^/]+)\.[a-z]+$"), "GET, HEAD, OPTIONS"),
]


def _strict_utf8(encoded: bytes, plus_is_space: bool) -> bool:
    """Whether percent-encoded text decodes as UTF-8 (Starlette would silently put U+FFFD in its place)."""
    if plus_is_space:
        encoded = encoded.replace(b"+", b" ")
    try:
        unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _edge_error(path: str, status: int, message: str) -> Response:
    fmt = "xml" if path.endswith(".xml") else "json"
    return respond(fmt, "errors", [{"code": status, "description": message}], status_code=status)


class Open311Edge:
    """HTTP hygiene for /open311, in front of the routes: the path, query string and url-encoded body must
    be UTF-8 (400), the query string at most MAX_QUERY_BYTES (414), both in the spec's error format; OPTIONS
    answers 204 with the path's methods; CORS for the origins in SMARTCITY_OPEN311_CORS_ORIGINS (reads need
    no credentials, so no cookies are allowed across origins); HEAD is answered as GET, without the body."""

    def __init__(self, app, origins: list[str]):
        self.app = app
        self.origins = origins
        self.inner = self._cors(app)

    def _cors(self, app):
        if not self.origins:
            return app
        return CORSMiddleware(app, allow_origins=self.origins, allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
                              allow_headers=CORS_HEADERS, max_age=3600)

    async def _refuse(self, scope, receive, send, status: int, message: str) -> None:
        # With the CORS headers too: a browser app is shown the error rather than a CORS failure.
        path = scope["path"]
        await self._cors(_edge_error(path, status, message))(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        query: bytes = scope.get("query_string", b"")
        if len(query) > MAX_QUERY_BYTES:
            await self._refuse(scope, receive, send, 414, f"the query string is longer than {MAX_QUERY_BYTES} bytes")
            return
        if not _strict_utf8(scope.get("raw_path") or path.encode(), False) or not _strict_utf8(query, True):
            await self._refuse(scope, receive, send, 400, "the request's path or query string is not valid UTF-8")
            return
        headers = Headers(scope=scope)
        if method == "OPTIONS" and not (headers.get("origin") and headers.get("access-control-request-method")):
            allow = next((methods for pattern, methods in PATHS if pattern.match(path)), None)
            if allow is None:
                await self._refuse(scope, receive, send, 404, "not found")
            else:
                await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
            return
        if method == "POST" and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body, receive = await _whole_body(receive)
            if not all(_strict_utf8(part, True) for part in body.split(b"&")):
                await self._refuse(scope, receive, send, 400, "the request body is not valid UTF-8")
                return
        elif method == "POST" and headers.get("content-type", "").startswith("multipart/form-data"):
            receive = _TextPartsCheck.around(scope, headers["content-type"], receive)
        if method == "HEAD":
            send = _without_body(send)
        await self.inner(scope, receive, send)


class _TextPartsCheck:
    """Reads a multipart body beside the app as it streams by (files are not kept) and notes a text field
    that is not UTF-8, which Starlette would read as Latin-1 without a word. The handlers read the whole
    form before they act and then call `refuse_bad_text`, so such a request stores nothing."""

    def __init__(self, boundary: bytes):
        self.invalid: str | None = None
        self._header, self._value, self._disposition = b"", b"", b""
        self._text: bytearray | None = None
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data, "on_part_end": self._end})

    @classmethod
    def around(cls, scope, content_type: str, receive):
        boundary = parse_options_header(content_type)[1].get(b"boundary")
        if not boundary:
            return receive  # Starlette refuses it in our format
        check = cls(boundary)
        scope.setdefault("state", {})["open311_text_check"] = check

        async def checked():
            message = await receive()
            if message["type"] == "http.request" and check.parser is not None:
                try:
                    check.parser.write(message.get("body", b""))
                except Exception:  # noqa: BLE001 - a malformed body is Starlette's to refuse
                    check.parser = None
            return message

        return checked

    def _begin(self) -> None:
        self._disposition, self._text = b"", None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        options = parse_options_header(self._disposition)[1]
        self._name = options.get(b"name", b"")
        self._text = None if b"filename" in options else bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._text is not None and len(self._text) < 1_000_000:
            self._text.extend(data[start:end])

    def _end(self) -> None:
        if self._text is not None and self.invalid is None:
            try:
                bytes(self._text).decode("utf-8")
                self._name.decode("utf-8")
            except UnicodeDecodeError:
                self.invalid = self._name.decode("utf-8", "replace")[:40] or "?"


def refuse_bad_text(request: Request) -> None:
    """InvalidInput if a multipart text field of this request was not UTF-8 (see `_TextPartsCheck`)."""
    check = request.scope.get("state", {}).get("open311_text_check")
    if check is not None and check.invalid is not None:
        raise InvalidInput(f"the field {check.invalid!r} is not valid UTF-8", code="invalid_body")


async def _whole_body(receive):
    """The body read whole, and a `receive` that hands it to the app again."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _without_body(send):
    async def head_send(message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head_send


@router.api_route(f"{BASE}/requests/{{service_request_id}}.{{fmt}}", methods=READ)
def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
    fmt = _format(fmt)
    check_jurisdiction(request)
    if not service_request_id.isdigit():
        raise NotFound(f"no service request {service_request_id!r}")
    q = S.ReportQuery(ids=[int(service_request_id)], page_size=1)
    items = find_requests(_db(request), q, _base_url(request), language(request),
                          _truthy(request.query_params.get("extensions")), _tz(request))
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
    with _db(request).session() as s:
        if s.get(Report, rid) is None:
            raise NotFound("no such token")
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
        out = [{
            "update_id": str(u.id),
            "service_request_id": str(u.report_id),
            "status": MYSOCIETY_STATUS.get(u.status, u.status.upper()),
            "updated_datetime": _stamp(u.at, tz),
            "description": u.text,
            "media_url": u.media_url,
            "external_status_code": u.status,
        } for u in found if not u.external_id]
    return respond(fmt, "service_request_updates", out)


def post_update_work(db, params, key: str | None, tz) -> dict:
    with db.session() as s:
        identity = _partner(s, key)
        return _post_update(s, identity, params, tz)


def _post_update(s, identity: Identity, params, tz) -> dict:
    for name in ("update_id", "service_request_id", "status", "description"):
        if not _text(params, name).strip():
            raise InvalidInput(f"{name} is required", code="required",
                               details=[{"field": name, "problem": "is required"}])
    _w3c(_text(params, "updated_datetime"), "updated_datetime", tz)  # checked; the update is timed on arrival
    status_in = _text(params, "status").strip().upper()
    if status_in not in FROM_MYSOCIETY:
        raise InvalidInput(f"unknown status {status_in!r}", code="invalid_status",
                           details=[{"field": "status", "problem": f"unknown {status_in!r}: one of "
                                                                  f"{', '.join(FROM_MYSOCIETY)}"}])
    status, loose = FROM_MYSOCIETY[status_in]
    rid = _text(params, "service_request_id").strip()
    if not rid.isdigit():
        raise NotFound(f"no service request {rid!r}")
    outcome = S.partner_update(s, identity, int(rid), _text(params, "description"), status=status, loose=loose,
                               external_id=_text(params, "update_id").strip(),
                               media_url=_text(params, "media_url").strip() or None)
    # Beyond the extension's update_id: the request's status now and, if the asked one was not applied or a
    # field was dropped, why.
    said = [outcome.refused] if outcome.refused else []
    said += [f"{n['field']} dropped: {n['problem']}" for n in outcome.notices]
    return {"update_id": str(outcome.entry.id), "status": MYSOCIETY_STATUS.get(outcome.status, outcome.status.upper()),
            "service_notice": "; ".join(said) or None}


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


# --- the CLI: smartcity open311 keys … ---------------------------------------------------------------------


def _cli_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SmartCityError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def _cli_db():
    from smartcity.core.db import Database
    from smartcity.settings import get_settings

    return Database(get_settings().database_url)


@click.group("open311")
def cli() -> None:
    """Open311 GeoReport v2 at /open311/v2: keys of partner systems."""


@cli.group("keys")
def keys() -> None:
    """API keys for Open311 clients (POST requests and servicerequestupdates)."""


@keys.command("create")
@click.argument("name")
@click.option("--user", "username", default=None, help="Act as this user (reports are filed in their name).")
@click.option("--import", "for_import", is_flag=True,
              help="The key may also give requested_datetime (a partner moving its past requests over).")
@_cli_errors
def keys_create(name: str, username: str | None, for_import: bool) -> None:
    """Issue a key for NAME; it is printed once and only its hash is kept."""
    db = _cli_db()
    with db.session() as s:
        owner = accounts.get_user(s, username) if username else None
        row, key = accounts.create_api_key(s, name, user=owner, scope=S.IMPORT_KEY_SCOPE if for_import else "open311")
    click.echo(key)
    click.echo(f"(Open311 key id {row.id}; keep it now, it cannot be shown again)", err=True)
    db.dispose()


def _open311_keys(session) -> list:
    return [k for scope in KEY_SCOPES for k in accounts.list_api_keys(session, scope=scope)]


@keys.command("list")
def keys_list() -> None:
    """List Open311 keys (never the keys themselves)."""
    db = _cli_db()
    with db.session() as s:
        for k in _open311_keys(s):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            kind = "\timport" if k.scope == S.IMPORT_KEY_SCOPE else ""
            click.echo(f"{k.id}\t{k.name}\t{k.prefix}…\t{k.created_at:%Y-%m-%d}\t{state}{kind}")
    db.dispose()


@keys.command("revoke")
@click.argument("key_id", type=int)
@_cli_errors
def keys_revoke(key_id: int) -> None:
    """Revoke an Open311 key by its id; its client is refused from then on."""
    db = _cli_db()
    with db.session() as s:
        if key_id not in {k.id for k in _open311_keys(s)}:
            raise NotFound(f"no Open311 key {key_id}")
        accounts.revoke_api_key(s, key_id)
    click.echo(f"Open311 key {key_id} revoked")
    db.dispose()
