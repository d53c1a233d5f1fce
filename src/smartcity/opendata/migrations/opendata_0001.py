"""opendata: the catalogue (organisations, datasets, tags, resources, versions)

Revision ID: opendata_0001
Revises: 0002_notifications
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "opendata_0001"
down_revision = "0002_notifications"
branch_labels = ("opendata",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "opendata_organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("title_ko", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=False),
        sa.Column("description_ko", sa.Text(), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        sa.Column("department_code", sa.String(length=50), nullable=True),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_organisations")),
        sa.UniqueConstraint("uid", name=op.f("uq_opendata_organisations_uid")),
        sa.UniqueConstraint("name", name=op.f("uq_opendata_organisations_name")),
    )
    op.create_table(
        "opendata_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("title_ko", sa.String(length=300), nullable=False),
        sa.Column("title_en", sa.String(length=300), nullable=False),
        sa.Column("description_ko", sa.Text(), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("licence", sa.String(length=100), nullable=False),
        sa.Column("publisher", sa.String(length=200), nullable=False),
        sa.Column("update_frequency", sa.String(length=30), nullable=False),
        sa.Column("spatial", sa.String(length=300), nullable=False),
        sa.Column("temporal_start", sa.String(length=30), nullable=True),
        sa.Column("temporal_end", sa.String(length=30), nullable=True),
        sa.Column("theme", sa.String(length=50), nullable=False),
        sa.Column("feed", sa.String(length=120), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["opendata_organisations.id"],
            name=op.f("fk_opendata_datasets_organisation_id_opendata_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_datasets")),
        sa.UniqueConstraint("uid", name=op.f("uq_opendata_datasets_uid")),
        sa.UniqueConstraint("name", name=op.f("uq_opendata_datasets_name")),
        sa.UniqueConstraint("feed", name=op.f("uq_opendata_datasets_feed")),
    )
    op.create_index("ix_opendata_datasets_published_modified", "opendata_datasets", ["published", "modified_at"])
    op.create_table(
        "opendata_dataset_tags",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["opendata_datasets.id"],
            name=op.f("fk_opendata_dataset_tags_dataset_id_opendata_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "tag", name=op.f("pk_opendata_dataset_tags")),
    )
    op.create_index("ix_opendata_dataset_tags_tag", "opendata_dataset_tags", ["tag"])
    op.create_table(
        "opendata_resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("table", sa.String(length=40), nullable=True),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["opendata_datasets.id"],
            name=op.f("fk_opendata_resources_dataset_id_opendata_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_resources")),
        sa.UniqueConstraint("uid", name=op.f("uq_opendata_resources_uid")),
        sa.UniqueConstraint("table", name=op.f("uq_opendata_resources_table")),
        sa.UniqueConstraint("dataset_id", "name", name="uq_opendata_resources_dataset_name"),
    )
    op.create_index("ix_opendata_resources_dataset_id", "opendata_resources", ["dataset_id"])
    op.create_table(
        "opendata_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("file", sa.String(length=300), nullable=True),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("encoding", sa.String(length=20), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        sa.Column("published_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["opendata_resources.id"],
            name=op.f("fk_opendata_versions_resource_id_opendata_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_versions")),
        sa.UniqueConstraint("resource_id", "number", name="uq_opendata_versions_resource_number"),
    )


def downgrade() -> None:
    op.drop_table("opendata_versions")
    op.drop_index("ix_opendata_resources_dataset_id", table_name="opendata_resources")
    op.drop_table("opendata_resources")
    op.drop_index("ix_opendata_dataset_tags_tag", table_name="opendata_dataset_tags")
    op.drop_table("opendata_dataset_tags")
    op.drop_index("ix_opendata_datasets_published_modified", table_name="opendata_datasets")
    op.drop_table("opendata_datasets")
    op.drop_table("opendata_organisations")
