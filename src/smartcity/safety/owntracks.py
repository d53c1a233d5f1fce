"""OwnTracks JSON, over HTTP (this module) and over MQTT (`mqtt.py`, the same decoder).

HTTP mode: the OwnTracks app POSTs one JSON message per request to the URL it is given,

    POST /owntracks                      (also /api/safety/owntracks)
    Authorization: Basic base64(haneul:<the device's secret>)
    X-Limit-U: haneul   X-Limit-D: phone  (or ?u=haneul&d=phone; the user may also come from Basic auth alone)
    {"_type": "location", "lat": 37.5, "lon": 127.05, "tst": 1700000000, "acc": 12, "alt": 30,
     "vel": 4, "cog": 90, "batt": 87, "tid": "hn", "t": "u", "conn": "w", "BSSID": "…", …}

The device identifier is "{user}/{device}" (just "{user}" when the app sends no device name): register
the device under that identifier, for the owntracks protocol; registration gives it a secret, shown once,
which the app sends as its HTTP Basic password (verified against the stored argon2 hash once, then
remembered in memory by a keyed hash). A device not registered for owntracks is refused (403), and so is
a missing or wrong secret (401); each refusal is counted in the audit log.
Units: `vel` km/h (stored as m/s), `acc`/`alt` metres, `cog` degrees,
`batt` percent. Every other key is kept as an attribute.

Message types: `location` is a position; `transition` (the app's own region enter/leave) is stored as a
position of the device with the transition in its attributes — the platform's geofencing is authoritative;
`waypoint(s)`, `lwt`, `card`, `status`, `steps`, `beacon`, `cmd`, `dump` are accepted and ignored.
An `encrypted` payload cannot be read (the platform holds no key): 400.

Answers: 200 with a JSON array (`[]`: no cards or commands for the app) once the position is durably
stored; errors are the platform's `{"error": {"code", "message", "details"}}` with 400 (malformed or
out-of-range; the message names the field: "lat: must be between -90 and 90"), 401 (secret missing or
wrong, with WWW-Authenticate), 403 (no consent, or not registered for owntracks), 404 (unknown device),
413 (body over SAFETY_DEVICE_MAX_BYTES), 503 (overloaded, retry).
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from smartcity.core.errors import InvalidInput, SmartCityError, TooLarge
from smartcity.core.web import register_error_format
from smartcity.safety.engine import BadCredentials, Position
from smartcity.safety.intake_api import count, engine_of, in_terms_of, number, read_body, refused, settle
from smartcity.safety.settings import SafetySettings

log = logging.getLogger(__name__)
PATHS = ("/owntracks", "/api/safety/owntracks")
# The engine's names of fields → the message keys named in errors.
FIELD_NAMES = {"battery": "batt", "accuracy": "acc", "altitude": "alt", "bearing": "cog", "timestamp": "tst"}
IGNORED_TYPES = {
    "waypoint",
    "waypoints",
    "lwt",
    "card",
    "status",
    "steps",
    "beacon",
    "cmd",
    "dump",
    "configuration",
    "request",
}
_CONSUMED = {"_type", "lat", "lon", "tst", "acc", "alt", "vel", "cog", "batt"}


class Ignored(Exception):
    """A well-formed OwnTracks message that carries no position (waypoints, cards, last will…)."""


def identifier(user: str | None, device: str | None) -> str:
    """The registered identifier of an OwnTracks device: "user/device", or "user" alone."""
    user, device = (user or "").strip(), (device or "").strip()
    if not user:
        raise refused("missing (X-Limit-U header, ?u= or Basic auth)", "user", "missing")
    return f"{user}/{device}" if device else user


def decode(message: Any, device: str, protocol: str = "owntracks", credential: str | None = None) -> Position:
    """A position from one OwnTracks message; `Ignored` for types that carry none."""
    if not isinstance(message, dict):
        raise refused("an OwnTracks message is a JSON object", "body", "not an object")
    kind = message.get("_type")
    if kind == "encrypted":
        raise InvalidInput(
            "encrypted OwnTracks payloads are not supported; turn encryption off in the app", code="encrypted_payload"
        )
    if kind in IGNORED_TYPES:
        raise Ignored(kind)
    if kind not in ("location", "transition"):
        raise refused(f"unknown OwnTracks message type {str(kind)[:30]!r}", "_type", "unknown")
    lat, lon = number(message.get("lat"), "lat"), number(message.get("lon"), "lon")
    if lat is None or lon is None:
        raise refused("both are needed", "lat/lon", "missing")
    tst = number(message.get("tst"), "tst")
    if tst is None:
        raise refused("missing (epoch seconds)", "tst", "missing")
    try:
        fix_time = datetime.fromtimestamp(tst, UTC)
    except (OverflowError, OSError, ValueError):
        raise refused("out of range", "tst", "out of range") from None
    vel = number(message.get("vel"), "vel")
    cog = number(message.get("cog"), "cog")
    attributes = {k: v for k, v in message.items() if k not in _CONSUMED}
    if kind == "transition":
        attributes["transition"] = True  # the app's own region event; kept, not acted on
    return Position(
        device=device,
        fix_time=fix_time,
        lat=lat,
        lon=lon,
        speed=vel / 3.6 if vel is not None and vel >= 0 else None,
        bearing=cog if cog is not None and cog >= 0 else None,
        altitude=number(message.get("alt"), "alt"),
        accuracy=number(message.get("acc"), "acc"),
        battery=number(message.get("batt"), "batt"),
        attributes=attributes,
        protocol=protocol,
        credential=credential,
    )


def parse(body: bytes) -> list:
    """The messages of a body: one object, or a list of them."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise refused("the body is not JSON", "body", "not JSON") from None
    return doc if isinstance(doc, list) else [doc]


def _http_user(request: Request) -> tuple[str | None, str | None, str | None]:
    """(user, device, password) of a request: X-Limit-U/D or ?u=&d=, and HTTP Basic credentials."""
    headers, query = request.headers, request.query_params
    user = headers.get("x-limit-u") or query.get("u")
    device = headers.get("x-limit-d") or query.get("d")
    auth = headers.get("authorization", "")
    password = None
    if auth[:6].lower() == "basic ":
        try:
            basic_user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadCredentials(
                "the Authorization header is not valid Basic credentials",
                details=[{"field": "Authorization", "problem": "not user:password in base64"}],
            ) from None
        if user and basic_user and basic_user != user:
            raise BadCredentials(
                "the Basic auth user is not the X-Limit-U user",
                details=[{"field": "Authorization", "problem": "user differs from X-Limit-U"}],
            )
        user = user or basic_user or None
    return user, device, password


def error_body(exc: SmartCityError) -> JSONResponse:
    status = 400 if isinstance(exc, InvalidInput) else exc.status
    headers = {"WWW-Authenticate": 'Basic realm="smartcity"'} if status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=status, headers=headers)


router = APIRouter(include_in_schema=False)


async def _owntracks(request: Request) -> Response:
    app = request.app
    try:
        body = await read_body(request, app.state.settings.of(SafetySettings).device_max_bytes)
        user, device_name, password = _http_user(request)
        device = identifier(user, device_name)
        messages = parse(body)
        positions = []
        for message in messages:
            try:
                positions.append(decode(message, device, credential=password))
            except Ignored as kind:
                log.debug("ignored an OwnTracks %s message from %s", kind, device)
                count(app, "owntracks", "ignored")
    except SmartCityError as exc:
        count(app, "owntracks", exc.code)
        return error_body(exc)
    first_error = None
    for outcome in await settle(engine_of(app), positions) if positions else []:
        if isinstance(outcome, SmartCityError):
            count(app, "owntracks", outcome.code)
            first_error = first_error or outcome
        elif isinstance(outcome, Exception):
            log.error("storing an OwnTracks position failed: %r", outcome)
            first_error = first_error or SmartCityError("storing the position failed")
        else:
            count(app, "owntracks", "duplicate" if outcome.duplicate else "stored")
    if first_error is not None:
        return error_body(in_terms_of(first_error, FIELD_NAMES))
    return JSONResponse([])


for _path in PATHS:
    router.add_api_route(_path, _owntracks, methods=["POST"])


def _error(request: Request, exc: SmartCityError) -> Response:
    if isinstance(exc, TooLarge):
        return JSONResponse(exc.to_dict(), status_code=413)
    return error_body(exc)


def install(app) -> None:
    for path in PATHS:
        register_error_format(path, _error)
