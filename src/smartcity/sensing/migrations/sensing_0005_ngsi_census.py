"""sensing: the NGSI-LD broker's census of entity types and attributes, filled from the stored entities

Revision ID: sensing_0005_ngsi_census
Revises: sensing_0004_wifi_partitions (and needs sensing_0002_ngsi, another branch: its entities)
"""

import sqlalchemy as sa
from alembic import op

revision = "sensing_0005_ngsi_census"
down_revision = "sensing_0004_wifi_partitions"
branch_labels = None
depends_on = ("sensing_0002_ngsi",)  # the entities it counts


def upgrade() -> None:
    op.create_table(
        "sensing_ngsi_census",
        sa.Column("type", sa.String(length=256), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("entities", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("type", "name", "kind", name=op.f("pk_sensing_ngsi_census")),
    )
    # The entities stored before the census: counted once here, as the broker counted them on every call.
    op.execute(
        "INSERT INTO sensing_ngsi_census (type, name, kind, entities) "
        "SELECT type, '', '', count(*) FROM sensing_ngsi_entities GROUP BY type"
    )
    if op.get_bind().dialect.name == "postgresql":
        attrs = "jsonb_each(CAST(e.attrs AS jsonb)) AS j", "j.value ->> 'type'"
    else:
        attrs = "json_each(e.attrs) AS j", "json_extract(j.value, '$.type')"
    op.execute(
        "INSERT INTO sensing_ngsi_census (type, name, kind, entities) "
        f"SELECT e.type, j.key, COALESCE({attrs[1]}, ''), count(*) FROM sensing_ngsi_entities AS e, {attrs[0]} "
        "GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    op.drop_table("sensing_ngsi_census")
