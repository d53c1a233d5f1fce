"""The intake hot path: validate a position, store it in a batch, move the device's live state, and check
the person's zones — with no database read per position.

    engine = get_engine(db)                 # one per process and store, started on first use
    ack = await engine.intake(position)     # returns once the batch holding it is committed
    future = engine.submit(position)        # the same from a thread (MQTT): concurrent.futures.Future

Every protocol decoder (OsmAnd, OwnTracks, MQTT, the batch endpoint) produces a `Position` and hands it
to `submit`/`intake`/`submit_many`. Validation errors are raised at once, before anything is queued:

    IntakeError (InvalidInput, 422)       base of the intake's own errors; code says which
    ├── InvalidPosition                    a value is out of range or malformed (details name the field)
    │   └── FutureFix                      the fix time is more than `safety_future_tolerance_s` ahead
    UnknownDevice (NotFound, 404)          no active device has this identifier
    NoConsent (PermissionDenied, 403)      the device's person has no recorded consent: nothing stored
    OutsideCity (core, 422)                only when SMARTCITY_SAFETY_OUTSIDE_CITY=refuse
    Overloaded (503)                       the write queue is full; the client should retry

Acknowledgment: the future resolves with an `Ack` only after the transaction holding the position has
committed. A replayed position (same device and fix time) is acknowledged again with `duplicate=True`
and no second row. A fix older than the device's latest is stored but does not move the live state.

Several processes on one PostgreSQL: at each batch commit the writer locks the batch's device-state rows
(SELECT … FOR UPDATE, in device order) and compares their `version` with its memory; a row another
process moved is re-read before the zones are checked, so zone transitions (and their events) happen
exactly once, whichever process receives each fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import shapely
from shapely.geometry import Point, shape
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput, NotFound, OutsideCity, PermissionDenied, SmartCityError
from smartcity.core.geo import geo_index
from smartcity.safety.models import Device, DeviceState, GuardianLink, Incident, Person, PositionRow, Zone

log = logging.getLogger(__name__)

KNOT = 0.514444  # metres per second


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
    received_at: datetime | None = None


def knots_to_ms(knots: float) -> float:
    return knots * KNOT


@dataclass(frozen=True)
class Ack:
    """The answer to a submitted position, once it is durably stored (or was already)."""

    device_id: int
    fix_time: datetime
    position_id: int | None
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


class Overloaded(SmartCityError):
    status = 503
    code = "overloaded"


# --- geometry on a metric plane -------------------------------------------------------------------


class LocalPlane:
    """Degrees → metres on an equirectangular plane around the city's centre. Within 30 km of the
    centre, distances are off by well under 0.5 %: centimetres at the size of a safe zone."""

    def __init__(self, center: tuple[float, float]):
        self.lat0, self.lon0 = center
        self.kx = math.cos(math.radians(self.lat0)) * 111_320.0
        self.ky = 110_574.0

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky

    def geometry(self, geom):
        def to_plane(coords):
            out = coords.copy()
            out[:, 0] = (coords[:, 0] - self.lon0) * self.kx
            out[:, 1] = (coords[:, 1] - self.lat0) * self.ky
            return out

        return shapely.transform(geom, to_plane)


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
            raise InvalidInput(f"schedule window {i}: needs days (0=Monday…6) and start/end as HH:MM",
                               code="invalid_schedule") from None
        if not days or not days <= set(range(7)) or not start < end:
            raise InvalidInput(f"schedule window {i}: days are 0–6 and start must be before end",
                               code="invalid_schedule")
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

    def distance(self, x: float, y: float) -> float:
        """Signed distance in metres to the boundary: negative inside."""
        if self.radius is not None:
            return math.hypot(x - self.cx, y - self.cy) - self.radius
        p = Point(x, y)
        d = self.boundary.distance(p)
        return -d if shapely.contains_xy(self.polygon, x, y) else d


def zone_shape(zone: Zone, plane: LocalPlane) -> ZoneShape:
    z = ZoneShape(zone.id, zone.kind, zone.person_id, zone.name, schedule=parse_schedule(zone.schedule))
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


@dataclass
class DeviceInfo:
    device_id: int
    identifier: str
    person_id: int
    protocol: str
    consent: bool
    guardians: tuple[int, ...] = ()


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

    COLUMNS = ("device_id", "person_id", "version", "fix_time", "received_at", "lat", "lon", "speed", "accuracy",
               "battery", "district_code", "zones", "flags")

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
        return dataclasses.replace(self, zones=dict(self.zones), flags=dict(self.flags))


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


@dataclass
class _Item:
    position: Position
    device: DeviceInfo
    future: Future
    outside_city: bool = False
    district_code: str | None = None


_STOP = object()


class SafetyEngine:
    """The process's intake: registry and zones in memory, one writer thread committing batches."""

    def __init__(self, db, settings=None, profile=None):
        from smartcity.core.city import load_profile
        from smartcity.settings import get_settings

        self.db = db
        self.settings = settings or get_settings()
        self.profile = profile or load_profile(self.settings.city)
        self.plane = LocalPlane(self.profile.center)
        s = self.settings
        self.rules = Rules(s.safety_confirm_fixes, s.safety_hysteresis_m, s.safety_accuracy_max_m)
        self.batch_size = s.safety_batch_size
        self.linger = s.safety_batch_ms / 1000
        self.devices: dict[str, DeviceInfo] = {}
        self.by_id: dict[int, DeviceInfo] = {}
        self.person_zones: dict[int, list[ZoneShape]] = defaultdict(list)
        self.danger_zones: list[ZoneShape] = []
        self.states: dict[int, LiveState] = {}
        self.open_incidents: dict[int, dict[str, int]] = defaultdict(dict)  # person → {kind: incident id}
        self.incident_district: dict[int, str | None] = {}  # incident id → district
        self._lock = threading.RLock()
        self._queue: queue.Queue = queue.Queue(maxsize=s.safety_queue_max)
        self._thread: threading.Thread | None = None
        self._unknown: dict[str, float] = {}  # negative cache of unknown identifiers
        self.batches = 0
        self.loaded = False

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> SafetyEngine:
        with self._lock:
            if not self.loaded:
                self.reload()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="safety-writer", daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """Flush what is queued, then stop the writer."""
        thread = self._thread
        if thread and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the registry in memory -------------------------------------------------------------------

    def reload(self) -> None:
        """Load devices, consents, zones, live states and open incidents from the store."""
        with self.db.session() as s, self._lock:
            guardians = defaultdict(list)
            for person_id, user_id in s.execute(
                select(GuardianLink.person_id, GuardianLink.user_id).where(
                    GuardianLink.consent_at.is_not(None), GuardianLink.revoked_at.is_(None))
            ):
                guardians[person_id].append(user_id)
            self.devices.clear()
            self.by_id.clear()
            q = (select(Device.id, Device.identifier, Device.person_id, Device.protocol)
                 .join(Person, Person.id == Device.person_id).where(Device.active, Person.active))
            for dev_id, ident, person_id, protocol in s.execute(q):
                info = DeviceInfo(dev_id, ident, person_id, protocol, bool(guardians.get(person_id)),
                                  tuple(guardians.get(person_id, ())))
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
        q = select(Zone).where(Zone.active)
        if person_id is not None:
            q = q.where((Zone.person_id == person_id) | (Zone.kind == "danger") if danger else
                        Zone.person_id == person_id)
            self.person_zones.pop(person_id, None)
        else:
            self.person_zones.clear()
        if danger:
            self.danger_zones = []
        for zone in s.scalars(q):
            shaped = zone_shape(zone, self.plane)
            if zone.kind == "danger":
                if danger:
                    self.danger_zones.append(shaped)
            elif zone.person_id is not None:
                self.person_zones[zone.person_id].append(shaped)

    def reload_person(self, person_id: int) -> None:
        """Re-read one person's devices, consents and safe zones (after a registry change)."""
        with self.db.session() as s, self._lock:
            for ident in [i for i, d in self.devices.items() if d.person_id == person_id]:
                info = self.devices.pop(ident)
                self.by_id.pop(info.device_id, None)
            active = s.scalar(select(Person.active).where(Person.id == person_id))
            guardians = tuple(s.scalars(select(GuardianLink.user_id).where(
                GuardianLink.person_id == person_id, GuardianLink.consent_at.is_not(None),
                GuardianLink.revoked_at.is_(None))))
            if active:
                for dev_id, ident, protocol in s.execute(select(Device.id, Device.identifier, Device.protocol)
                                                         .where(Device.person_id == person_id, Device.active)):
                    info = DeviceInfo(dev_id, ident, person_id, protocol, bool(guardians), guardians)
                    self.devices[ident] = info
                    self.by_id[dev_id] = info
                    self._unknown.pop(ident, None)
                    if dev_id not in self.states:
                        row = s.get(DeviceState, dev_id)
                        if row is not None:
                            self.states[dev_id] = LiveState.from_row(row)
            self._load_zones(s, person_id, danger=False)

    def reload_danger_zones(self) -> None:
        with self.db.session() as s, self._lock:
            self.danger_zones = [zone_shape(z, self.plane) for z in
                                 s.scalars(select(Zone).where(Zone.active, Zone.kind == "danger"))]

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
        if not isinstance(p.device, str) or not p.device.strip() or len(p.device) > 100:
            raise InvalidPosition("the device identifier is missing or too long", details=[{"field": "id"}])
        problems = []

        def bad(name: str, value, lo: float, hi: float) -> None:
            if value is None:
                return
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
                problems.append({"field": name, "problem": f"must be a number between {lo} and {hi}"})

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
            raise InvalidPosition("the position has invalid values", details=problems)
        now = utcnow()
        if p.fix_time > now + timedelta(seconds=self.settings.safety_future_tolerance_s):
            raise FutureFix(f"the fix time {p.fix_time.isoformat()} is in the future",
                            details=[{"field": "timestamp", "problem": "more than "
                                      f"{self.settings.safety_future_tolerance_s} s ahead of the server clock"}])
        if p.fix_time < now - timedelta(days=self.settings.safety_retention_days):
            raise InvalidPosition("the fix is older than the location retention period",
                                  details=[{"field": "timestamp", "problem": "too old"}])
        if p.alarm is not None:
            p.alarm = str(p.alarm).strip().lower()[:30] or None
        info = self.device_for(p.device.strip())
        if self.settings.safety_outside_city == "refuse" and geo_index(self.db).district_at(p.lat, p.lon) is None:
            raise OutsideCity(f"the point {p.lat:.6f}, {p.lon:.6f} is not inside the city")
        p.fix_time = p.fix_time.astimezone(UTC)
        p.received_at = now
        return _Item(p, info, Future())  # the district is looked up by the writer, a batch at a time

    # --- submitting -------------------------------------------------------------------------------

    def submit(self, position: Position) -> Future:
        """Validate and queue one position; the future's result is its `Ack` once it is committed."""
        if not self.running:
            self.start()
        item = self.validate(position)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise Overloaded("the position queue is full; retry shortly") from None
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

    async def intake(self, position: Position) -> Ack:
        """Validate, queue and wait (without blocking the event loop) until the position is stored."""
        return await asyncio.wrap_future(self.submit(position))

    def intake_sync(self, position: Position, timeout: float = 10) -> Ack:
        return self.submit(position).result(timeout)

    # --- the writer -------------------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if first is _STOP:
                break
            batch = [first]
            # An alarm does not wait for the batch to fill: it goes with whatever is queued already.
            urgent = first.position.alarm is not None
            deadline = time.monotonic() + (0 if urgent else self.linger)
            while len(batch) < self.batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                if item.position.alarm is not None:
                    deadline = 0
            self._write(batch)
        # Flush anything still queued behind the stop marker.
        rest = []
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._queue.get_nowait()
                if item is not _STOP:
                    rest.append(item)
        if rest:
            self._write(rest)

    def _write(self, batch: list[_Item]) -> None:
        try:
            results = self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - isolate the culprit: retry one by one
            if len(batch) == 1:
                log.exception("storing a position failed")
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            for item in batch:
                self._write([item])
            return
        self.batches += 1
        for item, ack in results:
            if not item.future.done():
                item.future.set_result(ack)

    def _insert(self, s, rows: list[dict]):
        # Core (not ORM) insert: the ORM's per-row bookkeeping would cost more than the write itself.
        dialect = postgresql if self.db.is_postgres else sqlite
        table = PositionRow.__table__
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=["device_id", "fix_time"])
        stmt = stmt.returning(table.c.id, table.c.device_id, table.c.fix_time)
        return s.execute(stmt, rows).all() if rows else []

    def _commit(self, batch: list[_Item]) -> list[tuple[_Item, Ack]]:
        from smartcity.safety import service

        districts = geo_index(self.db).districts_at([i.position.lat for i in batch], [i.position.lon for i in batch])
        for item, district in zip(batch, districts, strict=True):
            item.outside_city = district is None
            item.district_code = district.code if district else None

        first_of: dict[tuple[int, datetime], _Item] = {}
        rows = []
        for item in batch:
            p = item.position
            key = (item.device.device_id, p.fix_time)
            if key in first_of:
                continue
            first_of[key] = item
            rows.append({
                "device_id": item.device.device_id, "person_id": item.device.person_id, "fix_time": p.fix_time,
                "received_at": p.received_at, "lat": p.lat, "lon": p.lon, "speed": p.speed, "bearing": p.bearing,
                "altitude": p.altitude, "accuracy": p.accuracy, "battery": p.battery, "alarm": p.alarm,
                "protocol": p.protocol[:20], "outside_city": item.outside_city, "attributes": p.attributes or None,
            })
        new_states: dict[int, LiveState] = {}
        acks: dict[tuple[int, datetime], Ack] = {}
        with self.db.session() as s:
            inserted = {(r.device_id, r.fix_time): r.id for r in self._insert(s, rows)}
            by_device: dict[int, list[_Item]] = defaultdict(list)
            for key, item in first_of.items():
                if key in inserted:
                    by_device[key[0]].append(item)
                else:
                    acks[key] = Ack(key[0], key[1], None, duplicate=True, live=False)
            raised: list[Raised] = []
            if by_device:
                current = self._lock_states(s, sorted(by_device))
                for device_id, items in by_device.items():
                    state = current[device_id]
                    for item in sorted(items, key=lambda i: i.position.fix_time):
                        key = (device_id, item.position.fix_time)
                        events, live = self._apply(state, item)
                        raised.extend(events)
                        acks[key] = Ack(device_id, key[1], inserted[key], live=live,
                                        events=tuple(e.kind for e in events))
                    state.version += 1
                    new_states[device_id] = state
                self._write_states(s, list(new_states.values()))
                for ev in raised:
                    service.raise_event(s, ev)
                opened = s.info.pop("safety.opened_incidents", [])
                if self.settings.safety_live_positions:
                    for st in new_states.values():
                        service.publish_live(s, st, self.by_id.get(st.device_id), self._incident_districts(st))
        with self._lock:
            self.states.update(new_states)
            for inc in opened if by_device else ():
                self.open_incidents[inc["person_id"]][inc["kind"]] = inc["id"]
                self.incident_district[inc["id"]] = inc["district"]
        return [(item, acks[(item.device.device_id, item.position.fix_time)]) for item in batch]

    _STATE_SET = [c for c in LiveState.COLUMNS if c != "device_id"]

    def _write_states(self, s, states: list[LiveState]) -> None:
        """UPDATE the batch's state rows with one driver-level executemany: SQLAlchemy's per-row parameter
        processing cost more than the statement. Values are converted here the way the column types would."""
        pg = self.db.is_postgres
        mark = "%s" if pg else "?"
        sql = (f"UPDATE safety_device_state SET {', '.join(f'{c} = {mark}' for c in self._STATE_SET)} "
               f"WHERE device_id = {mark}")

        def when(v: datetime | None):
            if v is None or pg:
                return v
            return v.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

        rows = []
        for st in states:
            rows.append((st.person_id, st.version, when(st.fix_time), when(st.received_at), st.lat, st.lon, st.speed,
                         st.accuracy, st.battery, st.district_code, json.dumps(st.zones), json.dumps(st.flags),
                         st.device_id))
        s.connection().exec_driver_sql(sql, rows)

    def _incident_districts(self, st: LiveState) -> list[str | None]:
        return [self.incident_district.get(i) for i in self.open_incidents.get(st.person_id, {}).values()]

    def _lock_states(self, s, device_ids: list[int]) -> dict[int, LiveState]:
        """The batch's device states, locked until commit; memory is trusted where the version matches."""
        q = (select(DeviceState.device_id, DeviceState.version).where(DeviceState.device_id.in_(device_ids))
             .order_by(DeviceState.device_id))
        if self.db.is_postgres:
            q = q.with_for_update()
        versions = dict(s.execute(q).all())
        missing = [d for d in device_ids if d not in versions]
        if missing:  # devices registered without a state row (older data): create it now
            s.execute(sqlite.insert(DeviceState).on_conflict_do_nothing() if not self.db.is_postgres else
                      postgresql.insert(DeviceState).on_conflict_do_nothing(),
                      [{"device_id": d, "person_id": self.by_id[d].person_id, "version": 0, "zones": {}, "flags": {}}
                       for d in missing])
            versions.update(dict(s.execute(q.where(DeviceState.device_id.in_(missing))).all()))
        stale = [d for d in device_ids if d not in self.states or self.states[d].version != versions[d]]
        out = {d: self.states[d].copy() for d in device_ids if d not in stale}
        if stale:
            for row in s.scalars(select(DeviceState).where(DeviceState.device_id.in_(stale))):
                out[row.device_id] = LiveState.from_row(row)
        return out

    def _apply(self, st: LiveState, item: _Item) -> tuple[list[Raised], bool]:
        """Run one stored fix through the device's state: live position, zones, battery, alarm."""
        p, info = item.position, item.device
        raised: list[Raised] = []

        def ev(kind: str, zone: ZoneShape | None = None, at: datetime | None = None, **data) -> None:
            raised.append(Raised(kind, info.person_id, info.device_id, at or p.fix_time, p.lat, p.lon, zone, data,
                                 item.district_code))

        if p.alarm == "sos":
            ev("sos")  # an alarm counts even on a late-arriving fix
        if st.fix_time is not None and p.fix_time <= st.fix_time:
            return raised, False
        st.fix_time, st.received_at, st.lat, st.lon = p.fix_time, p.received_at, p.lat, p.lon
        st.speed, st.accuracy, st.district_code = p.speed, p.accuracy, item.district_code
        st.person_id = info.person_id
        if p.battery is not None:
            st.battery = p.battery
            low = self.settings.safety_low_battery
            if p.battery <= low and not st.flags.get("low_battery"):
                st.flags["low_battery"] = True
                ev("low_battery", battery=p.battery)
            elif p.battery >= low + 5:
                st.flags.pop("low_battery", None)
        st.flags.pop("silent", None)
        if item.outside_city and not st.flags.get("outside_city"):
            st.flags["outside_city"] = True
            ev("outside_city")
        elif not item.outside_city:
            st.flags.pop("outside_city", None)
        x, y = self.plane.xy(p.lat, p.lon)
        zones = self.person_zones.get(info.person_id, []) + self.danger_zones
        live_ids = set()
        for zone in zones:
            key = str(zone.id)
            live_ids.add(key)
            verdict = classify(zone, x, y, p.accuracy, self.rules)
            zstate, transition = step_zone(st.zones.get(key), verdict, p.fix_time, self.rules)
            st.zones[key] = zstate
            if transition is None:
                continue
            previous, now_state = transition
            since = datetime.fromisoformat(zstate["t"]) if zstate.get("t") else p.fix_time
            if zone.kind == "danger":
                if now_state == "in":
                    ev("danger", zone, at=since)
            elif previous is not None:  # the first verdict on a safe zone is where they are, not a move
                ev("arrival" if now_state == "in" else "departure", zone, at=since)
        for key in [k for k in st.zones if k not in live_ids]:
            del st.zones[key]  # a deleted zone
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


def stop_engine(db) -> None:
    engine = db.cache.pop("safety.engine", None)
    if engine is not None:
        engine.stop()
