"""The sensing module's one surface for its routes, commands and other modules: sensors (assets of kind
`sensor`), readings in (validated, stored through the intake's transaction), rejections, series and roll-ups."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.context import context_of
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.sensing.intake import INTAKE, SENSORS, Batch, Outcome, Refusal, store_now, validate
from smartcity.sensing.models import Rejection
from smartcity.sensing.quantities import QUANTITIES, quantity_named
from smartcity.sensing.rollup import DAY, HOUR, RollupRun, district_daily_means, roll_up, series
from smartcity.sensing.sdot import RowDefect, read_export
from smartcity.sensing.sensors import import_sensor_list, sensors

__all__ = [
    "INTAKE",
    "QUANTITIES",
    "Batch",
    "Outcome",
    "ReadingsImport",
    "Refusal",
    "RollupRun",
    "district_daily_means",
    "import_readings",
    "import_sensors",
    "reading_series",
    "rejections",
    "roll_up",
    "sensors",
    "submit_readings",
    "validate",
]

RESOLUTIONS = {"raw": 0, "hour": HOUR, "day": DAY}


def import_sensors(db, data: bytes, *, actor="cli"):
    """The S-DoT sensor list into the registry (the assets import's report); the serials known at once."""
    with db.session() as s:
        report = import_sensor_list(s, data, actor=actor)
    SENSORS.drop(db)
    return report


@dataclass
class ReadingsImport:
    """An S-DoT export's import: rows read, readings stored/already stored, rows that could not be read and
    readings refused (each with its file line)."""

    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    defects: list[RowDefect] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.stored} readings stored, {self.duplicates} already stored, "
            f"{len(self.defects)} defects"
        )


def import_readings(db, data: bytes, *, actor="cli") -> ReadingsImport:
    """An S-DoT raw export's readings, in one transaction; refused readings recorded with their reasons."""
    parsed = read_export(data, context_of(db).profile.tz)
    batch = validate(db, parsed.readings, "import")
    outcome = store_now(db, batch)
    defects = list(parsed.defects) + [
        RowDefect(parsed.lines[r.index], f"{r.code}: {r.quantity} {r.detail}".strip()) for r in outcome.refused
    ]
    defects.sort(key=lambda d: d.line)
    with db.session() as s:
        audit.record(
            s, actor, "import", "sensing_readings", "sdot", {"stored": outcome.stored, "refused": len(outcome.refused)}
        )
    return ReadingsImport(parsed.rows, outcome.stored, outcome.duplicates, defects)


async def submit_readings(db, readings: list, channel: str, *, serial: str | None = None) -> Outcome:
    """Readings through the intake's queue: answered once stored (or refused and recorded). Validation runs
    beside the event loop: a batch of 50,000 readings takes about 0.6 s of Python (measured: 81,000/s)."""
    batch = await asyncio.to_thread(validate, db, readings, channel, serial=serial)
    return await context_of(db).slot(INTAKE).intake(batch)


def rejections(session: Session, limit: int = 100) -> list[dict]:
    """The latest refused readings, newest first."""
    rows = session.scalars(select(Rejection).order_by(Rejection.id.desc()).limit(limit))
    return [
        {
            "received_at": r.received_at.isoformat(),
            "channel": r.channel,
            "sensor": r.sensor,
            "quantity": r.quantity,
            "time": r.observed_at,
            "value": r.value,
            "code": r.code,
            "message": r.detail,
        }
        for r in rows
    ]


def reading_series(session: Session, serial: str, quantity: str, start: int, end: int, resolution: str) -> dict:
    """One sensor's quantity over [start, end) at a resolution: raw, hour or day."""
    q = quantity_named(quantity)
    if q is None:
        raise InvalidInput(f"unknown quantity {quantity!r}", code="unknown_quantity")
    if resolution not in RESOLUTIONS:
        raise InvalidInput("resolution must be raw, hour or day", code="invalid_resolution")
    sensor_id = context_of(session.info["db"]).slot(SENSORS).ids_of([serial])[0]
    if sensor_id is None:
        raise NotFound(f"no sensor {serial!r}", code="unknown_sensor")
    points = series(session, sensor_id, q.code, RESOLUTIONS[resolution], start, end)
    return {"sensor": serial, "quantity": q.name, "unit": q.unit, "resolution": resolution, "points": points}
