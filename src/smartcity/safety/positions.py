"""What the safety feed takes and gives: a decoder's `Position`, the `Ack` of a stored one, the intake's
errors, the value ranges checked, and a device as the engine knows it (its registration, protocols and the
secret it proves itself with). engine.py has the pipeline.

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
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied, SmartCityError
from smartcity.safety.rules import from_ms

KNOT = 0.514444  # metres per second
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
