"""The NGSI-LD context broker's table: one row per entity, its attributes kept as NGSI-LD's normalized JSON
(attribute names as sent: terms of the core context), the type and the position (from `location`) as columns
so that type, id and `near`/`within` queries are answered by the store's indexes.

Readings carried by sensor entities (AirQualityObserved, NoiseLevelObserved) are not kept here alone: they go
through the sensing intake into the readings tables as well (ngsi_entities.readings_of)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Index, Integer, String, Text
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


class NgsiCensus(Base):
    """What the entities are, kept in step with every write (ngsi_entities): per type, how many entities
    (`name` ''), and per attribute name and attribute type (Property, Relationship …) how many entities carry
    it, so that /types and /attributes read a few rows instead of every entity's attributes."""

    __tablename__ = "sensing_ngsi_census"
    type: Mapped[str] = mapped_column(String(256), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    entities: Mapped[int] = mapped_column(Integer)


class NgsiSubscription(Base):
    """A subscription as the client sent it (normalized JSON) and what became of its notifications."""

    __tablename__ = "sensing_ngsi_subscriptions"
    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed: Mapped[bool] = mapped_column(Boolean, default=False)  # the last notification was given up on
    times_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_queued: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch s, for throttling
    last_notification: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_failure: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NgsiNotification(Base):
    """A notification waiting to be delivered (the outbox): tried by the `sensing.ngsi_notify` job, again
    after a back-off when the endpoint fails, given up after a few attempts."""

    __tablename__ = "sensing_ngsi_notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(512), index=True)
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due: Mapped[float] = mapped_column(Float, index=True)  # epoch s
