"""The NGSI-LD context broker's table: one row per entity, its attributes kept as NGSI-LD's normalized JSON
(attribute names as sent: terms of the core context), the type and the position (from `location`) as columns
so that type, id and `near`/`within` queries are answered by the store's indexes.

Readings carried by sensor entities (AirQualityObserved, NoiseLevelObserved) are not kept here alone: they go
through the sensing intake into the readings tables as well (ngsi_entities.readings_of)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow


class NgsiEntity(Base):
    __tablename__ = "sensing_ngsi_entities"
    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    type: Mapped[str] = mapped_column(String(256), index=True)
    attrs: Mapped[str] = mapped_column(Text)  # JSON object: attribute name → normalized attribute
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_sensing_ngsi_entities_lat_lon", "lat", "lon"),)
