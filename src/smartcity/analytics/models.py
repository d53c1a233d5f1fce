"""Analytics tables: saved analyses (what to compute, whose, shared or not, rerun how often) and their runs
(progress, outcome). Results themselves are Parquet files under the data folder, aggregated and suppressed."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow


class Analysis(Base):
    """A saved analysis: hot spots of a kind's demand over some local hours and day type."""

    __tablename__ = "analytics_analyses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kinds: Mapped[str] = mapped_column(String(100))  # comma-separated: phone, taxi, boardings
    hours: Mapped[str] = mapped_column(String(100))  # comma-separated local hours
    day_type: Mapped[str] = mapped_column(String(10), default="all")  # all, weekday, weekend
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    rerun_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)  # rerun on schedule; None: by hand
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    # The period of the demand it reads, local days both included; None: open on that side.
    start_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    end_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)


class Run(Base):
    """One run of an analysis: queued, running (with its progress 0–1), done or failed (with why)."""

    __tablename__ = "analytics_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analytics_analyses.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    cells: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_analytics_runs_analysis_id", "analysis_id", "id"),)


class CellResult(Base):
    """A run's result per cell: the (suppressed) count and its Gi* z, p and class."""

    __tablename__ = "analytics_cell_results"
    run_id: Mapped[int] = mapped_column(ForeignKey("analytics_runs.id", ondelete="CASCADE"), primary_key=True)
    cell: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    z: Mapped[float] = mapped_column(Float)
    p: Mapped[float] = mapped_column(Float)
    significance: Mapped[str] = mapped_column(String(20))
