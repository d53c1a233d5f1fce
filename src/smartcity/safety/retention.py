"""The periodic checks run as jobs: purging old history, silent devices, absence from scheduled zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from smartcity.core import audit
from smartcity.core.batchstore import PostgresBatchStore
from smartcity.core.context import context_of
from smartcity.core.db import utcnow
from smartcity.safety.access import guardian_ids
from smartcity.safety.alerts import raise_event
from smartcity.safety.models import Device, DeviceState, PositionRow, RecentPositionRow, SafetyEvent, Zone
from smartcity.safety.registry import _person_states, newest_fixes
from smartcity.safety.rules import Raised, ZoneShape, confirmed_of, parse_schedule
from smartcity.safety.settings import SafetySettings

PARTITIONS_AHEAD_DAYS = 3  # PostgreSQL: daily position partitions kept made beyond today


def purge_history(db, settings, now: datetime | None = None) -> int:
    """Delete positions and alert events older than the retention period; returns how many positions.

    On PostgreSQL the positions of whole days before the cutoff go with their daily partition (a drop, not a
    delete of each row), and the coming days' partitions are made; what remains before the cutoff (the
    cutoff's own day, the default partition) is deleted by each device's key range, as on SQLite."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.of(SafetySettings).retention_days)
    with db.session() as s:
        dropped: dict[str, int] = {}
        if db.is_postgres:
            store = PostgresBatchStore()
            conn = s.connection()
            # A day's partition goes when all of the day is before the cutoff.
            dropped = store.drop_daily_partitions_before(conn, PositionRow.__tablename__, cutoff.astimezone(UTC).date())
            today = now.astimezone(UTC).date()
            store.ensure_daily_partitions(
                conn, PositionRow.__tablename__, today, today + timedelta(days=PARTITIONS_AHEAD_DAYS)
            )
        # By each device's key range: the positions' only index is their (device, fix time) key.
        devices = select(Device.id).scalar_subquery()
        n = s.execute(
            delete(PositionRow).where(PositionRow.device_id.in_(devices), PositionRow.fix_time < cutoff)
        ).rowcount
        n += sum(dropped.values())
        n += s.execute(delete(RecentPositionRow).where(RecentPositionRow.fix_time < cutoff)).rowcount
        e = s.execute(delete(SafetyEvent).where(SafetyEvent.at < cutoff)).rowcount
        if n or e or dropped:
            detail = {"before": cutoff.isoformat(), "positions": n, "events": e}
            if dropped:
                detail["partitions_dropped"] = sorted(dropped)
            audit.record(s, "job:safety.retention", "purge", "safety_positions", None, detail)
    return n


def check_silent(db, settings, now: datetime | None = None) -> int:
    """Alert once for each consented device that has not reported for SMARTCITY_SAFETY_SILENT_MINUTES (looking
    back one day at most, so devices long switched off are not re-read every minute)."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.of(SafetySettings).silent_minutes)
    raised = 0
    with db.session() as s:
        q = (
            select(DeviceState)
            .join(Device, Device.id == DeviceState.device_id)
            .where(
                Device.active, DeviceState.received_at < cutoff, DeviceState.received_at >= cutoff - timedelta(days=1)
            )
        )
        found = list(s.scalars(q))
        # A state row's live fields are checkpointed, not written with every position: what counts is the newest
        # stored fix.
        newer = newest_fixes(s, [st.device_id for st in found])
        for st in found:
            flags = dict(st.flags or {})
            fix = newer.get(st.device_id)
            if flags.get("silent") or (fix is not None and fix.received_at >= cutoff):
                continue
            if not guardian_ids(s, st.person_id):
                continue
            flags["silent"] = True
            # Compare-and-set on the version: of several processes, exactly one raises the alert.
            won = s.execute(
                update(DeviceState)
                .where(DeviceState.device_id == st.device_id, DeviceState.version == st.version)
                .values(flags=flags, version=st.version + 1)
            ).rowcount
            if won:
                minutes = int((now - st.received_at).total_seconds() // 60)
                raise_event(
                    s, Raised("silent", st.person_id, st.device_id, now, st.lat, st.lon, data={"minutes": minutes})
                )
                raised += 1
    return raised


def check_absence(db, settings, now: datetime | None = None) -> int:
    """Alert once per window and day when a person is not inside a scheduled safe zone by the window's
    start plus the grace period (school 08:30 → not there by 09:00)."""
    now = now or utcnow()
    tz = context_of(db).profile.tz
    local = now.astimezone(tz)
    grace = timedelta(minutes=settings.of(SafetySettings).absence_grace_minutes)
    raised = 0
    with db.session() as s:
        for zone in s.scalars(select(Zone).where(Zone.active, Zone.kind == "safe", Zone.schedule.is_not(None))):
            for w in parse_schedule(zone.schedule):
                start = datetime.combine(local.date(), w.start, tz)
                end = datetime.combine(local.date(), w.end, tz)
                if local.weekday() not in w.days or not start + grace <= local < end:
                    continue
                states = _person_states(s, zone.person_id)
                if not guardian_ids(s, zone.person_id):
                    continue
                if any(confirmed_of((st.zones or {}).get(str(zone.id))) == "in" for st in states):
                    continue
                latest = states[0] if states else None
                ev = Raised(
                    "absence",
                    zone.person_id,
                    latest.device_id if latest else None,
                    now,
                    latest.lat if latest else None,
                    latest.lon if latest else None,
                    ZoneShape(zone.id, zone.kind, zone.person_id, zone.name),
                    {"expected_from": w.start.strftime("%H:%M")},
                )
                if raise_event(s, ev, dedupe=f"{zone.id}:{local.date().isoformat()}:{w.start:%H%M}"):
                    raised += 1
    return raised
