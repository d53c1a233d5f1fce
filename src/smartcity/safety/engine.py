"""The safety feed on the core intake pipeline (core/intake.py): positions validated without a database
read, stored in batches, and run through every device's state in memory (state.DeviceTable) a batch at a
time.

    engine = get_engine(db)                    # one per process and store, started on first use
    ack = await engine.intake(position)        # returns once the batch holding it is committed
    future = engine.submit(position)           # the same from a thread (MQTT): concurrent.futures.Future
    outcome = await engine.intake_columns(cols, errors)   # a decoded gateway batch, as columns

Every protocol decoder produces a `Position` (OsmAnd, OwnTracks, MQTT) or columns (the batch endpoint) and
hands it to this engine or to writer.py's `WriterProcess` (the same `IntakeSink`, running this engine in a
writer process). The pipeline for one batch (`_write_batch`, one transaction):

    positions and columns → Columns (core.intake.POSITION_SCHEMA) → district of each fix (vectorised)
      → batch store: the new rows (SQLite executemany, PostgreSQL COPY); a replay is a duplicate
      → DeviceTable.apply: every fix against its person's zones at once → BatchResult
      → state rows of the devices whose zone or flag state changed, events (alerts.raise_event), live events
      → commit → DeviceTable.commit → acknowledgments; the other moved devices' live state is checkpointed
        about every second (and at stop)

Validation errors are raised at once, before anything is queued:

    IntakeError (InvalidInput, 422)       base of the intake's own errors; code says which
    ├── InvalidPosition                    a value is out of range or malformed ("lat: must be …": the
    │                                      message and the details name the field)
    │   └── FutureFix                      the fix time is more than SMARTCITY_SAFETY_FUTURE_TOLERANCE_S ahead
    UnknownDevice (NotFound, 404)          no active device has this identifier
    BadCredentials (401)                   the device's secret is missing or wrong (OwnTracks over HTTP)
    ProtocolNotAllowed (PermissionDenied)  the device is not registered for the protocol it used
    NoConsent (PermissionDenied, 403)      the device's person has no recorded consent: nothing stored
    OutsideCity (core, 422)                only when SMARTCITY_SAFETY_OUTSIDE_CITY=refuse
    Overloaded (503)                       the write queue is full; the client should retry

Acknowledgment: only after the transaction holding the position has committed. A replayed position (same
device and fix time, to the millisecond) is acknowledged again with `duplicate=True` and no second row. A fix
older than the device's latest is stored but does not move the live state.

Several processes on one PostgreSQL: each batch locks its devices' state rows (SELECT … FOR UPDATE, in
device order) and compares their `version` with what this engine last wrote; a device another process moved
is re-read before its fixes are checked, so zone transitions happen exactly once. With the writers split by
device (SMARTCITY_SAFETY_WRITERS) every device has one writer and the versions always match.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from smartcity.core import audit
from smartcity.core.batchstore import WalCheckpointer, batch_store
from smartcity.core.errors import InvalidInput, NotFound, OutsideCity, PermissionDenied, SmartCityError
from smartcity.core.geo import LocalPlane, geo_index
from smartcity.core.intake import (
    DUPLICATE,
    POSITION_SCHEMA,
    STORED,
    BatchOutcome,
    BatchQueue,
    Checkpointer,
    Columns,
    Overloaded,
    Pending,
)
from smartcity.core.staging import StagingMover, flush_staged
from smartcity.safety.models import Device, DeviceState, GuardianLink, Incident, Person, Zone
from smartcity.safety.rules import Raised, Rules, ZoneShape, from_ms, parse_schedule, to_ms, zone_shape
from smartcity.safety.settings import SafetySettings
from smartcity.safety.state import DeviceTable

__all__ = ["Overloaded", "Raised", "ZoneShape", "parse_schedule", "zone_shape"]  # re-exported for the modules

log = logging.getLogger(__name__)

KNOT = 0.514444  # metres per second
REFUSAL_AUDIT_S = 1.0  # refused devices are written to the audit log at most this often (counted meanwhile)
CHECKPOINT_S = 1.0  # moved devices' live state is written at least this often
CHECKPOINT_MOST = 500  # state rows per checkpoint round: a round between two batches stays short (an SOS waits)
STATE_SET = ("version", "fix_time", "received_at", "lat", "lon", "speed", "accuracy", "battery", "district_code")
STATE_SET += ("zones", "flags")
INLINE_STATES = 64  # an idle writer writes up to this many moved devices' state rows with their batch
_RECOVERY_COLUMNS = "device_id, person_id, fix_time, received_at, lat, lon, speed, accuracy, battery, alarm, valid"
# Recovery reads the staged positions too (a row mid-way through a mover's round may come twice: DeviceTable
# drops a repeated (device, fix time)). The staging table exists, empty, on PostgreSQL.
RECOVERED = (
    f"SELECT {_RECOVERY_COLUMNS} FROM safety_positions "
    f"UNION ALL SELECT {_RECOVERY_COLUMNS} FROM safety_positions_recent"
)
# What a value may be (None/NaN: absent); lat and lon are checked on their own (they must be there).
RANGES = {
    "speed": (0, 1000),
    "bearing": (0, 360),
    "altitude": (-1000, 20000),
    "accuracy": (0, 1_000_000),
    "battery": (0, 100),
}
POSITION_COLUMNS = (
    "device_id",
    "person_id",
    "fix_time",
    "received_at",
    "lat",
    "lon",
    "speed",
    "bearing",
    "altitude",
    "accuracy",
    "battery",
    "alarm",
    "protocol",
    "outside_city",
    "attributes",
    "valid",
)
# A single position's row as it waits in the queue (a tuple: no object per field).
ROW = ("device_id", "person_id", "fix_time", "received_at", "lat", "lon", "speed", "bearing", "altitude")
ROW += ("accuracy", "battery", "valid", "alarm", "protocol", "attributes")


# --- what decoders produce ------------------------------------------------------------------------


@dataclass
class Position:
    """One fix as a protocol decoder hands it to the engine.

    `device` is the identifier the device sends. `fix_time` must be timezone-aware (UTC or any zone).
    Units: speed in metres per second (`knots_to_ms` for OsmAnd), bearing in degrees 0–360, altitude and
    accuracy in metres, battery in percent 0–100. `alarm` is lower-case ("sos", …). Any other key the
    protocol sent goes into `attributes` (kept as JSON)."""

    device: str
    fix_time: datetime
    lat: float
    lon: float
    speed: float | None = None
    bearing: float | None = None
    altitude: float | None = None
    accuracy: float | None = None
    battery: float | None = None
    alarm: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    protocol: str = ""
    valid: bool = True  # False: the device says the fix is not a real position (Traccar's `valid`)
    credential: str | None = None  # the secret the device presented (OwnTracks' Basic password); never stored


def knots_to_ms(knots: float) -> float:
    return knots * KNOT


@dataclass(frozen=True)
class Ack:
    """The answer to a submitted position, once it is durably stored (or was already). A stored position is
    identified by its device and fix time (to the millisecond, as stored)."""

    device_id: int
    fix_time: datetime
    duplicate: bool = False  # the same device and fix time was stored before: nothing new written
    live: bool = True  # it moved the live state (False: older than the latest fix, or a duplicate)
    events: tuple[str, ...] = ()  # event kinds it raised (arrival, departure, danger, sos, …)


# --- errors ---------------------------------------------------------------------------------------


class IntakeError(InvalidInput):
    code = "invalid_position"


class InvalidPosition(IntakeError):
    code = "invalid_position"


class FutureFix(InvalidPosition):
    code = "future_fix"


class UnknownDevice(NotFound):
    code = "unknown_device"


class NoConsent(PermissionDenied):
    code = "no_consent"


class BadCredentials(SmartCityError):
    status = 401
    code = "bad_credentials"


class ProtocolNotAllowed(PermissionDenied):
    code = "protocol_not_allowed"


def field_error(cls: type[IntakeError], problems: list[dict]) -> IntakeError:
    """An intake error whose message names each field at fault: "lat: must be a number between -90 and 90"."""
    return cls("; ".join(f"{p['field']}: {p['problem']}" for p in problems), details=problems)


# --- devices --------------------------------------------------------------------------------------

# What a device registers for, and which registration each position protocol needs. Positions of the
# platform's own authenticated channels (the gateway's API key, the simulator) are not tied to one protocol.
DEVICE_PROTOCOLS = ("osmand", "owntracks")
REGISTRATION_OF = {"osmand": "osmand", "owntracks": "owntracks", "mqtt": "owntracks"}
# Position protocols whose device proves itself with its secret (over MQTT the broker checks the client).
CREDENTIAL_PROTOCOLS = frozenset({"owntracks"})


def parse_protocols(text: str | None) -> frozenset[str]:
    """The protocols of a device's registration ("osmand", "osmand,owntracks", "any"); InvalidInput if unknown."""
    names = {n.strip().lower() for n in (text or "osmand").split(",") if n.strip()}
    if "any" in names:
        names = (names - {"any"}) | set(DEVICE_PROTOCOLS)
    if not names or not names <= set(DEVICE_PROTOCOLS):
        raise InvalidInput(f"protocols are a list of {', '.join(DEVICE_PROTOCOLS)} (or any)", code="invalid_protocol")
    return frozenset(names)


def credential_key(credential: str) -> bytes:
    """A fast keyed hash of a presented secret: what the registry remembers of a verified one (never the
    secret itself; the key is this process's, so the value means nothing elsewhere)."""
    return hashlib.blake2b(credential.encode("utf-8", "surrogatepass"), key=_CREDENTIAL_KEY, digest_size=16).digest()


_CREDENTIAL_KEY = secrets.token_bytes(32)
# Device secrets are generated by the platform (128 random bits), so the hash need not slow down guessing: light
# argon2 parameters keep the one verification per device and process to about a millisecond.
_device_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


def new_device_secret() -> tuple[str, str]:
    """A fresh device secret and its argon2 hash: (secret shown once, hash stored)."""
    secret = secrets.token_urlsafe(16)
    return secret, _device_hasher.hash(secret)


def verify_device_secret(secret_hash: str, secret: str) -> bool:
    try:
        return _device_hasher.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class DeviceInfo:
    device_id: int
    identifier: str
    person_id: int
    protocol: str
    consent: bool
    guardians: tuple[int, ...] = ()
    secret_hash: str | None = None
    protocols: frozenset[str] = frozenset()
    # credential_key() of presented secrets: verified against `secret_hash` once, and those that failed
    verified: set = field(default_factory=set)
    rejected: set = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.protocols:
            try:
                self.protocols = parse_protocols(self.protocol)
            except InvalidInput:
                self.protocols = frozenset({"osmand"})


class LiveView(NamedTuple):
    """A device's live state as the live events and `state_of` show it."""

    device_id: int
    person_id: int
    fix_time: datetime | None
    received_at: datetime | None
    lat: float | None
    lon: float | None
    speed: float | None
    accuracy: float | None
    battery: float | None
    district_code: str | None
    zones: dict
    flags: dict

    @classmethod
    def of(cls, row: dict) -> LiveView:
        times = [None if row[k] is None else from_ms(row[k]) for k in ("fix_time", "received_at")]
        return cls(row["device_id"], row["person_id"], *times, *(row[k] for k in cls._fields[4:]))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _plain(value: Any) -> Any:
    """A column's value as the per-position checks take it: NaN → None, numpy scalars → Python's."""
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value


class SafetyEngine:
    """The process's safety intake: registry and device states in memory, one writer committing batches."""

    def __init__(self, db, settings=None, profile=None, background_checkpoints: bool = False):
        from smartcity.core.context import context_of

        self.db = db
        self.settings = settings or context_of(db).settings
        self.profile = profile or context_of(db).profile
        self.plane = LocalPlane(self.profile.center)
        s = self.safety_settings = self.settings.of(SafetySettings)
        self.rules = Rules(s.confirm_fixes, s.hysteresis_m, s.accuracy_max_m)
        self.devices: dict[str, DeviceInfo] = {}
        self.by_id: dict[int, DeviceInfo] = {}
        self.person_zones: dict[int, list[ZoneShape]] = {}
        self.danger_zones: list[ZoneShape] = []
        self.table = DeviceTable(self.plane, self.rules, s.low_battery)
        self._state_rows: set[int] = set()  # devices known to have a row in safety_device_state
        self.open_incidents: dict[int, dict[str, int]] = defaultdict(dict)  # person → {kind: incident id}
        self.incident_district: dict[int, str | None] = {}  # incident id → district
        self._lock = threading.RLock()
        self.queue = BatchQueue(self._write_batch, s.batch_size, s.batch_ms / 1000, s.queue_max, "safety")
        self.queue.after_batch.append(self._between_batches)
        # SQLite writer process: new positions are appended to a staging table (sequential pages whatever the
        # history's depth) and a mover thread copies them into the keyed table a device's fixes at a time.
        staging = background_checkpoints and not db.is_postgres
        self.store = batch_store(db, background_checkpoints, staging=staging)
        self.mover = (
            StagingMover(
                db.engine.url.database,
                "safety_positions",
                threshold=lambda: 3 * max(len(self.by_id), 10_000),
                max_age=60.0,
            )
            if staging
            else None
        )
        self.checkpoints = Checkpointer(self._checkpoint, CHECKPOINT_S, most=CHECKPOINT_MOST)
        # SQLite: the WAL is copied back by a thread of its own rather than in the writer's commits (writer.py
        # turns it on in the writer process, whose connections do not checkpoint by themselves).
        self.wal = WalCheckpointer(db.engine.url.database) if background_checkpoints and not db.is_postgres else None
        self._unknown: dict[str, float] = {}  # negative cache of unknown identifiers
        self._refusals: dict[tuple[int, str, str], list] = {}  # (device, protocol, reason) → [count, first]
        self._refusals_due = 0.0
        self.loaded = False
        self._future_tolerance_ms = s.future_tolerance_s * 1000
        self._retention_ms = s.retention_days * 86_400_000
        # Who could receive live-position events, when the serving process says so (writer.py, SQLite):
        # (everything, guardian user ids, operators); None: publish them all.
        self.live_watch: tuple[bool, frozenset, bool] | None = None

    # --- lifecycle (the IntakeSink) ---------------------------------------------------------------

    def start(self, writer_thread: bool = True) -> SafetyEngine:
        """Load the registry and start writing. Without `writer_thread` the caller is the writer: it calls
        `write_queued()` itself (writer.py's process does, reading its socket in the same thread)."""
        with self._lock:
            if not self.loaded:
                self.reload()
            self.queue.start(writer_thread)
            if self.wal is not None:
                self.wal.start()
            if self.mover is not None:
                self.mover.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """Write what is queued and the checkpoint, then stop the writer."""
        self.queue.stop(timeout)
        if self.mover is not None:
            self.mover.stop()
            flush_staged(self.db.engine, "safety_positions")
        if self.wal is not None:
            self.wal.stop()

    @property
    def running(self) -> bool:
        return self.queue.running

    @property
    def queued(self) -> int:
        return self.queue.queued

    @property
    def batches(self) -> int:
        """Batches committed so far."""
        return self.queue.batches

    @property
    def on_resolved(self):
        return self.queue.on_resolved

    @on_resolved.setter
    def on_resolved(self, callback) -> None:
        """Outcomes of positions waited for in another process (writer.py): called with [(token, outcome)]
        once per batch, in the writer."""
        self.queue.on_resolved = callback

    def write_queued(self) -> bool:
        """Write one batch of what is queued (alarms first, alone); False when nothing was queued."""
        return self.queue.write_queued()

    def _between_batches(self, stopping: bool) -> None:
        if self._refusals:
            self._audit_refusals(force=stopping)
        if stopping:
            while self.checkpoints(force=True):
                pass
        elif not self.queue.urgent:  # an alarm is written first; the checkpoint can wait a batch
            self.checkpoints()
        if self.wal is not None and self.wal.restart_due:
            self.wal.restart(self.db.engine)

    # --- the registry in memory -------------------------------------------------------------------

    def reload(self) -> None:
        """Load devices, consents, zones, device states and open incidents from the store."""
        if self.mover is not None:
            # What a crashed writer left staged goes into the keyed table first: recovery reads it there, and
            # the staging table starts small.
            flush_staged(self.db.engine, "safety_positions")
        with self.db.session() as s, self._lock:
            guardians = defaultdict(list)
            for person_id, user_id in s.execute(
                select(GuardianLink.person_id, GuardianLink.user_id).where(
                    GuardianLink.consent_at.is_not(None), GuardianLink.revoked_at.is_(None)
                )
            ):
                guardians[person_id].append(user_id)
            self.devices.clear()
            self.by_id.clear()
            q = (
                select(Device.id, Device.identifier, Device.person_id, Device.protocol, Device.secret_hash)
                .join(Person, Person.id == Device.person_id)
                .where(Device.active, Person.active)
            )
            for dev_id, ident, person_id, protocol, secret_hash in s.execute(q):
                mine = tuple(guardians.get(person_id, ()))
                info = DeviceInfo(dev_id, ident, person_id, protocol, bool(mine), mine, secret_hash)
                self.devices[ident] = info
                self.by_id[dev_id] = info
            zones = [zone_shape(z, self.plane) for z in s.scalars(select(Zone).where(Zone.active))]
            self.danger_zones = [z for z in zones if z.kind == "danger"]
            self.person_zones = defaultdict(list)
            for z in zones:
                if z.kind != "danger" and z.person_id is not None:
                    self.person_zones[z.person_id].append(z)
            self._load_table(s, zones)
            self.open_incidents.clear()
            self.incident_district.clear()
            for inc in s.scalars(select(Incident).where(Incident.status != "resolved")):
                self.open_incidents[inc.person_id][inc.kind] = inc.id
                self.incident_district[inc.id] = inc.district_code
            self._unknown.clear()
            self.loaded = True

    def _load_table(self, s, zones: list[ZoneShape]) -> None:
        rows = [_state_row(r) for r in s.scalars(select(DeviceState))]
        districts = [d.code for d in geo_index(self.db).districts]
        table = DeviceTable(self.plane, self.rules, self.safety_settings.low_battery, districts)
        table.load(rows, zones)
        self.table = table
        self._state_rows = {r["device_id"] for r in rows}
        self._recover(s)

    def _recover(self, s) -> None:
        """After a crash: the positions stored after a device's state row was last written (its live state is
        checkpointed, not written with every batch) are replayed through the rules; what they raise goes
        through the events' dedupe, so what was already announced is not announced again."""
        from smartcity.safety import service

        found = (
            s.connection()
            .exec_driver_sql(
                "SELECT p.device_id, p.person_id, p.fix_time, p.received_at, p.lat, p.lon, p.speed, p.accuracy, "
                f"p.battery, p.alarm, p.valid FROM ({RECOVERED}) p JOIN safety_device_state d "
                "ON d.device_id = p.device_id WHERE p.fix_time > COALESCE(d.fix_time, -1)"
            )
            .all()
        )
        if not found:
            return
        names = ("device_id", "person_id", "fix_time", "received_at", "lat", "lon", "speed", "accuracy", "battery")
        values = list(zip(*found, strict=True))
        cols = Columns({name: np.array(v, dtype=POSITION_SCHEMA[name]) for name, v in zip(names, values, strict=False)})
        cols["valid"] = np.array(values[10], dtype=bool)
        cols["sos"] = np.array([a == "sos" for a in values[9]], dtype=bool)
        cols["stored"] = np.ones(cols.n, dtype=bool)
        self._place(cols)
        cols["slot"] = self.table.slots_of(cols["device_id"], cols["person_id"])
        result = self.table.recover(cols)
        for ev in result.events:
            service.raise_event(s, ev, dedupe=ev.dedupe_key())
        self._write_states(s, self.table.state_columns(np.union1d(result.changed, result.moved)))
        log.info("recovered %d positions of %d devices after an unclean stop", cols.n, len(result.moved))

    def reload_person(self, person_id: int) -> None:
        """Re-read one person's devices, consents and safe zones (after a registry change).

        Readers (`device_for`) do not take the lock: the new entries are put in place first and only the
        identifiers that are gone are removed, so a registered device is never briefly missing."""
        with self.db.session() as s, self._lock:
            active = s.scalar(select(Person.active).where(Person.id == person_id))
            guardians = tuple(
                s.scalars(
                    select(GuardianLink.user_id).where(
                        GuardianLink.person_id == person_id,
                        GuardianLink.consent_at.is_not(None),
                        GuardianLink.revoked_at.is_(None),
                    )
                )
            )
            fresh: dict[str, DeviceInfo] = {}
            if active:
                for dev_id, ident, protocol, secret_hash in s.execute(
                    select(Device.id, Device.identifier, Device.protocol, Device.secret_hash).where(
                        Device.person_id == person_id, Device.active
                    )
                ):
                    info = DeviceInfo(dev_id, ident, person_id, protocol, bool(guardians), guardians, secret_hash)
                    old = self.devices.get(ident)
                    if old is not None and old.secret_hash == secret_hash:
                        info.verified = old.verified  # the same secret: what was verified stays verified
                    fresh[ident] = info
            for ident, info in fresh.items():
                self.devices[ident] = info
                self.by_id[info.device_id] = info
                self._unknown.pop(ident, None)
            fresh_ids = {info.device_id for info in fresh.values()}
            for ident, info in [(i, d) for i, d in self.devices.items() if d.person_id == person_id]:
                if ident not in fresh:
                    self.devices.pop(ident, None)
                    if info.device_id not in fresh_ids:
                        self.by_id.pop(info.device_id, None)
            zones = [
                zone_shape(z, self.plane)
                for z in s.scalars(select(Zone).where(Zone.active, Zone.person_id == person_id, Zone.kind != "danger"))
            ]
            if zones:
                self.person_zones[person_id] = zones
            else:
                self.person_zones.pop(person_id, None)
            self.table.set_zones(person_id, zones)

    def reload_danger_zones(self) -> None:
        with self.db.session() as s, self._lock:
            self.danger_zones = [
                zone_shape(z, self.plane) for z in s.scalars(select(Zone).where(Zone.active, Zone.kind == "danger"))
            ]
            self.table.set_danger_zones(self.danger_zones)

    def handle(self, topic: str, data: dict) -> None:
        """React to a change event (from this process or, on PostgreSQL, any other)."""
        if topic.startswith("safety.incident."):
            incident_id, person_id, kind = data.get("id"), data.get("person_id"), data.get("kind")
            with self._lock:
                if data.get("status") == "resolved":
                    if self.open_incidents.get(person_id, {}).get(kind) == incident_id:
                        self.open_incidents[person_id].pop(kind, None)
                    self.incident_district.pop(incident_id, None)
                elif incident_id is not None:
                    self.open_incidents[person_id][kind] = incident_id
                    self.incident_district[incident_id] = data.get("district")
        elif topic == "safety.zones.changed":
            if data.get("person_id") is None:
                self.reload_danger_zones()
            else:
                self.reload_person(int(data["person_id"]))
        elif topic == "safety.registry.changed" and data.get("person_id") is not None:
            self.reload_person(int(data["person_id"]))

    # --- validation -------------------------------------------------------------------------------

    def device_for(self, identifier: str) -> DeviceInfo:
        info = self.devices.get(identifier)
        if info is None:
            # Registered since the last refresh (events from another process may lag): one look in the
            # store, remembered for a few seconds when the device really is unknown.
            now = time.monotonic()
            if self._unknown.get(identifier, 0) > now:
                raise UnknownDevice(f"no device {identifier!r} is registered")
            with self.db.session() as s:
                person_id = s.scalar(select(Device.person_id).where(Device.identifier == identifier))
            if person_id is not None:
                self.reload_person(person_id)
                info = self.devices.get(identifier)
            if info is None:
                if len(self._unknown) > 10_000:
                    self._unknown.clear()
                self._unknown[identifier] = now + 5
                raise UnknownDevice(f"no device {identifier!r} is registered")
        if not info.consent:
            raise NoConsent("no consent to track this person is recorded; the position was not stored")
        return info

    def validate(self, p: Position) -> Pending:
        """Check a position; raise an IntakeError (or UnknownDevice/NoConsent/OutsideCity) if it is refused.
        Returns it as the pipeline's pending row."""
        device = p.device
        if not isinstance(device, str) or not device.strip() or len(device) > 100:
            raise field_error(InvalidPosition, [{"field": "id", "problem": "missing or longer than 100 characters"}])
        lat, lon, fix_time = p.lat, p.lon, p.fix_time
        # The common case in one expression (floats in range, or absent); anything else is examined field by
        # field to say what is wrong (NaN and infinities fail every comparison).
        if not (
            lat.__class__ is float
            and -90 <= lat <= 90
            and lon.__class__ is float
            and -180 <= lon <= 180
            and (p.speed is None or (p.speed.__class__ is float and 0 <= p.speed <= 1000))
            and (p.bearing is None or (p.bearing.__class__ is float and 0 <= p.bearing <= 360))
            and (p.altitude is None or (p.altitude.__class__ is float and -1000 <= p.altitude <= 20000))
            and (p.accuracy is None or (p.accuracy.__class__ is float and 0 <= p.accuracy <= 1_000_000))
            and (p.battery is None or (p.battery.__class__ is float and 0 <= p.battery <= 100))
            and fix_time.__class__ is datetime
            and fix_time.tzinfo is not None
        ):
            problems = self._problems({k: getattr(p, k) for k in ("lat", "lon", *RANGES)})
            if not isinstance(fix_time, datetime) or fix_time.tzinfo is None:
                problems.append({"field": "timestamp", "problem": "a timezone-aware time is needed"})
            if problems:
                raise field_error(InvalidPosition, problems)
        now = _now_ms()
        at = to_ms(fix_time)
        if at > now + self._future_tolerance_ms:
            raise self._future_fix(fix_time)
        if at < now - self._retention_ms:
            raise field_error(
                InvalidPosition, [{"field": "timestamp", "problem": "older than the location retention period"}]
            )
        alarm = p.alarm
        if alarm is not None:
            alarm = str(alarm).strip().lower()[:30] or None
        info = self.device_for(device.strip())
        if p.protocol in REGISTRATION_OF or p.credential is not None:
            self._check_access(p.protocol, p.credential, info)
        valid = p.valid and not (lat == 0 and lon == 0)  # "no fix yet" as many trackers send it
        if valid and self.safety_settings.outside_city == "refuse" and geo_index(self.db).district_at(lat, lon) is None:
            raise OutsideCity(f"the point {lat:.6f}, {lon:.6f} is not inside the city")
        attributes = _json(p.attributes) if p.attributes else None
        row = (info.device_id, info.person_id, at, now, lat, lon, p.speed, p.bearing, p.altitude, p.accuracy)
        row += (p.battery, valid, alarm, p.protocol[:20], attributes)
        return Pending(row, urgent=alarm is not None)

    def _future_fix(self, fix_time: datetime) -> FutureFix:
        return field_error(
            FutureFix,
            [
                {
                    "field": "timestamp",
                    "problem": f"{fix_time.isoformat()} is more than "
                    f"{self.safety_settings.future_tolerance_s} s ahead of the server clock",
                }
            ],
        )

    @staticmethod
    def _problems(values: dict[str, Any]) -> list[dict]:
        """What is wrong with a position's numbers, field by field."""
        problems = []
        bounds = {"lat": (-90, 90), "lon": (-180, 180), **RANGES}
        for name, value in values.items():
            lo, hi = bounds[name]
            if value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                problems.append({"field": name, "problem": "must be a number"})
            elif not lo <= value <= hi:
                problems.append({"field": name, "problem": f"must be between {lo} and {hi}"})
        if values.get("lat") is None or values.get("lon") is None:
            problems.append({"field": "lat/lon", "problem": "a position needs both latitude and longitude"})
        return problems

    def _check_access(self, protocol: str, credential: str | None, info: DeviceInfo) -> None:
        """The device may use this protocol, and proves itself where the protocol carries a secret. A secret is
        verified against its argon2 hash once; later positions are matched by a fast keyed hash in memory."""
        registration = REGISTRATION_OF.get(protocol)
        if registration is not None and registration not in info.protocols:
            self._note_refusal(info, protocol, "protocol_not_allowed")
            raise ProtocolNotAllowed(
                f"the device {info.identifier!r} is not registered for {registration}",
                details=[{"field": "protocol", "problem": f"not registered for {registration}"}],
            )
        if protocol not in CREDENTIAL_PROTOCOLS:
            return
        if not credential:
            self._note_refusal(info, protocol, "missing_secret")
            raise BadCredentials(
                "the device's secret is missing (HTTP Basic password)",
                details=[{"field": "password", "problem": "missing"}],
            )
        key = credential_key(credential)
        if key in info.verified:
            return
        if info.secret_hash is None or key in info.rejected or not verify_device_secret(info.secret_hash, credential):
            if len(info.rejected) >= 64:
                info.rejected.clear()
            info.rejected.add(key)
            self._note_refusal(info, protocol, "bad_secret")
            raise BadCredentials(
                "the device's secret is wrong (HTTP Basic password)",
                details=[{"field": "password", "problem": "does not match the device's secret"}],
            )
        info.verified.add(key)

    def _note_refusal(self, info: DeviceInfo, protocol: str, reason: str) -> None:
        """Count a refused device for the audit log; the writer records the counts (`_audit_refusals`)."""
        with self._lock:
            entry = self._refusals.get((info.device_id, protocol, reason))
            if entry is None:
                self._refusals[(info.device_id, protocol, reason)] = [1, datetime.now(UTC)]
            else:
                entry[0] += 1

    def _audit_refusals(self, force: bool = False) -> None:
        """Record the refusals counted since the last time: one audit entry per device, protocol and reason
        and second at most, however fast a device is refused."""
        now = time.monotonic()
        if not self._refusals or (not force and now < self._refusals_due):
            return
        self._refusals_due = now + REFUSAL_AUDIT_S
        with self._lock:
            refusals, self._refusals = self._refusals, {}
        try:
            with self.db.session() as s:
                for (device_id, protocol, reason), (n, since) in refusals.items():
                    audit.record(
                        s,
                        "safety.intake",
                        "device_refused",
                        "safety_device",
                        device_id,
                        {"protocol": protocol, "reason": reason, "count": n, "since": since.isoformat()},
                    )
        except Exception:  # noqa: BLE001 - the intake goes on; the counts are tried again
            log.exception("recording refused devices in the audit log failed")
            with self._lock:
                for key, (n, since) in refusals.items():
                    entry = self._refusals.setdefault(key, [0, since])
                    entry[0] += n

    def validate_columns(self, cols: Columns, errors: dict[int, SmartCityError]) -> tuple[Columns, np.ndarray]:
        """Check a decoded batch (columns `device` identifiers, `fix_time` ms, lat, lon, the numbers, valid,
        alarm, attributes as JSON text, protocol) for the whole batch at once. Refused rows get the error
        `validate` would raise in `errors`. Returns the accepted rows as pipeline columns and their indexes."""
        n = cols.n
        ok = np.ones(n, dtype=np.bool_)
        if errors:
            ok[np.fromiter(errors, dtype=np.int64, count=len(errors))] = False
        lat, lon = cols["lat"], cols["lon"]
        with np.errstate(invalid="ignore"):
            fine = (lat >= -90) & (lat <= 90) & (lon >= -180) & (lon <= 180)
            for name, (lo, hi) in RANGES.items():
                values = cols[name]
                fine &= np.isnan(values) | ((lo <= values) & (values <= hi))
        for i in np.flatnonzero(ok & ~fine).tolist():
            problems = self._problems({k: _plain(cols[k][i]) for k in ("lat", "lon", *RANGES)})
            errors[i] = field_error(InvalidPosition, problems)
        ok &= fine
        now = _now_ms()
        fix_time = cols["fix_time"]
        ahead = ok & (fix_time > now + self._future_tolerance_ms)
        for i in np.flatnonzero(ahead).tolist():
            errors[i] = self._future_fix(from_ms(int(fix_time[i])))
        old = ok & (fix_time < now - self._retention_ms)
        for i in np.flatnonzero(old).tolist():
            errors[i] = field_error(
                InvalidPosition, [{"field": "timestamp", "problem": "older than the location retention period"}]
            )
        ok &= ~(ahead | old)
        device_id = np.zeros(n, dtype=np.int64)
        person_id = np.zeros(n, dtype=np.int64)
        devices, protocols, known = cols["device"], cols["protocol"], self.devices
        for i in np.flatnonzero(ok).tolist():
            info = known.get(devices[i])
            try:
                if info is None or not info.consent:
                    info = self.device_for(devices[i])
                if protocols[i] in REGISTRATION_OF:
                    self._check_access(protocols[i], None, info)
            except SmartCityError as exc:
                errors[i] = exc
                ok[i] = False
                continue
            device_id[i], person_id[i] = info.device_id, info.person_id
        alarm = cols["alarm"].copy()
        for i in np.flatnonzero(alarm != None).tolist():  # noqa: E711 - elementwise over an object array
            alarm[i] = str(alarm[i]).strip().lower()[:30] or None
        out = {name: cols[name] for name in ("fix_time", "lat", "lon", *RANGES, "attributes", "protocol")}
        out.update(
            device_id=device_id,
            person_id=person_id,
            valid=cols["valid"] & ~((lat == 0) & (lon == 0)),  # "no fix yet" as many trackers send it
            alarm=alarm,
            received_at=np.full(n, now, dtype=np.int64),
        )
        accepted, rows = Columns(out, n).take(ok), np.flatnonzero(ok)
        if self.safety_settings.outside_city == "refuse" and accepted.n:
            self._place(accepted)
            outside = accepted["outside_city"]
            for j in np.flatnonzero(outside).tolist():
                point = f"{accepted['lat'][j]:.6f}, {accepted['lon'][j]:.6f}"
                errors[int(rows[j])] = OutsideCity(f"the point {point} is not inside the city")
            accepted, rows = accepted.take(~outside), rows[~outside]
        return accepted, rows

    # --- submitting -------------------------------------------------------------------------------

    def _put(self, pending: Pending) -> None:
        if not self.running:
            self.start()
        self.queue.put([pending])

    def submit(self, position: Position) -> Future:
        """Validate and queue one position; the future's result is its `Ack` once it is committed."""
        if not self.running:
            self.start()
        item = self.validate(position)
        item.future = Future()
        self._put(item)
        return item.future

    def submit_many(self, positions: list[Position]) -> list[Future | SmartCityError]:
        """Queue several positions: each gets its own future, or the error that refused it."""
        out: list[Future | SmartCityError] = []
        for p in positions:
            try:
                out.append(self.submit(p))
            except SmartCityError as exc:
                out.append(exc)
        return out

    def queue_unit(self, positions: list, future, loop=None, token=None) -> None:
        """Validate `positions` (each a Position or already an error) and queue the valid ones as one unit;
        the unit's future gets every outcome, in order, once the last one is written."""
        if not self.running:
            self.start()
        results: list = list(positions)
        items = []
        for i, p in enumerate(positions):
            if isinstance(p, Position):
                try:
                    item = self.validate(p)
                except SmartCityError as exc:
                    results[i] = exc
                    continue
                item.index = i
                items.append(item)
        self.queue.unit(items, results, future, loop, token)

    def submit_all(self, positions: list) -> Future:
        """Queue a batch as one unit: a future of [Ack | SmartCityError | Exception], one per position (an
        element that is already an error, e.g. from decoding, is passed through)."""
        future: Future = Future()
        self.queue_unit(positions, future)
        return future

    async def intake_all(self, positions: list) -> list:
        """`submit_all`, awaited without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue_unit(positions, future, loop)
        return await future

    async def intake(self, position: Position) -> Ack:
        """Validate, queue and wait (without blocking the event loop) until the position is stored."""
        if not self.running:
            self.start()
        item = self.validate(position)
        item.waiter = asyncio.get_running_loop().create_future()
        self._put(item)
        return await item.waiter

    def intake_sync(self, position: Position, timeout: float = 10) -> Ack:
        return self.submit(position).result(timeout)

    def queue_columns(
        self, cols: Columns, errors: dict[int, SmartCityError], future=None, loop=None, token=None
    ) -> None:
        """Validate a decoded batch and queue what passes (its alarms ahead, on their own); `future` (or the
        `token`'s `on_resolved`) gets one BatchOutcome for every row once the last is written."""
        if not self.running:
            self.start()
        errors = dict(errors)
        outcome = BatchOutcome(np.zeros(cols.n, dtype=np.int8), errors)
        accepted, rows = self.validate_columns(cols, errors)
        alarms = accepted["alarm"] != None  # noqa: E711 - elementwise over an object array
        parts = [(accepted.take(alarms), rows[alarms], True), (accepted.take(~alarms), rows[~alarms], False)]
        items = []
        for part, where, urgent in parts:
            if part.n:
                item = Pending(part, urgent=urgent, size=part.n)
                item.index = len(items)
                items.append((item, where))
        if not items:
            self._answer(outcome, future, loop, token)
            return
        unit_results: list = [None] * len(items)

        def settle(results: list) -> None:
            for (_, where), part in zip(items, results, strict=True):
                if isinstance(part, BatchOutcome):
                    outcome.merge(where, part)
                else:  # refused whole (the queue was full)
                    outcome.merge(where, BatchOutcome.refused(len(where), part))
            self._answer(outcome, future, loop, token)

        self.queue.unit([item for item, _ in items], unit_results, _Callback(settle))

    def _answer(self, outcome: BatchOutcome, future, loop, token) -> None:
        if token is not None:
            self.queue.on_resolved([(token, outcome)])
        elif loop is not None:
            loop.call_soon_threadsafe(_set_result, future, outcome)
        elif future is not None and not future.done():
            future.set_result(outcome)

    def submit_columns(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> Future:
        future: Future = Future()
        self.queue_columns(cols, errors or {}, future)
        return future

    async def intake_columns(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> BatchOutcome:
        """A decoded batch as columns (the gateway endpoint's fast path): one BatchOutcome, row by row."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue_columns(cols, errors or {}, future, loop)
        return await future

    # --- the writer: one batch, one transaction ---------------------------------------------------

    def _columns_of(self, batch: list[Pending]) -> tuple[Columns, list[tuple[Pending, int, int]]]:
        """The batch as one Columns, in queue order, and each pending's rows in it (start, count)."""
        parts: list[Columns] = []
        spans = []
        at = 0
        singles: list[Pending] = []

        def flush() -> None:
            nonlocal at
            if singles:
                parts.append(_rows_to_columns([p.record for p in singles]))
                for p in singles:
                    spans.append((p, at, 1))
                    at += 1
                singles.clear()

        for item in batch:
            if isinstance(item.record, Columns):
                flush()
                parts.append(item.record)
                spans.append((item, at, item.record.n))
                at += item.record.n
            else:
                singles.append(item)
        flush()
        return Columns.concat(parts), spans

    def _place(self, cols: Columns) -> None:
        """Each fix's district (index in the geo index's list, -1 none) and whether it is outside the city
        (a fix that is not a position is neither)."""
        district = geo_index(self.db).district_indexes(cols["lat"], cols["lon"])
        valid = cols["valid"]
        cols["district"] = np.where(valid, district, -1).astype(np.int32)
        cols["outside_city"] = valid & (district < 0)

    def _write_batch(self, batch: list[Pending]) -> list[tuple[Pending, Any]]:
        from smartcity.safety import service

        cols, spans = self._columns_of(batch)
        self._place(cols)
        cols["sos"] = cols["alarm"] == "sos"
        opened: list = []
        with self.db.session() as s, self._lock:
            conn = s.connection()
            self.store.prepare(conn)
            table = self.table
            cols["slot"] = table.slots_of(cols["device_id"], cols["person_id"])
            if self.db.is_postgres:
                self._refresh_stale(s, cols)
            # A fix newer than its device's latest cannot be a replay (unless repeated in the batch): a batch of
            # such fixes is written without asking the store which keys it already has.
            last = table.last_fix(cols["slot"])
            # Per row: only those not newer than their device's latest are looked up. A fix repeated within
            # the batch is caught by the staging table's key, or by a checked insert without staging.
            maybe_present: np.ndarray | bool = cols["fix_time"] <= last
            if self.mover is None and _repeats(cols):
                maybe_present = True
            cols["stored"] = self.store.insert_new(
                conn,
                "safety_positions",
                {name: cols[name] for name in POSITION_COLUMNS},
                ("device_id", "fix_time"),
                maybe_present=maybe_present,
            )
            result = table.apply(cols)
            written = result.changed
            if len(result.moved) <= INLINE_STATES and not self.queue.queued:
                # An idle writer with a small batch writes the moved devices' state with it: readers of the
                # state rows (the guardian's view) see a position as soon as it is acknowledged. Under load
                # they are checkpointed.
                written = np.union1d(result.changed, result.moved)
            if len(written):
                self._write_states(s, result.state_columns(written))
            cooldown = self.safety_settings.alert_cooldown_minutes
            for ev in result.events:
                service.raise_event(s, ev, dedupe=ev.dedupe_key(), cooldown_minutes=cooldown)
            opened = s.info.pop("safety.opened_incidents", [])
            if self.safety_settings.live_positions and len(result.moved):
                self._publish_live(s, result)
            s.commit()
            table.commit(result)
        self.checkpoints.forget(written.tolist())
        self.checkpoints.mark(np.setdiff1d(result.moved, written).tolist())
        with self._lock:
            for inc in opened:
                self.open_incidents[inc["person_id"]][inc["kind"]] = inc["id"]
                self.incident_district[inc["id"]] = inc["district"]
        return self._outcomes(cols, spans, result)

    def _outcomes(self, cols: Columns, spans: list, result) -> list[tuple[Pending, Any]]:
        status = np.where(cols["stored"], STORED, DUPLICATE).astype(np.int8)
        kinds: dict[int, list[str]] = {}
        for ev in result.events:
            kinds.setdefault(ev.row, []).append(ev.kind)
        out = []
        for item, start, n in spans:
            if isinstance(item.record, Columns):
                out.append((item, BatchOutcome(status[start : start + n])))
                continue
            stored = status[start] == STORED
            out.append(
                (
                    item,
                    Ack(
                        int(cols["device_id"][start]),
                        from_ms(int(cols["fix_time"][start])),
                        duplicate=not stored,
                        live=bool(result.live[start]),
                        events=tuple(kinds.get(start, ())),
                    ),
                )
            )
        return out

    def _write_states(self, s, cols: dict[str, list]) -> None:
        """UPDATE device state rows from columns (DeviceTable.state_columns: zones and flags as JSON text) with one
        executemany; a device without a row (registered before states were kept) gets one first."""
        ids = cols["device_id"]
        if not ids:
            return
        missing = [i for i, d in enumerate(ids) if d not in self._state_rows]
        if missing:
            have = set(
                s.scalars(select(DeviceState.device_id).where(DeviceState.device_id.in_([ids[i] for i in missing])))
            )
            for i in missing:
                if ids[i] not in have:
                    s.add(DeviceState(device_id=ids[i], person_id=cols["person_id"][i]))
            s.flush()
            self._state_rows.update(ids[i] for i in missing)
        mark = "%s" if self.db.is_postgres else "?"
        sql = f"UPDATE safety_device_state SET {', '.join(f'{c} = {mark}' for c in STATE_SET)} WHERE device_id = {mark}"
        s.connection().exec_driver_sql(sql, list(zip(*(cols[c] for c in STATE_SET), ids, strict=True)))

    def _refresh_stale(self, s, cols: Columns) -> None:
        """PostgreSQL: lock the batch's state rows (in device order) and re-read those another process wrote
        since this engine last did."""
        ids, first = np.unique(cols["device_id"], return_index=True)
        mine = dict(zip(ids.tolist(), self.table.version_of(cols["slot"][first]).tolist(), strict=True))
        found = s.connection().exec_driver_sql(
            "SELECT device_id, version FROM safety_device_state WHERE device_id = ANY(%s) ORDER BY device_id "
            "FOR UPDATE",
            (ids.tolist(),),
        )
        stale = [d for d, v in found if mine[d] != v]
        if stale:
            rows = s.scalars(select(DeviceState).where(DeviceState.device_id.in_(stale)))
            self.table.load_states([_state_row(r) for r in rows])

    def _checkpoint(self, slots: np.ndarray) -> None:
        """Write the live state of devices that moved without a zone or flag change (see CHECKPOINT_S)."""
        with self._lock:
            cols = self.table.state_columns(slots)
        with self.db.session() as s:
            self._write_states(s, cols)

    def _publish_live(self, s, result) -> None:
        """Each moved device's newest position as a live event, unless nobody listening could see it."""
        from smartcity.safety import service

        watch = self.live_watch
        if watch is not None and watch[0]:
            watch = None
        if watch is not None and not watch[1] and not (watch[2] and self.incident_district):
            return  # nobody listens here
        local = np.searchsorted(result.slots, result.moved)
        dev = result.devices
        for i in local.tolist():
            device = self.by_id.get(int(dev["device_id"][i]))
            person_id = int(dev["person_id"][i])
            districts = [self.incident_district.get(k) for k in self.open_incidents.get(person_id, {}).values()]
            if watch is not None and not (
                (device and not watch[1].isdisjoint(device.guardians)) or (watch[2] and districts)
            ):
                continue  # nobody listening could see it
            values = [_plain(dev[k][i]) for k in ("lat", "lon", "speed", "accuracy", "battery")]
            live = LiveView(
                int(dev["device_id"][i]), person_id, from_ms(int(dev["fix_time"][i])), None, *values, None, {}, {}
            )
            service.publish_live(s, live, device, districts)

    # --- reading memory ---------------------------------------------------------------------------

    def state_of(self, device_id: int) -> LiveView | None:
        with self._lock:
            slot = self.table.slots.get(device_id)
            return None if slot is None else LiveView.of(self.table.state_rows([slot])[0])


class _Callback:
    """A future-like target for a unit: calls `fn` with the unit's results."""

    def __init__(self, fn):
        self.fn = fn

    def done(self) -> bool:
        return False

    def set_result(self, value) -> None:
        self.fn(value)


def _set_result(future, value) -> None:
    if not future.done():
        future.set_result(value)


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _state_row(row: DeviceState) -> dict:
    """A safety_device_state row as DeviceTable.load takes it (times in ms)."""
    return {
        "device_id": row.device_id,
        "person_id": row.person_id,
        "version": row.version,
        "fix_time": None if row.fix_time is None else to_ms(row.fix_time),
        "received_at": None if row.received_at is None else to_ms(row.received_at),
        "lat": row.lat,
        "lon": row.lon,
        "speed": row.speed,
        "accuracy": row.accuracy,
        "battery": row.battery,
        "district_code": row.district_code,
        "zones": row.zones or {},
        "flags": row.flags or {},
    }


def _rows_to_columns(rows: list[tuple]) -> Columns:
    """Queued single positions (ROW tuples) as columns."""
    values = list(zip(*rows, strict=True))
    cols = {}
    for name, column in zip(ROW, values, strict=True):
        dtype = POSITION_SCHEMA[name]
        cols[name] = np.array(column, dtype=dtype) if dtype is not object else _objects(column)
    return Columns(cols, len(rows))


def _objects(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _repeats(cols: Columns) -> bool:
    """Whether some device sends the same fix time twice in the batch."""
    key = cols["device_id"].astype(np.int64) * 1_000_003 + cols["fix_time"]
    return len(np.unique(key)) < cols.n


_engines_lock = threading.Lock()


def get_engine(db, settings=None, profile=None, start: bool = True):
    """The process's intake for `db` (made, loaded and started on first use): an IntakeSink."""
    engine = db.cache.get("safety.engine")
    if engine is None:
        with _engines_lock:
            engine = db.cache.get("safety.engine")
            if engine is None:
                from smartcity.core.context import context_of

                settings = settings or context_of(db).settings
                safety = settings.of(SafetySettings)
                if safety.writer == "process":
                    from smartcity.safety.writer import WriterPool, WriterProcess

                    writers = getattr(safety, "writers", 1)
                    if writers > 1:
                        engine = WriterPool(db, settings, profile, writers)
                    else:
                        engine = WriterProcess(db, settings, profile)
                else:
                    engine = SafetyEngine(db, settings, profile)
                if not db.cache.get("safety.listening"):  # one handler per store, for whichever engine is current
                    db.events.on("safety.", lambda ev: _current(db) and _current(db).handle(ev.topic, ev.data))
                    db.cache["safety.listening"] = True
                db.cache["safety.engine"] = engine
    if start and not engine.running:
        engine.start()
    return engine


def _current(db):
    return db.cache.get("safety.engine")


def queued(db) -> int:
    """Positions accepted by the process's engine (or its writer process) and not yet stored."""
    engine = _current(db)
    return engine.queued if engine is not None else 0


def stop_engine(db) -> None:
    engine = db.cache.pop("safety.engine", None)
    if engine is not None:
        engine.stop()
