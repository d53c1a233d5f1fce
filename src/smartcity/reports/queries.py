"""Report search: one query builder (filters, order, page) for every surface, and nearby reports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from smartcity.core.auth import Identity, check
from smartcity.core.errors import InvalidInput, PermissionDenied
from smartcity.core.geo import EARTH_RADIUS_M, geo_index, haversine_m
from smartcity.reports.campaigns import get_campaign
from smartcity.reports.common import MAX_PAGE_SIZE, NEARBY_M, OPEN_STATUSES, STATUSES, _now, parse_bbox
from smartcity.reports.models import Category, Report
from smartcity.reports.routing import _unit


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
        west, south, east, north = parse_bbox(q.bbox)
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
