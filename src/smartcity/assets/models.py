"""City asset tables: cameras, Wi-Fi access points, sensors — anything with a kind and a position."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow


class Asset(Base):
    """A piece of city equipment at a point: a CCTV camera, a Wi-Fi access point, an air sensor, …

    `key` makes re-imports idempotent: the source's own id when it has one, else the position (and, for
    several assets at one spot in one file, their order there)."""

    __tablename__ = "assets"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(300), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(200), default="")
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("kind", "source", "key", name="uq_assets_kind_source_key"),
        Index("ix_assets_kind_lat_lon", "kind", "lat", "lon"),
        # kind_counts reads the index alone (a count of a kind's assets, with a district, with an external id).
        Index("ix_assets_kind_district_external", "kind", "district_code", "external_id"),
    )
