"""safety: persons, devices, guardians (consent), zones, positions, device state, events, incidents

Revision ID: safety_0001
Revises: 0002_notifications
"""

import sqlalchemy as sa
from alembic import op

import smartcity.core.db

revision = "safety_0001"
down_revision = "0002_notifications"
branch_labels = ("safety",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_persons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_persons")),
    )
    op.create_table(
        "safety_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=100), nullable=False),
        sa.Column("protocol", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["safety_persons.id"], name=op.f("fk_safety_devices_person_id_safety_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_devices")),
        sa.UniqueConstraint("identifier", name=op.f("uq_safety_devices_identifier")),
    )
    with op.batch_alter_table("safety_devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_safety_devices_person_id"), ["person_id"], unique=False)

    op.create_table(
        "safety_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("dedupe", sa.String(length=100), nullable=True),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["safety_persons.id"], name=op.f("fk_safety_events_person_id_safety_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_events")),
        sa.UniqueConstraint("person_id", "kind", "dedupe", name="uq_safety_events_dedupe"),
    )
    with op.batch_alter_table("safety_events", schema=None) as batch_op:
        batch_op.create_index("ix_safety_events_person_at", ["person_id", "at"], unique=False)

    op.create_table(
        "safety_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("district_code", sa.String(length=20), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("opened_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("dispatched_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dispatched_by", sa.Integer(), nullable=True),
        sa.Column("dispatch_agency", sa.String(length=10), nullable=True),
        sa.Column("dispatch_reference", sa.String(length=100), nullable=True),
        sa.Column("dispatch_notes", sa.Text(), nullable=True),
        sa.Column("resolved_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["safety_persons.id"], name=op.f("fk_safety_incidents_person_id_safety_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_incidents")),
    )
    with op.batch_alter_table("safety_incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_safety_incidents_district_code"), ["district_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_safety_incidents_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_safety_incidents_status"), ["status"], unique=False)

    op.create_table(
        "safety_zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("geometry", sa.Text(), nullable=True),
        sa.Column("schedule", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["safety_persons.id"], name=op.f("fk_safety_zones_person_id_safety_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_zones")),
    )
    with op.batch_alter_table("safety_zones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_safety_zones_person_id"), ["person_id"], unique=False)

    op.create_table(
        "safety_device_state",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fix_time", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("speed", sa.Float(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("battery", sa.Float(), nullable=True),
        sa.Column("district_code", sa.String(length=20), nullable=True),
        sa.Column("zones", sa.JSON(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["safety_devices.id"], name=op.f("fk_safety_device_state_device_id_safety_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_safety_device_state")),
    )
    with op.batch_alter_table("safety_device_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_safety_device_state_person_id"), ["person_id"], unique=False)

    op.create_table(
        "safety_guardians",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=50), nullable=False),
        sa.Column("consent_by", sa.String(length=200), nullable=True),
        sa.Column("consent_basis", sa.String(length=300), nullable=True),
        sa.Column("consent_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consent_recorded_by", sa.String(length=200), nullable=True),
        sa.Column("revoked_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["safety_persons.id"], name=op.f("fk_safety_guardians_person_id_safety_persons")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_safety_guardians_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_guardians")),
        sa.UniqueConstraint("person_id", "user_id", name="uq_safety_guardians_person_user"),
    )
    with op.batch_alter_table("safety_guardians", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_safety_guardians_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_safety_guardians_user_id"), ["user_id"], unique=False)

    op.create_table(
        "safety_positions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("fix_time", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", smartcity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("speed", sa.Float(), nullable=True),
        sa.Column("bearing", sa.Float(), nullable=True),
        sa.Column("altitude", sa.Float(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("battery", sa.Float(), nullable=True),
        sa.Column("alarm", sa.String(length=30), nullable=True),
        sa.Column("protocol", sa.String(length=20), nullable=False),
        sa.Column("outside_city", sa.Boolean(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["safety_devices.id"], name=op.f("fk_safety_positions_device_id_safety_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_positions")),
        sa.UniqueConstraint("device_id", "fix_time", name="uq_safety_positions_device_fix"),
    )
    with op.batch_alter_table("safety_positions", schema=None) as batch_op:
        batch_op.create_index("ix_safety_positions_fix_time", ["fix_time"], unique=False)
        batch_op.create_index("ix_safety_positions_person_fix", ["person_id", "fix_time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("safety_positions", schema=None) as batch_op:
        batch_op.drop_index("ix_safety_positions_person_fix")
        batch_op.drop_index("ix_safety_positions_fix_time")

    op.drop_table("safety_positions")
    with op.batch_alter_table("safety_guardians", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_safety_guardians_user_id"))
        batch_op.drop_index(batch_op.f("ix_safety_guardians_person_id"))

    op.drop_table("safety_guardians")
    with op.batch_alter_table("safety_device_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_safety_device_state_person_id"))

    op.drop_table("safety_device_state")
    with op.batch_alter_table("safety_zones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_safety_zones_person_id"))

    op.drop_table("safety_zones")
    with op.batch_alter_table("safety_incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_safety_incidents_status"))
        batch_op.drop_index(batch_op.f("ix_safety_incidents_person_id"))
        batch_op.drop_index(batch_op.f("ix_safety_incidents_district_code"))

    op.drop_table("safety_incidents")
    with op.batch_alter_table("safety_events", schema=None) as batch_op:
        batch_op.drop_index("ix_safety_events_person_at")

    op.drop_table("safety_events")
    with op.batch_alter_table("safety_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_safety_devices_person_id"))

    op.drop_table("safety_devices")
    op.drop_table("safety_persons")
