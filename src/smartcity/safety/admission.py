"""What the safety engine admits, before anything is queued: the device registry in memory kept current
(a person's zones, the danger zones, devices and consents, through the store's events), each position checked
without a database read (values, fix time, the device's registration, secret and consent; refusals counted
and audited), and the accepted positions queued for the writer (`submit`, `intake`, `submit_columns`, …).

`Admission` is a part of `engine.SafetyEngine` (it holds the registry and the queue this part uses)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from smartcity.core import audit
from smartcity.core.errors import OutsideCity, SmartCityError
from smartcity.core.geo import geo_index
from smartcity.core.intake import BatchOutcome, Columns, Overloaded, Pending
from smartcity.safety.models import Device, GuardianLink, Person, Zone
from smartcity.safety.positions import (
    CREDENTIAL_PROTOCOLS,
    RANGES,
    REGISTRATION_OF,
    Ack,
    BadCredentials,
    DeviceInfo,
    FutureFix,
    InvalidPosition,
    NoConsent,
    Position,
    ProtocolNotAllowed,
    UnknownDevice,
    _now_ms,
    _plain,
    credential_key,
    field_error,
    verify_device_secret,
)
from smartcity.safety.rules import from_ms, to_ms, zone_shape

log = logging.getLogger(__name__)

REFUSAL_AUDIT_S = 1.0  # refused devices are written to the audit log at most this often (counted meanwhile)
BACKLOG_RETRY_S = 10  # Retry-After of a position refused while the staging table is over its limit


class Admission:
    """The registry, checks and queuing of `SafetyEngine` (see the module's docstring)."""

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
        device_id, person_id = self._device_columns(cols, ok, errors)
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

    def _device_columns(self, cols: Columns, ok: np.ndarray, errors: dict[int, SmartCityError]) -> tuple:
        """Each accepted row's device and person id, looked up once per distinct device (and protocol) of the
        batch rather than per row (a tracker sends many fixes per batch). Rows of a device that is not the
        usual case (unknown, without consent, not registered for the protocol, a protocol with secrets) go
        through the checks that say why, row by row (each refusal is counted for the audit log); a refused
        row gets its error and leaves `ok`."""
        n = cols.n
        rows = np.flatnonzero(ok)
        device_id, person_id = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        if not len(rows):
            return device_id, person_id
        devices, protocols = cols["device"][rows].tolist(), cols["protocol"][rows].tolist()
        single = len(set(protocols)) == 1
        keys = devices if single else list(zip(devices, protocols, strict=True))
        distinct = list(dict.fromkeys(keys))  # in order of first appearance
        if len(distinct) == len(keys):  # the usual OsmAnd batch: one fix per phone
            codes = np.arange(len(keys))
        else:
            code_of = {k: c for c, k in enumerate(distinct)}
            codes = np.fromiter(map(code_of.__getitem__, keys), dtype=np.int64, count=len(keys))
        key_devices = distinct if single else [k[0] for k in distinct]
        infos = list(map(self.devices.get, key_devices))
        # The usual case (a consenting device registered for a protocol without secrets) in comprehensions, a
        # protocol at a time; anything else goes through the checks that say why, below.
        usual = np.zeros(len(distinct), dtype=np.bool_)
        for protocol in set(protocols):
            at = range(len(distinct)) if single else [c for c, k in enumerate(distinct) if k[1] == protocol]
            if protocol in CREDENTIAL_PROTOCOLS:
                continue
            registration = REGISTRATION_OF.get(protocol)
            usual[at] = [
                info is not None and info.consent and (registration is None or registration in info.protocols)
                for info in (infos[c] for c in at)
            ]
        key_device = [0 if not u else info.device_id for u, info in zip(usual.tolist(), infos, strict=True)]
        key_person = [0 if not u else info.person_id for u, info in zip(usual.tolist(), infos, strict=True)]
        device_id[rows] = np.array(key_device, dtype=np.int64)[codes]
        person_id[rows] = np.array(key_person, dtype=np.int64)[codes]
        known = self.devices
        for j in np.flatnonzero(~usual[codes]).tolist():
            i, ident, protocol = int(rows[j]), devices[j], protocols[j]
            registration = REGISTRATION_OF.get(protocol)
            try:
                info = known.get(ident)
                if info is None or not info.consent:
                    info = self.device_for(ident)
                if registration is not None:
                    self._check_access(protocol, None, info)
            except SmartCityError as exc:
                errors[i] = exc
                ok[i] = False
                continue
            device_id[i], person_id[i] = info.device_id, info.person_id
        return device_id, person_id

    # --- submitting -------------------------------------------------------------------------------

    def backlogged(self) -> Overloaded | None:
        """The refusal of ordinary positions while the SQLite staging table holds more than
        SAFETY_STAGING_MAX_BEHIND rows (the mover is behind): a 503 asking to retry later, instead of a table
        growing without bound. Alarms are never refused for it."""
        mover = self.mover
        if mover is None or mover.backlog <= self.safety_settings.staging_max_behind:
            return None
        return Overloaded(
            "the position store is behind; retry later",
            code="backlogged",
            details={"retry_after_s": BACKLOG_RETRY_S},
        )

    def _put(self, pending: Pending) -> None:
        if not self.running:
            self.start()
        if not pending.urgent and (refusal := self.backlogged()) is not None:
            raise refusal
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
        refusal = self.backlogged()
        for i, p in enumerate(positions):
            if isinstance(p, Position):
                try:
                    item = self.validate(p)
                except SmartCityError as exc:
                    results[i] = exc
                    continue
                if refusal is not None and not item.urgent:
                    results[i] = refusal
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
        if alarms.any():
            parts = [(accepted.take(alarms), rows[alarms], True), (accepted.take(~alarms), rows[~alarms], False)]
        else:  # the usual batch: no copy of its columns
            parts = [(accepted, rows, False)]
        items = []
        refusal = self.backlogged()
        for part, where, urgent in parts:
            if part.n and refusal is not None and not urgent:
                errors.update(dict.fromkeys(where.tolist(), refusal))
            elif part.n:
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

    def columns_future(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> asyncio.Future:
        """Validate and queue a decoded batch now; the running loop's future gets its BatchOutcome."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue_columns(cols, errors or {}, future, loop)
        return future

    async def intake_columns(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> BatchOutcome:
        """A decoded batch as columns (the gateway endpoint's fast path): one BatchOutcome, row by row."""
        return await self.columns_future(cols, errors)


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
