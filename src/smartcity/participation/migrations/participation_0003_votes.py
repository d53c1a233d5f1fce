"""participation: votes, verified people, one-time codes, the residents register, the voter roll and the ballot box

Revision ID: participation_0003_votes
Revises: participation_0001
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "participation_0003_votes"
down_revision = "participation_0001"
branch_labels = None
depends_on = None

WHEN = smartcity.core.db.UTCDateTime(timezone=True)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"))


def _vote_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["vote_id"], ["participation_votes.id"], name=op.f(f"fk_{table}_vote_id_participation_votes")
    )


def upgrade() -> None:
    op.create_table(
        "participation_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("opens_at", WHEN, nullable=False),
        sa.Column("closes_at", WHEN, nullable=False),
        sa.Column("results_hidden", sa.Boolean(), nullable=False),
        sa.Column("min_count", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("ballots", sa.Integer(), nullable=False),
        sa.Column("chain_head", sa.String(length=64), nullable=False),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_participation_votes_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_votes")),
    )
    op.create_index("ix_participation_votes_closes", "participation_votes", ["closes_at"])
    op.create_table(
        "participation_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("identity_hash", sa.String(length=64), nullable=False),
        sa.Column("district_code", sa.String(length=20), nullable=True),
        sa.Column("neighbourhood_code", sa.String(length=20), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=False),
        sa.Column("home_lat", sa.Float(), nullable=True),
        sa.Column("home_lon", sa.Float(), nullable=True),
        sa.Column("verified_at", WHEN, nullable=False),
        _user_fk("participation_verifications"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_verifications")),
        sa.UniqueConstraint("user_id", name=op.f("uq_participation_verifications_user_id")),
    )
    op.create_index(
        op.f("ix_participation_verifications_identity_hash"), "participation_verifications", ["identity_hash"]
    )
    op.create_table(
        "participation_sms_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("claim", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        _user_fk("participation_sms_codes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_sms_codes")),
    )
    op.create_index(op.f("ix_participation_sms_codes_user_id"), "participation_sms_codes", ["user_id"])
    op.create_index(op.f("ix_participation_sms_codes_phone_hash"), "participation_sms_codes", ["phone_hash"])
    op.create_table(
        "participation_residents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity_hash", sa.String(length=64), nullable=False),
        sa.Column("resident_hash", sa.String(length=64), nullable=True),
        sa.Column("name_birth_hash", sa.String(length=64), nullable=True),
        sa.Column("district_code", sa.String(length=20), nullable=False),
        sa.Column("neighbourhood_code", sa.String(length=20), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_residents")),
    )
    op.create_index(op.f("ix_participation_residents_resident_hash"), "participation_residents", ["resident_hash"])
    op.create_index(op.f("ix_participation_residents_name_birth_hash"), "participation_residents", ["name_birth_hash"])
    op.create_table(
        "participation_voter_roll",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vote_id", sa.Integer(), nullable=False),
        sa.Column("identity_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("voted_at", WHEN, nullable=False),
        _user_fk("participation_voter_roll"),
        _vote_fk("participation_voter_roll"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_voter_roll")),
        sa.UniqueConstraint("vote_id", "identity_hash", name="uq_participation_voter_roll_person"),
        sa.UniqueConstraint("vote_id", "user_id", name="uq_participation_voter_roll_account"),
    )
    op.create_table(
        "participation_ballots",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("vote_id", sa.Integer(), nullable=False),
        sa.Column("answers", sa.Text(), nullable=False),
        sa.Column("district_code", sa.String(length=20), nullable=False),
        sa.Column("age_band", sa.Integer(), nullable=False),
        sa.Column("receipt_hash", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("chain_hash", sa.String(length=64), nullable=True),
        _vote_fk("participation_ballots"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participation_ballots")),
        sa.UniqueConstraint("vote_id", "receipt_hash", name="uq_participation_ballots_receipt"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_participation_ballots_chain", "participation_ballots", ["vote_id", "position"])
    op.create_index(
        "ix_participation_ballots_tally", "participation_ballots", ["vote_id", "answers", "district_code", "age_band"]
    )


def downgrade() -> None:
    op.drop_index("ix_participation_ballots_tally", table_name="participation_ballots")
    op.drop_index("ix_participation_ballots_chain", table_name="participation_ballots")
    for name in (
        "participation_ballots",
        "participation_voter_roll",
        "participation_residents",
        "participation_sms_codes",
        "participation_verifications",
    ):
        op.drop_table(name)
    op.drop_index("ix_participation_votes_closes", table_name="participation_votes")
    op.drop_table("participation_votes")
