"""Open311 GeoReport v2, the wire format: its error format, XML and JSON output, request parameters,
signed tokens, the names map and stored times as W3C datetimes. Shared by the routes in open311.py."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

import orjson
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from smartcity.core import accounts
from smartcity.core.auth import Identity, identity_of_user
from smartcity.core.context import Slot
from smartcity.core.db import from_store
from smartcity.core.errors import (
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    SmartCityError,
    TooLarge,
)
from smartcity.core.i18n import negotiate, pick
from smartcity.core.models import Department
from smartcity.core.params import timestamp
from smartcity.reports import service as S
from smartcity.reports.models import Category

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
    return (
        pick(given, profile.languages)
        or negotiate(request.headers.get("accept-language", ""), profile.languages)
        or profile.language
    )


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


@dataclass
class _Names:
    # (expires, categories, units) replaced as one tuple: a reader on another thread sees the old or the new.
    current: tuple[float, dict, dict] = (0.0, {}, {})


_NAMES: Slot[_Names] = Slot("open311.names", lambda context: _Names())


def names(db) -> tuple[dict, dict]:
    """({category code: (name_ko, name_en)}, {unit id: (code, name_ko, name_en)}), refreshed every 30 s."""
    box = _NAMES.get(db)
    expires, cats, units = box.current
    now = time.monotonic()
    if expires > now:
        return cats, units
    with db.engine.connect() as conn:
        cats = {c: (ko, en) for c, ko, en in conn.execute(select(Category.code, Category.name_ko, Category.name_en))}
        units = {
            i: (c, ko, en)
            for i, c, ko, en in conn.execute(
                select(Department.id, Department.code, Department.name_ko, Department.name_en)
            )
        }
    box.current = (now + NAMES_TTL_S, cats, units)
    return cats, units


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
