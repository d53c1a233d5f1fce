"""The intake hot path: validate a position, store it in a batch, move the device's live state, and check
the person's zones — with no database read per position.

    engine = get_engine(db)                 # one per process and store, started on first use
    ack = await engine.intake(position)     # returns once the batch holding it is committed
    future = engine.submit(position)        # the same from a thread (MQTT): concurrent.futures.Future

Every protocol decoder (OsmAnd, OwnTracks, MQTT, the batch endpoint) produces a `Position` and hands it
to `submit`/`intake`/`submit_all` (or to writer.py's `WriterProcess`, which has the same intake API and runs
this engine in a writer process). Validation errors are raised at once, before anything is queued:

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

Acknowledgment: the future resolves with an `Ack` only after the transaction holding the position has
committed. A replayed position (same device and fix time) is acknowledged again with `duplicate=True`
and no second row. A fix older than the device's latest is stored but does not move the live state.

Several processes on one PostgreSQL: at each batch commit the writer locks the batch's device-state rows
(SELECT … FOR UPDATE, in device order) and compares their `version` with its memory; a row another
process moved is re-read before the zones are checked, so zone transitions (and their events) happen
exactly once, whichever process receives each fix. On SQLite (one serving process, so one writer) memory is
trusted and no version is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import secrets
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import orjson
import shapely
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from shapely.geometry import Point, shape
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from smartcity.core import audit
from smartcity.core.db import to_millis
from smartcity.core.errors import InvalidInput, NotFound, OutsideCity, PermissionDenied, SmartCityError
from smartcity.core.geo import LocalPlane, geo_index
from smartcity.safety.models import Device, DeviceState, GuardianLink, Incident, Person, Zone
from smartcity.safety.settings import SafetySettings

log = logging.getLogger(__name__)

KNOT = 0.514444  # metres per second
SQLITE_CACHE_KIB = 128 * 1024  # the intake writer's SQLite page cache
SQLITE_CHECKPOINT_PAGES = 4096  # the intake writer's WAL size (pages) that triggers a checkpoint
WAL_RESET_FRAMES = 16_384  # with background checkpoints: the WAL size (frames, ~64 MB) at which it is restarted
REFUSAL_AUDIT_S = 1.0  # refused devices are written to the audit log at most this often (counted meanwhile)


# --- what decoders produce ------------------------------------------------------------------------


@dataclass
class Position:
    """One fix as a protocol decoder hands it to the engine.

    `device` is the identifier the device sends. `fix_time` must be timezone-aware (UTC or any zone).
    Units: speed in metres per second (`knots_to_ms` for OsmAnd), bearing in degrees 0–360, altitude and
    accuracy in metres, battery in percent 0–100. `alarm` is lower-case ("sos", …). Any other key the
    protocol sent goes into `attributes` (kept as JSON). `received_at` is set by the engine."""

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
    received_at: datetime | None = None


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


class Overloaded(SmartCityError):
    status = 503
    code = "overloaded"


# --- geometry on a metric plane -------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # Monday = 0
    start: dtime
    end: dtime

    def contains(self, local: datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.time() < self.end


def parse_schedule(raw: Any) -> list[Window]:
    """[{"days": [0,1,2,3,4], "start": "08:30", "end": "15:00"}, …] → windows, or InvalidInput."""
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        raise InvalidInput("a schedule is a list of {days, start, end}", code="invalid_schedule")
    windows = []
    for i, item in enumerate(raw):
        try:
            days = frozenset(int(d) for d in item["days"])
            start, end = dtime.fromisoformat(item["start"]), dtime.fromisoformat(item["end"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(
                f"schedule window {i}: needs days (0=Monday…6) and start/end as HH:MM", code="invalid_schedule"
            ) from None
        if not days or not days <= set(range(7)) or not start < end:
            raise InvalidInput(
                f"schedule window {i}: days are 0–6 and start must be before end", code="invalid_schedule"
            )
        windows.append(Window(days, start, end))
    return windows


@dataclass
class ZoneShape:
    """A zone as the engine checks it: on the metric plane, with its size for the accuracy rule."""

    id: int
    kind: str  # safe | danger
    person_id: int | None
    name: str
    cx: float = 0.0
    cy: float = 0.0
    radius: float | None = None  # circles
    polygon: Any = None  # shapely geometry on the plane (polygons)
    size: float = 0.0  # radius, or the radius of a circle of the polygon's area
    schedule: list[Window] = field(default_factory=list)
    boundary: Any = None  # the polygon's rings, for distances
    key: str = ""  # str(id): the key of its state in a device's zone states

    def distance(self, x: float, y: float) -> float:
        """Signed distance in metres to the boundary: negative inside."""
        if self.radius is not None:
            return math.hypot(x - self.cx, y - self.cy) - self.radius
        p = Point(x, y)
        d = self.boundary.distance(p)
        return -d if shapely.contains_xy(self.polygon, x, y) else d


def zone_shape(zone: Zone, plane: LocalPlane) -> ZoneShape:
    z = ZoneShape(
        zone.id, zone.kind, zone.person_id, zone.name, schedule=parse_schedule(zone.schedule), key=str(zone.id)
    )
    if zone.radius_m is not None:
        z.cx, z.cy = plane.xy(zone.lat, zone.lon)
        z.radius = float(zone.radius_m)
        z.size = z.radius
    else:
        geom = plane.geometry(shape(json.loads(zone.geometry)))
        shapely.prepare(geom)
        z.polygon = geom
        z.boundary = geom.boundary
        z.size = math.sqrt(geom.area / math.pi)
    return z


# --- the anti-drift zone rule ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """How fixes become zone transitions (see docs/safety-service.md, "GPS drift")."""

    confirm_fixes: int = 2  # consecutive fixes that must agree before a transition counts
    hysteresis_m: float = 30.0  # exit only beyond the boundary plus this margin (or 20 % of the size)
    accuracy_max_m: float = 150.0  # fixes less precise than this never change a zone state
    default_accuracy_m: float = 20.0  # assumed when a device does not say

    def margin(self, zone: ZoneShape) -> float:
        return max(self.hysteresis_m, 0.2 * zone.size)


def classify(zone: ZoneShape, x: float, y: float, accuracy: float | None, rules: Rules) -> str | None:
    """What one fix says about a zone: "in", "out", or None (too imprecise, or inside the hysteresis band)."""
    acc = rules.default_accuracy_m if accuracy is None else accuracy
    if acc > rules.accuracy_max_m or acc > max(zone.size, rules.hysteresis_m) * 2:
        return None
    d = zone.distance(x, y)
    if d <= 0 and acc <= max(zone.size, rules.hysteresis_m):
        return "in"
    if d - acc > rules.margin(zone):
        return "out"
    return None


def step_zone(
    state: dict | None, verdict: str | None, at: datetime, rules: Rules
) -> tuple[dict, tuple[str | None, str] | None]:
    """Advance one zone's state with one fix's verdict; returns (new state, transition or None), a
    transition being (previous confirmed state — None the first time —, new state).

    State: {"s": confirmed "in"/"out"/None, "c": candidate, "n": fixes agreeing, "t": first of them}.
    A transition happens when `confirm_fixes` consecutive usable fixes agree on a state other than the
    confirmed one; a fix saying nothing (None) neither confirms nor breaks a run."""
    if state is not None and (
        verdict is None or (verdict == state["s"] and state["c"] is None and state["n"] == 0 and state["t"] is None)
    ):
        return state, None  # nothing changes: states are replaced, never changed in place, so share it
    st = dict(state or {"s": None, "c": None, "n": 0, "t": None})
    if verdict is None:
        return st, None
    if verdict == st["s"]:
        st.update(c=None, n=0, t=None)
        return st, None
    if verdict == st["c"]:
        st["n"] += 1
    else:
        st.update(c=verdict, n=1, t=at.isoformat())
    if st["n"] >= rules.confirm_fixes:
        previous = st["s"]
        st.update(s=verdict, c=None, n=0)
        return st, (previous, verdict)
    return st, None


# --- in-memory state ------------------------------------------------------------------------------


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


@dataclass
class LiveState:
    device_id: int
    person_id: int
    version: int = 0
    fix_time: datetime | None = None
    received_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    speed: float | None = None
    accuracy: float | None = None
    battery: float | None = None
    district_code: str | None = None
    zones: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    stored_times: tuple | None = None  # (fix_time, received_at) in epoch ms as the batch stored them (not a column)

    COLUMNS = (
        "device_id",
        "person_id",
        "version",
        "fix_time",
        "received_at",
        "lat",
        "lon",
        "speed",
        "accuracy",
        "battery",
        "district_code",
        "zones",
        "flags",
    )

    @classmethod
    def from_row(cls, row) -> LiveState:
        values = {c: getattr(row, c) for c in cls.COLUMNS}
        values["zones"] = dict(values["zones"] or {})
        values["flags"] = dict(values["flags"] or {})
        return cls(**values)

    def row(self) -> dict:
        return {c: getattr(self, c) for c in self.COLUMNS}

    def copy(self) -> LiveState:
        # Zone states are replaced, never changed in place (step_zone returns a new dict): a shallow
        # copy of the two mappings is a full copy.
        new = object.__new__(LiveState)
        values = new.__dict__
        values.update(self.__dict__)
        values["zones"], values["flags"] = dict(self.zones), dict(self.flags)
        return new


@dataclass
class Raised:
    """An event the batch raises; turned into rows, notifications and incidents by service.raise_event."""

    kind: str
    person_id: int
    device_id: int
    at: datetime
    lat: float | None
    lon: float | None
    zone: ZoneShape | None = None
    data: dict = field(default_factory=dict)
    district_code: str | None = None


class _Item:
    """A validated position waiting for the writer, and whoever waits for its acknowledgment: a thread's
    `future`, an event loop's `waiter` (resolved for a whole batch with one call into the loop), or a
    `unit` of many positions (a gateway's batch) resolved at once when its last position is written."""

    __slots__ = (
        "position",
        "device",
        "future",
        "waiter",
        "unit",
        "index",
        "outside_city",
        "district_code",
        "token",
        "stored_times",
    )

    def __init__(self, position: Position, device: DeviceInfo):
        self.position, self.device = position, device
        self.token: int | None = None  # waited for in another process (writer.py): outcomes go to on_resolved
        self.future: Future | None = None
        self.waiter: asyncio.Future | None = None
        self.unit: _Unit | None = None
        self.index = 0
        self.outside_city = False
        self.district_code: str | None = None
        self.stored_times: tuple | None = None  # (fix_time, received_at) in epoch ms as written, for the state row


class _Unit:
    """Positions submitted together: one future for all their outcomes, in order."""

    __slots__ = ("results", "remaining", "future", "loop", "token")

    def __init__(self, results: list, remaining: int, future, loop=None, token=None):
        self.results, self.remaining, self.future, self.loop = results, remaining, future, loop
        self.token = token


def _settle_waiters(outcomes: list) -> None:
    """In the event loop: hand a batch's outcomes to the coroutines awaiting them."""
    for waiter, outcome in outcomes:
        if not waiter.done():
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)


def _settle_future(future, value) -> None:
    if not future.done():
        future.set_result(value)


class SafetyEngine:
    """The process's intake: registry and zones in memory, one writer thread committing batches."""

    def __init__(self, db, settings=None, profile=None, background_checkpoints: bool = False):
        from smartcity.core.context import context_of

        self.db = db
        self.settings = settings or context_of(db).settings
        self.profile = profile or context_of(db).profile
        self.plane = LocalPlane(self.profile.center)
        s = self.safety_settings = self.settings.of(SafetySettings)
        self.rules = Rules(s.confirm_fixes, s.hysteresis_m, s.accuracy_max_m)
        self.batch_size = s.batch_size
        self.linger = s.batch_ms / 1000
        self.devices: dict[str, DeviceInfo] = {}
        self.by_id: dict[int, DeviceInfo] = {}
        self.person_zones: dict[int, list[ZoneShape]] = defaultdict(list)
        self.danger_zones: list[ZoneShape] = []
        self.states: dict[int, LiveState] = {}
        self.open_incidents: dict[int, dict[str, int]] = defaultdict(dict)  # person → {kind: incident id}
        self.incident_district: dict[int, str | None] = {}  # incident id → district
        self._lock = threading.RLock()
        self.queue_max = s.queue_max
        self._queue: deque[_Item] = deque()  # positions, oldest first
        self._urgent: deque[_Item] = deque()  # alarms: written before anything queued
        self._wake = threading.Event()  # something was queued
        self._hurry = threading.Event()  # an alarm was queued: do not linger
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._external_writer = False  # start(writer_thread=False): the caller writes
        self._unknown: dict[str, float] = {}  # negative cache of unknown identifiers
        self._refusals: dict[tuple[int, str, str], list] = {}  # (device, protocol, reason) → [count, first]
        self._refusals_due = 0.0
        self.batches = 0
        self.loaded = False
        self._sql_cache: dict[int, str] = {}
        self._last_write = 0.0
        self._future_tolerance = timedelta(seconds=s.future_tolerance_s)
        self._retention = timedelta(days=s.retention_days)
        # Outcomes of positions waited for in another process (writer.py): called with [(token, outcome)]
        # once per batch, in the writer thread.
        self.on_resolved = None
        # Who could receive live-position events, when the serving process says so (writer.py, SQLite):
        # (everything, guardian user ids, operators); None: publish them all.
        self.live_watch: tuple[bool, frozenset, bool] | None = None
        # SQLite: checkpoint the WAL from a thread of its own rather than in the writer's commits (writer.py
        # turns it on in the writer process, whose connections do not checkpoint by themselves).
        self.background_checkpoints = background_checkpoints and not db.is_postgres
        self._checkpointer: threading.Thread | None = None
        self._wal_long = False  # the checkpoint thread saw a WAL of `wal_reset_frames` or more
        self.wal_reset_frames = WAL_RESET_FRAMES
        self.checkpoint_every = 0.25  # seconds between the checkpoint thread's rounds

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self, writer_thread: bool = True) -> SafetyEngine:
        """Load the registry and start writing. Without `writer_thread` the caller is the writer: it calls
        `write_queued()` itself (writer.py's process does, reading its socket in the same thread)."""
        with self._lock:
            if not self.loaded:
                self.reload()
            if not writer_thread:
                self._stopping = False
                self._external_writer = True
            elif self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="safety-writer", daemon=True)
                self._thread.start()
            if self.background_checkpoints and (self._checkpointer is None or not self._checkpointer.is_alive()):
                self._checkpointer = threading.Thread(target=self._checkpoint, name="safety-checkpoint", daemon=True)
                self._checkpointer.start()
        return self

    def _checkpoint(self) -> None:
        """Copy the WAL back into the database file every `checkpoint_every` seconds (PASSIVE: never waits for a
        reader or the writer). The fsync of a checkpoint then no longer lengthens the writer's commits.

        The WAL starts again from its beginning only when a write begins with every frame copied back, which a
        writer committing all the time never sees from a checkpoint made beside it: the WAL would grow without
        end (measured: 400 MB in ten seconds of load), and every page look-up in it with it. So once the WAL
        holds `wal_reset_frames`, the writer is asked to copy back the last few frames itself, between two
        batches (`_restart_wal`)."""
        import sqlite3

        path = self.db.engine.url.database
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stopping:
                time.sleep(self.checkpoint_every)
                try:
                    _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # busy or locked: the next round does it
                    log.debug("checkpoint skipped: %s", exc)
                    continue
                if frames >= self.wal_reset_frames:
                    self._wal_long = True
        finally:
            conn.close()

    def stop(self, timeout: float = 10) -> None:
        """Flush what is queued, then stop the writer."""
        if self._external_writer:
            while self.write_queued():
                pass
            self._audit_refusals(force=True)
            self._stopping = True
            self._external_writer = False
            return
        thread = self._thread
        if thread and thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._hurry.set()
            thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._external_writer or (self._thread is not None and self._thread.is_alive())

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._urgent)

    def write_queued(self) -> bool:
        """Write one batch of what is queued (alarms first, alone); False when nothing was queued."""
        if self._refusals:
            self._audit_refusals(force=self._stopping)
        batch = self._take()
        if not batch:
            return False
        self._write(batch)
        return True

    # --- the registry in memory -------------------------------------------------------------------

    def reload(self) -> None:
        """Load devices, consents, zones, live states and open incidents from the store."""
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
                info = DeviceInfo(
                    dev_id,
                    ident,
                    person_id,
                    protocol,
                    bool(guardians.get(person_id)),
                    tuple(guardians.get(person_id, ())),
                    secret_hash,
                )
                self.devices[ident] = info
                self.by_id[dev_id] = info
            self._load_zones(s)
            self.states = {row.device_id: LiveState.from_row(row) for row in s.scalars(select(DeviceState))}
            self.open_incidents.clear()
            self.incident_district.clear()
            for inc in s.scalars(select(Incident).where(Incident.status != "resolved")):
                self.open_incidents[inc.person_id][inc.kind] = inc.id
                self.incident_district[inc.id] = inc.district_code
            self._unknown.clear()
            self.loaded = True

    def _load_zones(self, s, person_id: int | None = None, danger: bool = True) -> None:
        # New lists are built first and then put in place: the writer reads them without the lock.
        q = select(Zone).where(Zone.active)
        if person_id is not None:
            q = q.where(
                (Zone.person_id == person_id) | (Zone.kind == "danger") if danger else Zone.person_id == person_id
            )
        person_zones: dict[int, list[ZoneShape]] = defaultdict(list)
        danger_zones: list[ZoneShape] = []
        for zone in s.scalars(q):
            shaped = zone_shape(zone, self.plane)
            if zone.kind == "danger":
                danger_zones.append(shaped)
            elif zone.person_id is not None:
                person_zones[zone.person_id].append(shaped)
        if danger:
            self.danger_zones = danger_zones
        if person_id is None:
            self.person_zones = person_zones
        elif person_zones.get(person_id):
            self.person_zones[person_id] = person_zones[person_id]
        else:
            self.person_zones.pop(person_id, None)

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
                if info.device_id not in self.states:
                    row = s.get(DeviceState, info.device_id)
                    if row is not None:
                        self.states[info.device_id] = LiveState.from_row(row)
            fresh_ids = {info.device_id for info in fresh.values()}
            for ident, info in [(i, d) for i, d in self.devices.items() if d.person_id == person_id]:
                if ident not in fresh:
                    self.devices.pop(ident, None)
                    if info.device_id not in fresh_ids:
                        self.by_id.pop(info.device_id, None)
            self._load_zones(s, person_id, danger=False)

    def reload_danger_zones(self) -> None:
        with self.db.session() as s, self._lock:
            self.danger_zones = [
                zone_shape(z, self.plane) for z in s.scalars(select(Zone).where(Zone.active, Zone.kind == "danger"))
            ]

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

    def validate(self, p: Position) -> _Item:
        """Check a position; raise an IntakeError (or UnknownDevice/NoConsent/OutsideCity) if it is refused."""
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
            self._check_values(p)
        now = datetime.now(UTC)
        if fix_time > now + self._future_tolerance:
            raise field_error(
                FutureFix,
                [
                    {
                        "field": "timestamp",
                        "problem": f"{fix_time.isoformat()} is more than "
                        f"{self.safety_settings.future_tolerance_s} s ahead of the server clock",
                    }
                ],
            )
        if fix_time < now - self._retention:
            raise field_error(
                InvalidPosition, [{"field": "timestamp", "problem": "older than the location retention period"}]
            )
        if p.alarm is not None:
            p.alarm = str(p.alarm).strip().lower()[:30] or None
        info = self.device_for(device.strip())
        if p.protocol in REGISTRATION_OF or p.credential is not None:
            self._check_access(p, info)
        if lat == 0 and lon == 0:  # "no fix yet" as many trackers send it: not a place anyone is
            p.valid = False
        if (
            p.valid
            and self.safety_settings.outside_city == "refuse"
            and geo_index(self.db).district_at(lat, lon) is None
        ):
            raise OutsideCity(f"the point {lat:.6f}, {lon:.6f} is not inside the city")
        if fix_time.tzinfo is not UTC:
            fix_time = fix_time.astimezone(UTC)
        # The store keeps times to the millisecond: the acknowledged time is the stored one.
        if fix_time.microsecond % 1000:
            fix_time = fix_time.replace(microsecond=fix_time.microsecond - fix_time.microsecond % 1000)
        p.fix_time = fix_time
        p.received_at = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        return _Item(p, info)  # the district is looked up by the writer, a batch at a time

    def _check_values(self, p: Position) -> None:
        problems = []

        def bad(name: str, value, lo: float, hi: float) -> None:
            if value is None:
                return
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                problems.append({"field": name, "problem": "must be a number"})
            elif not lo <= value <= hi:
                problems.append({"field": name, "problem": f"must be between {lo} and {hi}"})

        bad("lat", p.lat, -90, 90)
        bad("lon", p.lon, -180, 180)
        if p.lat is None or p.lon is None:
            problems.append({"field": "lat/lon", "problem": "a position needs both latitude and longitude"})
        bad("speed", p.speed, 0, 1000)
        bad("bearing", p.bearing, 0, 360)
        bad("altitude", p.altitude, -1000, 20000)
        bad("accuracy", p.accuracy, 0, 1_000_000)
        bad("battery", p.battery, 0, 100)
        if not isinstance(p.fix_time, datetime) or p.fix_time.tzinfo is None:
            problems.append({"field": "timestamp", "problem": "a timezone-aware time is needed"})
        if problems:
            raise field_error(InvalidPosition, problems)

    def _check_access(self, p: Position, info: DeviceInfo) -> None:
        """The device may use this protocol, and proves itself where the protocol carries a secret. A secret is
        verified against its argon2 hash once; later positions are matched by a fast keyed hash in memory."""
        registration = REGISTRATION_OF.get(p.protocol)
        if registration is not None and registration not in info.protocols:
            self._note_refusal(info, p.protocol, "protocol_not_allowed")
            raise ProtocolNotAllowed(
                f"the device {info.identifier!r} is not registered for {registration}",
                details=[{"field": "protocol", "problem": f"not registered for {registration}"}],
            )
        credential, p.credential = p.credential, None
        if p.protocol not in CREDENTIAL_PROTOCOLS:
            return
        if not credential:
            self._note_refusal(info, p.protocol, "missing_secret")
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
            self._note_refusal(info, p.protocol, "bad_secret")
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

    # --- submitting -------------------------------------------------------------------------------

    def _enqueue(self, items: list[_Item]) -> None:
        if len(self._queue) + len(items) > self.queue_max:
            raise Overloaded("the position queue is full; retry shortly")
        for item in items:
            if item.position.alarm is not None:
                self._urgent.append(item)
                self._hurry.set()
            else:
                self._queue.append(item)
        if not self._wake.is_set():
            self._wake.set()

    def submit(self, position: Position) -> Future:
        """Validate and queue one position; the future's result is its `Ack` once it is committed."""
        if not self.running:
            self.start()
        item = self.validate(position)
        item.future = Future()
        self._enqueue([item])
        return item.future

    def submit_many(self, positions: list[Position]) -> list[Future | SmartCityError]:
        """Queue several positions (a gateway's batch): each gets its own future, or the error that
        refused it. One bad position does not refuse the others."""
        out: list[Future | SmartCityError] = []
        for p in positions:
            try:
                out.append(self.submit(p))
            except SmartCityError as exc:
                out.append(exc)
        return out

    def _unit(self, positions: list, future, loop=None, token=None) -> _Unit:
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
        unit = _Unit(results, len(items), future, loop, token)
        for item in items:
            item.unit = unit
        if items:
            try:
                self._enqueue(items)
                return unit
            except Overloaded as exc:
                for item in items:
                    results[item.index] = exc
                unit.remaining = 0
        if token is not None:
            self.on_resolved([(token, results)])
        elif loop is None:
            _settle_future(future, results)
        else:
            future.set_result(results)
        return unit

    def submit_all(self, positions: list) -> Future:
        """Queue a batch as one unit: a future of [Ack | SmartCityError | Exception], one per position (an
        element that is already an error, e.g. from decoding, is passed through)."""
        future: Future = Future()
        self._unit(positions, future)
        return future

    async def intake_all(self, positions: list) -> list:
        """`submit_all`, awaited without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._unit(positions, future, loop)
        return await future

    async def intake(self, position: Position) -> Ack:
        """Validate, queue and wait (without blocking the event loop) until the position is stored."""
        if not self.running:
            self.start()
        item = self.validate(position)
        item.waiter = asyncio.get_running_loop().create_future()
        self._enqueue([item])
        return await item.waiter

    def intake_sync(self, position: Position, timeout: float = 10) -> Ack:
        return self.submit(position).result(timeout)

    # --- the writer -------------------------------------------------------------------------------

    def _take(self) -> list[_Item]:
        urgent, queue = self._urgent, self._queue
        if urgent:  # alarms first, alone: they do not wait behind a batch of ordinary positions
            batch = []
            while urgent and len(batch) < self.batch_size:
                batch.append(urgent.popleft())
            return batch
        n = min(len(queue), self.batch_size)
        return [queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        wake, hurry = self._wake, self._hurry
        while True:
            if self._refusals:
                self._audit_refusals(force=self._stopping)
            if not self._queue and not self._urgent:
                if self._stopping:
                    break
                wake.wait(0.5)
                wake.clear()  # cleared before taking: a position queued from now on sets it again
                if not self._queue and not self._urgent:
                    continue
                if (
                    self.linger
                    and not self._urgent
                    and not self._stopping
                    and time.monotonic() - self._last_write > self.linger
                ):
                    # Idle until now: let a batch gather, unless an alarm comes. A busy writer does not wait:
                    # positions gather by themselves while it commits (group commit).
                    hurry.wait(self.linger)
            hurry.clear()
            batch = self._take()
            if batch:
                self._write(batch)

    def _write(self, batch: list[_Item]) -> None:
        try:
            results = self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - isolate the culprit: retry one by one
            if len(batch) == 1:
                log.exception("storing a position failed")
                self._resolve([(batch[0], exc)])
                return
            for item in batch:
                self._write([item])
            return
        self.batches += 1
        self._resolve(results)
        self._last_write = time.monotonic()
        if self._wal_long:
            self._restart_wal()

    def _restart_wal(self) -> None:
        """From the writer, between batches: copy back what the checkpoint thread has not yet, so the next
        write starts the WAL again from its beginning (see `_checkpoint`)."""
        self._wal_long = False
        try:
            with self.db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as exc:  # noqa: BLE001 - busy: the checkpoint thread asks again
            log.debug("WAL restart skipped: %s", exc)

    def _resolve(self, results: list[tuple[_Item, Any]]) -> None:
        """Hand each outcome to whoever waits: futures at once, event loops with one call per batch."""
        by_loop: dict[Any, list] = {}
        remote = []
        for item, outcome in results:
            if item.token is not None:
                remote.append((item.token, outcome))
            elif item.waiter is not None:
                by_loop.setdefault(item.waiter.get_loop(), []).append((item.waiter, outcome))
            elif item.unit is not None:
                unit = item.unit
                unit.results[item.index] = outcome
                unit.remaining -= 1
                if unit.remaining == 0:
                    if unit.token is not None:
                        remote.append((unit.token, unit.results))
                    elif unit.loop is None:
                        _settle_future(unit.future, unit.results)
                    else:
                        by_loop.setdefault(unit.loop, []).append((unit.future, unit.results))
            elif item.future is not None and not item.future.done():
                if isinstance(outcome, BaseException):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(outcome)
        for loop, outcomes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle_waiters, outcomes)
        if remote:
            self.on_resolved(remote)

    _POSITION_COLUMNS = (
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
    _ROWS_PER_INSERT = 500

    def _insert(self, s, rows: list[tuple]) -> list[tuple]:
        """A multi-row INSERT … ON CONFLICT DO NOTHING RETURNING through the driver: the rows not already
        stored, as (device_id, fix_time in epoch ms)."""
        if not rows:
            return []
        conn = s.connection()
        mark = "%s" if self.db.is_postgres else "?"
        one = "(" + ", ".join([mark] * len(self._POSITION_COLUMNS)) + ")"
        head = f"INSERT INTO safety_positions ({', '.join(self._POSITION_COLUMNS)}) VALUES "
        tail = " ON CONFLICT (device_id, fix_time) DO NOTHING RETURNING device_id, fix_time"
        out = []
        step = self._ROWS_PER_INSERT
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            sql = self._sql_cache.get(len(chunk))
            if sql is None:
                sql = self._sql_cache[len(chunk)] = head + ", ".join([one] * len(chunk)) + tail
            out.extend(conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row)).fetchall())
        return out

    def _commit(self, batch: list[_Item]) -> list[tuple[_Item, Ack]]:
        from smartcity.safety import service

        positions = [i.position for i in batch]
        districts = geo_index(self.db).districts_at([p.lat for p in positions], [p.lon for p in positions])
        pg = self.db.is_postgres
        first_of: dict[tuple[int, Any], _Item] = {}
        keys = []
        rows = []
        for item, district in zip(batch, districts, strict=True):
            p = item.position
            if not p.valid:
                district = False  # not a place: neither in a district nor outside the city
            item.outside_city = outside = district is None
            item.district_code = None if outside or district is False else district.code
            device = item.device
            when = to_millis(p.fix_time)
            key = (device.device_id, when)
            keys.append(key)
            if key in first_of:
                continue
            first_of[key] = item
            received = to_millis(p.received_at)
            item.stored_times = (when, received)
            rows.append(
                (
                    device.device_id,
                    device.person_id,
                    when,
                    received,
                    p.lat,
                    p.lon,
                    p.speed,
                    p.bearing,
                    p.altitude,
                    p.accuracy,
                    p.battery,
                    p.alarm,
                    p.protocol[:20],
                    outside if pg else int(outside),
                    orjson.dumps(p.attributes).decode() if p.attributes else None,
                    p.valid if pg else int(p.valid),
                )
            )
        new_states: dict[int, LiveState] = {}
        acks: dict[tuple[int, Any], Ack] = {}
        opened = []
        with self.db.session() as s:
            if not pg:
                # SQLite's page cache is per connection (2 MB by default): the writer touches pages all over
                # the position indexes and the device states, so it gets a larger one.
                # Checkpoints (copying the WAL back into the database, with an fsync) are made less often, so
                # that a page written by many batches is copied once — or by a thread of their own.
                conn = s.connection()
                conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
                if not self.background_checkpoints:
                    conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}")
            inserted = {(r[0], r[1]) for r in self._insert(s, rows)}
            by_device: dict[int, list[tuple[Any, _Item]]] = defaultdict(list)
            for key, item in first_of.items():
                if key in inserted:
                    by_device[key[0]].append((key, item))
                else:
                    acks[key] = Ack(key[0], item.position.fix_time, duplicate=True, live=False)
            raised: list[Raised] = []
            if by_device:
                current = self._lock_states(s, sorted(by_device))
                for device_id, keyed in by_device.items():
                    state = current[device_id]
                    if len(keyed) > 1:
                        keyed.sort(key=lambda k: k[1].position.fix_time)
                    for key, item in keyed:
                        events, live = self._apply(state, item)
                        if events:
                            raised.extend(events)
                        acks[key] = Ack(
                            device_id,
                            item.position.fix_time,
                            live=live,
                            events=tuple(e.kind for e in events),
                        )
                    state.version += 1
                    new_states[device_id] = state
                self._write_states(s, list(new_states.values()))
                cooldown = self.safety_settings.alert_cooldown_minutes
                for ev in raised:
                    service.raise_event(s, ev, cooldown_minutes=cooldown)
                opened = s.info.pop("safety.opened_incidents", [])
                if self.safety_settings.live_positions:
                    by_id = self.by_id
                    watch = self.live_watch
                    if watch is not None and watch[0]:
                        watch = None
                    for st in new_states.values():
                        device, districts = by_id.get(st.device_id), self._incident_districts(st)
                        if watch is not None and not (
                            (device and not watch[1].isdisjoint(device.guardians)) or (watch[2] and districts)
                        ):
                            continue  # nobody listening could see it
                        service.publish_live(s, st, device, districts)
        with self._lock:
            self.states.update(new_states)
            for inc in opened:
                self.open_incidents[inc["person_id"]][inc["kind"]] = inc["id"]
                self.incident_district[inc["id"]] = inc["district"]
        out = []
        for item, key in zip(batch, keys, strict=True):
            ack = acks[key]
            if first_of[key] is not item:  # the same fix twice in one batch: the second copy is a replay
                ack = Ack(ack.device_id, ack.fix_time, duplicate=True, live=False)
            out.append((item, ack))
        return out

    # Not person_id: a device never changes person (the row is made with it), and assigning an indexed column,
    # even the same value, makes SQLite rewrite that index entry (about a third of the update's cost).
    _STATE_SET = [c for c in LiveState.COLUMNS if c not in ("device_id", "person_id")]

    def _write_states(self, s, states: list[LiveState]) -> None:
        """UPDATE the batch's state rows with one driver-level executemany: SQLAlchemy's per-row parameter
        processing cost more than the statement. Values are converted here the way the column types would."""
        pg = self.db.is_postgres
        mark = "%s" if pg else "?"
        sql = (
            f"UPDATE safety_device_state SET {', '.join(f'{c} = {mark}' for c in self._STATE_SET)} "
            f"WHERE device_id = {mark}"
        )

        def when(value: datetime | None) -> int | None:
            return None if value is None else to_millis(value)

        dumps = orjson.dumps
        rows = [
            (
                st.version,
                *(st.stored_times or (when(st.fix_time), when(st.received_at))),
                st.lat,
                st.lon,
                st.speed,
                st.accuracy,
                st.battery,
                st.district_code,
                dumps(st.zones).decode(),
                dumps(st.flags).decode(),
                st.device_id,
            )
            for st in states
        ]
        s.connection().exec_driver_sql(sql, rows)

    def _incident_districts(self, st: LiveState) -> list[str | None]:
        return [self.incident_district.get(i) for i in self.open_incidents.get(st.person_id, {}).values()]

    def _lock_states(self, s, device_ids: list[int]) -> dict[int, LiveState]:
        """The batch's device states (on PostgreSQL locked until commit); memory is trusted where the version
        matches.

        On SQLite the store has one writer (the one serving process's engine), so memory is trusted as it is:
        only devices without a state in memory are looked up. (The silent-device job's compare-and-set on a
        row this engine does not know of changes nothing here: the engine's next fix of that device clears
        the flag anyway.)"""
        pg = self.db.is_postgres
        if not pg:
            states = self.states
            unknown = [d for d in device_ids if d not in states]
            out = {d: states[d].copy() for d in device_ids if d in states}
            if unknown:
                out.update(self._lock_states_versioned(s, unknown))
            return out
        return self._lock_states_versioned(s, device_ids)

    def _lock_states_versioned(self, s, device_ids: list[int]) -> dict[int, LiveState]:
        pg = self.db.is_postgres
        mark = "%s" if pg else "?"
        versions = {}
        for start in range(0, len(device_ids), 1000):
            chunk = device_ids[start : start + 1000]
            sql = (
                f"SELECT device_id, version FROM safety_device_state WHERE device_id IN "
                f"({', '.join([mark] * len(chunk))}) ORDER BY device_id" + (" FOR UPDATE" if pg else "")
            )
            versions.update(s.connection().exec_driver_sql(sql, tuple(chunk)).fetchall())
        q = select(DeviceState.device_id, DeviceState.version).order_by(DeviceState.device_id)
        if pg:
            q = q.with_for_update()
        missing = [d for d in device_ids if d not in versions]
        if missing:  # devices registered without a state row (older data): create it now
            s.execute(
                sqlite.insert(DeviceState).on_conflict_do_nothing()
                if not self.db.is_postgres
                else postgresql.insert(DeviceState).on_conflict_do_nothing(),
                [
                    {"device_id": d, "person_id": self.by_id[d].person_id, "version": 0, "zones": {}, "flags": {}}
                    for d in missing
                ],
            )
            versions.update(dict(s.execute(q.where(DeviceState.device_id.in_(missing))).all()))
        states = self.states
        stale = [d for d in device_ids if d not in states or states[d].version != versions[d]]
        stale_set = set(stale)
        out = {d: states[d].copy() for d in device_ids if d not in stale_set}
        if stale:
            for row in s.scalars(select(DeviceState).where(DeviceState.device_id.in_(stale))):
                out[row.device_id] = LiveState.from_row(row)
        return out

    def _apply(self, st: LiveState, item: _Item) -> tuple[list[Raised], bool]:
        """Run one stored fix through the device's state: live position, zones, battery, alarm."""
        p, info = item.position, item.device
        raised: list[Raised] = []

        def ev(kind: str, zone: ZoneShape | None = None, at: datetime | None = None, **data) -> None:
            raised.append(
                Raised(
                    kind, info.person_id, info.device_id, at or p.fix_time, p.lat, p.lon, zone, data, item.district_code
                )
            )

        if not p.valid:
            # Not a position: the live state, zones and alerts stay where the last real fix put them (as Traccar
            # keeps the last known position). An alarm still counts, placed at that last known position.
            if p.alarm == "sos":
                raised.append(
                    Raised(
                        "sos",
                        info.person_id,
                        info.device_id,
                        p.fix_time,
                        st.lat,
                        st.lon,
                        None,
                        {"fix_invalid": True},
                        st.district_code,
                    )
                )
            return raised, False
        if p.alarm == "sos":
            ev("sos")  # an alarm counts even on a late-arriving fix
        if st.fix_time is not None and p.fix_time <= st.fix_time:
            return raised, False
        st.fix_time, st.received_at, st.lat, st.lon = p.fix_time, p.received_at, p.lat, p.lon
        st.stored_times = item.stored_times
        st.speed, st.accuracy, st.district_code = p.speed, p.accuracy, item.district_code
        st.person_id = info.person_id
        flags = st.flags
        if p.battery is not None:
            st.battery = p.battery
            low = self.safety_settings.low_battery
            if p.battery <= low and not flags.get("low_battery"):
                flags["low_battery"] = True
                ev("low_battery", battery=p.battery)
            elif p.battery >= low + 5 and flags:
                flags.pop("low_battery", None)
        if flags:
            flags.pop("silent", None)
        if item.outside_city:
            if not flags.get("outside_city"):
                flags["outside_city"] = True
                ev("outside_city")
        elif flags:
            flags.pop("outside_city", None)
        plane, rules = self.plane, self.rules
        x, y = (p.lon - plane.lon0) * plane.kx, (p.lat - plane.lat0) * plane.ky
        zones = self.person_zones.get(info.person_id, ())
        if self.danger_zones:
            zones = [*zones, *self.danger_zones]
        states = st.zones
        at_text = None
        for zone in zones:
            key = zone.key or str(zone.id)
            verdict = classify(zone, x, y, p.accuracy, rules)
            state = states.get(key)
            if state is not None and (
                verdict is None
                or (verdict == state["s"] and state["c"] is None and state["n"] == 0 and state["t"] is None)
            ):
                continue  # step_zone would change nothing
            if state is None and verdict is not None and rules.confirm_fixes > 1:
                # A zone's first usable fix (step_zone's result, without its general path): a candidate.
                if at_text is None:
                    at_text = p.fix_time.isoformat()
                states[key] = {"s": None, "c": verdict, "n": 1, "t": at_text}
                continue
            zstate, transition = step_zone(state, verdict, p.fix_time, rules)
            states[key] = zstate
            if transition is None:
                continue
            previous, now_state = transition
            since = datetime.fromisoformat(zstate["t"]) if zstate.get("t") else p.fix_time
            if zone.kind == "danger":
                if now_state == "in":
                    ev("danger", zone, at=since)
            elif previous is not None:  # the first verdict on a safe zone is where they are, not a move
                ev("arrival" if now_state == "in" else "departure", zone, at=since)
        if len(states) > len(zones):  # every current zone has a key now: the others are deleted zones
            live_ids = {zone.key or str(zone.id) for zone in zones}
            for key in [k for k in states if k not in live_ids]:
                del states[key]
        return raised, True

    # --- reading memory ---------------------------------------------------------------------------

    def state_of(self, device_id: int) -> LiveState | None:
        with self._lock:
            st = self.states.get(device_id)
            return st.copy() if st else None


_engines_lock = threading.Lock()


def get_engine(db, settings=None, profile=None, start: bool = True) -> SafetyEngine:
    """The process's engine for `db` (made, loaded and started on first use)."""
    engine = db.cache.get("safety.engine")
    if engine is None:
        with _engines_lock:
            engine = db.cache.get("safety.engine")
            if engine is None:
                from smartcity.core.context import context_of

                settings = settings or context_of(db).settings
                if settings.of(SafetySettings).writer == "process":
                    from smartcity.safety.writer import WriterProcess

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


def _current(db) -> SafetyEngine | None:
    return db.cache.get("safety.engine")


def queued(db) -> int:
    """Positions accepted by the process's engine (or its writer process) and not yet stored."""
    engine = _current(db)
    return engine.queued if engine is not None else 0


def stop_engine(db) -> None:
    engine = db.cache.pop("safety.engine", None)
    if engine is not None:
        engine.stop()
