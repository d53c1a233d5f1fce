"""participation: the ballots' chain index covers every column of a link (verify-chain reads the index alone)

Revision ID: participation_0008_chain_index
Revises: participation_0003_votes
"""

from alembic import op

revision = "participation_0008_chain_index"
down_revision = "participation_0003_votes"
branch_labels = None
depends_on = None

TABLE, INDEX = "participation_ballots", "ix_participation_ballots_chain"
LINK = ["vote_id", "position", "receipt_hash", "answers", "district_code", "age_band", "chain_hash"]


def upgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(INDEX, TABLE, LINK)


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(INDEX, TABLE, ["vote_id", "position"])
