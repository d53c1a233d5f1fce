"""Safety service tables: protected persons, their devices and guardians (with consent), zones, positions,
each device's live state, events (alerts) and control-room incidents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.batchstore import stage
from smartcity.core.db import Base, EpochMillis, UTCDateTime, utcnow


class Person(Base):
    """Someone the service protects: a child, an elderly person, a person with dementia."""

    __tablename__ = "safety_persons"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # child | elderly | dementia
    name: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Device(Base):
    """A phone or tag reporting a person's position; `identifier` is what the device sends
    (the Traccar Client's device id, OwnTracks' user/device)."""

    __tablename__ = "safety_devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    # The protocols the device may report through, comma-separated: osmand, owntracks (HTTP or MQTT), or any.
    protocol: Mapped[str] = mapped_column(String(100), default="osmand")
    # argon2 hash of the secret an OwnTracks device sends as its HTTP Basic password; never the secret itself.
    secret_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GuardianLink(Base):
    """A guardian of a person, with the consent that allows tracking: who consented, when, on what basis."""

    __tablename__ = "safety_guardians"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    relation: Mapped[str] = mapped_column(String(50), default="")
    consent_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    consent_basis: Mapped[str | None] = mapped_column(String(300), nullable=True)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consent_recorded_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The guardian's alert preferences (safety.guardian): kinds turned off (SOS cannot be), the channel (None:
    # SMS when the account has a phone, else email), quiet hours "HH:MM" in the city's time, and the cool-down
    # (None: SAFETY_ALERT_COOLDOWN_MINUTES).
    alerts_off: Mapped[list | None] = mapped_column(JSON, nullable=True)
    alert_channel: Mapped[str | None] = mapped_column(String(10), nullable=True)
    quiet_start: Mapped[str | None] = mapped_column(String(5), nullable=True)
    quiet_end: Mapped[str | None] = mapped_column(String(5), nullable=True)
    cooldown_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (UniqueConstraint("person_id", "user_id", name="uq_safety_guardians_person_user"),)

    @property
    def consented(self) -> bool:
        return self.consent_at is not None and self.revoked_at is None


class Zone(Base):
    """A safe zone of one person (home, school) or a danger zone for everyone (person_id NULL).

    Shape: a circle (lat, lon, radius_m) or a polygon (GeoJSON in `geometry`). `schedule`: a list of
    weekly windows {"days": [0..6 (Monday=0)], "start": "08:30", "end": "15:00"} in the city's time zone
    during which the person is expected inside."""

    __tablename__ = "safety_zones"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # safe | danger
    person_id: Mapped[int | None] = mapped_column(ForeignKey("safety_persons.id"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    radius_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    geometry: Mapped[str | None] = mapped_column(Text, nullable=True)
    schedule: Mapped[list | None] = mapped_column(JSON, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class _PositionColumns:
    """A stored fix's columns. Speed in metres per second (converted from knots at the edge); times are epoch
    milliseconds in the store (`EpochMillis`)."""

    device_id: Mapped[int] = mapped_column(ForeignKey("safety_devices.id"), primary_key=True)
    fix_time: Mapped[datetime] = mapped_column(EpochMillis, primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(EpochMillis)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed: Mapped[float | None] = mapped_column(Float, nullable=True)
    bearing: Mapped[float | None] = mapped_column(Float, nullable=True)
    altitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    battery: Mapped[float | None] = mapped_column(Float, nullable=True)
    alarm: Mapped[str | None] = mapped_column(String(30), nullable=True)
    protocol: Mapped[str] = mapped_column(String(20), default="")
    outside_city: Mapped[bool] = mapped_column(Boolean, default=False)
    attributes: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # False: not a real position (the device said valid=false, or sent exactly 0,0). Kept, flagged, never shown
    # in a track and never moving the live state.
    valid: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class PositionRow(_PositionColumns, Base):
    """One stored fix, identified by its device and fix time.

    The key is the table's order: SQLite keeps the rows in the key's b-tree (WITHOUT ROWID), so a device's
    track is one range and a position costs one index entry. PostgreSQL splits the table by fix time into
    daily partitions (migration safety_0004; `retention` makes the coming days' and drops the expired ones) and
    a default partition for whatever falls outside them. Recent fixes may still be in `RecentPositionRow`:
    read positions through `all_positions()`."""

    __tablename__ = "safety_positions"
    __table_args__ = {"sqlite_with_rowid": False, "postgresql_partition_by": "RANGE (fix_time)"}


class RecentPositionRow(_PositionColumns, Base):
    """Fixes staged by a SQLite intake writer with staging on (core.batchstore), in arrival order, until its
    mover puts them into `safety_positions` in key order. Empty otherwise (and on PostgreSQL).

    Its key is (fix time, device), time first: a batch of fixes adds entries at the end of the index, not one
    page per fix all over it. So a device's staged fixes are found by a time range (`registry.newest_fixes`
    reads from the device's checkpointed state on); the table holds a few fixes per device at most, the mover's
    threshold, or `SAFETY_STAGING_MAX_BEHIND` when it falls behind."""

    __tablename__ = "safety_positions_recent"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("safety_devices.id"))
    fix_time: Mapped[datetime] = mapped_column(EpochMillis)

    __table_args__ = (UniqueConstraint("fix_time", "device_id", name="uq_safety_positions_recent_fix_device"),)


stage(PositionRow.__tablename__, RecentPositionRow.__tablename__, ("device_id", "fix_time"))

POSITION_COLUMNS = tuple(c.name for c in PositionRow.__table__.columns)


def all_positions():
    """Every stored position, staged or not: the one selectable readers use (columns as PositionRow's).
    A staged row the keyed table has already (a mover's round copies first and deletes at its end) is skipped."""
    main, recent = PositionRow.__table__, RecentPositionRow.__table__
    copied = (
        select(main.c.device_id)
        .where(main.c.device_id == recent.c.device_id, main.c.fix_time == recent.c.fix_time)
        .exists()
    )
    return union_all(
        select(*(main.c[c] for c in POSITION_COLUMNS)),
        select(*(recent.c[c] for c in POSITION_COLUMNS)).where(~copied),
    ).subquery("positions")


class DeviceState(Base):
    """A device's live state: its latest fix and where it stands with each zone. The row is the unit of
    agreement between processes: intake locks it (SELECT … FOR UPDATE) and bumps `version`."""

    __tablename__ = "safety_device_state"
    device_id: Mapped[int] = mapped_column(ForeignKey("safety_devices.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer, index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    fix_time: Mapped[datetime | None] = mapped_column(EpochMillis, nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(EpochMillis, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    speed: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    battery: Mapped[float | None] = mapped_column(Float, nullable=True)
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # zone id → {"confirmed", "candidate", "agreeing", "since"} (rules.ZoneState)
    zones: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    flags: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # low_battery, silent, outside_city


class SafetyEvent(Base):
    """Something a guardian is told about: arrival, departure, absence, danger, SOS, low battery, silence."""

    __tablename__ = "safety_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"))
    device_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    zone_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    dedupe: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_safety_events_person_at", "person_id", "at"),
        UniqueConstraint("person_id", "kind", "dedupe", name="uq_safety_events_dedupe"),
    )


class AlertCooldown(Base):
    """When a guardian was last sent a person's arrival or departure alert for a zone, and how many like it
    were folded into a digest since (the guardian's cool-down, default `SAFETY_ALERT_COOLDOWN_MINUTES`)."""

    __tablename__ = "safety_alert_cooldowns"
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # arrival | departure
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    folded: Mapped[int] = mapped_column(Integer, default=0)
    folded_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Incident(Base):
    """An emergency for the district control room: open → acknowledged → dispatched → resolved."""

    __tablename__ = "safety_incidents"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # sos | danger
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    zone_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    dispatched_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dispatch_agency: Mapped[str | None] = mapped_column(String(10), nullable=True)  # 112 | 119
    dispatch_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    dispatch_notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)


class HeldAlert(Base):
    """An alert held during a guardian's quiet hours, sent folded into one message once they end."""

    __tablename__ = "safety_held_alerts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_persons.id"), index=True)
    event_id: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
