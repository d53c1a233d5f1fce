"""opendata: the Seoul-style OpenAPI's services, its keys' owners and their daily use

Revision ID: opendata_0003
Revises: opendata_0002
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "opendata_0003"
down_revision = "opendata_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "opendata_openapi_services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["opendata_resources.id"],
            name=op.f("fk_opendata_openapi_services_resource_id_opendata_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_openapi_services")),
        sa.UniqueConstraint("name", name=op.f("uq_opendata_openapi_services_name")),
    )
    op.create_index("ix_opendata_openapi_services_resource_id", "opendata_openapi_services", ["resource_id"])
    op.create_table(
        "opendata_openapi_keys",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_opendata_openapi_keys_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_opendata_openapi_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("api_key_id", name=op.f("pk_opendata_openapi_keys")),
    )
    op.create_index("ix_opendata_openapi_keys_user_id", "opendata_openapi_keys", ["user_id"])
    op.create_table(
        "opendata_openapi_usage",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_opendata_openapi_usage_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "day", name=op.f("pk_opendata_openapi_usage")),
    )


def downgrade() -> None:
    op.drop_table("opendata_openapi_usage")
    op.drop_index("ix_opendata_openapi_keys_user_id", table_name="opendata_openapi_keys")
    op.drop_table("opendata_openapi_keys")
    op.drop_index("ix_opendata_openapi_services_resource_id", table_name="opendata_openapi_services")
    op.drop_table("opendata_openapi_services")
