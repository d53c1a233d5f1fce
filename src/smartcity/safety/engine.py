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

The engine's parts: positions.py (Position, Ack, the errors, devices' credentials), admission.py (the
registry in memory, validation and queuing: `Admission`, a base of `SafetyEngine`), this file (lifecycle,
loading and recovery, the batch's transaction, checkpoints). Validation errors are raised at once, before
anything is queued (positions.py has their hierarchy).

Acknowledgment: only after the transaction holding the position has committed. A replayed position (same
device and fix time, to the millisecond) is acknowledged again with `duplicate=True` and no second row. A fix
older than the device's latest is stored but does not move the live state.

Several processes on one PostgreSQL: each batch locks its devices' state rows (SELECT … FOR UPDATE, in
device order) and compares their `version` with what this engine last wrote; a device another process moved
is re-read before its fixes are checked, so zone transitions happen exactly once. With the writers split by
device (SMARTCITY_SAFETY_WRITERS) every device has one writer and the versions always match.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import defaultdict

import numpy as np
from sqlalchemy import select

from smartcity.core.batchstore import WalCheckpointer, batch_store
from smartcity.core.context import Slot, context_of
from smartcity.core.geo import LocalPlane, geo_index
from smartcity.core.intake import (
    POSITION_SCHEMA,
    BatchQueue,
    Checkpointer,
    Columns,
    Overloaded,
)
from smartcity.core.staging import StagingMover, flush_staged
from smartcity.safety.admission import Admission
from smartcity.safety.batch_writer import BatchWriter, _state_row
from smartcity.safety.common import ENGINE, current_engine
from smartcity.safety.models import Device, DeviceState, GuardianLink, Incident, Person, Zone
from smartcity.safety.positions import (
    KNOT,
    Ack,
    BadCredentials,
    DeviceInfo,
    FutureFix,
    IntakeError,
    InvalidPosition,
    LiveView,
    NoConsent,
    Position,
    ProtocolNotAllowed,
    UnknownDevice,
    credential_key,
    field_error,
    knots_to_ms,
    new_device_secret,
    parse_protocols,
    verify_device_secret,
)
from smartcity.safety.rules import Raised, Rules, ZoneShape, parse_schedule, zone_shape
from smartcity.safety.settings import SafetySettings
from smartcity.safety.state import DeviceTable

# Re-exported: the modules and decoders import the feed's vocabulary from here.
__all__ = [
    "Ack",
    "BadCredentials",
    "DeviceInfo",
    "FutureFix",
    "IntakeError",
    "InvalidPosition",
    "KNOT",
    "LiveView",
    "NoConsent",
    "Overloaded",
    "Position",
    "ProtocolNotAllowed",
    "Raised",
    "UnknownDevice",
    "ZoneShape",
    "credential_key",
    "field_error",
    "knots_to_ms",
    "new_device_secret",
    "parse_protocols",
    "parse_schedule",
    "verify_device_secret",
    "zone_shape",
]

log = logging.getLogger(__name__)

CHECKPOINT_MOST = 500  # state rows per checkpoint round: a round between two batches stays short (an SOS waits)
_RECOVERY_COLUMNS = "device_id, person_id, fix_time, received_at, lat, lon, speed, accuracy, battery, alarm, valid"
# Recovery reads the staged positions too (a row mid-way through a mover's round may come twice: DeviceTable
# drops a repeated (device, fix time)). The staging table exists, empty, on PostgreSQL.
RECOVERED = (
    f"SELECT {_RECOVERY_COLUMNS} FROM safety_positions "
    f"UNION ALL SELECT {_RECOVERY_COLUMNS} FROM safety_positions_recent"
)


class SafetyEngine(Admission, BatchWriter):
    """The process's safety intake: registry and device states in memory, one writer committing batches."""

    def __init__(self, db, settings=None, profile=None, background_checkpoints: bool = False):
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
                chunk_ms=s.staging_chunk_ms,
                urgent=lambda: self.queue.urgent > 0,
            )
            if staging
            else None
        )
        # The writer's transactions and the mover's chunks take turns on this lock (SQLite has one writer at a
        # time): the writer waits for at most the chunk in hand and is woken the moment it commits.
        self._store_turn = self.mover.lock if self.mover is not None else contextlib.nullcontext()
        # A moved device's state row is written every SAFETY_STATE_CHECKPOINT_S (30 s) when no zone or flag change
        # writes it: readers take the newest stored position (registry._person_states) and a crash replays the
        # positions since the row, so the row only bounds that replay. Every second, it cost a row per position.
        # On PostgreSQL several serving processes may each hold a device and learn each other's state from the row
        # alone: at most a second there.
        every = min(s.state_checkpoint_s, 1.0) if db.is_postgres else s.state_checkpoint_s
        self.checkpoints = Checkpointer(self._checkpoint, every, most=CHECKPOINT_MOST)
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
        elif not self.queue.urgent and (self.db.is_postgres or not self.queue.queued):
            # A round of its own only when no batch is queued: otherwise the next batch writes it in its own
            # transaction (one commit, one state statement), and an alarm is written first.
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

    # --- reading memory ---------------------------------------------------------------------------

    def state_of(self, device_id: int) -> LiveView | None:
        with self._lock:
            slot = self.table.slots.get(device_id)
            return None if slot is None else LiveView.of(self.table.state_rows([slot])[0])


_engines_lock = threading.Lock()


def get_engine(db, settings=None, profile=None, start: bool = True):
    """The process's intake for `db` (made, loaded and started on first use): an IntakeSink."""
    context = context_of(db)
    engine = context.slots.get(ENGINE)
    if engine is None:
        with _engines_lock:
            engine = context.slots.get(ENGINE)
            if engine is None:
                settings = settings or context.settings
                safety = settings.of(SafetySettings)
                if safety.writer == "process":
                    from smartcity.safety.writer import WriterPool, WriterProcess

                    if safety.writers > 1:
                        engine = WriterPool(db, settings, profile, safety.writers)
                    else:
                        engine = WriterProcess(db, settings, profile)
                else:
                    engine = SafetyEngine(db, settings, profile)
                LISTENING.get(db)
                context.slots[ENGINE] = engine
    if start and not engine.running:
        engine.start()
    return engine


def _listen(context) -> bool:
    """One change handler per store, for whichever engine is current."""
    db = context.db
    db.events.on("safety.", lambda ev: (engine := current_engine(db)) and engine.handle(ev.topic, ev.data))
    return True


LISTENING: Slot = Slot("safety.listening", _listen)


def queued(db) -> int:
    """Positions accepted by the process's engine (or its writer process) and not yet stored."""
    engine = current_engine(db)
    return engine.queued if engine is not None else 0


def stop_engine(db) -> None:
    engine = context_of(db).slots.pop(ENGINE, None)
    if engine is not None:
        engine.stop()
