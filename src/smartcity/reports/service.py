"""Community Mapping, the domain: taxonomy, reports, routing, the staff workflow, following up, campaigns
and the dashboard. No HTTP here: the JSON API, Open311, the pages and the CLI all call these functions.

Every function takes the caller's SQLAlchemy session (the caller owns the transaction) and, where a rule
depends on who is asking, the caller's `Identity`. Errors are the platform's (`core.errors`):

    InvalidInput        bad field, unknown category (code "unknown_category"), bad attribute, illegal transition
    OutsideCity         the point is not inside the city
    TooLarge            a photo over the size limit
    NotAuthenticated    anonymous where sign-in is needed
    PermissionDenied    e.g. staff working a report of another unit
    NotFound            no such report, category, campaign, template
    Conflict            a race on an idempotency key
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import io
import ipaddress
import json
import math
import re
import secrets
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import h3
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from smartcity.core import audit, notify
from smartcity.core.auth import ANONYMOUS, Identity, check
from smartcity.core.city import CityProfile
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PermissionDenied, TooLarge
from smartcity.core.events import publish
from smartcity.core.geo import EARTH_RADIUS_M, geo_index, haversine_m
from smartcity.core.models import Department, User
from smartcity.reports import photos as photo_files
from smartcity.reports.models import (
    Campaign,
    Category,
    CategoryGroup,
    Report,
    ReportContact,
    ReportPhoto,
    ReportSupport,
    ReportUpdate,
    ResponseTemplate,
    Route,
    Subscription,
    grid_cell,
)
from smartcity.reports.photos import Upload
from smartcity.settings import Settings, get_settings

__all__ = ["Upload"]  # re-exported: callers build uploads from here

TAXONOMY_FILE = Path(__file__).parent / "taxonomy.json"
H3_RES = 9
HEAT_RES = 8
NEARBY_M = 50.0
MAX_TITLE = 200
MAX_DESCRIPTION = 4000
MAX_ADDRESS = 300
MAX_UPDATE = 4000
MAX_PAGE_SIZE = 1000

# --- statuses ---------------------------------------------------------------------------------------

STATUSES = ("open", "acknowledged", "in_progress", "fixed", "closed", "duplicate", "not_responsible", "referred")
OPEN_STATUSES = frozenset({"open", "acknowledged", "in_progress"})
CLOSED_STATUSES = frozenset(STATUSES) - OPEN_STATUSES
_REOPEN = {"open", "in_progress"}
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "in_progress", "fixed", "closed", "duplicate", "not_responsible",
                       "referred"}),
    "acknowledged": frozenset({"in_progress", "fixed", "closed", "duplicate", "not_responsible", "referred"}),
    "in_progress": frozenset({"acknowledged", "fixed", "closed", "duplicate", "not_responsible", "referred"}),
    "fixed": frozenset({"closed"} | _REOPEN),
    "closed": frozenset(_REOPEN),
    "duplicate": frozenset(_REOPEN),
    "not_responsible": frozenset(_REOPEN),
    "referred": frozenset(_REOPEN),
}
STATUS_NAMES = {
    "open": ("접수", "Open"),
    "acknowledged": ("확인", "Acknowledged"),
    "in_progress": ("처리 중", "In progress"),
    "fixed": ("처리 완료", "Fixed"),
    "closed": ("종결", "Closed"),
    "duplicate": ("중복", "Duplicate"),
    "not_responsible": ("소관 아님", "Not our responsibility"),
    "referred": ("이관", "Referred"),
}
SOURCES = ("web", "open311", "cli", "call120", "demo", "api")
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")


def status_name(status: str, language: str) -> str:
    """A status in words, in Korean or English."""
    ko, en = STATUS_NAMES.get(status, (status, status))
    return ko if language == "ko" else en


def open311_status(status: str) -> str:
    """Open311 knows only "open" and "closed"."""
    return "open" if status in OPEN_STATUSES else "closed"


# --- configuration ----------------------------------------------------------------------------------


def configure(db, settings: Settings) -> None:
    """Tell the service which settings apply to `db` (install(app) does it; tests call it directly)."""
    db.cache["reports.settings"] = settings


def settings_of(session: Session) -> Settings:
    db = session.info.get("db")
    configured = db.cache.get("reports.settings") if db is not None else None
    return configured or get_settings()


def uploads_root(settings: Settings) -> Path:
    return Path(settings.var_dir) / "uploads"


def _now() -> datetime:
    return utcnow()


def _clean_text(value: Any, name: str, limit: int, problems: list[dict], required: bool = False) -> str:
    """Text is stored as given (HTML included: it is shown escaped), minus control characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        problems.append({"field": name, "code": "invalid", "problem": "must be text"})
        return ""
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", value).strip()
    if required and not text:
        problems.append({"field": name, "code": "required", "problem": "is required"})
    if len(text) > limit:
        problems.append({"field": name, "code": "too_long", "problem": f"is longer than {limit} characters",
                         "length": len(text), "limit": limit})
    return text


def _raise_problems(problems: list[dict], message: str = "the report is not valid") -> None:
    if problems:
        raise InvalidInput(message, code=problems[0].get("code_top") or problems[0]["code"], details=problems)


# --- taxonomy ---------------------------------------------------------------------------------------


def seed(session: Session, profile: CityProfile | None = None) -> dict[str, int]:
    """Idempotent: store the bundled taxonomy's missing groups and categories, and the default response
    templates. Existing rows (maybe edited by an administrator) are left alone."""
    data = json.loads(TAXONOMY_FILE.read_text(encoding="utf-8"))
    have_groups = set(session.scalars(select(CategoryGroup.code)))
    have_cats = set(session.scalars(select(Category.code)))
    added = {"groups": 0, "categories": 0, "templates": 0}
    for gpos, group in enumerate(data["groups"]):
        if group["code"] not in have_groups:
            session.add(CategoryGroup(code=group["code"], name_ko=group["name_ko"], name_en=group["name_en"],
                                      position=gpos))
            added["groups"] += 1
        for pos, item in enumerate(group["items"]):
            if item["code"] in have_cats:
                continue
            session.add(Category(
                code=item["code"], group_code=group["code"], name_ko=item["name_ko"], name_en=item["name_en"],
                description_ko=item.get("description_ko", ""), description_en=item.get("description_en", ""),
                keywords=item.get("keywords", ""), service_days=int(item.get("days", 7)),
                unit_kind=item.get("unit", group["unit"]), attributes=item.get("attributes", []), active=True,
                position=pos,
            ))
            added["categories"] += 1
    if session.scalar(select(ResponseTemplate.id).limit(1)) is None:
        for tpl in DEFAULT_TEMPLATES:
            session.add(ResponseTemplate(**tpl))
            added["templates"] += 1
    session.flush()
    db = session.info.get("db")
    if db is not None:
        db.cache["reports.seeded"] = True
    return added


DEFAULT_TEMPLATES = [
    dict(title="Received", status="acknowledged",
         text_ko="신고해 주셔서 감사합니다. 담당 부서에서 내용을 확인했으며 곧 현장을 확인하겠습니다.",
         text_en="Thank you for your report. The responsible department has read it and will inspect the site soon."),
    dict(title="Work scheduled", status="in_progress",
         text_ko="현장을 확인했으며 보수 작업을 예정했습니다.",
         text_en="We have inspected the site and scheduled the repair."),
    dict(title="Fixed", status="fixed",
         text_ko="요청하신 사항을 처리했습니다. 처리 결과를 확인해 주세요.",
         text_en="The problem has been fixed. Please let us know whether you are satisfied."),
    dict(title="Not ours", status="not_responsible",
         text_ko="이 사항은 시·구청 소관이 아니어서 처리할 수 없습니다. 관리 주체에 직접 문의해 주세요.",
         text_en="This is not the city's responsibility; please contact the owner of the site directly."),
]


def _ensure_seeded(session: Session) -> None:
    """Seed the taxonomy on first use if nobody did (a database set up by core's seed only)."""
    db = session.info.get("db")
    if db is not None and db.cache.get("reports.seeded"):
        return
    if session.scalar(select(Category.id).limit(1)) is None:
        seed(session)
    elif db is not None:
        db.cache["reports.seeded"] = True


def list_groups(session: Session) -> list[CategoryGroup]:
    """The taxonomy's groups (fields), in display order."""
    _ensure_seeded(session)
    return list(session.scalars(select(CategoryGroup).order_by(CategoryGroup.position, CategoryGroup.code)))


def list_categories(session: Session, *, campaign: str | None = None, everything: bool = False,
                    include_inactive: bool = False) -> list[Category]:
    """Categories in display order: the general ones; or a campaign's own (`campaign=slug`); or all."""
    _ensure_seeded(session)
    groups = {g.code: g.position for g in session.scalars(select(CategoryGroup))}
    q = select(Category)
    if not everything:
        if campaign:
            q = q.where(Category.campaign_id == get_campaign(session, campaign).id)
        else:
            q = q.where(Category.campaign_id.is_(None))
    if not include_inactive:
        q = q.where(Category.active.is_(True))
    cats = list(session.scalars(q))
    cats.sort(key=lambda c: (groups.get(c.group_code, 999), c.position, c.code))
    return cats


def get_category(session: Session, code: str) -> Category:
    """A category by its code; InvalidInput "unknown_category" if there is none."""
    # Kept for the session's life (a request, or one group of the writer's jobs): filing a report looks its
    # category up in the adapter and again in create_report.
    known = session.info.setdefault("reports.categories", {})
    cat = known.get(str(code))
    if cat is not None:
        return cat
    _ensure_seeded(session)
    cat = session.scalar(select(Category).where(Category.code == str(code)))
    if cat is None:
        raise InvalidInput(f"unknown category {code!r}", code="unknown_category",
                           details=[{"field": "category", "code": "unknown_category", "problem": "no such category"}])
    known[str(code)] = cat
    return cat


def _loc(obj, name: str, language: str) -> str:
    value = getattr(obj, f"{name}_ko" if language == "ko" else f"{name}_en", "") or ""
    return value or getattr(obj, f"{name}_en", "") or getattr(obj, f"{name}_ko", "") or ""


def _dloc(d: dict, name: str, language: str) -> str:
    return d.get(f"{name}_{language}") or d.get(f"{name}_en") or d.get(f"{name}_ko") or d.get(name) or ""


def attribute_view(attr: dict, language: str) -> dict:
    """One attribute definition in the Open311 shape, localised."""
    out = {
        "code": attr["code"],
        "datatype": attr["datatype"],
        "required": bool(attr.get("required")),
        "variable": True,
        "order": int(attr.get("order", 0)),
        "description": _dloc(attr, "description", language),
        "datatype_description": _dloc(attr, "datatype_description", language),
    }
    if attr["datatype"] in ("singlevaluelist", "multivaluelist"):
        out["values"] = [{"key": v["key"], "name": _dloc(v, "name", language)} for v in attr.get("values", [])]
    return out


_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")


def keywords_in(keywords: str, language: str) -> list[str]:
    """The keywords of one language from the taxonomy's mixed list ("포트홀,파임,pothole,hole"): those
    written in Hangul are Korean, the others English."""
    words = [k.strip() for k in keywords.split(",") if k.strip()]
    return [k for k in words if bool(_HANGUL.search(k)) == (language == "ko")]


def category_view(category: Category, language: str, group: CategoryGroup | None = None) -> dict:
    """A category for display and for Open311 services/definitions."""
    return {
        "code": category.code,
        "group": category.group_code,
        "group_name": _loc(group, "name", language) if group else category.group_code,
        "name": _loc(category, "name", language),
        "name_ko": category.name_ko,
        "name_en": category.name_en,
        "description": _loc(category, "description", language),
        "keywords": keywords_in(category.keywords, language),
        "service_days": category.service_days,
        "unit_kind": category.unit_kind,
        "campaign": category.campaign.slug if category.campaign else None,
        "active": category.active,
        "metadata": bool(category.attributes),
        "attributes": [attribute_view(a, language) for a in sorted(category.attributes or [],
                                                                  key=lambda a: a.get("order", 0))],
    }


def check_attribute_definitions(defs: Any) -> list[dict]:
    """Validate a category's attribute definitions (Open311 shape); returns them normalised."""
    if defs is None:
        return []
    if not isinstance(defs, list):
        raise InvalidInput("attributes must be a list", code="invalid_attributes")
    problems, seen, out = [], set(), []
    for i, a in enumerate(defs):
        if not isinstance(a, dict) or not re.fullmatch(r"[A-Za-z0-9_\-]{1,50}", str(a.get("code", ""))):
            problems.append({"attribute": i, "problem": "needs a code of letters, digits, - or _"})
            continue
        if a["code"] in seen:
            problems.append({"attribute": a["code"], "problem": "code appears twice"})
        seen.add(a["code"])
        if a.get("datatype") not in DATATYPES:
            problems.append({"attribute": a["code"], "problem": f"datatype must be one of {', '.join(DATATYPES)}"})
            continue
        if a["datatype"].endswith("valuelist"):
            values = a.get("values")
            if not values or not all(isinstance(v, dict) and v.get("key") for v in values):
                problems.append({"attribute": a["code"], "problem": "a list needs values with keys"})
                continue
        out.append({k: v for k, v in a.items() if k in (
            "code", "datatype", "required", "order", "values", "description", "description_ko", "description_en",
            "datatype_description", "datatype_description_ko", "datatype_description_en")})
    if problems:
        raise InvalidInput("the attribute definitions are not valid", code="invalid_attributes", details=problems)
    return out


def validate_attributes(category: Category, values: dict[str, Any] | None) -> dict[str, Any]:
    """Check attribute values against the category's definitions; returns normalised values.

    number → int or float; datetime → ISO 8601 text (UTC if zoned); multivaluelist → list of keys.
    Raises InvalidInput with one detail per problem ("missing_attribute", "invalid_attribute",
    "unknown_attribute")."""
    values = dict(values or {})
    defs = {a["code"]: a for a in category.attributes or []}
    problems: list[dict] = []
    out: dict[str, Any] = {}
    for code in values:
        if code not in defs:
            problems.append({"field": f"attribute[{code}]", "code": "unknown_attribute",
                             "problem": "this category has no such attribute"})
    for code, d in defs.items():
        raw = values.get(code)
        empty = raw is None or raw == "" or raw == []
        if empty:
            if d.get("required"):
                problems.append({"field": f"attribute[{code}]", "code": "missing_attribute",
                                 "problem": "is required"})
            continue
        try:
            out[code] = _attribute_value(d, raw)
        except ValueError as exc:
            problems.append({"field": f"attribute[{code}]", "code": "invalid_attribute", "problem": str(exc)})
    if problems:
        raise InvalidInput("the attribute values are not valid", code=problems[0]["code"], details=problems)
    return out


def _attribute_value(d: dict, raw: Any) -> Any:
    kind = d["datatype"]
    keys = [str(v["key"]) for v in d.get("values", [])]
    if kind in ("string", "text"):
        if not isinstance(raw, (str, int, float)):
            raise ValueError("must be text")
        text = str(raw).strip()
        limit = 500 if kind == "string" else MAX_DESCRIPTION
        if len(text) > limit:
            raise ValueError(f"is longer than {limit} characters")
        return text
    if kind == "number":
        if isinstance(raw, bool):
            raise ValueError("must be a number")
        try:
            num = float(raw)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        if not math.isfinite(num):
            raise ValueError("must be a finite number")
        return int(num) if num.is_integer() and abs(num) < 2**53 else num
    if kind == "datetime":
        try:
            when = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be a date and time in ISO 8601 (2024-05-01T09:30:00+09:00)") from None
        return when.astimezone(UTC).isoformat() if when.tzinfo else when.isoformat()
    if kind == "singlevaluelist":
        if isinstance(raw, list):
            if len(raw) != 1:
                raise ValueError("takes exactly one value")
            raw = raw[0]
        if str(raw) not in keys:
            raise ValueError(f"must be one of {', '.join(keys)}")
        return str(raw)
    if kind == "multivaluelist":
        items = raw if isinstance(raw, list) else [p for p in str(raw).split(",")]
        items = [str(i).strip() for i in items if str(i).strip()]
        bad = [i for i in items if i not in keys]
        if bad:
            raise ValueError(f"unknown value(s) {', '.join(bad)}; choose from {', '.join(keys)}")
        return list(dict.fromkeys(items))
    raise ValueError("unknown datatype")


@dataclass
class CategoryIn:
    """A category to create or update (administrators)."""

    code: str
    group: str
    name_ko: str
    name_en: str
    description_ko: str = ""
    description_en: str = ""
    keywords: str = ""
    service_days: int = 7
    unit_kind: str = "civil"
    attributes: list[dict] = field(default_factory=list)
    active: bool = True
    campaign: str | None = None


def save_category(session: Session, identity: Identity, data: CategoryIn) -> Category:
    """Create or update a category by code (permission reports.manage)."""
    check(identity, "reports.manage")
    _ensure_seeded(session)
    problems: list[dict] = []
    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]{0,79}", data.code or ""):
        problems.append({"field": "code", "code": "invalid", "problem": "lower-case letters, digits, - and _"})
    name_ko = _clean_text(data.name_ko, "name_ko", 200, problems, required=True)
    name_en = _clean_text(data.name_en, "name_en", 200, problems, required=True)
    if not isinstance(data.service_days, int) or not 0 < data.service_days <= 365:
        problems.append({"field": "service_days", "code": "invalid", "problem": "between 1 and 365"})
    if session.scalar(select(CategoryGroup.id).where(CategoryGroup.code == data.group)) is None:
        problems.append({"field": "group", "code": "unknown_group", "problem": "no such group"})
    _raise_problems(problems, "the category is not valid")
    attrs = check_attribute_definitions(data.attributes)
    campaign = get_campaign(session, data.campaign) if data.campaign else None
    cat = session.scalar(select(Category).where(Category.code == data.code))
    created = cat is None
    if created:
        cat = Category(code=data.code, position=1000)
        session.add(cat)
    cat.group_code, cat.name_ko, cat.name_en = data.group, name_ko, name_en
    cat.description_ko, cat.description_en = data.description_ko[:2000], data.description_en[:2000]
    cat.keywords, cat.service_days, cat.unit_kind = data.keywords[:500], data.service_days, data.unit_kind
    cat.attributes, cat.active = attrs, data.active
    cat.campaign_id = campaign.id if campaign else None
    session.flush()
    audit.record(session, identity, "create" if created else "update", "report_category", cat.code)
    return cat


# --- routing ----------------------------------------------------------------------------------------


def default_unit_code(category: Category, district_code: str) -> str:
    """The unit a category's reports go to without a routing rule. A plain word names a kind of district
    unit ("roads" → "{district}-roads"); anything else is a unit's own code (e.g. "city-fire")."""
    kind = category.unit_kind or "civil"
    if "{district}" in kind:
        return kind.format(district=district_code)
    if kind.isalpha():
        return f"{district_code}-{kind}"
    return kind


def _unit(session: Session, code: str) -> Department | None:
    return session.scalar(select(Department).where(Department.code == code))


def route_for(session: Session, category: Category, district_code: str) -> Department:
    """The responsible unit: a rule for (category, district), else for (category, any district), else the
    category's default unit in the district, else the city's fallback unit (120 Dasan)."""
    rules = {r.district_code: r for r in session.scalars(
        select(Route).where(Route.category_code == category.code,
                            or_(Route.district_code == district_code, Route.district_code.is_(None))))}
    rule = rules.get(district_code) or rules.get(None)
    if rule is not None:
        return rule.department
    unit = _unit(session, default_unit_code(category, district_code))
    if unit is None:
        unit = _unit(session, settings_of(session).reports_fallback_unit)
    if unit is None:
        raise InvalidInput("no unit is set up to receive reports; run `smartcity init`", code="no_unit")
    return unit


@dataclass
class RouteView:
    category_code: str
    district_code: str | None
    department_code: str
    department_name_ko: str
    department_name_en: str
    explicit: bool  # a rule an administrator set (False: derived default)


def routing_table(session: Session, *, category: str | None = None, district: str | None = None) -> list[RouteView]:
    """Every (category, district) pair with its unit, explicit rules marked; filter by either."""
    _ensure_seeded(session)
    cats = [get_category(session, category)] if category else list_categories(session, everything=True)
    districts = [district] if district else [a.code for a in geo_index(session.info["db"]).districts]
    units = {d.code: d for d in session.scalars(select(Department))}
    rules = {(r.category_code, r.district_code): r for r in session.scalars(select(Route))}
    fallback = units.get(settings_of(session).reports_fallback_unit)
    out = []
    for cat in cats:
        for dc in districts:
            rule = rules.get((cat.code, dc)) or rules.get((cat.code, None))
            unit = rule.department if rule else units.get(default_unit_code(cat, dc)) or fallback
            if unit is None:
                continue
            out.append(RouteView(cat.code, dc, unit.code, unit.name_ko, unit.name_en, rule is not None))
    return out


def set_route(session: Session, identity: Identity, category_code: str, district_code: str | None,
              department_code: str) -> Route:
    """Add or change a routing rule (reports.manage). district_code None: every district."""
    check(identity, "reports.manage")
    cat = get_category(session, category_code)
    if district_code is not None and district_code not in {a.code for a in geo_index(session.info["db"]).districts}:
        raise InvalidInput(f"unknown district {district_code!r}", code="unknown_district")
    unit = _unit(session, department_code)
    if unit is None or unit.kind != "department":
        raise InvalidInput(f"unknown department {department_code!r}", code="unknown_department")
    rule = session.scalar(select(Route).where(Route.category_code == cat.code, Route.district_code.is_(None)
                                              if district_code is None else Route.district_code == district_code))
    old = rule.department.code if rule else None
    if rule is None:
        rule = Route(category_code=cat.code, district_code=district_code)
        session.add(rule)
    rule.department_id, rule.updated_at = unit.id, _now()
    session.flush()
    session.refresh(rule)
    audit.record(session, identity, "update", "report_route", f"{cat.code}/{district_code or '*'}",
                 {"old": old, "new": unit.code})
    return rule


def delete_route(session: Session, identity: Identity, category_code: str, district_code: str | None) -> None:
    """Remove a routing rule; the default applies again (reports.manage)."""
    check(identity, "reports.manage")
    cond = Route.district_code.is_(None) if district_code is None else Route.district_code == district_code
    rule = session.scalar(select(Route).where(Route.category_code == category_code, cond))
    if rule is None:
        raise NotFound("no such routing rule")
    audit.record(session, identity, "delete", "report_route", f"{category_code}/{district_code or '*'}",
                 {"old": rule.department.code})
    session.delete(rule)


# --- creating reports ---------------------------------------------------------------------------------


@dataclass
class Contact:
    """A reporter's contact details (sensitive)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass
class NewReport:
    """What a citizen (or a partner system) submits."""

    category: str
    lat: Any
    lon: Any
    title: str
    description: str = ""
    address_string: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    photos: list[Upload] = field(default_factory=list)
    contact: Contact | None = None
    show_name: bool = False
    idempotency_key: str | None = None
    source: str = "web"
    language: str = "ko"
    campaign: str | None = None
    external_id: str | None = None
    media_urls: list[str] = field(default_factory=list)  # a partner's links to its photos, kept as given
    # A partner system cannot correct a field as a person at a form can: with lenient=True a malformed
    # optional field (contact details, a media_url) is dropped with a notice instead of refusing the report.
    lenient: bool = False
    # When the request was first made, for a partner moving its history over: kept only when the caller
    # holds reports.import (the adapter checks), else the report is timed on arrival.
    requested_at: datetime | None = None


@dataclass
class CreatedReport:
    report: Report
    feedback_token: str  # the secret that lets the reporter confirm, reopen and rate without an account
    repeated: bool = False  # True: the idempotency key was seen before; nothing new was stored
    notices: list[dict] = field(default_factory=list)  # optional fields dropped (lenient): {field, problem}


EMAIL = re.compile(r"^[^@\s<>]{1,64}@[^@\s<>]{1,190}\.[^@\s<>]{2,}$")
# Short service numbers (120, 02-120) and national formats ((212) 555-1234) are real numbers: kept as given.
PHONE = re.compile(r"^\+?[0-9(][0-9 ().\-/]{0,48}[0-9]$")
MAX_MEDIA_URL = 2000


def _check_contact(contact: Contact | None, problems: list[dict], notices: list[dict] | None = None) -> Contact | None:
    """Contact details as given; a malformed one is a problem, or with `notices` (lenient) dropped and noted."""
    if contact is None:
        return None
    found: list[dict] = []
    name = _clean_text(contact.name, "contact.name", 200, found) or None
    if found:
        name = None
    email = (contact.email or "").strip() or None
    phone = (contact.phone or "").strip() or None
    if email and not EMAIL.match(email):
        found.append({"field": "contact.email", "code": "invalid_email", "problem": "is not an email address"})
        email = None
    if phone and not (PHONE.match(phone) and sum(c.isdigit() for c in phone) >= 3):
        found.append({"field": "contact.phone", "code": "invalid_phone", "problem": "is not a phone number"})
        phone = None
    (notices if notices is not None else problems).extend(found)
    if not (name or email or phone):
        return None
    return Contact(name, email, phone)


def _check_media_urls(urls: list[str], problems: list[dict], notices: list[dict] | None = None) -> list[str]:
    """Absolute http(s) links, kept as given (never fetched here); a malformed one is a problem, or with
    `notices` (lenient) dropped and noted."""
    kept: list[str] = []
    for url in urls:
        url = (url or "").strip()
        if not url:
            continue
        scheme, _, rest = url.partition("://")
        if scheme.lower() in ("http", "https") and rest and len(url) <= MAX_MEDIA_URL \
                and not re.search(r"[\s\x00-\x1f\x7f<>\"]", url):
            if url not in kept:
                kept.append(url)
            continue
        problem = {"field": "media_url", "code": "invalid_media_url",
                   "problem": f"is not an http(s) link of at most {MAX_MEDIA_URL} characters: {url[:80]!r}"}
        (notices if notices is not None else problems).append(problem)
    return kept


def _idem_key(identity: Identity, key: str) -> str:
    # Keys are namespaced by caller so that one client cannot fetch another's report by guessing a key.
    owner = f"u{identity.user_id}" if identity.user_id else f"k{identity.key_id}" if identity.key_id else "anon"
    return f"{owner}:{key}"[:200]


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (bytes, bytearray)):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def submission_fingerprint(new: NewReport) -> str:
    """What makes two submissions the same one, for idempotency: every field of the report as submitted
    (photos by their content), not how it was sent (its key, language or channel)."""
    fields = _canonical(new)
    for name in ("idempotency_key", "language", "source"):
        fields.pop(name, None)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def feedback_token(report: Report, settings: Settings | None = None) -> str:
    """The secret link token of a report's reporter (derived, never stored)."""
    if settings is None:
        owner = object_session(report)
        settings = settings_of(owner) if owner is not None else get_settings()
    key = settings.signing_key().encode()
    return hmac.new(key, f"report-feedback:{report.id}".encode(), hashlib.sha256).hexdigest()[:32]


def create_report(session: Session, identity: Identity, new: NewReport) -> CreatedReport:
    """File a report: validate everything first, then store report, contact, photos and timeline in the
    caller's transaction; photo files are removed again if it rolls back. A repeated idempotency key
    returns the first report and stores nothing."""
    settings = settings_of(session)
    if not identity.authenticated and not settings.reports_allow_anonymous:
        raise NotAuthenticated("sign in to report a problem")
    if identity.role is not None and not identity.can("reports.create"):
        raise PermissionDenied("you may not file reports")
    if new.idempotency_key:
        key = _idem_key(identity, str(new.idempotency_key).strip())
        fingerprint = submission_fingerprint(new)
        existing = session.scalar(select(Report).where(Report.idempotency_key == key))
        if existing is not None:
            if existing.idempotency_fingerprint not in (None, fingerprint):
                raise Conflict("this Idempotency-Key was used before with a different request; use a new key "
                               "for a new report", code="idempotency_key_reused")
            return CreatedReport(existing, feedback_token(existing, settings), repeated=True)
    else:
        key = fingerprint = None

    problems: list[dict] = []
    category = get_category(session, new.category)
    campaign = None
    if new.campaign:
        campaign = get_campaign(session, new.campaign)
        now = _now()
        if not campaign.starts_at <= now <= campaign.ends_at:
            raise InvalidInput("this campaign is not running", code="campaign_closed")
        if category.campaign_id != campaign.id:
            raise InvalidInput("the category is not one of this campaign's", code="unknown_category")
    elif category.campaign_id is not None:
        raise InvalidInput("this category belongs to a campaign; report it there", code="unknown_category")
    if not category.active:
        raise InvalidInput(f"the category {category.code!r} is no longer in use", code="unknown_category")
    where = geo_index(session.info["db"]).locate(new.lat, new.lon)
    title = _clean_text(new.title, "title", MAX_TITLE, problems, required=True)
    description = _clean_text(new.description, "description", MAX_DESCRIPTION, problems)
    address = _clean_text(new.address_string, "address_string", MAX_ADDRESS, problems) or None
    notices: list[dict] | None = [] if new.lenient else None
    contact = _check_contact(new.contact, problems, notices)
    media_urls = _check_media_urls(new.media_urls, problems, notices)
    source = new.source if new.source in SOURCES else "api"
    language = new.language if new.language in ("ko", "en") else "ko"
    if len(new.photos) > settings.reports_max_photos:
        problems.append({"field": "photos", "code": "too_many_photos",
                         "problem": f"at most {settings.reports_max_photos} photos"})
    _raise_problems(problems)
    attributes = validate_attributes(category, new.attributes)
    processed = [photo_files.process(p, settings.reports_max_photo_bytes) for p in new.photos]

    unit = route_for(session, category, where.district.code)
    now = _now()
    if new.requested_at is not None:
        if not may_import(identity):
            raise PermissionDenied("only an import key may give a request's original time", code="no_import")
        if new.requested_at > now:
            raise InvalidInput("requested_datetime is in the future", code="invalid_date")
        now = new.requested_at
    public_name = None
    if new.show_name:
        public_name = contact.name if contact and contact.name else identity.username if identity.user_id else None
        if identity.user_id:
            user = session.get(User, identity.user_id)
            public_name = (contact.name if contact and contact.name else None) or user.display_name or user.username
    report = Report(
        category_id=category.id, category_code=category.code, status="open", lat=where.lat, lon=where.lon,
        district_code=where.district.code,
        neighbourhood_code=where.neighbourhood.code if where.neighbourhood else None,
        h3_cell=h3.latlng_to_cell(where.lat, where.lon, H3_RES), grid_cell=grid_cell(where.lat, where.lon),
        title=title, description=description,
        address_string=address, attributes=attributes, unit_id=unit.id, reporter_id=identity.user_id,
        public_name=public_name, language=language, source=source,
        campaign_id=campaign.id if campaign else None, idempotency_key=key, idempotency_fingerprint=fingerprint,
        external_id=(str(new.external_id)[:100] if new.external_id else None),
        created_at=now, updated_at=now, due_at=now + timedelta(days=category.service_days),
        photo_count=len(processed), media_urls=media_urls or None,
        media_fetch="pending" if media_urls and settings.reports_fetch_media_urls else None,
    )
    session.add(report)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("this report is being submitted already; try again in a moment",
                       code="idempotency_conflict") from None
    if contact:
        session.add(ReportContact(report_id=report.id, name=contact.name, email=contact.email, phone=contact.phone))
    _store_photos(session, settings, report.id, processed)
    _timeline(session, report, identity, "created", None, "open", "", public=True, actor_label=_citizen(identity),
              at=now)
    audit.record(session, identity, "create", "report", report.id,
                 {"category": category.code, "unit": unit.code, "source": source})
    publish(session, "report.created", event_data(report))
    token = feedback_token(report, settings)
    _notify_reporter(session, report, "received", token=token)
    _notify_subscribers(session, report)
    return CreatedReport(report, token, notices=notices or [])


def _store_photos(session: Session, settings: Settings, report_id: int, processed: list, start: int = 0) -> None:
    """Write processed photos' files (removed again if the transaction rolls back) and their rows."""
    if not processed:
        return
    batch = photo_files.FileBatch(session, uploads_root(settings))
    try:
        for pos, p in enumerate(processed, start):
            name = secrets.token_hex(16)
            path = batch.write(p.image, ".jpg", name)
            thumb = batch.write(p.thumb, ".thumb.jpg", name)
            session.add(ReportPhoto(report_id=report_id, path=path, thumb_path=thumb, content_type="image/jpeg",
                                    width=p.width, height=p.height, size=len(p.image), position=pos))
    except BaseException:
        batch.remove()
        raise


def fetch_media(db, settings: Settings, *, limit: int = 20) -> int:
    """The background fetch of partners' media_url links (SMARTCITY_REPORTS_FETCH_MEDIA_URLS): each pending
    report's links become its photos where they are public images within the limits; a refused link stays a
    link, with an internal note saying why. The downloads happen outside any transaction. Returns the
    number of reports handled."""
    allow = [ipaddress.ip_network(n.strip(), strict=False)
             for n in settings.reports_fetch_media_allow.split(",") if n.strip()]
    with db.session() as s:
        pending = list(s.execute(select(Report.id, Report.media_urls).where(Report.media_fetch == "pending")
                                 .order_by(Report.id).limit(limit)))
    for report_id, urls in pending:
        got, refused = [], []
        for url in urls or []:
            try:
                upload = photo_files.fetch(url, settings.reports_max_photo_bytes, allow=allow)
                got.append(photo_files.process(upload, settings.reports_max_photo_bytes))
            except photo_files.FetchRefused as exc:
                refused.append((url, str(exc)))
            except (InvalidInput, TooLarge) as exc:  # not an image after all, or too many pixels
                refused.append((url, exc.message))
        with db.session() as s:
            report = get_report(s, report_id, lock=True)
            if report.media_fetch != "pending":
                continue  # another process did it meanwhile
            room = max(settings.reports_max_photos - report.photo_count, 0)
            if len(got) > room:
                refused.append(("", f"{len(got) - room} fetched photo(s) over the limit of "
                                    f"{settings.reports_max_photos} not kept"))
                got = got[:room]
            _store_photos(s, settings, report.id, got, start=report.photo_count)
            report.photo_count += len(got)
            report.media_fetch = "refused" if refused else "done"
            for url, why in refused:
                _timeline(s, report, ANONYMOUS, "note", None, None, f"media_url {url} not fetched: {why}",
                          public=False, actor_label="job:media_url")
            audit.record(s, "job:media_url", "fetch_media", "report", report.id,
                         {"photos": len(got), "refused": [u for u, _ in refused]})
    return len(pending)


def _citizen(identity: Identity) -> str:
    return identity.label if identity.authenticated else "citizen"


def event_data(report: Report) -> dict:
    """What events say about a report: public data only."""
    return {"id": report.id, "status": report.status, "category": report.category_code, "lat": report.lat,
            "lon": report.lon, "district": report.district_code, "title": report.title,
            "updated_at": report.updated_at.isoformat()}


# --- reading --------------------------------------------------------------------------------------------


def get_report(session: Session, report_id: int | str, *, lock: bool = False) -> Report:
    """A report by its number; NotFound otherwise."""
    try:
        rid = int(report_id)
    except (TypeError, ValueError):
        raise NotFound(f"no report {report_id!r}") from None
    q = select(Report).where(Report.id == rid)
    if lock:
        q = q.with_for_update(of=Report)
    report = session.scalar(q)
    if report is None:
        raise NotFound(f"no report {report_id!r}")
    return report


def photos_of(session: Session, report_id: int) -> list[ReportPhoto]:
    return list(session.scalars(select(ReportPhoto).where(ReportPhoto.report_id == report_id)
                                .order_by(ReportPhoto.position)))


def photo_url(photo: ReportPhoto, thumb: bool = False) -> str:
    return f"/api/reports/photos/{photo.id}{'/thumb' if thumb else ''}.jpg"


def photo_file(session: Session, photo_id: int, thumb: bool = False) -> Path:
    """The file of a photo (public), for serving."""
    photo = session.get(ReportPhoto, photo_id)
    if photo is None:
        raise NotFound("no such photo")
    path = uploads_root(settings_of(session)) / (photo.thumb_path if thumb else photo.path)
    if not path.exists():
        raise NotFound("the photo file is missing")
    return path


def public_view(report: Report, language: str = "ko") -> dict:
    """A report as anyone may see it: no contact, no internal notes, no reporter identity unless the
    citizen chose to show their name."""
    return {
        "id": report.id,
        "status": report.status,
        "status_name": status_name(report.status, language),
        "open311_status": open311_status(report.status),
        "category": report.category_code,
        "category_name": _loc(report.category, "name", language),
        "group": report.category.group_code,
        "title": report.title,
        "description": report.description,
        "address_string": report.address_string,
        "lat": report.lat,
        "lon": report.lon,
        "district": report.district_code,
        "neighbourhood": report.neighbourhood_code,
        "attributes": report.attributes or {},
        "unit": report.unit.code,
        "unit_name": _loc(report.unit, "name", language),
        "reporter_name": report.public_name,
        "source": report.source,
        "campaign_id": report.campaign_id,
        "parent_id": report.parent_id,
        "support_count": report.support_count,
        "photo_count": report.photo_count,
        "media_urls": report.media_urls or [],  # a partner's links, as given
        "rating": report.rating,
        "created_at": report.created_at.isoformat(),
        "updated_at": report.updated_at.isoformat(),
        "due_at": report.due_at.isoformat(),
        "fixed_at": report.fixed_at.isoformat() if report.fixed_at else None,
        "overdue": report.status in OPEN_STATUSES and report.due_at < _now(),
    }


def can_work(identity: Identity, report: Report) -> bool:
    """May this identity work this report? Administrators (reports.manage) any; staff their unit's."""
    if identity.can("reports.manage"):
        return True
    return identity.can("reports.work") and identity.department_id is not None \
        and identity.department_id == report.unit_id


def _require_work(identity: Identity, report: Report) -> None:
    check(identity, "reports.work")
    if not can_work(identity, report):
        raise PermissionDenied("this report belongs to another unit", code="other_unit")


def detail_view(session: Session, report: Report, identity: Identity = ANONYMOUS, language: str = "ko") -> dict:
    """The public view plus photos and the timeline; staff of the unit also see internal entries, the
    assignee and whether contact details exist (not the details themselves: see `contact_of`)."""
    staff = can_work(identity, report)
    view = public_view(report, language)
    view["photos"] = [{"id": p.id, "url": photo_url(p), "thumb_url": photo_url(p, True), "width": p.width,
                       "height": p.height} for p in photos_of(session, report.id)]
    view["timeline"] = [update_view(u, language) for u in timeline(session, report.id, include_internal=staff)]
    view["is_reporter"] = bool(identity.user_id and identity.user_id == report.reporter_id)
    if staff:
        assignee = session.get(User, report.assignee_id) if report.assignee_id else None
        view["assignee"] = assignee.username if assignee else None
        view["has_contact"] = session.get(ReportContact, report.id) is not None
        view["can_work"] = True
    return view


def timeline(session: Session, report_id: int, *, include_internal: bool = False) -> list[ReportUpdate]:
    """A report's timeline, oldest first; internal entries only when asked (staff)."""
    q = select(ReportUpdate).where(ReportUpdate.report_id == report_id)
    if not include_internal:
        q = q.where(ReportUpdate.public.is_(True))
    return list(session.scalars(q.order_by(ReportUpdate.at, ReportUpdate.id)))


def update_view(u: ReportUpdate, language: str = "ko") -> dict:
    return {"id": u.id, "at": u.at.isoformat(), "kind": u.kind, "public": u.public, "actor": u.actor,
            "old": u.old_value, "new": u.new_value, "text": u.text, "status": u.status,
            "status_name": status_name(u.status, language), "media_url": u.media_url}


def contact_of(session: Session, identity: Identity, report_id: int) -> Contact | None:
    """The reporter's contact details: staff of the responsible unit and administrators only; audited."""
    report = get_report(session, report_id)
    _require_work(identity, report)
    row = session.get(ReportContact, report.id)
    audit.record(session, identity, "read_contact", "report", report.id, {"present": row is not None})
    return Contact(row.name, row.email, row.phone) if row else None


# --- searching ------------------------------------------------------------------------------------------


@dataclass
class ReportQuery:
    """Filters for lists, queues, exports and Open311 GET requests. All optional; lists are OR'ed."""

    status: list[str] | None = None
    category: list[str] | None = None
    group: str | None = None
    district: list[str] | None = None
    unit: str | None = None  # a department code
    assignee_id: int | None = None
    reporter_id: int | None = None
    campaign: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north
    near: tuple[float, float, float] | None = None  # lat, lon, radius in metres
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    overdue: bool = False
    ids: list[int] | None = None
    text: str | None = None
    include_duplicates: bool = True
    order: str = "created_desc"  # created_desc | created_asc | updated_desc | due_asc | support_desc
    page: int = 1
    page_size: int = 50
    with_total: bool = False


@dataclass
class ReportPage:
    items: list[Report]
    page: int
    page_size: int
    has_more: bool
    total: int | None = None


ORDERS = {
    "created_desc": (Report.created_at.desc(), Report.id.desc()),
    "created_asc": (Report.created_at.asc(), Report.id.asc()),
    "updated_desc": (Report.updated_at.desc(), Report.id.desc()),
    "due_asc": (Report.due_at.asc(), Report.id.asc()),
    "support_desc": (Report.support_count.desc(), Report.id.desc()),
}


@dataclass(frozen=True)
class Circle:
    """A search area in the core's metric (`geo.haversine_m`): the box that holds it whole, for the indexes,
    and the exact test, written as a bound on the haversine term so that a row costs no asin or sqrt:
    haversine_m(centre, p) <= radius  ⇔  sin²(Δφ/2) + cos φ₀ cos φ sin²(Δλ/2) <= sin²(radius / 2R)."""

    lat: float
    lon: float
    radius: float

    @property
    def cos_lat(self) -> float:
        return math.cos(math.radians(self.lat))

    @property
    def limit(self) -> float:
        return math.sin(min(self.radius / EARTH_RADIUS_M, math.pi) / 2) ** 2

    @property
    def box(self) -> tuple[float, float, float, float]:
        """west, south, east, north: a superset of the circle (exact bounds on the sphere, widened by a
        hair for rounding); the whole width of longitudes when the circle reaches a pole."""
        angle = self.radius / EARTH_RADIUS_M
        dlat = math.degrees(angle) * (1 + 1e-9) + 1e-9
        south, north = self.lat - dlat, self.lat + dlat
        if north >= 90.0 or south <= -90.0 or math.sin(angle) >= self.cos_lat:
            return -180.0, max(south, -90.0), 180.0, min(north, 90.0)
        dlon = math.degrees(math.asin(math.sin(angle) / self.cos_lat)) * (1 + 1e-9) + 1e-9
        return self.lon - dlon, south, self.lon + dlon, north

    def contains(self, lat: float, lon: float) -> bool:
        return haversine_m(self.lat, self.lon, lat, lon) <= self.radius

    def term_at_least(self, dlat_deg: float, dlon_deg: float, cos_lat_min: float) -> float:
        """A lower bound of the haversine term for any point at least dlat_deg and dlon_deg away whose
        latitude's cosine is at least cos_lat_min (a grid cell's nearest corner, in `grid_cells`)."""
        return (math.sin(math.radians(dlat_deg) / 2) ** 2
                + self.cos_lat * cos_lat_min * math.sin(math.radians(dlon_deg) / 2) ** 2)


def _haversine_term(lat_col, lon_col, c: Circle):
    def sin_half(delta):
        return func.sin(func.radians(delta) / 2)

    return (sin_half(lat_col - c.lat) * sin_half(lat_col - c.lat)
            + c.cos_lat * func.cos(func.radians(lat_col)) * sin_half(lon_col - c.lon) * sin_half(lon_col - c.lon))


def _conditions(session: Session, q: ReportQuery) -> list:
    cond = []
    if q.status:
        bad = [s for s in q.status if s not in STATUSES]
        if bad:
            raise InvalidInput(f"unknown status {bad[0]!r}", code="invalid_status")
        cond.append(Report.status.in_(q.status) if len(q.status) > 1 else Report.status == q.status[0])
    if q.category:
        cond.append(Report.category_code.in_(q.category))
    if q.group:
        cond.append(Report.category_id.in_(select(Category.id).where(Category.group_code == q.group)))
    if q.district:
        cond.append(Report.district_code.in_(q.district))
    if q.unit:
        unit = _unit(session, q.unit)
        cond.append(Report.unit_id == (unit.id if unit else -1))
    if q.assignee_id is not None:
        cond.append(Report.assignee_id == q.assignee_id)
    if q.reporter_id is not None:
        cond.append(Report.reporter_id == q.reporter_id)
    if q.campaign:
        cond.append(Report.campaign_id == get_campaign(session, q.campaign).id)
    if q.bbox:
        west, south, east, north = _check_bbox(q.bbox)
        x0, y0, x1, y1 = geo_index(session.info["db"]).extent.bounds
        if not (west <= x0 and south <= y0 and east >= x1 and north >= y1):  # a box around the city filters nothing
            cond += [Report.lat >= south, Report.lat <= north, Report.lon >= west, Report.lon <= east]
    if q.near:
        circle = Circle(*(float(v) for v in q.near))
        west, south, east, north = circle.box
        # The box uses the indexes; the exact distance test keeps paging exact.
        cond += [Report.lat >= south, Report.lat <= north, Report.lon >= west, Report.lon <= east,
                 _haversine_term(Report.lat, Report.lon, circle) <= circle.limit]
    if q.created_after:
        cond.append(Report.created_at >= q.created_after)
    if q.created_before:
        cond.append(Report.created_at <= q.created_before)
    if q.updated_after:
        cond.append(Report.updated_at >= q.updated_after)
    if q.updated_before:
        cond.append(Report.updated_at <= q.updated_before)
    if q.overdue:
        cond += [Report.status.in_(OPEN_STATUSES), Report.due_at < _now()]
    if q.ids is not None:
        cond.append(Report.id.in_([int(i) for i in q.ids]))
    if q.text:
        like = f"%{q.text.strip()[:100]}%"
        cond.append(or_(Report.title.ilike(like), Report.description.ilike(like)))
    if not q.include_duplicates:
        cond.append(Report.status != "duplicate")
    return cond


def search(session: Session, q: ReportQuery) -> ReportPage:
    """Reports matching the query, a page at a time (page numbers from 1; page_size up to 1000)."""
    page = max(int(q.page or 1), 1)
    size = min(max(int(q.page_size or 50), 1), MAX_PAGE_SIZE)
    if q.order not in ORDERS:
        raise InvalidInput(f"unknown order {q.order!r}", code="invalid_order")
    cond = _conditions(session, q)
    # Two steps: the ids from an index alone (status, area and time are all in ix_reports_status_area),
    # then the rows of just this page.
    ids = list(session.scalars(select(Report.id).where(*cond).order_by(*ORDERS[q.order])
                               .offset((page - 1) * size).limit(size + 1)))
    rows = {r.id: r for r in session.scalars(select(Report).where(Report.id.in_(ids[:size])))} if ids else {}
    items = [rows[i] for i in ids[:size]]
    total = session.scalar(select(func.count()).select_from(Report).where(*cond)) if q.with_total else None
    return ReportPage(items, page, size, len(ids) > size, total)


def work_queue(session: Session, identity: Identity, *, status: list[str] | None = None, page: int = 1,
               page_size: int = 50, order: str = "due_asc", unit: str | None = None) -> ReportPage:
    """A unit's queue: its open reports, most urgent first. Staff see their own unit; administrators any."""
    check(identity, "reports.work")
    if not identity.can("reports.manage"):
        if unit and unit != identity.department_code:
            raise PermissionDenied("you can only see your unit's queue", code="other_unit")
        unit = identity.department_code
        if unit is None:
            raise PermissionDenied("you belong to no unit", code="other_unit")
    return search(session, ReportQuery(status=status or sorted(OPEN_STATUSES), unit=unit, order=order, page=page,
                                       page_size=page_size))


def overdue(session: Session, identity: Identity, *, unit: str | None = None, limit: int = 100) -> list[Report]:
    """Open reports past their due date, most overdue first (staff: their unit)."""
    check(identity, "reports.work")
    if not identity.can("reports.manage"):
        unit = identity.department_code
    return search(session, ReportQuery(overdue=True, unit=unit, order="due_asc", page_size=limit)).items


@dataclass
class NearbyReport:
    id: int
    title: str
    status: str
    category: str
    lat: float
    lon: float
    distance_m: float
    support_count: int
    created_at: datetime


def nearby(session: Session, category: str, lat: Any, lon: Any, radius_m: float = NEARBY_M,
           limit: int = 10) -> list[NearbyReport]:
    """Open reports of the same category within `radius_m` of a point, nearest first: shown before a
    citizen files, so they can support one instead of filing a duplicate."""
    from smartcity.core.geo import check_coordinates

    lat_f, lon_f = check_coordinates(lat, lon)
    radius_m = min(max(float(radius_m), 1.0), 1000.0)
    west, south, east, north = Circle(lat_f, lon_f, radius_m).box
    rows = session.scalars(select(Report).where(
        Report.category_code == category, Report.status.in_(OPEN_STATUSES),
        Report.lat.between(south, north), Report.lon.between(west, east)).limit(500))
    found = []
    for r in rows:
        d = haversine_m(lat_f, lon_f, r.lat, r.lon)
        if d <= radius_m:
            found.append(NearbyReport(r.id, r.title, r.status, r.category_code, r.lat, r.lon, round(d, 1),
                                      r.support_count, r.created_at))
    found.sort(key=lambda n: n.distance_m)
    return found[:limit]


# --- supporting --------------------------------------------------------------------------------------------


def supporter_key(identity: Identity, fingerprint: str | None = None) -> str:
    """How a supporter is counted once: a user, a key, or a hashed browser fingerprint."""
    if identity.user_id:
        return f"user:{identity.user_id}"
    if identity.key_id:
        return f"key:{identity.key_id}:{hashlib.sha256((fingerprint or '').encode()).hexdigest()[:24]}"
    if not fingerprint:
        raise InvalidInput("an anonymous supporter needs a fingerprint", code="no_fingerprint")
    return f"anon:{hashlib.sha256(fingerprint.encode()).hexdigest()[:32]}"


def support(session: Session, identity: Identity, report_id: int, *, fingerprint: str | None = None) -> int:
    """Say "me too" on an open report; counted once per supporter. Returns the support count."""
    report = get_report(session, report_id, lock=True)
    if report.status not in OPEN_STATUSES:
        raise InvalidInput("only open reports can be supported", code="report_closed")
    who = supporter_key(identity, fingerprint)
    if session.scalar(select(ReportSupport.id).where(ReportSupport.report_id == report.id,
                                                     ReportSupport.supporter == who)) is not None:
        return report.support_count
    session.add(ReportSupport(report_id=report.id, supporter=who))
    report.support_count += 1
    report.updated_at = _now()
    _timeline(session, report, identity, "support", None, None, "", public=True, actor_label=_citizen(identity))
    session.flush()
    return report.support_count


# --- the workflow ------------------------------------------------------------------------------------------


def _timeline(session: Session, report: Report, identity: Identity, kind: str, old: str | None, new: str | None,
              text: str, *, public: bool, actor_label: str | None = None, external_id: str | None = None,
              at: datetime | None = None) -> ReportUpdate:
    entry = ReportUpdate(report_id=report.id, at=at or _now(), actor_id=identity.user_id,
                         actor=actor_label or identity.label, kind=kind, public=public,
                         old_value=old[:200] if old else None, new_value=new[:200] if new else None, text=text,
                         status=report.status, external_id=external_id)
    session.add(entry)
    return entry


def _changed(session: Session, report: Report, identity: Identity, entry: ReportUpdate, detail: dict) -> None:
    """Book-keeping shared by every change: updated time, audit entry, public event."""
    report.updated_at = entry.at
    audit.record(session, identity, entry.kind, "report", report.id, detail)
    if entry.public:
        publish(session, "report.updated", {**event_data(report), "kind": entry.kind})


def _template_text(session: Session, template_id: int | None, language: str) -> str:
    if template_id is None:
        return ""
    tpl = session.get(ResponseTemplate, template_id)
    if tpl is None:
        raise NotFound("no such response template")
    return tpl.text_ko if language == "ko" else tpl.text_en


def _set_status(report: Report, status: str, now: datetime) -> None:
    report.status = status
    if status == "acknowledged" and report.acknowledged_at is None:
        report.acknowledged_at = now
    if status == "fixed":
        report.fixed_at = now
    if status in CLOSED_STATUSES and status != "fixed":
        report.closed_at = now
    if status in OPEN_STATUSES:
        report.fixed_at = None if status == "open" else report.fixed_at
        report.closed_at = None


def transition(session: Session, identity: Identity, report_id: int, status: str, *, text: str = "",
               template_id: int | None = None, parent_id: int | None = None) -> Report:
    """Move a report to a new status (staff of its unit). `text` (or a response template) is the public
    answer; the reporter is notified. `duplicate` needs `parent_id` (it merges into that report)."""
    if status == "duplicate":
        if parent_id is None:
            raise InvalidInput("a duplicate needs the report it duplicates", code="parent_required")
        merge(session, identity, parent_id, [report_id], text=text)
        return get_report(session, report_id)
    report = get_report(session, report_id, lock=True)
    _require_work(identity, report)
    if status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}", code="invalid_status")
    if status not in TRANSITIONS[report.status]:
        raise InvalidInput(f"a report cannot go from {report.status} to {status}", code="illegal_transition",
                           details={"from": report.status, "to": status,
                                    "allowed": sorted(TRANSITIONS[report.status])})
    problems: list[dict] = []
    text = _clean_text(text, "text", MAX_UPDATE, problems) or _template_text(session, template_id, report.language)
    _raise_problems(problems, "the update is not valid")
    old = report.status
    now = _now()
    _set_status(report, status, now)
    if status in OPEN_STATUSES and old in CLOSED_STATUSES:
        report.parent_id = None
    entry = _timeline(session, report, identity, "status", old, status, text, public=True, at=now)
    _changed(session, report, identity, entry, {"old": old, "new": status})
    _notify_reporter(session, report, "status", text=text)
    return report


def assign(session: Session, identity: Identity, report_id: int, user_id: int | None) -> Report:
    """Give a report to a person of its unit (or take it back with None). Internal."""
    report = get_report(session, report_id, lock=True)
    _require_work(identity, report)
    old = session.get(User, report.assignee_id).username if report.assignee_id else None
    new = None
    if user_id is not None:
        user = session.get(User, int(user_id))
        if user is None or not user.active or user.department_id != report.unit_id:
            raise InvalidInput("the assignee must be an active member of the report's unit", code="invalid_assignee")
        new = user.username
    report.assignee_id = user_id
    entry = _timeline(session, report, identity, "assign", old, new, "", public=False)
    _changed(session, report, identity, entry, {"old": old, "new": new})
    return report


def add_note(session: Session, identity: Identity, report_id: int, text: str, *, public: bool = False) -> ReportUpdate:
    """Staff write an internal note (public=False) or a public update (public=True, the reporter is told)."""
    report = get_report(session, report_id, lock=True)
    _require_work(identity, report)
    problems: list[dict] = []
    text = _clean_text(text, "text", MAX_UPDATE, problems, required=True)
    _raise_problems(problems, "the note is not valid")
    entry = _timeline(session, report, identity, "update" if public else "note", None, None, text, public=public)
    _changed(session, report, identity, entry, {"public": public})
    if public:
        _notify_reporter(session, report, "update", text=text)
    return entry


def add_update(session: Session, identity: Identity, report_id: int, text: str, *, status: str | None = None,
               external_id: str | None = None, author: str | None = None) -> ReportUpdate:
    """A public update from a partner system (mySociety servicerequestupdates) or a citizen's comment.

    Partners (API keys) and staff may change the status: "closed" (Open311) closes an open report (as
    fixed), "open" reopens a closed one; the internal statuses are accepted as in `partner_update`; a
    status the workflow cannot reach is refused (InvalidInput "illegal_transition"). A repeated
    external_id returns the earlier entry (idempotent)."""
    wanted = status.lower() if status else None
    loose = wanted in ("open", "closed")
    return _update(session, identity, report_id, text, wanted, loose=loose, external_id=external_id, author=author,
                   strict=True).entry


@dataclass
class UpdateOutcome:
    """What became of an update: its timeline entry, the report's status after it and, when the asked
    status was not applied, why (the text is kept all the same)."""

    entry: ReportUpdate
    status: str
    refused: str | None = None
    repeated: bool = False
    notices: list[dict] = field(default_factory=list)  # optional fields dropped: {field, problem}


def partner_update(session: Session, identity: Identity, report_id: int, text: str, *, status: str | None,
                   loose: bool = False, external_id: str | None = None, media_url: str | None = None,
                   author: str | None = None) -> UpdateOutcome:
    """A partner system's update (mySociety servicerequestupdates): its text is never lost.

    `status` is one of STATUSES, or with `loose` Open311's two words ("open": any open status, reopening
    a closed report; "closed": fixed if the report was open, else left as it is). A closed report (not a
    duplicate) reaches an open-side status through a reopen, as the workflow allows in two steps.
    "closed" as such means closed without a fix. A status the workflow cannot reach (or "duplicate",
    which needs the parent) leaves the status as it is: the text is kept as a public update and
    `refused` says why; a malformed media_url is dropped and noted. A repeated external_id returns the
    earlier entry (idempotent)."""
    return _update(session, identity, report_id, text, status, loose=loose, external_id=external_id,
                   media_url=media_url, author=author, strict=False)


def status_route(current: str, target: str) -> list[str] | None:
    """The steps from `current` to `target` the workflow allows: [] (already there), [target], or a reopen
    first (["open", target]) for a closed report other than a duplicate; None when there is no way."""
    if target == current:
        return []
    if target in TRANSITIONS[current]:
        return [target]
    if current in CLOSED_STATUSES and current != "duplicate" and "open" in TRANSITIONS[current] \
            and target in TRANSITIONS["open"]:
        return ["open", target]
    return None


def _update(session: Session, identity: Identity, report_id: int, text: str, wanted: str | None, *, loose: bool,
            strict: bool, external_id: str | None = None, media_url: str | None = None,
            author: str | None = None) -> UpdateOutcome:
    report = get_report(session, report_id, lock=True)
    partner = identity.via == "key" or can_work(identity, report)
    if wanted and not partner:
        raise PermissionDenied("only the responsible unit or a partner system may change the status")
    if not identity.authenticated:
        raise NotAuthenticated("sign in or present an API key to add an update")
    external_id = str(external_id)[:100] if external_id else None
    if external_id:
        seen = session.scalar(select(ReportUpdate).where(ReportUpdate.report_id == report.id,
                                                         ReportUpdate.external_id == external_id))
        if seen is not None:
            return UpdateOutcome(seen, report.status, repeated=True)
    problems: list[dict] = []
    notices: list[dict] | None = None if strict else []
    text = _clean_text(text, "description", MAX_UPDATE, problems, required=True)
    media = _check_media_urls([media_url] if media_url else [], problems, notices)
    _raise_problems(problems, "the update is not valid")
    old = report.status
    now = _now()
    target, refused, route = old, None, []
    if wanted:
        if wanted not in STATUSES:
            raise InvalidInput(f"unknown status {wanted!r}", code="invalid_status")
        target = wanted
        if loose and wanted == "closed":
            target = "fixed" if old in OPEN_STATUSES else old
        elif loose and wanted == "open" and old in OPEN_STATUSES:
            target = old
        route = status_route(old, target) if target != "duplicate" else None
        if route is None:
            why = "a duplicate needs the report it duplicates" if target == "duplicate" else \
                f"a report cannot go from {old} to {target}"
            if strict:
                raise InvalidInput(why, code="illegal_transition",
                                   details={"from": old, "to": target, "allowed": sorted(TRANSITIONS[old])})
            refused, route = f"{why}; the status stays {old}", []
    for step in route:
        _set_status(report, step, now)
    if route and report.status in OPEN_STATUSES and old in CLOSED_STATUSES:
        report.parent_id = None
    if route and wanted == "closed" and not loose:
        report.fixed_at = None  # "closed" as such: closed without a fix (mySociety's NO_FURTHER_ACTION)
    changed = report.status != old
    entry = _timeline(session, report, identity, "status" if changed else "update", old if changed else None,
                      report.status if changed else None, text, public=True,
                      actor_label=author[:200] if author else None, external_id=external_id, at=now)
    entry.media_url = media[0] if media else None
    _changed(session, report, identity, entry, {"old": old, "new": report.status, "external_id": external_id,
                                                "route": route, "refused": refused})
    if changed or partner:
        _notify_reporter(session, report, "status" if changed else "update", text=text)
    return UpdateOutcome(entry, report.status, refused, notices=notices or [])


def updates_since(session: Session, *, start: datetime | None = None, end: datetime | None = None,
                  report_id: int | None = None, limit: int = 1000) -> list[ReportUpdate]:
    """Public timeline entries (status changes and updates) in a time window, oldest first: the feed of
    mySociety's GET servicerequestupdates."""
    q = select(ReportUpdate).where(ReportUpdate.public.is_(True), ReportUpdate.kind.in_(("status", "update",
                                                                                          "reassign", "feedback")))
    if start:
        q = q.where(ReportUpdate.at >= start)
    if end:
        q = q.where(ReportUpdate.at <= end)
    if report_id is not None:
        q = q.where(ReportUpdate.report_id == int(report_id))
    return list(session.scalars(q.order_by(ReportUpdate.at, ReportUpdate.id).limit(min(limit, 10_000))))


def reassign(session: Session, identity: Identity, report_id: int, department_code: str, *, reason: str = "") -> Report:
    """Send a report to another unit (staff of the current unit, or administrators). The timeline keeps
    the history; the assignee is cleared. Publicly visible: the citizen sees who has it now."""
    report = get_report(session, report_id, lock=True)
    _require_work(identity, report)
    unit = _unit(session, department_code)
    if unit is None or unit.kind != "department":
        raise InvalidInput(f"unknown department {department_code!r}", code="unknown_department")
    if unit.id == report.unit_id:
        raise InvalidInput("the report is already with that unit", code="same_unit")
    problems: list[dict] = []
    reason = _clean_text(reason, "reason", MAX_UPDATE, problems)
    _raise_problems(problems, "the reassignment is not valid")
    old = report.unit.code
    report.unit_id, report.assignee_id = unit.id, None
    session.flush()
    session.refresh(report, ["unit"])
    entry = _timeline(session, report, identity, "reassign", old, unit.code, reason, public=True)
    _changed(session, report, identity, entry, {"old": old, "new": unit.code})
    return report


def merge(session: Session, identity: Identity, parent_id: int, child_ids: Iterable[int], *, text: str = "") -> Report:
    """Mark reports as duplicates of a parent: each child points to it and closes as `duplicate`; their
    supports (and their reporters, as supporters) move to the parent. Staff of the units involved."""
    parent = get_report(session, parent_id, lock=True)
    _require_work(identity, parent)
    if parent.status == "duplicate":
        raise InvalidInput("the parent is itself a duplicate", code="invalid_parent")
    children = []
    for cid in child_ids:
        child = get_report(session, cid, lock=True)
        if child.id == parent.id:
            raise InvalidInput("a report cannot duplicate itself", code="invalid_parent")
        _require_work(identity, child)
        if child.status == "duplicate":
            raise InvalidInput(f"report {child.id} is already a duplicate", code="illegal_transition")
        children.append(child)
    problems: list[dict] = []
    text = _clean_text(text, "text", MAX_UPDATE, problems)
    _raise_problems(problems, "the merge is not valid")
    now = _now()
    have = set(session.scalars(select(ReportSupport.supporter).where(ReportSupport.report_id == parent.id)))
    parent_reporter = f"user:{parent.reporter_id}" if parent.reporter_id else None
    for child in children:
        moved = 0
        for sup in session.scalars(select(ReportSupport).where(ReportSupport.report_id == child.id)):
            if sup.supporter in have or sup.supporter == parent_reporter:
                session.delete(sup)
            else:
                sup.report_id = parent.id
                have.add(sup.supporter)
                moved += 1
        reporter = f"user:{child.reporter_id}" if child.reporter_id else f"report:{child.id}"
        if reporter not in have and reporter != parent_reporter:
            session.add(ReportSupport(report_id=parent.id, supporter=reporter))
            have.add(reporter)
            moved += 1
        parent.support_count += moved
        child.support_count = 0
        # Duplicates of the child now duplicate the parent.
        session.execute(update(Report).where(Report.parent_id == child.id).values(parent_id=parent.id))
        old = child.status
        child.parent_id = parent.id
        _set_status(child, "duplicate", now)
        entry = _timeline(session, child, identity, "status", old, "duplicate",
                          text or f"#{parent.id}", public=True, at=now)
        _changed(session, child, identity, entry, {"old": old, "new": "duplicate", "parent": parent.id})
        _notify_reporter(session, child, "duplicate", text=text, parent=parent)
    entry = _timeline(session, parent, identity, "merge", None, ",".join(str(c.id) for c in children), "",
                      public=False, at=now)
    _changed(session, parent, identity, entry, {"children": [c.id for c in children]})
    session.flush()
    return parent


# --- the reporter's feedback --------------------------------------------------------------------------------


def is_reporter(session: Session, identity: Identity, report: Report, token: str | None) -> bool:
    if identity.user_id and identity.user_id == report.reporter_id:
        return True
    return bool(token) and hmac.compare_digest(str(token), feedback_token(report, settings_of(session)))


def feedback(session: Session, identity: Identity, report_id: int, *, fixed: bool, rating: int | None = None,
             comment: str = "", token: str | None = None) -> Report:
    """After a fix the reporter (signed in, or with the secret link) confirms it (→ closed) or says it is
    not fixed (→ reopened, back to the unit), and may rate the work 1–5."""
    report = get_report(session, report_id, lock=True)
    if not is_reporter(session, identity, report, token):
        raise PermissionDenied("only the reporter can confirm or reopen this report", code="not_reporter")
    if report.status != "fixed":
        raise InvalidInput("the report is not marked fixed", code="not_fixed")
    problems: list[dict] = []
    comment = _clean_text(comment, "comment", MAX_UPDATE, problems)
    if rating is not None and (not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5):
        problems.append({"field": "rating", "code": "invalid_rating", "problem": "must be a whole number 1 to 5"})
    _raise_problems(problems, "the feedback is not valid")
    old, now = report.status, _now()
    if rating is not None:
        report.rating = rating
    _set_status(report, "closed" if fixed else "open", now)
    text = comment
    if rating is not None:
        text = f"★{rating} {comment}".strip()
    entry = _timeline(session, report, identity, "feedback", old, report.status, text, public=True,
                      actor_label="reporter", at=now)
    _changed(session, report, identity, entry, {"old": old, "new": report.status, "rating": rating})
    return report


# --- response templates -----------------------------------------------------------------------------------


@dataclass
class TemplateIn:
    title: str
    text_ko: str
    text_en: str
    status: str | None = None
    department: str | None = None  # unit code; None: every unit
    category: str | None = None


def list_templates(session: Session, identity: Identity, *, report_id: int | None = None,
                   status: str | None = None) -> list[ResponseTemplate]:
    """Templates staff may use: city-wide ones and their unit's; for a report, those that suit its unit and
    category."""
    check(identity, "reports.work")
    _ensure_seeded(session)
    q = select(ResponseTemplate)
    unit_id, cat = identity.department_id, None
    if report_id is not None:
        report = get_report(session, report_id)
        _require_work(identity, report)
        unit_id, cat = report.unit_id, report.category_code
    if unit_id is not None or not identity.can("reports.manage"):
        q = q.where(or_(ResponseTemplate.department_id.is_(None), ResponseTemplate.department_id == unit_id))
    if cat:
        q = q.where(or_(ResponseTemplate.category_code.is_(None), ResponseTemplate.category_code == cat))
    if status:
        q = q.where(or_(ResponseTemplate.status.is_(None), ResponseTemplate.status == status))
    return list(session.scalars(q.order_by(ResponseTemplate.title, ResponseTemplate.id)))


def save_template(session: Session, identity: Identity, data: TemplateIn, template_id: int | None = None
                  ) -> ResponseTemplate:
    """Create or change a template: administrators any; staff their own unit's."""
    check(identity, "reports.work")
    problems: list[dict] = []
    title = _clean_text(data.title, "title", 200, problems, required=True)
    text_ko = _clean_text(data.text_ko, "text_ko", MAX_UPDATE, problems, required=True)
    text_en = _clean_text(data.text_en, "text_en", MAX_UPDATE, problems, required=True)
    if data.status and data.status not in STATUSES:
        problems.append({"field": "status", "code": "invalid_status", "problem": "unknown status"})
    _raise_problems(problems, "the template is not valid")
    unit = None
    if data.department:
        unit = _unit(session, data.department)
        if unit is None:
            raise InvalidInput(f"unknown department {data.department!r}", code="unknown_department")
    if not identity.can("reports.manage") and (unit is None or unit.id != identity.department_id):
        raise PermissionDenied("staff may only keep templates of their own unit", code="other_unit")
    if data.category:
        get_category(session, data.category)
    tpl = session.get(ResponseTemplate, template_id) if template_id else ResponseTemplate()
    if tpl is None:
        raise NotFound("no such response template")
    if template_id and not identity.can("reports.manage") and tpl.department_id != identity.department_id:
        raise PermissionDenied("staff may only keep templates of their own unit", code="other_unit")
    tpl.title, tpl.text_ko, tpl.text_en, tpl.status = title, text_ko, text_en, data.status
    tpl.department_id, tpl.category_code = unit.id if unit else None, data.category
    session.add(tpl)
    session.flush()
    audit.record(session, identity, "update" if template_id else "create", "report_template", tpl.id)
    return tpl


def delete_template(session: Session, identity: Identity, template_id: int) -> None:
    check(identity, "reports.work")
    tpl = session.get(ResponseTemplate, template_id)
    if tpl is None:
        raise NotFound("no such response template")
    if not identity.can("reports.manage") and tpl.department_id != identity.department_id:
        raise PermissionDenied("staff may only keep templates of their own unit", code="other_unit")
    audit.record(session, identity, "delete", "report_template", tpl.id)
    session.delete(tpl)


def template_view(t: ResponseTemplate, language: str = "ko") -> dict:
    return {"id": t.id, "title": t.title, "text": t.text_ko if language == "ko" else t.text_en, "text_ko": t.text_ko,
            "text_en": t.text_en, "status": t.status, "department_id": t.department_id, "category": t.category_code}


# --- notifications and subscriptions -----------------------------------------------------------------------

MESSAGES = {
    "received": ("[{city}] 신고 #{id}가 접수되었습니다", "[{city}] Report #{id} received",
                 "'{title}' 신고가 접수되어 {unit}(으)로 전달되었습니다. 처리 예정일: {due}.\n{url}",
                 "Your report '{title}' was received and sent to {unit}. Expected by {due}.\n{url}"),
    "status": ("[{city}] 신고 #{id}: {status}", "[{city}] Report #{id}: {status}",
               "'{title}' 신고의 처리 상태가 '{status}'(으)로 바뀌었습니다.\n{text}\n{url}",
               "The status of your report '{title}' is now '{status}'.\n{text}\n{url}"),
    "update": ("[{city}] 신고 #{id}에 새 소식이 있습니다", "[{city}] News on report #{id}",
               "'{title}' 신고에 대한 답변입니다.\n{text}\n{url}",
               "An update on your report '{title}':\n{text}\n{url}"),
    "duplicate": ("[{city}] 신고 #{id}: 중복", "[{city}] Report #{id}: duplicate",
                  "'{title}' 신고는 이미 접수된 신고 #{parent}와 같은 문제로 함께 처리됩니다.\n{text}\n{url}",
                  "Your report '{title}' is the same problem as report #{parent} and is handled with it."
                  "\n{text}\n{url}"),
    "fixed": ("[{city}] 신고 #{id}: 처리 완료", "[{city}] Report #{id}: fixed",
              "'{title}' 신고가 처리되었습니다.\n{text}\n처리 결과를 확인하고 평가해 주세요: {feedback_url}",
              "Your report '{title}' has been fixed.\n{text}\nPlease confirm and rate the work: {feedback_url}"),
    "new_in_area": ("[{city}] 새 신고: {title}", "[{city}] New report: {title}",
                    "구독하신 지역에 새 신고가 올라왔습니다: {category} — {title}\n{url}\n구독 해지: {unsubscribe_url}",
                    "A new report in your area: {category} — {title}\n{url}\nUnsubscribe: {unsubscribe_url}"),
}


def _message(kind: str, language: str, **values) -> tuple[str, str]:
    subj_ko, subj_en, body_ko, body_en = MESSAGES[kind]
    subj, body = (subj_ko, body_ko) if language == "ko" else (subj_en, body_en)
    return subj.format(**values), re.sub(r"\n{2,}", "\n", body.format(**values))


def _base_url(session: Session) -> str:
    return settings_of(session).reports_public_url.rstrip("/")


def _notify_reporter(session: Session, report: Report, kind: str, *, text: str = "", token: str | None = None,
                     parent: Report | None = None) -> int:
    """Queue a message to the reporter (email if given, sms if a phone), in the report's language."""
    if kind == "status" and report.status == "fixed":
        kind = "fixed"
    contact = session.get(ReportContact, report.id)
    email = contact.email if contact else None
    phone = contact.phone if contact else None
    if not (email or phone) and report.reporter_id:
        user = session.get(User, report.reporter_id)
        email, phone = (user.email, user.phone) if user else (None, None)
    if not (email or phone):
        return 0
    settings = settings_of(session)
    lang = report.language
    base = _base_url(session)
    token = token or feedback_token(report, settings)
    profile_city = "서울" if lang == "ko" else "Seoul"
    try:
        from smartcity.core.city import load_profile

        profile_city = load_profile(settings.city).name(lang)
    except Exception:  # noqa: BLE001 - a name in a message is not worth failing a change over
        pass
    subject, body = _message(
        kind, lang, city=profile_city, id=report.id, title=report.title, unit=_loc(report.unit, "name", lang),
        due=report.due_at.astimezone(UTC).strftime("%Y-%m-%d"), status=status_name(report.status, lang),
        text=text, url=f"{base}/reports/{report.id}", parent=parent.id if parent else "",
        feedback_url=f"{base}/reports/{report.id}?token={token}",
    )
    ref = f"report:{report.id}"
    sent = 0
    if email:
        notify.queue(session, "email", email, body, subject=subject, topic=f"report.{kind}", ref=ref,
                     user_id=report.reporter_id)
        sent += 1
    if phone:
        notify.queue(session, "sms", phone, body, subject=subject, topic=f"report.{kind}", ref=ref,
                     user_id=report.reporter_id)
        sent += 1
    return sent


def subscribe(session: Session, email: str, *, district: str | None = None,
              bbox: tuple[float, float, float, float] | None = None, language: str = "ko",
              user_id: int | None = None) -> Subscription:
    """Subscribe an email address to new reports in a district or a box (west, south, east, north)."""
    email = (email or "").strip()
    if not EMAIL.match(email):
        raise InvalidInput("that is not an email address", code="invalid_email")
    if (district is None) == (bbox is None):
        raise InvalidInput("give either a district or a box", code="invalid_area")
    sub = Subscription(email=email, language=language if language in ("ko", "en") else "ko",
                       token=secrets.token_urlsafe(32), user_id=user_id)
    if district is not None:
        if district not in {a.code for a in geo_index(session.info["db"]).districts}:
            raise InvalidInput(f"unknown district {district!r}", code="unknown_district")
        sub.district_code = district
    else:
        sub.west, sub.south, sub.east, sub.north = _check_bbox(bbox)
    session.add(sub)
    session.flush()
    audit.record(session, "citizen" if user_id is None else f"user:{user_id}", "subscribe", "report_subscription",
                 sub.id)
    return sub


def _check_bbox(bbox: Any) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise InvalidInput("a box is four numbers: west, south, east, north", code="invalid_bbox") from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InvalidInput("a box is four numbers: west, south, east, north", code="invalid_bbox")
    return west, south, east, north


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """'west,south,east,north' → a checked tuple."""
    return _check_bbox((text or "").split(","))


def unsubscribe(session: Session, token: str) -> None:
    sub = session.scalar(select(Subscription).where(Subscription.token == str(token)))
    if sub is None:
        raise NotFound("no such subscription")
    session.delete(sub)


def _notify_subscribers(session: Session, report: Report) -> int:
    subs = session.scalars(select(Subscription).where(or_(
        Subscription.district_code == report.district_code,
        and_(Subscription.district_code.is_(None), Subscription.west <= report.lon, Subscription.east >= report.lon,
             Subscription.south <= report.lat, Subscription.north >= report.lat))))
    base = _base_url(session)
    n = 0
    for sub in subs:
        subject, body = _message("new_in_area", sub.language, city="", id=report.id, title=report.title,
                                 category=_loc(report.category, "name", sub.language),
                                 url=f"{base}/reports/{report.id}",
                                 unsubscribe_url=f"{base}/api/reports/subscriptions/{sub.token}/delete")
        notify.queue(session, "email", sub.email, body, subject=subject.replace("[] ", ""),
                     topic="report.new_in_area", ref=f"report:{report.id}")
        n += 1
    return n


@dataclass
class FeedEntry:
    id: int
    title: str
    summary: str
    path: str  # /reports/{id}
    updated: datetime
    published: datetime
    lat: float
    lon: float
    category: str
    status: str


def feed_entries(session: Session, *, district: str | None = None,
                 bbox: tuple[float, float, float, float] | None = None, language: str = "ko",
                 limit: int = 50) -> list[FeedEntry]:
    """The newest reports in an area, for an Atom feed."""
    q = ReportQuery(district=[district] if district else None, bbox=_check_bbox(bbox) if bbox else None,
                    page_size=min(limit, 200), include_duplicates=False)
    return [FeedEntry(r.id, r.title, r.description[:500], f"/reports/{r.id}", r.updated_at, r.created_at, r.lat,
                      r.lon, _loc(r.category, "name", language), status_name(r.status, language))
            for r in search(session, q).items]


def atom_feed(entries: list[FeedEntry], *, base_url: str, title: str, self_path: str) -> str:
    """An Atom 1.0 document of the entries (with GeoRSS points)."""
    ns = "http://www.w3.org/2005/Atom"
    ET.register_namespace("", ns)
    ET.register_namespace("georss", "http://www.georss.org/georss")
    base = base_url.rstrip("/")
    feed = ET.Element(f"{{{ns}}}feed")
    ET.SubElement(feed, f"{{{ns}}}title").text = title
    ET.SubElement(feed, f"{{{ns}}}id").text = base + self_path
    ET.SubElement(feed, f"{{{ns}}}link", rel="self", href=base + self_path)
    updated = max((e.updated for e in entries), default=_now())
    ET.SubElement(feed, f"{{{ns}}}updated").text = updated.astimezone(UTC).isoformat()
    for e in entries:
        entry = ET.SubElement(feed, f"{{{ns}}}entry")
        ET.SubElement(entry, f"{{{ns}}}id").text = f"{base}{e.path}"
        ET.SubElement(entry, f"{{{ns}}}title").text = f"{e.category}: {e.title}"
        ET.SubElement(entry, f"{{{ns}}}link", href=f"{base}{e.path}")
        ET.SubElement(entry, f"{{{ns}}}updated").text = e.updated.astimezone(UTC).isoformat()
        ET.SubElement(entry, f"{{{ns}}}published").text = e.published.astimezone(UTC).isoformat()
        ET.SubElement(entry, f"{{{ns}}}summary").text = f"[{e.status}] {e.summary}"
        ET.SubElement(entry, "{http://www.georss.org/georss}point").text = f"{e.lat:.6f} {e.lon:.6f}"
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode")


# --- campaigns ------------------------------------------------------------------------------------------


@dataclass
class CampaignIn:
    slug: str
    title_ko: str
    title_en: str
    starts_at: datetime
    ends_at: datetime
    description_ko: str = ""
    description_en: str = ""
    theme: str = ""
    district: str | None = None


def get_campaign(session: Session, slug: str) -> Campaign:
    camp = session.scalar(select(Campaign).where(Campaign.slug == str(slug)))
    if camp is None:
        raise NotFound(f"no campaign {slug!r}")
    return camp


def list_campaigns(session: Session, *, running_at: datetime | None = None) -> list[Campaign]:
    """Campaigns, newest first; only those running at a time if given."""
    q = select(Campaign).order_by(Campaign.starts_at.desc(), Campaign.id.desc())
    if running_at is not None:
        q = q.where(Campaign.starts_at <= running_at, Campaign.ends_at >= running_at)
    return list(session.scalars(q))


def save_campaign(session: Session, identity: Identity, data: CampaignIn) -> Campaign:
    """Create or update a campaign by slug (reports.manage)."""
    check(identity, "reports.manage")
    problems: list[dict] = []
    if not re.fullmatch(r"[a-z0-9][a-z0-9\-]{1,79}", data.slug or ""):
        problems.append({"field": "slug", "code": "invalid", "problem": "lower-case letters, digits and -"})
    title_ko = _clean_text(data.title_ko, "title_ko", 200, problems, required=True)
    title_en = _clean_text(data.title_en, "title_en", 200, problems, required=True)
    desc_ko = _clean_text(data.description_ko, "description_ko", MAX_DESCRIPTION, problems)
    desc_en = _clean_text(data.description_en, "description_en", MAX_DESCRIPTION, problems)
    if not (isinstance(data.starts_at, datetime) and isinstance(data.ends_at, datetime) and data.starts_at.tzinfo
            and data.ends_at.tzinfo and data.starts_at < data.ends_at):
        problems.append({"field": "ends_at", "code": "invalid_period",
                         "problem": "must be after starts_at (with zones)"})
    _raise_problems(problems, "the campaign is not valid")
    camp = session.scalar(select(Campaign).where(Campaign.slug == data.slug))
    created = camp is None
    if created:
        camp = Campaign(slug=data.slug)
        session.add(camp)
    camp.title_ko, camp.title_en, camp.description_ko, camp.description_en = title_ko, title_en, desc_ko, desc_en
    camp.theme, camp.starts_at, camp.ends_at, camp.district_code = data.theme[:50], data.starts_at, data.ends_at, \
        data.district
    session.flush()
    audit.record(session, identity, "create" if created else "update", "report_campaign", camp.slug)
    return camp


def campaign_view(c: Campaign, language: str = "ko") -> dict:
    now = _now()
    return {"slug": c.slug, "title": _loc(c, "title", language), "description": _loc(c, "description", language),
            "title_ko": c.title_ko, "title_en": c.title_en, "theme": c.theme, "district": c.district_code,
            "starts_at": c.starts_at.isoformat(), "ends_at": c.ends_at.isoformat(),
            "running": c.starts_at <= now <= c.ends_at}


def _campaign_reports(session: Session, slug: str) -> list[Report]:
    camp = get_campaign(session, slug)
    return list(session.scalars(select(Report).where(Report.campaign_id == camp.id).order_by(Report.id)))


def campaign_geojson(session: Session, slug: str, language: str = "ko") -> dict:
    """A campaign's points as a GeoJSON FeatureCollection (public data only)."""
    features = []
    for r in _campaign_reports(session, slug):
        props = public_view(r, language)
        props.pop("lat"), props.pop("lon")
        features.append({"type": "Feature", "id": r.id, "properties": props,
                         "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]}})
    return {"type": "FeatureCollection", "features": features}


CSV_FIELDS = ["id", "status", "category", "category_name", "title", "description", "lat", "lon", "district",
              "neighbourhood", "address_string", "unit", "support_count", "created_at", "updated_at", "due_at",
              "fixed_at", "rating"]


def _csv(rows: Iterable[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_safe(v) for k, v in row.items()})
    return buf.getvalue()


def _csv_safe(value: Any) -> Any:
    # Spreadsheets run cells starting with = + - @ as formulas; citizens' text must not.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def campaign_csv(session: Session, slug: str, language: str = "ko") -> str:
    """A campaign's points as CSV (public data only)."""
    return _csv((public_view(r, language) for r in _campaign_reports(session, slug)), CSV_FIELDS + ["attributes"])


# --- dashboard ------------------------------------------------------------------------------------------


@dataclass
class Dashboard:
    total: int
    by_status: dict[str, int]
    by_category: dict[str, int]
    by_group: dict[str, int]
    by_district: dict[str, int]
    overdue_count: int
    overdue: list[Report]
    median_days_to_fix: float | None
    fixed_count: int
    heat: list[dict]  # [{cell, lat, lon, count}] h3 resolution 8


def dashboard(session: Session, identity: Identity, *, district: str | None = None, unit: str | None = None,
              since: datetime | None = None, until: datetime | None = None, campaign: str | None = None,
              overdue_limit: int = 50) -> Dashboard:
    """Numbers for managers (reports.dashboard). Staff see their own unit's; administrators any scope."""
    check(identity, "reports.dashboard")
    if not identity.can("reports.manage"):
        unit = identity.department_code or "-"
    q = ReportQuery(district=[district] if district else None, unit=unit, created_after=since, created_before=until,
                    campaign=campaign)
    cond = _conditions(session, q)

    def grouped(col) -> dict[str, int]:
        return {k: n for k, n in session.execute(select(col, func.count()).where(*cond).group_by(col))}

    by_status = grouped(Report.status)
    by_category = grouped(Report.category_code)
    by_district = grouped(Report.district_code)
    groups = {c.code: c.group_code for c in session.scalars(select(Category))}
    by_group: Counter[str] = Counter()
    for code, n in by_category.items():
        by_group[groups.get(code, "other")] += n
    overdue_cond = [*cond, Report.status.in_(OPEN_STATUSES), Report.due_at < _now()]
    overdue_count = session.scalar(select(func.count()).select_from(Report).where(*overdue_cond)) or 0
    overdue_rows = list(session.scalars(select(Report).where(*overdue_cond).order_by(Report.due_at)
                                        .limit(overdue_limit)))
    durations = [(f - c).total_seconds() / 86400 for c, f in session.execute(
        select(Report.created_at, Report.fixed_at).where(*cond, Report.fixed_at.is_not(None)))]
    heat: Counter[str] = Counter()
    for cell, n in session.execute(select(Report.h3_cell, func.count()).where(*cond).group_by(Report.h3_cell)):
        heat[h3.cell_to_parent(cell, HEAT_RES)] += n
    heat_points = []
    for cell, n in heat.most_common():
        lat, lon = h3.cell_to_latlng(cell)
        heat_points.append({"cell": cell, "lat": round(lat, 6), "lon": round(lon, 6), "count": n})
    return Dashboard(
        total=sum(by_status.values()), by_status=by_status, by_category=by_category, by_group=dict(by_group),
        by_district=by_district, overdue_count=overdue_count, overdue=overdue_rows,
        median_days_to_fix=round(statistics.median(durations), 3) if durations else None,
        fixed_count=len(durations), heat=heat_points,
    )


def dashboard_view(d: Dashboard, language: str = "ko") -> dict:
    return {"total": d.total, "by_status": d.by_status, "by_category": d.by_category, "by_group": d.by_group,
            "by_district": d.by_district, "overdue_count": d.overdue_count,
            "overdue": [public_view(r, language) for r in d.overdue], "median_days_to_fix": d.median_days_to_fix,
            "fixed_count": d.fixed_count, "heat": d.heat}


def export_csv(session: Session, identity: Identity, q: ReportQuery | None = None, *, include_contacts: bool = False,
               language: str = "ko", limit: int = 100_000) -> str:
    """Reports as CSV for staff (their unit) and administrators; contact columns only when asked and
    permitted (administrators, or staff for their unit). Audited."""
    check(identity, "reports.dashboard")
    q = q or ReportQuery()
    if not identity.can("reports.manage"):
        q.unit = identity.department_code or "-"
    if include_contacts and not (identity.can("reports.manage") or identity.can("reports.work")):
        raise PermissionDenied("you may not export contact details")
    q.page, q.page_size = 1, MAX_PAGE_SIZE
    fields = CSV_FIELDS + (["contact_name", "contact_email", "contact_phone"] if include_contacts else [])
    rows: list[dict] = []
    cond = _conditions(session, q)
    stmt = select(Report).where(*cond).order_by(Report.id).limit(limit)
    reports = list(session.scalars(stmt))
    contacts = {}
    if include_contacts and reports:
        ids = [r.id for r in reports]
        for i in range(0, len(ids), 900):
            for c in session.scalars(select(ReportContact).where(ReportContact.report_id.in_(ids[i:i + 900]))):
                contacts[c.report_id] = c
    for r in reports:
        row = public_view(r, language)
        row["unit"] = r.unit.code
        c = contacts.get(r.id)
        if c:
            row.update(contact_name=c.name, contact_email=c.email, contact_phone=c.phone)
        rows.append(row)
    audit.record(session, identity, "export", "report", None,
                 {"count": len(rows), "include_contacts": include_contacts, "unit": q.unit})
    return _csv(rows, fields)


# --- retention ----------------------------------------------------------------------------------------------


def purge_contacts(session: Session, *, days: int | None = None, now: datetime | None = None) -> int:
    """Delete contact details of reports closed more than `days` ago (retention limit). Returns how many."""
    days = settings_of(session).reports_contact_retention_days if days is None else days
    cutoff = (now or _now()) - timedelta(days=days)
    ids = select(Report.id).where(Report.status.in_(CLOSED_STATUSES),
                                  func.coalesce(Report.closed_at, Report.fixed_at, Report.updated_at) < cutoff)
    result = session.execute(delete(ReportContact).where(ReportContact.report_id.in_(ids)))
    if result.rowcount:
        audit.record(session, "job:retention", "purge_contacts", "report", None, {"count": result.rowcount})
    return result.rowcount or 0


# --- importing another 311 system's history ---------------------------------------------------------------

IMPORT_KEY_SCOPE = "open311:import"  # an Open311 key that may also give requested_datetime
MAX_IMPORT_ROWS = 200_000  # one transaction; split a larger history into files
# Our fields a history file's columns can be mapped to (`smartcity reports import --map column=field,…`).
IMPORT_FIELDS = ("external_id", "category", "lat", "lon", "title", "description", "address", "status",
                 "requested_at", "updated_at")
IMPORT_UPDATE_FIELDS = ("external_id", "at", "status", "text")
# Other systems' status words (Open311's, mySociety's, common CRM ones) in our workflow's.
IMPORT_STATUSES = {
    "new": "open", "submitted": "open", "reopen": "open", "for_triage": "open", "unconfirmed": "open",
    "investigating": "acknowledged", "confirmed": "acknowledged", "action_scheduled": "in_progress",
    "in progress": "in_progress", "resolved": "fixed", "completed": "fixed", "no_further_action": "closed",
    "cancelled": "closed", "not_councils_responsibility": "not_responsible", "internal_referral": "referred",
}


def parse_mapping(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """`column=field,column=field` → {column: field}; every field must be one of `allowed`."""
    mapping: dict[str, str] = {}
    for part in (p for p in text.split(",") if p.strip()):
        column, sep, name = part.partition("=")
        if not sep or not column.strip() or name.strip() not in allowed:
            raise InvalidInput(f"bad mapping {part.strip()!r}: use column=field with a field among "
                               f"{', '.join(allowed)}", code="invalid_mapping")
        mapping[column.strip()] = name.strip()
    return mapping


def read_csv(text: str, mapping: dict[str, str], required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file under our field names (columns not mapped are left out; an unmapped column
    that is already one of our field names is taken as it is)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = reader.fieldnames or []
    names = {c: mapping.get(c, c) for c in columns}
    missing = [f for f in required if f not in names.values()]
    if missing:
        raise InvalidInput(f"the file has no column for {', '.join(missing)} (columns: {', '.join(columns)})",
                           code="invalid_mapping")
    return [{names[c]: (v or "").strip() for c, v in row.items() if c in names and c is not None}
            for row in reader]


@dataclass
class ImportedHistory:
    reports: int
    updates: int
    report_ids: list[int]


def _import_time(value: str, tz) -> datetime:
    text = value.strip().replace(" ", "T", 1) if "T" not in value else value.strip()
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=tz)


def _import_status(value: str) -> str:
    word = value.strip().lower().replace("-", "_")
    if word in STATUSES:
        return word
    status = IMPORT_STATUSES.get(word) or IMPORT_STATUSES.get(word.replace("_", " "))
    if status is None:
        raise ValueError(f"unknown status {value!r}")
    return status


def may_import(identity: Identity) -> bool:
    """Whether the caller may store requests with their original times: administrators (reports.import)
    and partner systems whose Open311 key was issued for importing (scope IMPORT_KEY_SCOPE)."""
    return identity.key_scope == IMPORT_KEY_SCOPE or identity.can("reports.import")


def import_history(session: Session, identity: Identity, rows: list[dict[str, str]],
                   updates: list[dict[str, str]] = (), *, tz, language: str = "ko",
                   source: str = "import") -> ImportedHistory:
    """Store another system's past requests with their own dates, statuses and updates, all or nothing:
    every row is checked first and any problem raises InvalidInput whose details name each row (1 is the
    first row after the header), the field and the problem; then everything is stored in the caller's
    transaction. Reporters and subscribers are not notified (it is history); each report is audited."""
    if not may_import(identity):
        raise PermissionDenied("importing history needs the reports.import permission", code="no_import")
    if not 0 < len(rows) <= MAX_IMPORT_ROWS:
        raise InvalidInput(f"a history file holds 1 to {MAX_IMPORT_ROWS:,} requests", code="invalid_import")
    problems: list[dict] = []
    index = geo_index(session.info["db"])
    categories = {c.code: c for c in session.scalars(select(Category))}
    seen: set[str] = set()
    known = set(session.scalars(select(Report.external_id).where(Report.source == "import",
                                                                 Report.external_id.is_not(None))))
    planned = []
    for n, row in enumerate(rows, start=1):
        def problem(name: str, text: str, n=n) -> None:
            problems.append({"row": n, "field": name, "problem": text})

        ext = row.get("external_id", "")
        if not ext:
            problem("external_id", "is required")
        elif ext in seen:
            problem("external_id", f"{ext!r} appears twice in the file")
        elif ext in known:
            problem("external_id", f"{ext!r} was imported before")
        seen.add(ext)
        category = categories.get(row.get("category", ""))
        if category is None:
            problem("category", f"unknown category {row.get('category', '')!r}")
        try:
            where = index.locate(row.get("lat"), row.get("lon"))
        except InvalidInput as exc:
            problem("lat/lon", exc.message)
            where = None
        times = {}
        for name in ("requested_at", "updated_at"):
            if row.get(name):
                try:
                    times[name] = _import_time(row[name], tz)
                except ValueError:
                    problem(name, f"{row[name]!r} is not an ISO 8601 date and time")
        if "requested_at" not in times and not any(p["row"] == n and p["field"] == "requested_at" for p in problems):
            problem("requested_at", "is required")
        status = "open"
        if row.get("status"):
            try:
                status = _import_status(row["status"])
            except ValueError as exc:
                problem("status", str(exc))
        text_problems: list[dict] = []
        title = _clean_text(row.get("title") or next((ln for ln in row.get("description", "").splitlines()
                                                      if ln.strip()), "") or (category.name_ko if category else "-"),
                            "title", MAX_TITLE, text_problems)
        description = _clean_text(row.get("description", ""), "description", MAX_DESCRIPTION, text_problems)
        address = _clean_text(row.get("address", ""), "address", MAX_ADDRESS, text_problems) or None
        for p in text_problems:
            problem(p["field"], p["problem"])
        planned.append((ext, category, where, times, status, title, description, address))
    by_report: dict[str, list[tuple[datetime, str | None, str]]] = {}
    for n, u in enumerate(updates, start=1):
        ext = u.get("external_id", "")
        try:
            at = _import_time(u.get("at", ""), tz)
        except ValueError:
            problems.append({"row": n, "file": "updates", "field": "at", "problem": f"{u.get('at')!r} is not a date"})
            continue
        try:
            st = _import_status(u["status"]) if u.get("status") else None
        except ValueError as exc:
            problems.append({"row": n, "file": "updates", "field": "status", "problem": str(exc)})
            continue
        if ext not in seen:
            problems.append({"row": n, "file": "updates", "field": "external_id",
                             "problem": f"no request {ext!r} in the file"})
            continue
        by_report.setdefault(ext, []).append((at, st, u.get("text", "")[:MAX_UPDATE]))
    if problems:
        raise InvalidInput(f"nothing was imported: {len(problems)} problem(s) in the file",
                           code="invalid_import", details=problems)

    label = f"import:{identity.label}"
    routes: dict[tuple[str, str], Department] = {}
    ids, update_count = [], 0
    for ext, category, where, times, status, title, description, address in planned:
        requested = times["requested_at"]
        history = sorted(by_report.get(ext, []), key=lambda u: u[0])
        updated = max([times.get("updated_at", requested), requested] + [u[0] for u in history])
        key = (category.code, where.district.code)
        unit = routes.get(key) or routes.setdefault(key, route_for(session, category, where.district.code))
        report = Report(
            category_id=category.id, category_code=category.code, status="open", lat=where.lat, lon=where.lon,
            district_code=where.district.code,
            neighbourhood_code=where.neighbourhood.code if where.neighbourhood else None,
            h3_cell=h3.latlng_to_cell(where.lat, where.lon, H3_RES), grid_cell=grid_cell(where.lat, where.lon),
            title=title, description=description, address_string=address, attributes={}, unit_id=unit.id,
            language=language,
            source=source, external_id=ext[:100], created_at=requested, updated_at=updated,
            due_at=requested + timedelta(days=category.service_days), photo_count=0,
        )
        session.add(report)
        session.flush()
        _timeline(session, report, identity, "created", None, "open", "", public=True, actor_label=label,
                  at=requested)
        for at, st, text in history:
            old = report.status
            if st and st != old:
                _set_status(report, st, at)
            _timeline(session, report, identity, "status" if st and st != old else "update", old,
                      report.status, text, public=True, actor_label=label, at=at)
            update_count += 1
        if report.status != status:  # the row's status is the request's state now
            _set_status(report, status, updated)
        report.updated_at = updated
        audit.record(session, identity, "import", "report", report.id, {"external_id": ext, "source": source})
        ids.append(report.id)
    publish(session, "report.imported", {"count": len(ids)})
    return ImportedHistory(len(ids), update_count, ids)
