"""Report search: one query builder (filters, order, page) for every surface, and nearby reports."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators

from smartcity.core.auth import Identity, check
from smartcity.core.db import to_store
from smartcity.core.errors import InvalidInput, NotAuthenticated, PermissionDenied
from smartcity.core.geo import EARTH_RADIUS_M, geo_index, haversine_m
from smartcity.reports.campaigns import get_campaign
from smartcity.reports.common import MAX_PAGE_SIZE, NEARBY_M, OPEN_STATUSES, STATUSES, _now, parse_bbox
from smartcity.reports.models import GRID_PER_DEGREE, GRID_ROW, Category, Report, ReportUpdate
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
MAX_CELLS = 400  # more grid cells than this: the area is large, the lat/lon index serves it better


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
        return (
            math.sin(math.radians(dlat_deg) / 2) ** 2
            + self.cos_lat * cos_lat_min * math.sin(math.radians(dlon_deg) / 2) ** 2
        )


def _haversine_term(lat_col, lon_col, c: Circle):
    def sin_half(delta):
        return func.sin(func.radians(delta) / 2)

    return sin_half(lat_col - c.lat) * sin_half(lat_col - c.lat) + c.cos_lat * func.cos(
        func.radians(lat_col)
    ) * sin_half(lon_col - c.lon) * sin_half(lon_col - c.lon)


def grid_cells(west: float, south: float, east: float, north: float, circle: Circle | None = None) -> list[int] | None:
    """The grid cells (models.grid_cell) covering a box, without those wholly outside the circle if one is
    given (a cell goes only when a lower bound of its nearest point's distance is past the radius); None if
    there would be more than MAX_CELLS (a large area reads the lat/lon index instead)."""
    step = 1.0 / GRID_PER_DEGREE
    r0, r1 = int((south + 90.0) * GRID_PER_DEGREE), int((north + 90.0) * GRID_PER_DEGREE)
    c0, c1 = int((west + 180.0) * GRID_PER_DEGREE), int((east + 180.0) * GRID_PER_DEGREE)
    if (r1 - r0 + 1) * (c1 - c0 + 1) > MAX_CELLS:
        return None
    if circle is None:
        return [r * GRID_ROW + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
    clat, clon = circle.lat, circle.lon
    limit = circle.limit * (1 + 1e-9) + 1e-18  # rounding never drops a cell
    out = []
    for r in range(r0, r1 + 1):
        lat0 = r * step - 90.0
        dlat = max(lat0 - clat, 0.0, clat - (lat0 + step))
        cos_min = max(min(math.cos(math.radians(lat0)), math.cos(math.radians(lat0 + step))), 0.0)
        for c in range(c0, c1 + 1):
            lon0 = c * step - 180.0
            dlon = max(lon0 - clon, 0.0, clon - (lon0 + step))
            if circle.term_at_least(dlat, dlon, cos_min) <= limit:
                out.append(r * GRID_ROW + c)
    return out


# --- the query builder ------------------------------------------------------------------------------------
# One place says what each filter of a ReportQuery means (`terms`); two renderings turn the terms into SQL:
# SQLAlchemy expressions for the ORM (`where`: the service, the JSON API, the pages, exports) and plain SQL
# text with positional values (`page_sql`: Open311's GET fast path, which skips SQLAlchemy's per-request
# compile). A new filter is added in `terms`; a new kind of condition in both renderings.


@dataclass(frozen=True)
class Term:
    """One condition on the reports table. `op` is one of "in", "=", "!=", "<", "<=", ">=" (column against
    value), "circle" (lat/lon within a Circle), "text" (title or description contains) and "group" (the
    category is in a group)."""

    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class Lookups:
    """What the terms need from the store besides the query: a unit's id by code, a campaign's id by slug,
    the city's extent (west, south, east, north; a box around it filters nothing; asked for only when a
    query has a box) and the time now."""

    unit_id: Callable[[str], int | None]
    campaign_id: Callable[[str], int]
    extent: Callable[[], tuple[float, float, float, float]] | None
    now: datetime


def _box(west: float, south: float, east: float, north: float) -> list[Term]:
    return [Term("lat", ">=", south), Term("lat", "<=", north), Term("lon", ">=", west), Term("lon", "<=", east)]


def terms(q: ReportQuery, look: Lookups) -> list[Term]:
    """The conditions of a query (checked: an unknown status or a malformed box is InvalidInput)."""
    out: list[Term] = []
    if q.ids is not None:
        out.append(Term("id", "in", [int(i) for i in q.ids]))
    if q.status:
        bad = [s for s in q.status if s not in STATUSES]
        if bad:
            raise InvalidInput(f"unknown status {bad[0]!r}", code="invalid_status")
        out.append(Term("status", "in", list(q.status)))
    if q.category:
        out.append(Term("category_code", "in", list(q.category)))
    if q.group:
        out.append(Term("category_id", "group", q.group))
    if q.district:
        out.append(Term("district_code", "in", list(q.district)))
    if q.unit:
        unit_id = look.unit_id(q.unit)
        out.append(Term("unit_id", "=", unit_id if unit_id is not None else -1))
    if q.assignee_id is not None:
        out.append(Term("assignee_id", "=", q.assignee_id))
    if q.reporter_id is not None:
        out.append(Term("reporter_id", "=", q.reporter_id))
    if q.campaign:
        out.append(Term("campaign_id", "=", look.campaign_id(q.campaign)))
    circle = Circle(*(float(v) for v in q.near)) if q.near else None
    box = parse_bbox(q.bbox) if q.bbox else None
    if box and look.extent:
        x0, y0, x1, y1 = look.extent()
        if box[0] <= x0 and box[1] <= y0 and box[2] >= x1 and box[3] >= y1:  # a box around the city
            box = None
    if q.status and (circle or box):
        # With a status, the grid cells covering the area let ix_reports_status_cell find the rows; the
        # lat/lon terms below keep the answer exact.
        cells = grid_cells(*circle.box, circle) if circle else grid_cells(*box)
        if cells is not None:
            out.append(Term("grid_cell", "in", cells))
    if box:
        out += _box(*box)
    if circle:
        out += [*_box(*circle.box), Term("lat,lon", "circle", circle)]
    for name, column, op in (
        ("created_after", "created_at", ">="),
        ("created_before", "created_at", "<="),
        ("updated_after", "updated_at", ">="),
        ("updated_before", "updated_at", "<="),
    ):
        when = getattr(q, name)
        if when is not None:
            out.append(Term(column, op, when))
    if q.overdue:
        out += [Term("status", "in", sorted(OPEN_STATUSES)), Term("due_at", "<", look.now)]
    if q.text:
        out.append(Term("title,description", "text", f"%{q.text.strip()[:100]}%"))
    if not q.include_duplicates:
        out.append(Term("status", "!=", "duplicate"))
    return out


_COMPARE = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">=": operator.ge}


def where(found: list[Term]) -> list:
    """The terms as SQLAlchemy conditions on the reports table."""
    c = Report.__table__.c
    out = []
    for t in found:
        if t.op == "in":
            out.append(c[t.column].in_(t.value))
        elif t.op == "circle":
            out.append(_haversine_term(c.lat, c.lon, t.value) <= t.value.limit)
        elif t.op == "text":
            out.append(or_(*(c[name].ilike(t.value) for name in t.column.split(","))))
        elif t.op == "group":
            out.append(c[t.column].in_(select(Category.id).where(Category.group_code == t.value)))
        else:
            out.append(_COMPARE[t.op](c[t.column], t.value))
    return out


class SqlText:
    """A statement's text and its positional values, built together (`?` for SQLite, `%s` for psycopg).
    SQLite keeps a timestamp as naive UTC text (core.db.UTCDateTime), PostgreSQL as timestamptz."""

    def __init__(self, sqlite: bool):
        self.sqlite, self.mark, self.values = sqlite, "?" if sqlite else "%s", []

    def one(self, value) -> str:
        if isinstance(value, datetime):
            value = to_store(value, self.sqlite)
        self.values.append(value)
        return self.mark

    def many(self, values) -> str:
        self.values.extend(values)
        return ", ".join([self.mark] * len(values))


def _sql_term(sql: SqlText, t: Term) -> str:
    v = sql.one
    if t.op == "in":
        return f"{t.column} IN ({sql.many(t.value)})" if t.value else "1 = 0"
    if t.op == "circle":
        lat, lon = t.value.lat, t.value.lon
        return (
            f"sin(radians(lat - {v(lat)}) / 2) * sin(radians(lat - {v(lat)}) / 2) + {v(t.value.cos_lat)} * "
            f"cos(radians(lat)) * sin(radians(lon - {v(lon)}) / 2) * sin(radians(lon - {v(lon)}) / 2) "
            f"<= {v(t.value.limit)}"
        )
    if t.op == "text":
        like = "lower({}) LIKE lower({})" if sql.sqlite else "{} ILIKE {}"
        return "(" + " OR ".join(like.format(name, v(t.value)) for name in t.column.split(",")) + ")"
    if t.op == "group":
        return f"{t.column} IN (SELECT id FROM {Category.__tablename__} WHERE group_code = {v(t.value)})"
    return f"{t.column} {t.op} {v(t.value)}"


def page_sql(sql: SqlText, found: list[Term], order: str, limit: int, offset: int) -> str:
    """The ids of a page as plain SQL: the text depends only on which filters are used and how long their
    lists are, so SQLite's statement cache and psycopg's server-side prepare reuse the plan."""
    where_ = " AND ".join(_sql_term(sql, t) for t in found)
    return (
        f"SELECT id FROM {Report.__tablename__}{f' WHERE {where_}' if where_ else ''} "
        f"ORDER BY {ORDER_SQL[order]} LIMIT {sql.one(limit)} OFFSET {sql.one(offset)}"
    )


# Each order of ORDERS as SQL text, written once.
ORDER_SQL = {
    name: ", ".join(f"{c.element.name} {'DESC' if c.modifier is operators.desc_op else 'ASC'}" for c in columns)
    for name, columns in ORDERS.items()
}


def lookups(session: Session) -> Lookups:
    """The store's answers for `terms`, through the session."""

    def unit_id(code: str) -> int | None:
        unit = _unit(session, code)
        return unit.id if unit else None

    return Lookups(
        unit_id,
        lambda slug: get_campaign(session, slug).id,
        lambda: geo_index(session.info["db"]).extent.bounds,
        _now(),
    )


def _conditions(session: Session, q: ReportQuery) -> list:
    return where(terms(q, lookups(session)))


def search(session: Session, q: ReportQuery) -> ReportPage:
    """Reports matching the query, a page at a time (page numbers from 1; page_size up to 1000)."""
    page = max(int(q.page or 1), 1)
    size = min(max(int(q.page_size or 50), 1), MAX_PAGE_SIZE)
    if q.order not in ORDERS:
        raise InvalidInput(f"unknown order {q.order!r}", code="invalid_order")
    cond = _conditions(session, q)
    # Two steps: the ids from an index alone (status, area and time are all in ix_reports_status_area),
    # then the rows of just this page.
    ids = list(
        session.scalars(
            select(Report.id).where(*cond).order_by(*ORDERS[q.order]).offset((page - 1) * size).limit(size + 1)
        )
    )
    rows = {r.id: r for r in session.scalars(select(Report).where(Report.id.in_(ids[:size])))} if ids else {}
    items = [rows[i] for i in ids[:size]]
    total = session.scalar(select(func.count()).select_from(Report).where(*cond)) if q.with_total else None
    return ReportPage(items, page, size, len(ids) > size, total)


def work_queue(
    session: Session,
    identity: Identity,
    *,
    status: list[str] | None = None,
    page: int = 1,
    page_size: int = 50,
    order: str = "due_asc",
    unit: str | None = None,
) -> ReportPage:
    """A unit's queue: its open reports, most urgent first. Staff see their own unit; administrators any."""
    check(identity, "reports.work")
    if not identity.can("reports.manage"):
        if unit and unit != identity.department_code:
            raise PermissionDenied("you can only see your unit's queue", code="other_unit")
        unit = identity.department_code
        if unit is None:
            raise PermissionDenied("you belong to no unit", code="other_unit")
    return search(
        session,
        ReportQuery(status=status or sorted(OPEN_STATUSES), unit=unit, order=order, page=page, page_size=page_size),
    )


@dataclass
class MyReports:
    """A signed-in citizen's own reports ("나의 신고"), most recently changed first, each with its latest
    public timeline entry (what the citizen last heard)."""

    page: ReportPage
    last_update: dict[int, ReportUpdate]


def my_reports(session: Session, identity: Identity, *, page: int = 1, page_size: int = 50) -> MyReports:
    """The reports the signed-in person filed (under their account), a page at a time."""
    if not identity.user_id:
        raise NotAuthenticated("sign in to see your reports")
    found = search(
        session, ReportQuery(reporter_id=identity.user_id, order="updated_desc", page=page, page_size=page_size)
    )
    last: dict[int, ReportUpdate] = {}
    if found.items:
        # A report's entries are few; ordering them newest last lets the last one seen win.
        rows = session.scalars(
            select(ReportUpdate)
            .where(ReportUpdate.report_id.in_([r.id for r in found.items]), ReportUpdate.public.is_(True))
            .order_by(ReportUpdate.at, ReportUpdate.id)
        )
        last = {u.report_id: u for u in rows}
    return MyReports(found, last)


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


def nearby(
    session: Session, category: str, lat: Any, lon: Any, radius_m: float = NEARBY_M, limit: int = 10
) -> list[NearbyReport]:
    """Open reports of the same category within `radius_m` of a point, nearest first: shown before a
    citizen files, so they can support one instead of filing a duplicate."""
    from smartcity.core.geo import check_coordinates

    lat_f, lon_f = check_coordinates(lat, lon)
    radius_m = min(max(float(radius_m), 1.0), 1000.0)
    west, south, east, north = Circle(lat_f, lon_f, radius_m).box
    rows = session.scalars(
        select(Report)
        .where(
            Report.category_code == category,
            Report.status.in_(OPEN_STATUSES),
            Report.lat.between(south, north),
            Report.lon.between(west, east),
        )
        .limit(500)
    )
    found = []
    for r in rows:
        d = haversine_m(lat_f, lon_f, r.lat, r.lon)
        if d <= radius_m:
            found.append(
                NearbyReport(
                    r.id, r.title, r.status, r.category_code, r.lat, r.lon, round(d, 1), r.support_count, r.created_at
                )
            )
    found.sort(key=lambda n: n.distance_m)
    return found[:limit]
