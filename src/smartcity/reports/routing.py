"""Routing: which unit receives a category's reports in a district (rules, then the default)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.geo import geo_index
from smartcity.core.models import Department
from smartcity.reports.common import _now, profile_of, reports_settings
from smartcity.reports.models import Category, Route
from smartcity.reports.taxonomy import _ensure_seeded, get_category, list_categories


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


def fallback_unit_code(session: Session) -> str | None:
    """The unit of last resort: SMARTCITY_REPORTS_FALLBACK_UNIT, else the city profile's `fallback_unit`."""
    return reports_settings(session).fallback_unit or profile_of(session).fallback_unit


def route_for(session: Session, category: Category, district_code: str) -> Department:
    """The responsible unit: a rule for (category, district), else for (category, any district), else the
    category's default unit in the district, else the city's fallback unit (the profile's, or the setting)."""
    rules = {
        r.district_code: r
        for r in session.scalars(
            select(Route).where(
                Route.category_code == category.code,
                or_(Route.district_code == district_code, Route.district_code.is_(None)),
            )
        )
    }
    rule = rules.get(district_code) or rules.get(None)
    if rule is not None:
        return rule.department
    unit = _unit(session, default_unit_code(category, district_code))
    if unit is not None:
        return unit
    fallback = fallback_unit_code(session)
    unit = _unit(session, fallback) if fallback else None
    if unit is None:
        raise InvalidInput(
            f"no unit receives {category.code!r} reports in district {district_code!r}: "
            + (
                f"the fallback unit {fallback!r} is not set up (run `smartcity init`)"
                if fallback
                else "the city profile names no fallback_unit (nor SMARTCITY_REPORTS_FALLBACK_UNIT)"
            ),
            code="no_unit",
        )
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
    fallback = units.get(fallback_unit_code(session) or "")
    out = []
    for cat in cats:
        for dc in districts:
            rule = rules.get((cat.code, dc)) or rules.get((cat.code, None))
            unit = rule.department if rule else units.get(default_unit_code(cat, dc)) or fallback
            if unit is None:
                continue
            out.append(RouteView(cat.code, dc, unit.code, unit.name_ko, unit.name_en, rule is not None))
    return out


def set_route(
    session: Session, identity: Identity, category_code: str, district_code: str | None, department_code: str
) -> Route:
    """Add or change a routing rule (reports.manage). district_code None: every district."""
    check(identity, "reports.manage")
    cat = get_category(session, category_code)
    if district_code is not None and district_code not in {a.code for a in geo_index(session.info["db"]).districts}:
        raise InvalidInput(f"unknown district {district_code!r}", code="unknown_district")
    unit = _unit(session, department_code)
    if unit is None or unit.kind != "department":
        raise InvalidInput(f"unknown department {department_code!r}", code="unknown_department")
    rule = session.scalar(
        select(Route).where(
            Route.category_code == cat.code,
            Route.district_code.is_(None) if district_code is None else Route.district_code == district_code,
        )
    )
    old = rule.department.code if rule else None
    if rule is None:
        rule = Route(category_code=cat.code, district_code=district_code)
        session.add(rule)
    rule.department_id, rule.updated_at = unit.id, _now()
    session.flush()
    session.refresh(rule)
    audit.record(
        session,
        identity,
        "update",
        "report_route",
        f"{cat.code}/{district_code or '*'}",
        {"old": old, "new": unit.code},
    )
    return rule


def delete_route(session: Session, identity: Identity, category_code: str, district_code: str | None) -> None:
    """Remove a routing rule; the default applies again (reports.manage)."""
    check(identity, "reports.manage")
    cond = Route.district_code.is_(None) if district_code is None else Route.district_code == district_code
    rule = session.scalar(select(Route).where(Route.category_code == category_code, cond))
    if rule is None:
        raise NotFound("no such routing rule")
    audit.record(
        session,
        identity,
        "delete",
        "report_route",
        f"{category_code}/{district_code or '*'}",
        {"old": rule.department.code},
    )
    session.delete(rule)
