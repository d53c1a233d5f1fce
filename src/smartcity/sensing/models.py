"""Sensing tables: readings per sensor and quantity, their hourly and daily roll-ups, refused readings.

Sensors themselves are assets of kind `sensor` (the assets module's registry: position, district, serial as
its external id); a reading names its sensor by the asset's id. Times are integer epoch seconds (UTC): a
reading's row is four numbers, keyed (sensor, quantity, time) so that a repeated reading is stored once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow


class Reading(Base):
    """One observation: the sensor (asset id), the quantity's code (`quantities.QUANTITIES`), when, the value
    in the quantity's unit. Clustered by its key (SQLite WITHOUT ROWID; PostgreSQL's primary key)."""

    __tablename__ = "sensing_readings"
    sensor_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    quantity: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    observed_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_sensing_readings_observed_at", "observed_at"),
        # PostgreSQL: monthly partitions (migration sensing_0004_wifi_partitions, sensing/partitions.py).
        {"sqlite_with_rowid": False, "postgresql_partition_by": "RANGE (observed_at)"},
    )


class Rollup(Base):
    """A sensor's quantity over an hour (resolution 3600) or a day (86400, the city's day): min, max, sum and
    count (mean = sum / count; sums and counts add up when days are made of hours)."""

    __tablename__ = "sensing_rollups"
    sensor_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    quantity: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    sum: Mapped[float] = mapped_column(Float)

    __table_args__ = ({"sqlite_with_rowid": False},)


class PendingHour(Base):
    """An hour (epoch seconds) that got new readings since the roll-up job last ran: it is rolled up again."""

    __tablename__ = "sensing_pending_hours"
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class Rejection(Base):
    """A reading refused at intake, kept with its reason (`code`) so that nothing sent is lost unseen."""

    __tablename__ = "sensing_rejections"
    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    channel: Mapped[str] = mapped_column(String(20))  # http, mqtt, import
    sensor: Mapped[str] = mapped_column(String(100), default="")  # as sent: a serial or an id
    quantity: Mapped[str] = mapped_column(String(40), default="")
    observed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    value: Mapped[str] = mapped_column(String(100), default="")  # as sent
    code: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")


# The NGSI-LD broker keeps its table beside its code; imported here so that metadata and Alembic see it.
from smartcity.sensing.ngsi_store import NgsiEntity, NgsiNotification, NgsiSubscription  # noqa: E402, F401


class WifiStatus(Base):
    """A public Wi-Fi access point's reported state at a time: up or down and the clients connected. The
    access point is an asset of kind `wifi` (its id); keyed like readings, so a repeated report is stored once."""

    __tablename__ = "sensing_wifi_status"
    access_point_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    observed_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    up: Mapped[bool] = mapped_column(Boolean)
    clients: Mapped[int] = mapped_column(Integer)

    __table_args__ = ({"sqlite_with_rowid": False},)


# The air-quality tables live beside their service (air_models.py); imported here so the module's metadata has them.
from smartcity.sensing.air_models import AirDistrictState, AirSubscription, MaintenanceIssue  # noqa: E402, F401
