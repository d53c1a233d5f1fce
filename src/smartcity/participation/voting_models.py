"""Tables of votes (mVoting): the votes themselves, the verified people, one-time codes, the residents register,
and — kept apart, with nothing linking them — the voter roll (who voted) and the ballot box (what was voted).

The ballot box holds no account and no time; its rows have random ids, and a ballot joins the vote's hash chain
only in a shuffled batch (votes_service.seal), so neither the row order nor the chain order follows the order
in which people cast. On SQLite the table has no rowid (that would be the insertion order again)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow


class Vote(Base):
    """A vote staff set up: questions, when it is open, whom it is for. `ballots` and `chain_head` are the
    chain's tip: a cast updates this row first, so appending to the chain is one writer at a time per vote."""

    __tablename__ = "participation_votes"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # [{"text", "kind": single|multiple|ranking, "options": [str, …], "max_choices": int}]
    questions: Mapped[list] = mapped_column(JSON)
    # {"districts": [...], "neighbourhoods": [...], "age_bands": [int, ...], "point": {lat, lon, radius_m}}
    target: Mapped[dict] = mapped_column(JSON)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    results_hidden: Mapped[bool] = mapped_column(Boolean, default=True)  # until the close
    min_count: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the city's setting
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received: Mapped[int] = mapped_column(Integer, default=0)  # ballots received (sealed or waiting)
    ballots: Mapped[int] = mapped_column(Integer, default=0)  # ballots sealed into the chain
    chain_head: Mapped[str] = mapped_column(String(64), default="")
    results: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the final tally, kept once closed
    __table_args__ = (Index("ix_participation_votes_closes", "closes_at"),)


class Verification(Base):
    """A person behind an account, verified once: the keyed hash of their phone or resident id (never the
    number itself) and what eligibility reads — district, neighbourhood, birth year, optional home point."""

    __tablename__ = "participation_verifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    method: Mapped[str] = mapped_column(String(20))
    identity_hash: Mapped[str] = mapped_column(String(64), index=True)
    district_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    neighbourhood_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    birth_year: Mapped[int] = mapped_column(Integer)
    home_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    home_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SmsCode(Base):
    """A one-time code sent to a phone: kept as a keyed hash, with what the person claimed alongside."""

    __tablename__ = "participation_sms_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    claim: Mapped[dict] = mapped_column(JSON)  # birth year, district, neighbourhood, home point
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Resident(Base):
    """A row of the residents register the city loads (`smartcity participation load-census`): keyed hashes
    of the resident id and of name + birth date, never the plain values."""

    __tablename__ = "participation_residents"
    id: Mapped[int] = mapped_column(primary_key=True)
    identity_hash: Mapped[str] = mapped_column(String(64))
    resident_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    name_birth_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    district_code: Mapped[str] = mapped_column(String(20))
    neighbourhood_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    birth_year: Mapped[int] = mapped_column(Integer)


class VoterRoll(Base):
    """Who voted in a vote (the person's identity hash and the account), never what."""

    __tablename__ = "participation_voter_roll"
    id: Mapped[int] = mapped_column(primary_key=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("participation_votes.id"))
    identity_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    voted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("vote_id", "identity_hash", name="uq_participation_voter_roll_person"),
        UniqueConstraint("vote_id", "user_id", name="uq_participation_voter_roll_account"),
    )


# A link's columns, in the chain index's order (participation_0008_chain_index).
LINK_COLUMNS = ("vote_id", "position", "receipt_hash", "answers", "district_code", "age_band", "chain_hash")


class Ballot(Base):
    """What was voted: the answers and the voter's coarse district and age band (for the breakdown), a random
    id, the keyed receipt's hash, and — once sealed — its place in the chain and the chain's hash there."""

    __tablename__ = "participation_ballots"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random: says nothing about order
    vote_id: Mapped[int] = mapped_column(ForeignKey("participation_votes.id"))
    answers: Mapped[str] = mapped_column(Text)  # canonical JSON, e.g. [[1],[0,2],[2,0,1]]
    district_code: Mapped[str] = mapped_column(String(20), default="")
    age_band: Mapped[int] = mapped_column(Integer)
    receipt_hash: Mapped[str] = mapped_column(String(64))
    position: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: waiting for its batch
    chain_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (
        UniqueConstraint("vote_id", "receipt_hash", name="uq_participation_ballots_receipt"),
        # Covering: verify-chain reads every column of the link in chain order from the index alone; the table
        # is clustered by the random id, so through a bare (vote_id, position) index each row was a seek apart.
        Index("ix_participation_ballots_chain", *LINK_COLUMNS),
        Index("ix_participation_ballots_tally", "vote_id", "answers", "district_code", "age_band"),
        {"sqlite_with_rowid": False},
    )
