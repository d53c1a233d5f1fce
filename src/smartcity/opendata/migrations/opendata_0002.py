"""opendata: documents and their masks (Information Communication Plaza), the full-text search entries

Revision ID: opendata_0002
Revises: opendata_0001

The search index is the store's own: on SQLite an FTS5 table over `opendata_search` (external content, kept
by triggers); on PostgreSQL a GIN index over the entries' stored weighted 'simple' tsvector (`vector`,
written by opendata/search.py).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import smartcity.core.db

revision = "opendata_0002"
down_revision = "opendata_0001"
branch_labels = None
depends_on = None

_SQLITE_INDEX = [
    "CREATE VIRTUAL TABLE opendata_search_fts USING fts5("
    "title_tokens, body_tokens, content='opendata_search', content_rowid='id', tokenize='unicode61')",
    "CREATE TRIGGER opendata_search_ai AFTER INSERT ON opendata_search BEGIN "
    "INSERT INTO opendata_search_fts(rowid, title_tokens, body_tokens) "
    "VALUES (new.id, new.title_tokens, new.body_tokens); END",
    "CREATE TRIGGER opendata_search_ad AFTER DELETE ON opendata_search BEGIN "
    "INSERT INTO opendata_search_fts(opendata_search_fts, rowid, title_tokens, body_tokens) "
    "VALUES ('delete', old.id, old.title_tokens, old.body_tokens); END",
    "CREATE TRIGGER opendata_search_au AFTER UPDATE ON opendata_search BEGIN "
    "INSERT INTO opendata_search_fts(opendata_search_fts, rowid, title_tokens, body_tokens) "
    "VALUES ('delete', old.id, old.title_tokens, old.body_tokens); "
    "INSERT INTO opendata_search_fts(rowid, title_tokens, body_tokens) "
    "VALUES (new.id, new.title_tokens, new.body_tokens); END",
]


def upgrade() -> None:
    op.create_table(
        "opendata_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("file_type", sa.String(length=10), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("masked_text", sa.Text(), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["opendata_organisations.id"],
            name=op.f("fk_opendata_documents_organisation_id_opendata_organisations"),
        ),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"], name=op.f("fk_opendata_documents_uploaded_by_users")),
        sa.ForeignKeyConstraint(["published_by"], ["users.id"], name=op.f("fk_opendata_documents_published_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_documents")),
        sa.UniqueConstraint("uid", name=op.f("uq_opendata_documents_uid")),
    )
    op.create_index("ix_opendata_documents_status", "opendata_documents", ["status"])
    op.create_table(
        "opendata_document_masks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("original", sa.Text(), nullable=False),
        sa.Column("replacement", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["opendata_documents.id"],
            name=op.f("fk_opendata_document_masks_document_id_opendata_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"], name=op.f("fk_opendata_document_masks_decided_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_document_masks")),
    )
    op.create_index("ix_opendata_document_masks_document_id", "opendata_document_masks", ["document_id"])
    op.create_table(
        "opendata_search",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("title_tokens", sa.Text(), nullable=False),
        sa.Column("body_tokens", sa.Text(), nullable=False),
        sa.Column("vector", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"), nullable=True),
        sa.Column("updated_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_search")),
        sa.UniqueConstraint("kind", "ref_id", name="uq_opendata_search_kind_ref"),
    )
    op.create_table(
        "opendata_search_facets",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=50), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["opendata_search.id"],
            name=op.f("fk_opendata_search_facets_entry_id_opendata_search"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", "field", "value", name=op.f("pk_opendata_search_facets")),
    )
    op.create_index("ix_opendata_search_facets_field_value", "opendata_search_facets", ["field", "value"])
    op.create_index("ix_opendata_search_vector", "opendata_search", ["vector"], postgresql_using="gin")
    if op.get_bind().dialect.name != "postgresql":
        for statement in _SQLITE_INDEX:
            op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_opendata_search_vector", table_name="opendata_search")
    if op.get_bind().dialect.name != "postgresql":
        for name in ("opendata_search_ai", "opendata_search_ad", "opendata_search_au"):
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TABLE opendata_search_fts")
    op.drop_index("ix_opendata_search_facets_field_value", table_name="opendata_search_facets")
    op.drop_table("opendata_search_facets")
    op.drop_table("opendata_search")
    op.drop_index("ix_opendata_document_masks_document_id", table_name="opendata_document_masks")
    op.drop_table("opendata_document_masks")
    op.drop_index("ix_opendata_documents_status", table_name="opendata_documents")
    op.drop_table("opendata_documents")
