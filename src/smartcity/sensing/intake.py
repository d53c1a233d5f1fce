"""The sensors' feed on core's intake pipeline: readings decoded (HTTP batch, MQTT, S-DoT files) → validated →
one columnar batch → `BatchQueue` → one transaction (the readings through the batch store, keyed so a repeat is
stored once; the hours they touch marked for the roll-up; every refused reading with its reason) → answered.

A reading is a mapping {"sensor": serial, "quantity": "pm10", "time": epoch seconds or ISO 8601 with an
offset, "value": number}; over MQTT the serial comes from the topic. A reading that cannot be stored is never
dropped unseen: it becomes a row of `sensing_rejections` in the same transaction as the batch's accepted
readings, and the sender is told which and why (`Refusal`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import insert

from smartcity.core.batchstore import batch_store
from smartcity.core.context import Slot, context_of
from smartcity.core.intake import BatchQueue, Columns, Pending
from smartcity.core.params import iso_time
from smartcity.sensing.models import Rejection
from smartcity.sensing.quantities import BY_CODE, QUANTITIES, quantity_named
from smartcity.sensing.settings import SensingSettings

READING_KEY = ("sensor_id", "quantity", "observed_at")
HOUR = 3600
# Ranges indexed by a quantity's code (codes are small integers; index 0 is unused).
_LOW = np.full(max(q.code for q in QUANTITIES) + 1, np.nan)
_HIGH = _LOW.copy()
for _q in QUANTITIES:
    _LOW[_q.code], _HIGH[_q.code] = _q.low, _q.high


@dataclass
class Refusal:
    """A reading refused, with the reason's `code` (unknown_sensor, unknown_quantity, invalid_value,
    out_of_range, invalid_time, future, too_old, malformed) and a sentence saying what was wrong."""

    index: int
    code: str
    detail: str
    sensor: str = ""
    quantity: str = ""
    observed_at: int | None = None
    value: str = ""

    def as_dict(self) -> dict:
        return {"index": self.index, "code": self.code, "message": self.detail}


@dataclass
class Outcome:
    """What became of a batch of readings: how many stored, how many were already stored, and the refusals."""

    stored: int = 0
    duplicates: int = 0
    refused: list[Refusal] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.refused],
        }


@dataclass
class Batch:
    """Validated readings as columns, and the refused ones, from one channel: stored together or not at all."""

    channel: str
    columns: Columns
    refused: list[Refusal]


# --- the sensors known -----------------------------------------------------------------------------------


class SensorRegistry:
    """Serial → (sensor id, district) of the assets of kind `sensor`, in memory; read again when the assets
    change (the `assets.changed` event) or, at most every few seconds, when a batch names an unknown serial."""

    REFRESH_S = 5.0

    def __init__(self, db):
        self.db = db
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self.by_serial: dict[str, int] = {}
        self.load()

    def load(self) -> None:
        from smartcity.sensing.sensors import sensor_serials

        with self.db.session() as s:
            found = sensor_serials(s)
        with self._lock:
            self.by_serial, self._loaded_at = found, time.monotonic()

    def ids_of(self, serials: Iterable[str]) -> list[int | None]:
        serials = list(serials)
        known = self.by_serial
        if any(s not in known for s in serials) and time.monotonic() - self._loaded_at > self.REFRESH_S:
            self.load()
            known = self.by_serial
        return [known.get(s) for s in serials]


SENSORS: Slot[SensorRegistry] = Slot(
    "sensing.sensors", lambda context: SensorRegistry(context.db), invalidated_by="assets.changed"
)


def no_readings() -> Columns:
    """A batch's columns when none of its readings is valid (typed, so that batches concatenate)."""
    return Columns(
        {
            "sensor_id": np.zeros(0, np.int64),
            "quantity": np.zeros(0, np.int16),
            "observed_at": np.zeros(0, np.int64),
            "value": np.zeros(0, np.float64),
        },
        0,
    )


# --- validation ------------------------------------------------------------------------------------------


MAX_EPOCH = 2**40  # about the year 36,800: beyond it a time would not fit the store's integer


def _epoch(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if math.isfinite(value) and 0 <= value < MAX_EPOCH else None
    if isinstance(value, str):
        when = iso_time(value, tz=None)
        if when is None or when.tzinfo is None:
            return None
        return int(when.timestamp())
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def validate(
    db,
    readings: Sequence[Any],
    channel: str,
    *,
    serial: str | None = None,
    serial_each: Sequence[str] | None = None,
    now: float | None = None,
) -> Batch:
    """Readings as a `Batch`: each well-formed one into the columns, each other one refused with its reason.
    `serial`: the sensor of every reading; `serial_each`: each reading's sensor (MQTT's topics, so that a reading
    need not be copied to carry it); else each names its own `sensor`."""
    settings = context_of(db).settings_of(SensingSettings)
    now = time.time() if now is None else now
    latest = now + settings.future_tolerance_s
    earliest = now - settings.raw_retention_days * 86400
    refused: list[Refusal] = []
    ok: list[int] = []
    serials: list[str] = []
    codes: list[int] = []
    times: list[int] = []
    values: list[float] = []
    for i, item in enumerate(readings):
        if not isinstance(item, Mapping):
            refused.append(Refusal(i, "malformed", "a reading must be a JSON object", value=str(item)[:100]))
            continue
        sensor = serial if serial is not None else serial_each[i] if serial_each is not None else item.get("sensor")
        name, raw_time, raw_value = item.get("quantity"), item.get("time"), item.get("value")
        shown = {"sensor": str(sensor or "")[:100], "quantity": str(name or "")[:40], "value": str(raw_value)[:100]}
        if not isinstance(sensor, str) or not sensor.strip():
            refused.append(Refusal(i, "malformed", "a reading needs its sensor's serial", **shown))
            continue
        quantity = quantity_named(name)
        if quantity is None:
            names = ", ".join(q.name for q in QUANTITIES)
            refused.append(
                Refusal(i, "unknown_quantity", f"unknown quantity {name!r}; quantities are: {names}", **shown)
            )
            continue
        epoch = _epoch(raw_time)
        if epoch is None:
            detail = "time must be epoch seconds or ISO 8601 with an offset (e.g. 2026-05-01T09:30:00+09:00)"
            refused.append(Refusal(i, "invalid_time", detail, **shown))
            continue
        value = _number(raw_value)
        if value is None:
            refused.append(Refusal(i, "invalid_value", "value must be a finite number", observed_at=epoch, **shown))
            continue
        ok.append(i)
        serials.append(sensor.strip())
        codes.append(quantity.code)
        times.append(epoch)
        values.append(value)

    ids = context_of(db).slot(SENSORS).ids_of(serials) if serials else []
    sensor_id = np.array([-1 if x is None else x for x in ids], dtype=np.int64)
    quantity = np.array(codes, dtype=np.int16)
    observed = np.array(times, dtype=np.int64)
    value = np.array(values, dtype=np.float64)
    # One pass over the arrays per reason; a reading is refused for the first reason it meets.
    reasons = (
        (sensor_id < 0, "unknown_sensor", "no sensor with this serial is registered"),
        (observed > latest, "future", "the time is in the future"),
        (observed < earliest, "too_old", f"the time is older than the {settings.raw_retention_days} days kept"),
        ((value < _LOW[quantity]) | (value > _HIGH[quantity]), "out_of_range", "impossible value for {q}: {v}"),
    )
    bad = np.zeros(len(ok), dtype=bool)
    for mask, code, detail in reasons:
        for j in np.flatnonzero(mask & ~bad).tolist():
            q = BY_CODE[int(quantity[j])]
            refused.append(
                Refusal(
                    ok[j],
                    code,
                    detail.format(q=f"{q.name} ({q.low:g}–{q.high:g} {q.unit})", v=values[j]),
                    sensor=serials[j][:100],
                    quantity=q.name,
                    observed_at=times[j],
                    value=repr(values[j])[:100],
                )
            )
        bad |= mask
    keep = ~bad
    columns = Columns(
        {"sensor_id": sensor_id[keep], "quantity": quantity[keep], "observed_at": observed[keep], "value": value[keep]}
    )
    refused.sort(key=lambda r: r.index)
    return Batch(channel, columns, refused)


# --- storing ---------------------------------------------------------------------------------------------


def write(db, store, batches: Sequence[Batch]) -> list[Outcome]:
    """One transaction for the batches: new readings stored (a repeat found by its key), the hours they fall in
    marked for the roll-up, the refusals recorded. Nothing is kept unless all of it is."""
    parts = [b.columns for b in batches]
    columns = Columns.concat(parts) if parts else Columns({}, 0)
    outcomes = []
    with db.session() as s:
        conn = s.connection()
        store.prepare(conn)
        if columns.n:
            stored = store.insert_new(conn, "sensing_readings", columns.cols, READING_KEY)
            hours = np.unique(columns["observed_at"][stored] // HOUR * HOUR)
            if len(hours):
                store.insert_new(conn, "sensing_pending_hours", {"hour": hours}, ("hour",))
        else:
            stored = np.zeros(0, dtype=bool)
        rejections = [
            {
                "channel": b.channel,
                "sensor": r.sensor,
                "quantity": r.quantity,
                "observed_at": r.observed_at,
                "value": r.value,
                "code": r.code,
                "detail": r.detail,
            }
            for b in batches
            for r in b.refused
        ]
        if rejections:
            s.execute(insert(Rejection), rejections)
    at = 0
    for b in batches:
        mine = stored[at : at + b.columns.n]
        at += b.columns.n
        outcomes.append(Outcome(int(mine.sum()), int(b.columns.n - mine.sum()), b.refused))
    return outcomes


class SensingIntake:
    """The feed's writer: batches queued from HTTP and MQTT, written by one thread (`BatchQueue`), each caller
    answered once its batch has committed."""

    def __init__(self, db):
        self.db = db
        self.store = batch_store(db)
        size = context_of(db).settings_of(SensingSettings).batch_size
        self.queue = BatchQueue(self._write, batch_size=size, name="sensing")
        self.queue.start()

    def _write(self, pending: list[Pending]) -> list[tuple[Pending, Any]]:
        return list(zip(pending, write(self.db, self.store, [p.record for p in pending]), strict=True))

    def submit(self, batch: Batch) -> Future:
        item = Pending(batch, size=max(1, batch.columns.n))
        item.future = Future()
        self.queue.put([item])
        return item.future

    async def intake(self, batch: Batch) -> Outcome:
        return await asyncio.wrap_future(self.submit(batch))

    @property
    def queued(self) -> int:
        return self.queue.queued

    def stop(self) -> None:
        self.queue.stop()


INTAKE: Slot[SensingIntake] = Slot("sensing.intake", lambda context: SensingIntake(context.db))


def store_now(db, batch: Batch) -> Outcome:
    """Write a batch in the caller's thread (the CLI's imports), the same transaction the queue's writer runs."""
    return write(db, batch_store(db), [batch])[0]
