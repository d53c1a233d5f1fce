"""Air-quality tables: citizens' alert subscriptions per district, each district's alert state (the hysteresis'
memory: one alert per crossing), and the sensors the maintenance job found at fault."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow


class AirSubscription(Base):
    """A signed-in citizen's wish to hear when a district's PM2.5 turns 나쁨 or worse; `token` is the secret of
    the unsubscribe link in each alert."""

    __tablename__ = "sensing_air_subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    district_code: Mapped[str] = mapped_column(String(20), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "district_code"),)


class AirDistrictState(Base):
    """Whether a district is in an alert (PM2.5 at 나쁨 or worse), since when, and the level last computed."""

    __tablename__ = "sensing_air_district_state"
    district_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    alerting: Mapped[bool] = mapped_column(Boolean, default=False)
    since: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[float | None] = mapped_column(Float, nullable=True)


class MaintenanceIssue(Base):
    """A sensor at fault as the maintenance job last found it: kind (silent, out_of_range, flatline, spike),
    the quantity (0: the sensor as a whole), since when (epoch seconds) and a short detail."""

    __tablename__ = "sensing_maintenance_issues"
    id: Mapped[int] = mapped_column(primary_key=True)
    sensor_id: Mapped[int] = mapped_column(Integer, index=True)
    quantity: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[str] = mapped_column(String(20))
    since: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text, default="")
    found_at: Mapped[int] = mapped_column(BigInteger)
