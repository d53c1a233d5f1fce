"""The OsmAnd protocol, as the Traccar Client phone apps send it.

Served on its own port (`SMARTCITY_OSMAND_PORT`, default 5055, the port Traccar Client expects; a lean
ASGI app run by a second uvicorn server inside the serving process) and on the web server at `/osmand`
and `/api/safety/osmand`. Any path on the OsmAnd port is accepted, as Traccar's own server does.

Requests — HTTP GET or POST, parameters in the query string and/or a form body:

    GET /?id=123456&timestamp=1700000000&lat=37.5&lon=127.05&speed=0.0&bearing=0.0&altitude=30.0
         &accuracy=12.0&batt=87.0

    id | deviceid        the device identifier registered for the person
    lat, lon            degrees (or location=lat,lon)
    timestamp           epoch seconds, epoch milliseconds or ISO 8601 (missing: the time it arrived)
    speed               knots (stored as m/s)
    bearing | heading   degrees
    altitude, accuracy  metres
    batt                battery percent
    alarm               e.g. sos (opens an incident for the district control room)
    valid               false (or 0): the device has no real fix — stored flagged, never moving the live
                        position, zones or alerts (a fix at exactly 0,0 counts as invalid too)
    charge, hdop, driverUniqueId and any other key: kept as the position's attributes

and the JSON body of the newer Traccar Client (POST application/json):

    {"device_id": "123456", "location": {"timestamp": "2024-05-01T08:30:00.000Z",
        "coords": {"latitude", "longitude", "accuracy", "speed" (m/s), "heading", "altitude", …},
        "is_moving", "odometer", "event", "battery": {"level" (0–1), "is_charging"},
        "activity": {"type"}, "extras": {…}}}

(`location` may also be a list of such objects). Unknown keys become attributes.

Answers (Traccar Client keeps a position and retries it until it gets a 200):

    200  empty body — only once the position is durably stored (a replay is answered 200 too)
    400  malformed, non-numeric or out-of-range values, a fix far in the future or older than the
         retention period (and outside the city with SAFETY_OUTSIDE_CITY=refuse); no device is registered
         with this identifier (Traccar's own answer to an unknown device)
    403  the person has no recorded consent, or the device is not registered for osmand: nothing is stored
    413  body larger than SAFETY_DEVICE_MAX_BYTES
    503  the intake queue is full: retry
Error bodies are one line of plain text saying why, naming the field at fault ("lat: must be between -90
and 90").
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from smartcity.core.errors import InvalidInput, SmartCityError, TooLarge
from smartcity.core.intake import BatchOutcome, RowBatcher
from smartcity.core.web import register_error_format
from smartcity.safety.engine import (
    KNOT,
    NoConsent,
    Overloaded,
    Position,
    ProtocolNotAllowed,
    UnknownDevice,
    knots_to_ms,
)
from smartcity.safety.intake_api import (
    count,
    engine_of,
    epoch_or_iso,
    in_terms_of,
    number,
    read_body,
    refused,
    retry_after,
    settle,
)
from smartcity.safety.settings import SafetySettings

log = logging.getLogger(__name__)
PROTOCOL = "osmand"
PATHS = ("/osmand", "/api/safety/osmand")
FIELD_NAMES = {"battery": "batt"}  # the engine's names of fields → the query parameters named in errors

# Keys with a meaning of their own; every other key is kept as an attribute.
_CONSUMED = {
    "id",
    "deviceid",
    "lat",
    "lon",
    "location",
    "timestamp",
    "speed",
    "bearing",
    "heading",
    "altitude",
    "accuracy",
    "batt",
    "alarm",
    "valid",
}


def status_of(exc: SmartCityError) -> int:
    """The HTTP status Traccar Client gets for a refused position."""
    if isinstance(exc, UnknownDevice):
        return 400  # as Traccar's own decoder answers a device it does not know
    if isinstance(exc, (NoConsent, ProtocolNotAllowed)):
        return 403
    if isinstance(exc, InvalidInput):  # InvalidPosition, FutureFix, OutsideCity
        return 400
    if isinstance(exc, (TooLarge, Overloaded)):
        return exc.status
    return exc.status if 400 <= exc.status < 600 else 500


# --- decoding -------------------------------------------------------------------------------------


def decode_params(params: dict[str, str]) -> Position:
    """A position from OsmAnd query or form parameters."""
    device = params.get("id") or params.get("deviceid")
    if not device:
        raise refused("missing (or deviceid)", "id", "missing")
    lat, lon = params.get("lat"), params.get("lon")
    if (lat is None or lon is None) and "location" in params:
        parts = params["location"].split(",")
        if len(parts) != 2:
            raise refused("must be lat,lon", "location", "not lat,lon")
        lat, lon = parts
    if lat is None or lon is None or lat == "" or lon == "":
        raise refused("both are needed", "lat/lon", "missing")
    raw_time = params.get("timestamp")
    fix_time = epoch_or_iso(raw_time) if raw_time else datetime.now(UTC)
    speed = number(params.get("speed"), "speed")
    bearing = params.get("bearing")
    attributes: dict[str, Any] = {}
    if len(params) > len(_CONSUMED) or not params.keys() <= _CONSUMED:
        for key, value in params.items():
            if key not in _CONSUMED:
                attributes[key] = _attribute(key, value)
    alarm = params.get("alarm")
    valid = params.get("valid")
    return Position(
        device=device.strip(),
        fix_time=fix_time,
        lat=number(lat, "lat"),
        lon=number(lon, "lon"),
        speed=knots_to_ms(speed) if speed is not None else None,
        bearing=number(bearing if bearing is not None else params.get("heading"), "bearing"),
        altitude=number(params.get("altitude"), "altitude"),
        accuracy=number(params.get("accuracy"), "accuracy"),
        battery=number(params.get("batt"), "batt"),
        alarm=alarm or None,
        attributes=attributes,
        protocol=PROTOCOL,
        valid=valid is None or valid.strip().lower() in ("true", "1"),
    )


def _attribute(key: str, value: str) -> Any:
    if key == "charge":
        return value.strip().lower() in ("true", "1", "yes")
    if key == "hdop":
        with contextlib.suppress(ValueError):
            return float(value)
    return value[:500]


def _known(value: Any) -> float | None:
    """The JSON client reports -1 for an unknown speed, heading or accuracy."""
    return None if value is None or (isinstance(value, (int, float)) and value < 0) else value


def decode_location(device: str, loc: Any, root_alarm: Any = None) -> Position:
    """A position from one `location` object of the JSON form."""
    if not isinstance(loc, dict):
        raise refused("location must be an object", "location", "not an object")
    coords = loc.get("coords")
    if not isinstance(coords, dict):
        raise refused("location.coords is missing", "coords", "missing")
    lat, lon = number(coords.get("latitude"), "latitude"), number(coords.get("longitude"), "longitude")
    if lat is None or lon is None:
        raise refused("coords need latitude and longitude", "coords", "missing latitude/longitude")
    attributes: dict[str, Any] = {}
    for key, value in coords.items():
        if key not in ("latitude", "longitude", "accuracy", "speed", "heading", "altitude"):
            attributes[key] = value
    battery = loc.get("battery") if isinstance(loc.get("battery"), dict) else {}
    level = number(battery.get("level"), "battery.level")
    if "is_charging" in battery:
        attributes["charge"] = bool(battery["is_charging"])
    activity = loc.get("activity")
    if isinstance(activity, dict) and activity.get("type"):
        attributes["activity"] = activity["type"]
    extras = loc.get("extras") if isinstance(loc.get("extras"), dict) else {}
    for key, value in loc.items():
        if key not in ("timestamp", "coords", "battery", "activity", "extras"):
            attributes[key] = value
    attributes.update({k: v for k, v in extras.items() if k != "alarm"})
    alarm = extras.get("alarm") or root_alarm
    return Position(
        device=device,
        fix_time=epoch_or_iso(loc.get("timestamp")) if loc.get("timestamp") else datetime.now(UTC),
        lat=lat,
        lon=lon,
        speed=_known(number(coords.get("speed"), "speed")),
        bearing=_known(number(coords.get("heading"), "heading")),
        altitude=number(coords.get("altitude"), "altitude"),
        accuracy=_known(number(coords.get("accuracy"), "accuracy")),
        battery=None if level is None or level < 0 else round(level * 100, 1),
        alarm=str(alarm) if alarm else None,
        attributes=attributes,
        protocol=PROTOCOL,
    )


def decode_json(doc: Any) -> list[Position]:
    if not isinstance(doc, dict):
        raise refused("the JSON body is an object", "body", "not an object")
    device = doc.get("device_id") or doc.get("id") or doc.get("deviceid")
    if not isinstance(device, (str, int)) or isinstance(device, bool) or not str(device).strip():
        raise refused("missing", "device_id", "missing")
    locations = doc.get("location")
    if isinstance(locations, list):
        if not locations:
            raise refused("empty", "location", "empty")
        return [decode_location(str(device).strip(), loc, doc.get("alarm")) for loc in locations]
    return [decode_location(str(device).strip(), locations, doc.get("alarm"))]


def _query(query: str) -> dict[str, str]:
    """Query parameters; the common plain-ASCII query without escapes is split directly."""
    if "%" in query or "+" in query:
        return dict(parse_qsl(query, keep_blank_values=True))
    params = {}
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            params[key] = value
    return params


def decode(query: bytes | str, content_type: str, body: bytes) -> list[Position]:
    """Every position in one request (query string, form body or JSON body)."""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    stripped = body.lstrip()
    if stripped[:1] in (b"{", b"[") or content_type.startswith("application/json"):
        try:
            doc = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            raise refused("the body is not valid JSON", "body", "not JSON") from None
        return decode_json(doc)
    params = _query(query) if query else {}
    if stripped:
        try:
            params.update(parse_qsl(stripped.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise refused("the form body is not UTF-8", "body", "encoding") from None
    return [decode_params(params)]


Answer = tuple[int, bytes, int | None]  # status, body, Retry-After seconds (a 503)


def answer_of(exc: SmartCityError) -> Answer:
    """A refusal as Traccar Client gets it: its status, one line saying why, and when to come back."""
    exc = in_terms_of(exc, FIELD_NAMES)
    return status_of(exc), exc.message.encode(), retry_after(exc)


async def receive(app, query: bytes | str, content_type: str, body: bytes) -> Answer:
    """Decode and store; (status, body, Retry-After) once every position is stored or one was refused."""
    try:
        positions = decode(query, content_type, body)
    except SmartCityError as exc:
        count(app, PROTOCOL, exc.code)
        return answer_of(exc)
    try:
        engine = engine_of(app)
    except SmartCityError as exc:
        return answer_of(exc)
    refused = None
    for outcome in await settle(engine, positions):
        if isinstance(outcome, SmartCityError):
            count(app, PROTOCOL, outcome.code)
            refused = refused or outcome
        elif isinstance(outcome, Exception):
            log.error("storing an OsmAnd position failed: %r", outcome)
            refused = refused or SmartCityError("storing the position failed")
        else:
            count(app, PROTOCOL, "duplicate" if outcome.duplicate else "stored")
    if refused is not None:
        return answer_of(refused)
    return 200, b"", None


# --- the fast path: a plain Traccar Client request, gathered into its loop turn's batch --------------

# A fast row's fields, in order: the columns `Admission.validate_columns` checks (the batch's protocol and
# alarm are constants: a request with an alarm takes the full path, which sends it to the writer at once).
ROW_FIELDS: dict[str, Any] = {
    "device": object,
    "fix_time": np.int64,
    "lat": np.float64,
    "lon": np.float64,
    "speed": np.float64,
    "bearing": np.float64,
    "altitude": np.float64,
    "accuracy": np.float64,
    "battery": np.float64,
    "valid": np.bool_,
    "attributes": object,
}
ROW_CONSTANTS = {"protocol": PROTOCOL, "alarm": None}
_NUMBERS = {"lat": 0, "lon": 1, "speed": 2, "bearing": 3, "heading": 4, "altitude": 5, "accuracy": 6, "batt": 7}
_MS_FROM = 100_000_000_000  # 1e11: a larger epoch is milliseconds (as `epoch_or_iso`)
_MS_MAX = 253_402_300_799_000  # 9999-12-31T23:59:59Z; beyond, the full path says "out of range"


def fast_row(query: str) -> tuple | None:
    """The batch row of a plain Traccar Client query (id, timestamp as whole epoch seconds or milliseconds,
    lat, lon and numbers, any other keys as attributes), parsed by hand; None when the request needs the full
    decoder: escapes, an alarm, `location`, another form of time, a value that is not a finite number or a
    missing field. The full decoder gives the same position for every query this accepts (a property test
    holds them to it), and says what is wrong with the others."""
    if "%" in query or "+" in query:
        return None
    device = deviceid = stamp = valid = extra = None
    numbers: list[float | None] = [None] * 8
    bearing_given = False  # `bearing` sent, even empty, wins over `heading` (as in `decode_params`)
    for part in query.split("&"):
        key, _, value = part.partition("=")
        slot = _NUMBERS.get(key)
        if slot is not None:
            if slot == 3:
                bearing_given = True
            if value:
                try:
                    x = float(value)
                except ValueError:
                    return None
                if x - x:  # NaN or infinite: the full path names the field
                    return None
                numbers[slot] = x
            else:
                numbers[slot] = None
        elif key == "id":
            device = value
        elif key == "timestamp":
            stamp = value
        elif key == "deviceid":
            deviceid = value
        elif key == "valid":
            valid = value
        elif key in _CONSUMED:  # alarm, location
            return None
        elif part:
            if extra is None:
                extra = {}
            extra[key] = value
    device = device or deviceid
    lat, lon = numbers[0], numbers[1]
    if not device or len(device) > 100 or device.strip() != device or lat is None or lon is None:
        return None
    if stamp:
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 15:
            return None
        at = int(stamp)
        if at < _MS_FROM:
            at *= 1000
        elif at > _MS_MAX:
            return None
    else:
        at = time.time_ns() // 1_000_000  # the time it arrived
    speed = numbers[2]
    bearing = numbers[3] if bearing_given else numbers[4]
    attributes = None
    if extra is not None:
        attributes = orjson.dumps({key: _attribute(key, value) for key, value in extra.items()}).decode()
    return (
        device,
        at,
        lat,
        lon,
        None if speed is None else speed * KNOT,
        bearing,
        numbers[5],
        numbers[6],
        numbers[7],
        valid is None or valid.strip().lower() in ("true", "1"),
        attributes,
    )


def batcher_of(app) -> RowBatcher:
    """The app's gatherer of fast rows: one batch per turn of the event loop, sent to the process's intake."""
    batcher = getattr(app.state, "osmand_batcher", None)
    if batcher is None:

        def settled(outcome: BatchOutcome) -> None:
            count(app, PROTOCOL, "stored", outcome.stored)
            count(app, PROTOCOL, "duplicate", outcome.duplicates)
            failures = []
            for exc in outcome.errors.values():
                count(app, PROTOCOL, getattr(exc, "code", "internal_error"))
                if not isinstance(exc, SmartCityError):
                    failures.append(exc)
            if failures:
                log.error("storing %d OsmAnd positions failed: %r", len(failures), failures[0])

        batcher = app.state.osmand_batcher = RowBatcher(
            ROW_FIELDS, lambda cols: engine_of(app).columns_future(cols), ROW_CONSTANTS, settled
        )
    return batcher


async def receive_row(batcher: RowBatcher, row: tuple) -> Answer:
    """Store a fast row with its batch; (status, body, Retry-After) once the batch is committed or the row
    refused."""
    batch, index = batcher.add(row)
    await batch.done
    if batch.status[index]:  # stored, or a replay of a stored one
        return 200, b"", None
    exc = batch.errors.get(index)
    if not isinstance(exc, SmartCityError):
        return 500, b"storing the position failed", None
    return answer_of(exc)


def _bodiless(headers) -> bool:
    """Whether the request has no body (nor a JSON content type, which the full path refuses without one)."""
    for name, value in headers:
        if name == b"content-length":
            if value != b"0":
                return False
        elif name == b"transfer-encoding" or (name == b"content-type" and b"json" in value):
            return False
    return True


# --- under the web server -------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


async def _osmand(request: Request) -> Response:
    query = request.scope.get("query_string", b"")
    if query and _bodiless(request.scope["headers"]):
        row = fast_row(query.decode("latin-1"))
        if row is not None:
            return _response(*await receive_row(batcher_of(request.app), row))
    try:
        body = await read_body(request, request.app.state.settings.of(SafetySettings).device_max_bytes)
    except TooLarge as exc:
        return Response(exc.message, status_code=413, media_type="text/plain")
    return _response(
        *await receive(
            request.app, request.scope.get("query_string", b""), request.headers.get("content-type", ""), body
        )
    )


def _response(status: int, text: bytes, wait: int | None) -> Response:
    headers = {"Retry-After": str(wait)} if wait is not None else None
    return Response(text, status_code=status, headers=headers, media_type="text/plain" if text else None)


for _path in PATHS:
    router.add_api_route(_path, _osmand, methods=["GET", "POST"])


def _plain_error(request: Request, exc: SmartCityError) -> Response:
    return _response(*answer_of(exc))


# --- its own port ---------------------------------------------------------------------------------


class Listener:
    """A bare ASGI app for the OsmAnd port: every path is the OsmAnd endpoint; no middleware, no routing."""

    def __init__(self, app):
        self.app = app
        self.limit = app.state.settings.of(SafetySettings).device_max_bytes
        self.batcher = batcher_of(app)

    async def __call__(self, scope, receive_message, send) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"]
        if query and scope["method"] in ("GET", "POST") and _bodiless(scope["headers"]):
            row = fast_row(query.decode("latin-1"))
            if row is not None:
                answer = await receive_row(self.batcher, row)
                if answer[0] == 200:
                    await send(_OK_START)
                    await send(_EMPTY_BODY)
                    return
                await self._send(send, *answer)
                return
        await self._send(send, *await self._answer(scope, receive_message))

    @staticmethod
    async def _send(send, status: int, text: bytes, wait: int | None = None) -> None:
        headers = [(b"content-length", str(len(text)).encode())]
        if text:
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
        if wait is not None:
            headers.append((b"retry-after", str(wait).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text})

    async def _answer(self, scope, receive_message) -> Answer:
        if scope["method"] not in ("GET", "POST"):
            return 405, b"GET or POST", None
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return 413, b"the body is too large", None
            if name == b"content-type":
                content_type = value.decode("latin-1")
        body, more = b"", True
        while more:
            message = await receive_message()
            if message["type"] != "http.request":
                return 400, b"the client went away", None
            body += message.get("body", b"")
            if len(body) > self.limit:
                return 413, b"the body is too large", None
            more = message.get("more_body", False)
        return await receive(self.app, scope["query_string"], content_type, body)


_OK_START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
_EMPTY_BODY = {"type": "http.response.body", "body": b""}


class _EmbeddedServer:
    """A uvicorn server sharing the web server's process and event loop (its signals stay the web server's)."""

    def __init__(self, asgi, host: str, port: int, log_level: str):
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                yield

        self.config = uvicorn.Config(
            asgi,
            host=host,
            port=port,
            lifespan="off",
            access_log=False,
            log_level=log_level,
            timeout_graceful_shutdown=3,
            server_header=False,
            proxy_headers=False,
        )
        self.server = Server(self.config)
        self.task = None
        self.socket: socket.socket | None = None

    async def start(self) -> bool:
        import asyncio

        try:
            self.socket = self.config.bind_socket()
        except SystemExit:  # uvicorn exits on a bind error after logging it
            return False
        self.task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.005)
        return self.server.started

    async def stop(self) -> None:
        if self.task is not None:
            self.server.should_exit = True
            try:
                await self.task
            except Exception:  # the listener's own failure: the app's shutdown goes on, the cause is logged
                log.exception("the OsmAnd listener ended with an error")
        if self.socket is not None:
            self.socket.close()


def install(app) -> None:
    for path in PATHS:
        register_error_format(path, _plain_error)

    async def start_listener(app) -> None:
        settings = app.state.settings
        port = settings.of(SafetySettings).osmand_port
        if not port:
            return
        server = _EmbeddedServer(Listener(app), settings.host, port, settings.log_level)
        if not await server.start():
            log.error(
                "the OsmAnd port %s:%s could not be opened; OsmAnd is still served at /osmand on the web port",
                settings.host,
                port,
            )
            return
        app.state.osmand_listener = server
        # Added while starting up, so it runs first when shutting down: no position is taken after the
        # engine has flushed.
        app.state.shutdown.append(stop_listener)

    async def stop_listener(app) -> None:
        server = getattr(app.state, "osmand_listener", None)
        if server is not None:
            await server.stop()
            app.state.osmand_listener = None

    app.state.startup.append(start_listener)
