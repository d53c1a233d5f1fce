"""participation: a debate's search words (Korean morphemes, English words), filled for the debates there are

Revision ID: participation_0009_debate_words
Revises: participation_0007_debates
"""

import sqlalchemy as sa
from alembic import op

revision = "participation_0009_debate_words"
down_revision = "participation_0007_debates"
branch_labels = None
depends_on = None

TABLE = "participation_debates"


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column("words", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.alter_column("words", existing_type=sa.Text(), server_default=None)
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, title, description, tags FROM {TABLE}")).all()
    if rows:
        # Imported here: the analyser loads for a store that has debates to index, not for every migration.
        from smartcity.participation.debates import search_words

        for row in rows:
            words = search_words(row.title, row.description, row.tags)
            bind.execute(sa.text(f"UPDATE {TABLE} SET words = :w WHERE id = :id"), {"w": words, "id": row.id})


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_column("words")
