"""Community Mapping's open datasets (declared in reports' `module.datasets`, published by opendata):
public reports without any contact data, and the count of reports per district and day.

A report in a sensitive category — one that points at a private home, a person or their vehicle — is
published with its location rounded to `ROUNDED_DECIMALS` (about 100 m). The taxonomy may mark an item
`"sensitive": true`; the codes below are sensitive whatever the taxonomy says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.reports.models import Category, Report

ROUNDED_DECIMALS = 3
SENSITIVE = frozenset(
    {
        "traffic-illegal-parking",
        "traffic-abandoned-vehicle",
        "housing-illegal-building",
        "housing-vacant-house",
        "health-food-hygiene",
        "health-smoking",
        "environment-noise",
        "environment-construction-noise",
        "environment-burning",
        "economy-illegal-business",
        "economy-price-display",
    }
)


@cache
def sensitive_codes() -> frozenset[str]:
    """The sensitive categories: SENSITIVE and the taxonomy's items marked `"sensitive": true`."""
    taxonomy = json.loads((Path(__file__).parent / "taxonomy.json").read_text(encoding="utf-8"))
    marked = {i["code"] for g in taxonomy["groups"] for i in g.get("items", []) if i.get("sensitive")}
    return SENSITIVE | marked


def _utc(value: datetime | None) -> datetime | None:
    """A time in UTC without its zone: the typed tables keep times as written, and these are UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None


def public_reports(session: Session) -> Iterator[dict[str, Any]]:
    """Every report as the public may see it: no reporter, contact, description or address."""
    return _public_reports(session, None)


def public_reports_by_id(session: Session, ids) -> Iterator[dict[str, Any]]:
    """The reports `ids` as public_reports gives them (the open data refresh after one report's event)."""
    return _public_reports(session, [int(i) for i in ids])


def _public_reports(session: Session, ids: list[int] | None) -> Iterator[dict[str, Any]]:
    sensitive = sensitive_codes()
    query = select(Report, Category.name_ko, Category.name_en).join(Category, Category.id == Report.category_id)
    if ids is not None:
        query = query.where(Report.id.in_(ids))
    for report, name_ko, name_en in session.execute(query.order_by(Report.id)):
        rounded = report.category_code in sensitive
        digits = ROUNDED_DECIMALS if rounded else 6
        yield {
            "id": report.id,
            "category_code": report.category_code,
            "category_ko": name_ko,
            "category_en": name_en,
            "status": report.status,
            "title": report.title,
            "district_code": report.district_code,
            "lat": round(report.lat, digits),
            "lon": round(report.lon, digits),
            "location_rounded": rounded,
            "support_count": report.support_count,
            "created_at": _utc(report.created_at),
            "updated_at": _utc(report.updated_at),
            "fixed_at": _utc(report.fixed_at),
        }


def daily_counts(session: Session) -> Iterator[dict[str, Any]]:
    """Reports filed per district and day (the city's local day)."""
    from smartcity.core.context import context_of

    tz = ZoneInfo(context_of(session.info["db"]).profile.timezone)
    counts: dict[tuple[str, date], int] = {}
    for district, created in session.execute(select(Report.district_code, Report.created_at)):
        day = created.astimezone(tz).date()
        counts[(district, day)] = counts.get((district, day), 0) + 1
    for (district, day), n in sorted(counts.items(), key=lambda item: (item[0][1], item[0][0])):
        yield {"key": f"{day.isoformat()}/{district}", "date": day, "district_code": district, "reports": n}
