"""safety: a guardian's alert preferences, per-guardian cool-downs, alerts held in quiet hours

`safety_guardians` gains the guardian's choices (kinds turned off, channel, quiet hours, cool-down).
`safety_alert_cooldowns` is keyed by guardian too (each has their own cool-down): it holds only the running
periods and their folded counts, so it is made again empty (at worst one digest is not sent, and the next
arrival or departure is alerted at once). `safety_held_alerts` keeps what quiet hours hold back.

Revision ID: safety_0006
Revises: safety_0005
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "safety_0006"
down_revision = "safety_0005"
branch_labels = None
depends_on = None


def _cooldowns(with_user: bool) -> None:
    key = ["person_id", "user_id", "zone_id", "kind"] if with_user else ["person_id", "zone_id", "kind"]
    op.create_table(
        "safety_alert_cooldowns",
        sa.Column("person_id", sa.Integer(), nullable=False),
        *([sa.Column("user_id", sa.Integer(), nullable=False)] if with_user else []),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sent_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("folded", sa.Integer(), nullable=False),
        sa.Column("folded_since", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_event_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["safety_persons.id"], name=op.f("fk_safety_alert_cooldowns_person_id_safety_persons")
        ),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_safety_alert_cooldowns")),
    )


def upgrade() -> None:
    with op.batch_alter_table("safety_guardians", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alerts_off", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("alert_channel", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("quiet_start", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("quiet_end", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("cooldown_minutes", sa.Integer(), nullable=True))
    op.drop_table("safety_alert_cooldowns")
    _cooldowns(with_user=True)
    op.create_table(
        "safety_held_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["safety_persons.id"], name=op.f("fk_safety_held_alerts_person_id_safety_persons")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_safety_held_alerts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_held_alerts")),
    )
    with op.batch_alter_table("safety_held_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_safety_held_alerts_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_safety_held_alerts_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("safety_held_alerts")
    op.drop_table("safety_alert_cooldowns")
    _cooldowns(with_user=False)
    with op.batch_alter_table("safety_guardians", schema=None) as batch_op:
        for column in ("cooldown_minutes", "quiet_end", "quiet_start", "alert_channel", "alerts_off"):
            batch_op.drop_column(column)
