"""The dashboard figures of a unit or district, and the purge of old contact details."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import h3
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.reports.common import CLOSED_STATUSES, HEAT_RES, OPEN_STATUSES, _now, reports_settings
from smartcity.reports.models import Category, Report, ReportContact
from smartcity.reports.queries import ReportQuery, _conditions
from smartcity.reports.views import public_view


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


def dashboard(
    session: Session,
    identity: Identity,
    *,
    district: str | None = None,
    unit: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    campaign: str | None = None,
    overdue_limit: int = 50,
) -> Dashboard:
    """Numbers for managers (reports.dashboard). Staff see their own unit's; administrators any scope."""
    check(identity, "reports.dashboard")
    if not identity.can("reports.manage"):
        unit = identity.department_code or "-"
    q = ReportQuery(
        district=[district] if district else None,
        unit=unit,
        created_after=since,
        created_before=until,
        campaign=campaign,
    )
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
    overdue_rows = list(
        session.scalars(select(Report).where(*overdue_cond).order_by(Report.due_at).limit(overdue_limit))
    )
    durations = [
        (f - c).total_seconds() / 86400
        for c, f in session.execute(
            select(Report.created_at, Report.fixed_at).where(*cond, Report.fixed_at.is_not(None))
        )
    ]
    heat: Counter[str] = Counter()
    for cell, n in session.execute(select(Report.h3_cell, func.count()).where(*cond).group_by(Report.h3_cell)):
        heat[h3.cell_to_parent(cell, HEAT_RES)] += n
    heat_points = []
    for cell, n in heat.most_common():
        lat, lon = h3.cell_to_latlng(cell)
        heat_points.append({"cell": cell, "lat": round(lat, 6), "lon": round(lon, 6), "count": n})
    return Dashboard(
        total=sum(by_status.values()),
        by_status=by_status,
        by_category=by_category,
        by_group=dict(by_group),
        by_district=by_district,
        overdue_count=overdue_count,
        overdue=overdue_rows,
        median_days_to_fix=round(statistics.median(durations), 3) if durations else None,
        fixed_count=len(durations),
        heat=heat_points,
    )


def dashboard_view(d: Dashboard, language: str) -> dict:
    return {
        "total": d.total,
        "by_status": d.by_status,
        "by_category": d.by_category,
        "by_group": d.by_group,
        "by_district": d.by_district,
        "overdue_count": d.overdue_count,
        "overdue": [public_view(r, language) for r in d.overdue],
        "median_days_to_fix": d.median_days_to_fix,
        "fixed_count": d.fixed_count,
        "heat": d.heat,
    }


def purge_contacts(session: Session, *, days: int | None = None, now: datetime | None = None) -> int:
    """Delete contact details of reports closed more than `days` ago (retention limit). Returns how many."""
    days = reports_settings(session).contact_retention_days if days is None else days
    cutoff = (now or _now()) - timedelta(days=days)
    ids = select(Report.id).where(
        Report.status.in_(CLOSED_STATUSES), func.coalesce(Report.closed_at, Report.fixed_at, Report.updated_at) < cutoff
    )
    result = session.execute(delete(ReportContact).where(ReportContact.report_id.in_(ids)))
    if result.rowcount:
        audit.record(session, "job:retention", "purge_contacts", "report", None, {"count": result.rowcount})
    return result.rowcount or 0
