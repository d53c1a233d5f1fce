"""Exports: the rows of a campaign and of a report search (read models; core.render makes CSV and GeoJSON)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.errors import PermissionDenied
from smartcity.core.render import Table
from smartcity.reports.campaigns import get_campaign
from smartcity.reports.common import MAX_PAGE_SIZE, profile_of
from smartcity.reports.models import Report, ReportContact
from smartcity.reports.queries import ReportQuery, _conditions
from smartcity.reports.views import ReportPoints, public_view


def _campaign_reports(session: Session, slug: str) -> list[Report]:
    camp = get_campaign(session, slug)
    return list(session.scalars(select(Report).where(Report.campaign_id == camp.id).order_by(Report.id)))


CSV_FIELDS = [
    "id",
    "status",
    "category",
    "category_name",
    "title",
    "description",
    "answers",  # the category's questions and their answers, as people read them (attributes: the codes)
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


def campaign_points(session: Session, slug: str, language: str | None = None) -> ReportPoints:
    """A campaign's reports (public data only), as points: its map, its CSV; in `language` (default: the
    city's)."""
    language = language or profile_of(session).language
    rows = [_row(r, language) for r in _campaign_reports(session, slug)]
    return ReportPoints(slug, rows, CSV_FIELDS + ["attributes"])


def _row(report: Report, language: str) -> dict:
    """A report's public view as an export's row: its answers in one cell ("크기: 큼; 깊이 (cm): 12")."""
    row = public_view(report, language)
    row["answers"] = "; ".join(f"{a['label']}: {a['text']}" for a in row["attribute_items"])
    return row


def export_table(
    session: Session,
    identity: Identity,
    q: ReportQuery | None = None,
    *,
    include_contacts: bool = False,
    language: str | None = None,
    limit: int = 100_000,
) -> Table:
    """Reports as rows for staff (their unit) and administrators, in `language` (default: the city's);
    contact columns only when asked and permitted (administrators, or staff for their unit). Audited."""
    check(identity, "reports.dashboard")
    language = language or profile_of(session).language
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
        row = _row(r, language)
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
    return Table("reports", rows, fields)
