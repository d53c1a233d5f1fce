"""Community Mapping tables: the taxonomy (groups, categories), reports and what hangs off them (contact,
photos, timeline, supports), routing, response templates, area subscriptions and mapping campaigns.

The report row is kept lean (no blobs): contact details live in `report_contacts` (sensitive, read only
through the service, every read audited), photos on disk with a row each in `report_photos`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from smartcity.core.db import Base, UTCDateTime, utcnow
from smartcity.core.models import Department

# A coarse square-degree grid over the earth for area queries: cell = row * GRID_ROW + column, with
# row = floor((lat + 90) * GRID_PER_DEGREE) and column = floor((lon + 180) * GRID_PER_DEGREE). At 200 per
# degree a cell is 0.005° (≈ 556 m north-south, ≈ 440 m east-west in Seoul), so a 1 km circle is covered by
# about 25 cells. Migration reports_0003 computes the same numbers in SQL for existing rows.
GRID_PER_DEGREE = 200
GRID_ROW = 100_000


def grid_cell(lat: float, lon: float) -> int:
    """The grid cell of a point (an integer; see GRID_PER_DEGREE)."""
    return int((lat + 90.0) * GRID_PER_DEGREE) * GRID_ROW + int((lon + 180.0) * GRID_PER_DEGREE)


def _grid_default(context) -> int | None:
    """Every insert path (ORM, Core executemany) fills grid_cell from the row's lat/lon when not given."""
    params = context.get_current_parameters()
    lat, lon = params.get("lat"), params.get("lon")
    return grid_cell(lat, lon) if lat is not None and lon is not None else None


class CategoryGroup(Base):
    """A field of the taxonomy (Seoul: 12 fields such as roads, cleaning, parks)."""

    __tablename__ = "report_groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    name_ko: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Campaign(Base):
    """A time-boxed mapping campaign (barrier-free routes, school zones) with its own categories."""

    __tablename__ = "report_campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title_ko: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    description_ko: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    theme: Mapped[str] = mapped_column(String(50), default="")  # a colour/icon hint for its pages
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True)  # None: the whole city
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Category(Base):
    """A kind of problem a citizen can report; `code` is the stable Open311 service_code."""

    __tablename__ = "report_categories"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(80), unique=True)
    group_code: Mapped[str] = mapped_column(String(50), index=True)
    name_ko: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    description_ko: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(String(500), default="")  # comma-separated, ko and en
    service_days: Mapped[int] = mapped_column(Integer, default=7)  # service level: days to fix
    unit_kind: Mapped[str] = mapped_column(String(50), default="civil")  # "roads" → "{district}-roads"
    # Open311 attribute definitions: [{code, datatype, required, description, order, values:[{key,name}]}]
    attributes: Mapped[list] = mapped_column(JSON, default=list)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("report_campaigns.id"), nullable=True, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    campaign: Mapped[Campaign | None] = relationship(lazy="joined")


class Report(Base):
    """A problem pinned on the map by a citizen. `id` is the public number (Open311 service_request_id)."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("report_categories.id"))
    category_code: Mapped[str] = mapped_column(String(80))  # denormalised: Open311 filters on it
    status: Mapped[str] = mapped_column(String(20), default="open")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    district_code: Mapped[str] = mapped_column(String(20))
    neighbourhood_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    h3_cell: Mapped[str] = mapped_column(String(16))  # resolution 9 (~0.1 km²): heat maps, nearby
    # The coarse grid cell of (lat, lon) for Open311 area queries (see grid_cell); filled on insert.
    grid_cell: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=_grid_default)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")  # plain text; HTML is kept as text
    address_string: Mapped[str | None] = mapped_column(String(300), nullable=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    unit_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    public_name: Mapped[str | None] = mapped_column(String(200), nullable=True)  # only if the citizen opted in
    language: Mapped[str] = mapped_column(String(10), default="ko")
    source: Mapped[str] = mapped_column(String(20), default="web")  # web | open311 | cli | call120 | demo
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("report_campaigns.id"), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), nullable=True)  # duplicate of
    support_count: Mapped[int] = mapped_column(Integer, default=0)
    photo_count: Mapped[int] = mapped_column(Integer, default=0)
    # Links a partner sent as media_url, kept and shown as given; media_fetch is "pending" while a background
    # fetch (SMARTCITY_REPORTS_FETCH_MEDIA_URLS) is still due, then "done" or "refused" (why: in the timeline).
    media_urls: Mapped[list | None] = mapped_column(JSON, nullable=True)
    media_fetch: Mapped[str | None] = mapped_column(String(20), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    # sha256 of what the key was first sent with: the same key with another submission is a conflict
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(100), nullable=True)  # a partner system's id
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1–5 after a fix
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # Open311 requested_datetime
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # Open311 expected_datetime
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fixed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    category: Mapped[Category] = relationship(lazy="joined")
    unit: Mapped[Department] = relationship(lazy="joined")

    __table_args__ = (
        # Open311 GET requests filters: status + time, status + area, service_code, district.
        Index("ix_reports_status_created", "status", "created_at"),
        # Covering indexes: a page of ids for status + box (+ time order) comes from the index alone.
        Index("ix_reports_status_area", "status", "lat", "lon", "created_at", "id"),
        Index("ix_reports_area", "lat", "lon", "created_at", "id"),
        # Status + the grid cells covering a circle or box, newest first: only those cells' entries are read.
        Index("ix_reports_status_cell", "status", "grid_cell", "created_at", "id", "lat", "lon"),
        Index("ix_reports_created", "created_at"),
        Index("ix_reports_updated", "updated_at"),
        Index("ix_reports_category_status", "category_code", "status", "created_at"),
        Index("ix_reports_district_status", "district_code", "status", "created_at"),
        Index("ix_reports_unit_status", "unit_id", "status", "due_at"),
        Index("ix_reports_due", "status", "due_at"),
        Index("ix_reports_campaign", "campaign_id"),
        Index("ix_reports_parent", "parent_id"),
        Index("ix_reports_reporter", "reporter_id"),
        Index("ix_reports_h3", "h3_cell"),
    )


class ReportContact(Base):
    """The reporter's contact details: sensitive, kept apart from the report, read only via the service."""

    __tablename__ = "report_contacts"
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportPhoto(Base):
    """A photo of a report, re-encoded without EXIF; files under settings.var_dir/uploads/reports/."""

    __tablename__ = "report_photos"
    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(300))  # relative to the uploads folder
    thumb_path: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(50))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # "before": the reporter's (counted in Report.photo_count); "after": staff's, taken when marking it fixed.
    stage: Mapped[str] = mapped_column(String(10), default="before", server_default="before")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportUpdate(Base):
    """One entry of a report's timeline: who did what, when, old → new, and the public text if any.

    kind: created | status | assign | note | update | reassign | merge | support | feedback | attribute
    Entries with public=False (internal notes, assignments) are shown only to staff.
    """

    __tablename__ = "report_updates"
    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))  # a label: username, "citizen", "key:fixmystreet"
    kind: Mapped[str] = mapped_column(String(20))
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    old_value: Mapped[str | None] = mapped_column(String(200), nullable=True)
    new_value: Mapped[str | None] = mapped_column(String(200), nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20))  # the report's status after this entry
    external_id: Mapped[str | None] = mapped_column(String(100), nullable=True)  # update_id of a partner
    media_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)  # a partner's, as given

    __table_args__ = (
        Index("ix_report_updates_report", "report_id", "at"),
        Index("ix_report_updates_at", "at"),
    )


class ReportSupport(Base):
    """A "me too" on a report from a signed-in user or an anonymous browser (a hashed fingerprint)."""

    __tablename__ = "report_supports"
    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    supporter: Mapped[str] = mapped_column(String(100))  # "user:12" or "anon:<sha256 prefix>"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("report_id", "supporter", name="uq_report_supports_report_supporter"),)


class Route(Base):
    """A routing rule: reports of this category in this district (None: any district) go to this unit."""

    __tablename__ = "report_routes"
    id: Mapped[int] = mapped_column(primary_key=True)
    category_code: Mapped[str] = mapped_column(String(80))
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("category_code", "district_code", name="uq_report_routes_category_district"),)


class ResponseTemplate(Base):
    """A canned answer staff pick when updating a report; scoped to a unit and/or a category (or all)."""

    __tablename__ = "report_templates"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    text_ko: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(20), nullable=True)  # the status it suits, if any
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), nullable=True)
    category_code: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """An email subscription to new reports in an area: a district, or a box (west, south, east, north)."""

    __tablename__ = "report_subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(10), default="ko")
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    west: Mapped[float | None] = mapped_column(Float, nullable=True)
    south: Mapped[float | None] = mapped_column(Float, nullable=True)
    east: Mapped[float | None] = mapped_column(Float, nullable=True)
    north: Mapped[float | None] = mapped_column(Float, nullable=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)  # unsubscribe link
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
