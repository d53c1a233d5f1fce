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

from fastapi import APIRouter, Request
from fastapi.responses import Response

from smartcity.core.errors import InvalidInput, SmartCityError, TooLarge
from smartcity.core.intake import BatchOutcome, RowBatch, RowBatcher
from smartcity.core.web import register_error_format
from smartcity.safety.engine import (
    NoConsent,
    Overloaded,
    ProtocolNotAllowed,
    UnknownDevice,
)
from smartcity.safety.intake_api import (
    count,
    engine_of,
    in_terms_of,
    read_body,
    retry_after,
    settle,
)
from smartcity.safety.osmand_decode import (
    PROTOCOL,
    ROW_CONSTANTS,
    ROW_FIELDS,
    decode,
    decode_json,
    decode_location,
    decode_params,
    fast_row,
)
from smartcity.safety.osmand_http import OsmAndServer
from smartcity.safety.settings import SafetySettings

# The decoders (osmand_decode.py) are importable from here too: this module is the protocol's surface.
__all__ = [
    "PROTOCOL",
    "ROW_CONSTANTS",
    "ROW_FIELDS",
    "answer_of",
    "decode",
    "decode_json",
    "decode_location",
    "decode_params",
    "fast_row",
    "install",
    "listener",
    "receive",
    "receive_row",
    "router",
    "row_answer",
    "status_of",
]

log = logging.getLogger(__name__)
PATHS = ("/osmand", "/api/safety/osmand")
FIELD_NAMES = {"battery": "batt"}  # the engine's names of fields → the query parameters named in errors


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
    return row_answer(batch, index)


def row_answer(batch: RowBatch, index: int) -> Answer:
    """The answer to row `index` of a settled batch."""
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


class _EmbeddedServer:
    """A uvicorn server sharing the web server's process and event loop (its signals stay the web server's): what
    the OsmAnd port ran on before osmand_http.py, kept as the bench's bare ASGI endpoint."""

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


def listener(app) -> OsmAndServer:
    """The OsmAnd port's server (osmand_http.py): plain Traccar Client queries into the app's batches, anything
    else through the full decoder."""

    async def full(query: bytes, content_type: str, body: bytes) -> Answer:
        return await receive(app, query, content_type, body)

    limit = app.state.settings.of(SafetySettings).device_max_bytes
    return OsmAndServer(fast_row, batcher_of(app), row_answer, full, limit, lambda code: count(app, PROTOCOL, code))


def install(app) -> None:
    for path in PATHS:
        register_error_format(path, _plain_error)

    async def start_listener(app) -> None:
        settings = app.state.settings
        port = settings.of(SafetySettings).osmand_port
        if not port:
            return
        server = listener(app)
        try:
            await server.start(settings.host, port)
        except OSError as exc:
            log.error(
                "the OsmAnd port %s:%s could not be opened (%s); OsmAnd is still served at /osmand on the web port",
                settings.host,
                port,
                exc,
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
