"""Read models of one report: the public view, the detail view, its timeline, photos and contact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.errors import NotFound, PermissionDenied
from smartcity.core.i18n import N_, localized
from smartcity.core.models import User
from smartcity.core.render import Points
from smartcity.reports.common import OPEN_STATUSES, _now, open311_status, settings_of, status_name, uploads_root
from smartcity.reports.models import Report, ReportContact, ReportPhoto, ReportUpdate
from smartcity.reports.taxonomy import attribute_items


class ReportPoints(Points):
    """Reports' public views as points (a map's pins, a campaign's download): rendered by reports.renderers
    with each pin's colour and page."""


@dataclass
class Contact:
    """A reporter's contact details (sensitive)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None


def event_data(report: Report) -> dict:
    """What events say about a report: public data only."""
    return {
        "id": report.id,
        "status": report.status,
        "category": report.category_code,
        "lat": report.lat,
        "lon": report.lon,
        "district": report.district_code,
        "title": report.title,
        "updated_at": report.updated_at.isoformat(),
    }


def get_report(session: Session, report_id: int | str, *, lock: bool = False) -> Report:
    """A report by its number; NotFound otherwise."""
    try:
        rid = int(report_id)
    except (TypeError, ValueError):
        raise NotFound(N_("no report {report_id!r}"), params={"report_id": report_id}) from None
    q = select(Report).where(Report.id == rid)
    if lock:
        q = q.with_for_update(of=Report)
    report = session.scalar(q)
    if report is None:
        raise NotFound(N_("no report {report_id!r}"), params={"report_id": report_id})
    return report


def photos_of(session: Session, report_id: int, stage: str = "before") -> list[ReportPhoto]:
    """A report's photos of one stage: "before" (the reporter's) or "after" (taken when it was fixed)."""
    q = select(ReportPhoto).where(ReportPhoto.report_id == report_id, ReportPhoto.stage == stage)
    return list(session.scalars(q.order_by(ReportPhoto.position, ReportPhoto.id)))


def photo_url(photo: ReportPhoto, thumb: bool = False) -> str:
    return f"/api/reports/photos/{photo.id}{'/thumb' if thumb else ''}.jpg"


def photo_file(session: Session, photo_id: int, thumb: bool = False) -> Path:
    """The file of a photo (public), for serving."""
    photo = session.get(ReportPhoto, photo_id)
    if photo is None:
        raise NotFound(N_("no such photo"))
    path = uploads_root(settings_of(session)) / (photo.thumb_path if thumb else photo.path)
    if not path.exists():
        raise NotFound(N_("the photo file is missing"))
    return path


def public_view(report: Report, language: str) -> dict:
    """A report as anyone may see it: no contact, no internal notes, no reporter identity unless the
    citizen chose to show their name."""
    return {
        "id": report.id,
        "status": report.status,
        "status_name": status_name(report.status, language),
        "open311_status": open311_status(report.status),
        "category": report.category_code,
        "category_name": localized(report.category, "name", language),
        "group": report.category.group_code,
        "title": report.title,
        "description": report.description,
        "address_string": report.address_string,
        "lat": report.lat,
        "lon": report.lon,
        "district": report.district_code,
        "neighbourhood": report.neighbourhood_code,
        "attributes": report.attributes or {},
        "attribute_items": attribute_items(report.category, report.attributes, language),
        "unit": report.unit.code,
        "unit_name": localized(report.unit, "name", language),
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


def pin_view(report: Report, language: str) -> dict:
    """What a map's pin shows of a report (its popup: number, title, status, category; the point): a
    thousand pins stay light; the full public view is the report's own JSON."""
    return {
        "id": report.id,
        "title": report.title,
        "status": report.status,
        "status_name": status_name(report.status, language),
        "category": report.category_code,
        "category_name": localized(report.category, "name", language),
        "lat": report.lat,
        "lon": report.lon,
    }


def can_work(identity: Identity, report: Report) -> bool:
    """May this identity work this report? Administrators (reports.manage) any; staff their unit's."""
    if identity.can("reports.manage"):
        return True
    return (
        identity.can("reports.work") and identity.department_id is not None and identity.department_id == report.unit_id
    )


def _require_work(identity: Identity, report: Report) -> None:
    check(identity, "reports.work")
    if not can_work(identity, report):
        raise PermissionDenied(N_("this report belongs to another unit"), code="other_unit")


def detail_view(session: Session, report: Report, identity: Identity, language: str) -> dict:
    """The public view plus photos and the timeline; staff of the unit also see internal entries, the
    assignee and whether contact details exist (not the details themselves: see `contact_of`)."""
    staff = can_work(identity, report)
    view = public_view(report, language)
    view["photos"], view["after_photos"] = (
        [
            {"id": p.id, "url": photo_url(p), "thumb_url": photo_url(p, True), "width": p.width, "height": p.height}
            for p in photos_of(session, report.id, stage)
        ]
        for stage in ("before", "after")
    )
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


def update_view(u: ReportUpdate, language: str) -> dict:
    return {
        "id": u.id,
        "at": u.at.isoformat(),
        "kind": u.kind,
        "public": u.public,
        "actor": u.actor,
        "old": u.old_value,
        "new": u.new_value,
        "text": u.text,
        "status": u.status,
        "status_name": status_name(u.status, language),
        "media_url": u.media_url,
    }


def contact_of(session: Session, identity: Identity, report_id: int) -> Contact | None:
    """The reporter's contact details: staff of the responsible unit and administrators only; audited."""
    report = get_report(session, report_id)
    _require_work(identity, report)
    row = session.get(ReportContact, report.id)
    audit.record(session, identity, "read_contact", "report", report.id, {"present": row is not None})
    return Contact(row.name, row.email, row.phone) if row else None
