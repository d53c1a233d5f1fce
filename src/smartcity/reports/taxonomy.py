"""The taxonomy: category groups, categories, their attributes and keywords, and the bundled seed."""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.city import CityProfile
from smartcity.core.context import Slot
from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import NP_
from smartcity.core.params import iso_time
from smartcity.reports.campaigns import get_campaign
from smartcity.reports.common import DATATYPES, MAX_DESCRIPTION, _clean_text, _dloc, _loc, _raise_problems
from smartcity.reports.models import Category, CategoryGroup, ResponseTemplate

TAXONOMY_FILE = Path(__file__).parent / "taxonomy.json"


def seed(session: Session, profile: CityProfile | None = None) -> dict[str, int]:
    """Idempotent: store the bundled taxonomy's missing groups and categories, and the default response
    templates. Existing rows (maybe edited by an administrator) are left alone."""
    data = json.loads(TAXONOMY_FILE.read_text(encoding="utf-8"))
    have_groups = set(session.scalars(select(CategoryGroup.code)))
    have_cats = set(session.scalars(select(Category.code)))
    added = {"groups": 0, "categories": 0, "templates": 0}
    for gpos, group in enumerate(data["groups"]):
        if group["code"] not in have_groups:
            session.add(
                CategoryGroup(code=group["code"], name_ko=group["name_ko"], name_en=group["name_en"], position=gpos)
            )
            added["groups"] += 1
        for pos, item in enumerate(group["items"]):
            if item["code"] in have_cats:
                continue
            session.add(
                Category(
                    code=item["code"],
                    group_code=group["code"],
                    name_ko=item["name_ko"],
                    name_en=item["name_en"],
                    description_ko=item.get("description_ko", ""),
                    description_en=item.get("description_en", ""),
                    keywords=item.get("keywords", ""),
                    service_days=int(item.get("days", 7)),
                    unit_kind=item.get("unit", group["unit"]),
                    attributes=item.get("attributes", []),
                    active=True,
                    position=pos,
                )
            )
            added["categories"] += 1
    if session.scalar(select(ResponseTemplate.id).limit(1)) is None:
        for tpl in DEFAULT_TEMPLATES:
            session.add(ResponseTemplate(**tpl))
            added["templates"] += 1
    session.flush()
    db = session.info.get("db")
    if db is not None:
        SEEDED.get(db).set()
    return added


# The bundled templates' titles are catalogue msgids of the context "response template" (shown in the
# reader's language by responses.template_view); a title an administrator writes is shown as written.
DEFAULT_TEMPLATES = [
    dict(
        title=NP_("response template", "Received"),
        status="acknowledged",
        text_ko="신고해 주셔서 감사합니다. 담당 부서에서 내용을 확인했으며 곧 현장을 확인하겠습니다.",
        text_en="Thank you for your report. The responsible department has read it and will inspect the site soon.",
    ),
    dict(
        title=NP_("response template", "Work scheduled"),
        status="in_progress",
        text_ko="현장을 확인했으며 보수 작업을 예정했습니다.",
        text_en="We have inspected the site and scheduled the repair.",
    ),
    dict(
        title=NP_("response template", "Fixed"),
        status="fixed",
        text_ko="요청하신 사항을 처리했습니다. 처리 결과를 확인해 주세요.",
        text_en="The problem has been fixed. Please let us know whether you are satisfied.",
    ),
    dict(
        title=NP_("response template", "Not ours"),
        status="not_responsible",
        text_ko="이 사항은 시·구청 소관이 아니어서 처리할 수 없습니다. 관리 주체에 직접 문의해 주세요.",
        text_en="This is not the city's responsibility; please contact the owner of the site directly.",
    ),
]


# Set once this process has seen the store's taxonomy (or seeded it): later calls skip the look.
SEEDED: Slot[threading.Event] = Slot("reports.seeded", lambda context: threading.Event())


def _ensure_seeded(session: Session) -> None:
    """Seed the taxonomy on first use if nobody did (a database set up by core's seed only)."""
    db = session.info.get("db")
    if db is not None and SEEDED.get(db).is_set():
        return
    if session.scalar(select(Category.id).limit(1)) is None:
        seed(session)
    elif db is not None:
        SEEDED.get(db).set()


def list_groups(session: Session) -> list[CategoryGroup]:
    """The taxonomy's groups (fields), in display order."""
    _ensure_seeded(session)
    return list(session.scalars(select(CategoryGroup).order_by(CategoryGroup.position, CategoryGroup.code)))


def list_categories(
    session: Session, *, campaign: str | None = None, everything: bool = False, include_inactive: bool = False
) -> list[Category]:
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
        raise InvalidInput(
            f"unknown category {code!r}",
            code="unknown_category",
            details=[{"field": "category", "code": "unknown_category", "problem": "no such category"}],
        )
    known[str(code)] = cat
    return cat


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


def attribute_items(category: Category, values: dict[str, Any] | None, language: str) -> list[dict]:
    """A report's attribute values as a person reads them, in the definitions' order: each one's question
    (`label`) and answer (`text`) in `language`, beside the codes (`code`, `value`) the wire formats keep.

    A list value shows its values' names; a key or attribute the category no longer defines shows as stored
    (a definition changed after the report was filed), so nothing a citizen said is hidden."""
    values = values or {}
    defs = sorted(category.attributes or [], key=lambda a: a.get("order", 0))
    known = {d["code"] for d in defs}
    items = []
    for d in [*defs, *({"code": code} for code in values if code not in known)]:
        value = values.get(d["code"])
        if value is None or value == "" or value == []:
            continue
        names = {str(v["key"]): _dloc(v, "name", language) or str(v["key"]) for v in d.get("values", [])}
        shown = value if isinstance(value, list) else [value]
        items.append(
            {
                "code": d["code"],
                "label": _dloc(d, "description", language) or d["code"],
                "value": value,
                "text": ", ".join(names.get(str(v), str(v)) for v in shown),
            }
        )
    return items


# The taxonomy keeps one mixed keyword list per category ("포트홀,파임,pothole,hole"): a keyword's script tells
# its language. Languages written in a script of their own are listed; the rest share the words in none of them.
SCRIPTS = {"ko": re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")}


def keywords_in(keywords: str, language: str) -> list[str]:
    """The keywords of `language` from a category's mixed list: those in its script (Hangul for Korean), or,
    for a language without a script listed in SCRIPTS, those in none of the listed scripts."""
    words = [k.strip() for k in keywords.split(",") if k.strip()]
    own = SCRIPTS.get(language)
    if own is not None:
        return [k for k in words if own.search(k)]
    return [k for k in words if not any(script.search(k) for script in SCRIPTS.values())]


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
        "attributes": [
            attribute_view(a, language) for a in sorted(category.attributes or [], key=lambda a: a.get("order", 0))
        ],
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
        out.append(
            {
                k: v
                for k, v in a.items()
                if k
                in (
                    "code",
                    "datatype",
                    "required",
                    "order",
                    "values",
                    "description",
                    "description_ko",
                    "description_en",
                    "datatype_description",
                    "datatype_description_ko",
                    "datatype_description_en",
                )
            }
        )
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
            problems.append(
                {
                    "field": f"attribute[{code}]",
                    "code": "unknown_attribute",
                    "problem": "this category has no such attribute",
                }
            )
    for code, d in defs.items():
        raw = values.get(code)
        empty = raw is None or raw == "" or raw == []
        if empty:
            if d.get("required"):
                problems.append({"field": f"attribute[{code}]", "code": "missing_attribute", "problem": "is required"})
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
        when = iso_time(str(raw), tz=None)
        if when is None:
            raise ValueError("must be a date and time in ISO 8601 (2024-05-01T09:30:00+09:00)")
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
