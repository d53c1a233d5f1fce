"""Public hearings' tables: the hearing and its schedule, its documents (the minutes' file among them), the
live session's questions and their upvotes (one per person), and the comments of the periods before and
after the session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow
from smartcity.participation.follows import Follow  # noqa: F401  (its table loads with the module's)


class Hearing(Base):
    """A public hearing. Its phase follows from the schedule (comments before → live session → comments
    after) and, at the end, from its minutes: once they are published the hearing is read-only."""

    __tablename__ = "participation_hearings"
    id: Mapped[int] = mapped_column(primary_key=True)
    topic_ko: Mapped[str] = mapped_column(String(200))
    topic_en: Mapped[str] = mapped_column(String(200), default="")
    summary_ko: Mapped[str] = mapped_column(Text, default="")
    summary_en: Mapped[str] = mapped_column(Text, default="")
    department_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    comments_open_at: Mapped[datetime] = mapped_column(UTCDateTime)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comments_close_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The question an official is answering now (no foreign key: questions point at their hearing already).
    answering_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    live_announced: Mapped[bool] = mapped_column(Boolean, default=False)
    minutes: Mapped[str | None] = mapped_column(Text, nullable=True)  # Markdown, rendered without raw HTML
    minutes_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (Index("ix_participation_hearings_starts", "starts_at"),)


class HearingDocument(Base):
    """A file of a hearing, kept under var/participation/hearings/ (`path` relative to the var folder)."""

    __tablename__ = "participation_hearing_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    hearing_id: Mapped[int] = mapped_column(ForeignKey("participation_hearings.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # document | minutes
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HearingQuestion(Base):
    """A citizen's question to the live session. `votes` counts the HearingVote rows, kept in the same
    transaction as they are (one per person, by their unique key)."""

    __tablename__ = "participation_hearing_questions"
    id: Mapped[int] = mapped_column(primary_key=True)
    hearing_id: Mapped[int] = mapped_column(ForeignKey("participation_hearings.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    votes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    __table_args__ = (Index("ix_participation_hearing_questions_hearing", "hearing_id", "votes"),)


class HearingVote(Base):
    __tablename__ = "participation_hearing_votes"
    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("participation_hearing_questions.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    __table_args__ = (UniqueConstraint("question_id", "user_id", name="uq_participation_hearing_votes_question_user"),)


class HearingComment(Base):
    """A comment written in the period before the live session or in the one after it (`period`)."""

    __tablename__ = "participation_hearing_comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    hearing_id: Mapped[int] = mapped_column(ForeignKey("participation_hearings.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    period: Mapped[str] = mapped_column(String(10))  # before | after
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
