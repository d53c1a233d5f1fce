"""Exports: CSV and GeoJSON renderings of campaigns and of report searches."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.errors import PermissionDenied
from smartcity.reports.campaigns import get_campaign
from smartcity.reports.common import MAX_PAGE_SIZE
from smartcity.reports.models import Report, ReportContact
from smartcity.reports.queries import ReportQuery, _conditions
from smartcity.reports.views import public_view


def _campaign_reports(session: Session, slug: str) -> list[Report]:
    camp = get_campaign(session, slug)
    return list(session.scalars(select(Report).where(Report.campaign_id == camp.id).order_by(Report.id)))


def campaign_geojson(session: Session, slug: str, language: str = "ko") -> dict:
    """A campaign's points as a GeoJSON FeatureCollection (public data only)."""
    features = []
    for r in _campaign_reports(session, slug):
        props = public_view(r, language)
        props.pop("lat"), props.pop("lon")
        features.append(
            {
                "type": "Feature",
                "id": r.id,
                "properties": props,
                "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


CSV_FIELDS = [
    "id",
    "status",
    "category",
    "category_name",
    "title",
    "description",
    "lat",
    "lon",
    "district",
    "neighbourhood",
    "address_string",
    "unit",
    "support_count",
    "created_at",
    "updated_at",
    "due_at",
    "fixed_at",
    "rating",
]


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


def export_csv(
    session: Session,
    identity: Identity,
    q: ReportQuery | None = None,
    *,
    include_contacts: bool = False,
    language: str = "ko",
    limit: int = 100_000,
) -> str:
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
            for c in session.scalars(select(ReportContact).where(ReportContact.report_id.in_(ids[i : i + 900]))):
                contacts[c.report_id] = c
    for r in reports:
        row = public_view(r, language)
        row["unit"] = r.unit.code
        c = contacts.get(r.id)
        if c:
            row.update(contact_name=c.name, contact_email=c.email, contact_phone=c.phone)
        rows.append(row)
    audit.record(
        session,
        identity,
        "export",
        "report",
        None,
        {"count": len(rows), "include_contacts": include_contacts, "unit": q.unit},
    )
    return _csv(rows, fields)
