"""Participation's tables: proposals (Democracy Seoul), their likes, debate comments and
participants, official answers' follow-ups and abuse reports (who follows a proposal: follows.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow

OPEN, DEBATE, ANSWER_DUE, ANSWERED, EXPIRED = "open", "debate", "answer_due", "answered", "expired"


class Proposal(Base):
    """A citizen's proposal. `likes` and `participants` are counters kept in the same transaction as the rows
    they count (one per person, by unique constraints), so a threshold is read from one row, under its lock."""

    __tablename__ = "participation_proposals"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40))
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True)  # None: the whole city
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=OPEN)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    participants: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the end of the current phase's window
    debate_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    department_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    answer_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hidden_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # the author's last edit

    __table_args__ = (
        Index("ix_participation_proposals_status_closes", "status", "closes_at"),
        Index("ix_participation_proposals_department", "department_code", "status"),
    )


class Like(Base):
    __tablename__ = "participation_likes"
    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("participation_proposals.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("proposal_id", "user_id", name="uq_participation_likes_proposal_user"),)


class Debate(Base):
    """A debate on a question of its own, not attached to a proposal: opened by staff or a citizen, its words
    are the same comments (arguments, with a stance for or against) as a proposal's debate."""

    __tablename__ = "participation_debates"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True)  # None: the whole city
    tags: Mapped[str] = mapped_column(String(400), default="")  # ",tag,tag,": one LIKE finds a whole tag
    # " word word ": the search words (core.words) of the title, description and tags, each once; searched
    # through the store's full-text index over them (migration participation_0010, debates.search)
    words: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # None: open until hidden
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)

    # PostgreSQL's index of the words (SQLite's is an FTS5 table the migration makes, not a model's).
    __table_args__ = (
        Index(
            "ix_participation_debates_words_fts",
            sql_text("to_tsvector('simple'::regconfig, words)"),
            postgresql_using="gin",
        ).ddl_if(dialect="postgresql"),
    )


class Comment(Base):
    """A word in a debate, a proposal's or a standalone one's (exactly one of `proposal_id`, `debate_id`): a
    reply names its parent (`depth` 0 is a top comment); a standalone debate's top arguments take a `stance`
    (for or against). `up` and `down` count the CommentVote rows, recounted under the comment's row lock."""

    __tablename__ = "participation_comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("participation_proposals.id"), index=True)
    debate_id: Mapped[int | None] = mapped_column(ForeignKey("participation_debates.id"), index=True)
    stance: Mapped[str | None] = mapped_column(String(10), nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("participation_comments.id"), nullable=True)
    depth: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    up: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    down: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A moderator's hiding: the public reads a notice in its place, its replies stay.
    hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    hidden_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


class CommentVote(Base):
    """One person's +1 or -1 on a debate comment: one per person, changeable, withdrawable."""

    __tablename__ = "participation_comment_votes"
    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("participation_comments.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    value: Mapped[int] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("comment_id", "user_id", name="uq_participation_comment_votes_comment_user"),)


class CommentReport(Base):
    """A person's report of one debate comment (or argument): why (`reason`, one of comments.REPORT_REASONS, with
    their own words for "other"); one per person per comment. A moderator's decision settles every open report
    of the comment (`settled`: hidden or dismissed), so the queue shows only what is still to decide."""

    __tablename__ = "participation_comment_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("participation_comments.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(20))
    text: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled: Mapped[str | None] = mapped_column(String(20), nullable=True)
    __table_args__ = (UniqueConstraint("comment_id", "user_id", name="uq_participation_comment_reports_comment_user"),)


class ProposalImage(Base):
    """A picture of a proposal, re-encoded without metadata (core.images); files under var_dir/uploads."""

    __tablename__ = "participation_proposal_images"
    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("participation_proposals.id"), index=True)
    path: Mapped[str] = mapped_column(String(200))
    thumb_path: Mapped[str] = mapped_column(String(200))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProposalEdit(Base):
    """A proposal's text as it was before one of its author's edits: every version is kept and shown."""

    __tablename__ = "participation_proposal_edits"
    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("participation_proposals.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when this version was written
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Participant(Base):
    """A person who took part in a proposal's debate: counted once however often they speak."""

    __tablename__ = "participation_participants"
    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("participation_proposals.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    __table_args__ = (UniqueConstraint("proposal_id", "user_id", name="uq_participation_participants_proposal_user"),)


class FollowUp(Base):
    """What the city did after its answer, and when."""

    __tablename__ = "participation_followups"
    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("participation_proposals.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AbuseReport(Base):
    __tablename__ = "participation_abuse_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("participation_proposals.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("proposal_id", "user_id", name="uq_participation_abuse_proposal_user"),)


from smartcity.participation import (  # noqa: E402
    budgets_models,  # noqa: E402,F401
    hearings_models,  # noqa: E402,F401
    voting_models,  # noqa: E402,F401
)
