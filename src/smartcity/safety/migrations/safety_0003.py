"""safety: device secrets and protocol lists, flagged (invalid) positions, alert cool-downs

A device lists the protocols it may report through (`protocol` becomes a comma-separated list, so wider) and
keeps the argon2 hash of its OwnTracks secret. A position carries `valid` (False: the device said so, or it
sent 0,0). `safety_alert_cooldowns` holds when each person's arrival/departure alert per zone was last sent
and how many were folded into a digest since.

Revision ID: safety_0003
Revises: safety_0002
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "safety_0003"
down_revision = "safety_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("safety_devices", schema=None) as batch_op:
        batch_op.alter_column(
            "protocol", existing_type=sa.String(length=20), type_=sa.String(length=100), existing_nullable=False
        )
        batch_op.add_column(sa.Column("secret_hash", sa.String(length=200), nullable=True))
    with op.batch_alter_table("safety_positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_table(
        "safety_alert_cooldowns",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sent_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("folded", sa.Integer(), nullable=False),
        sa.Column("folded_since", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_event_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["safety_persons.id"], name=op.f("fk_safety_alert_cooldowns_person_id_safety_persons")
        ),
        sa.PrimaryKeyConstraint("person_id", "zone_id", "kind", name=op.f("pk_safety_alert_cooldowns")),
    )


def downgrade() -> None:
    op.drop_table("safety_alert_cooldowns")
    with op.batch_alter_table("safety_positions", schema=None) as batch_op:
        batch_op.drop_column("valid")
    with op.batch_alter_table("safety_devices", schema=None) as batch_op:
        batch_op.drop_column("secret_hash")
        batch_op.alter_column(
            "protocol", existing_type=sa.String(length=100), type_=sa.String(length=20), existing_nullable=False
        )
