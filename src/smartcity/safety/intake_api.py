"""The gateway batch endpoint (POST /api/safety/positions) and what every intake adapter shares: turning
engine errors into results, waiting for acknowledgments, counting what came in.

A gateway (a tag vendor's server, a LoRaWAN network server, a relay in front of a fleet of trackers)
posts up to `SAFETY_GATEWAY_MAX_POSITIONS` positions at once:

    POST /api/safety/positions            Authorization: Bearer <key>   (or X-API-Key)
    {"positions": [{"device": "tag-17", "time": "2024-05-01T08:30:00+09:00", "lat": 37.5, "lon": 127.05,
                    "speed": 1.2, "bearing": 90, "altitude": 30, "accuracy": 8, "battery": 80,
                    "alarm": null, "attributes": {"rssi": -71}}, …]}

and gets, once every accepted position is stored, one result per position in the same order:

    {"stored": 2, "duplicates": 1, "errors": 1,
     "results": [{"status": "ok"}, {"status": "duplicate"}, {"status": "ok"},
                 {"status": "error", "code": "unknown_device", "message": "…", "http_status": 404}]}

Partial failures never lose the accepted positions: the answer is 200 whenever the body was readable.
413 for a body or a list over the limits, 422 (the platform's error format) for a body that is not such a
JSON object at all. Callers: system API keys of scope `safety.gateway` (least privilege) or anyone holding
the `safety.intake` permission (administrators).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from smartcity.core.auth import Identity, check, current_identity
from smartcity.core.errors import InvalidInput, SmartCityError, TooLarge
from smartcity.core.intake import DUPLICATE, REFUSED, BatchOutcome, Columns
from smartcity.core.params import iso_time
from smartcity.safety.engine import Ack, InvalidPosition, Position, get_engine
from smartcity.safety.settings import SafetySettings

GATEWAY_SCOPE = "safety.gateway"

router = APIRouter(tags=["safety intake"])


# --- shared by the adapters -----------------------------------------------------------------------


def engine_of(app):
    """The process's intake engine for the app's store."""
    state = app.state
    return get_engine(state.db, state.settings, state.profile)


def count(app, protocol: str, result: str, n: int = 1) -> None:
    """Count positions of `protocol` that ended as `result` in the core's intake metrics."""
    metrics = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.count_intake(protocol, result, n)


RETRY_AFTER_S = 1  # a 503 without an estimate of its own (the queue was full, the writer restarting)


def retry_after(exc: BaseException | None) -> int | None:
    """The Retry-After seconds of a refusal that asks the device to come back (a 503), else None."""
    if not isinstance(exc, SmartCityError) or exc.status != 503:
        return None
    details = exc.details
    if isinstance(details, dict) and isinstance(details.get("retry_after_s"), int):
        return details["retry_after_s"]
    return RETRY_AFTER_S


def refused(message: str, field: str, problem: str) -> InvalidPosition:
    """A decoder's protocol error naming the field at fault, in its message too ("tst: … is missing")."""
    if not message.startswith(f"{field}:"):
        message = f"{field}: {message}"
    return InvalidPosition(message, details=[{"field": field, "problem": problem}])


def in_terms_of(exc: SmartCityError, names: dict[str, str]) -> SmartCityError:
    """An engine error naming the protocol's own fields ("batt", not "battery"), for that protocol's answer."""
    details = exc.details
    if not names or not isinstance(details, list) or not any(d.get("field") in names for d in details):
        return exc
    renamed = [{**d, "field": names.get(d.get("field"), d.get("field"))} for d in details]
    return type(exc)(
        "; ".join(f"{d['field']}: {d.get('problem', '')}" for d in renamed), details=renamed, code=exc.code
    )


def number(raw: Any, name: str) -> float | None:
    """A decoder's numeric field: None when absent or empty, else a float, else the protocol's error."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise refused(f"{name}: must be a number", name, "not a number")
    if isinstance(raw, (int, float)):
        return float(raw)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise refused(f"{name}: must be a number, not {str(raw)[:30]!r}", name, "not a number") from None


def epoch_or_iso(raw: Any, name: str = "timestamp") -> datetime:
    """A fix time sent as epoch seconds, epoch milliseconds or ISO 8601 (a naive one is UTC)."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str) and raw.strip():
        text = raw.strip()
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None:
            at = iso_time(text, UTC)
            if at is None:
                raise refused(
                    f"{name}: neither epoch seconds, epoch milliseconds nor ISO 8601", name, "not a time"
                ) from None
            return at
    else:
        raise refused(f"{name}: missing", name, "missing")
    if not math.isfinite(value):
        raise refused(f"{name}: not a time", name, "not a time")
    if abs(value) >= 1e11:  # 1e11 seconds is the year 5138: this is milliseconds
        value /= 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise refused(f"{name}: out of range", name, "out of range") from None


async def settle(engine, positions: list[Position]) -> list[Ack | SmartCityError | Exception]:
    """Submit positions and wait, without blocking the event loop, until each is stored or refused."""
    if len(positions) == 1:
        try:
            return [await engine.intake(positions[0])]
        except SmartCityError as exc:
            return [exc]
    return await engine.intake_all(positions)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# --- the batch endpoint ---------------------------------------------------------------------------


async def gateway(request: Request) -> Identity:
    """A system key of scope `safety.gateway`, or someone holding `safety.intake`."""
    identity = await current_identity(request)
    if identity.via == "key" and identity.user_id is None and identity.key_scope == GATEWAY_SCOPE:
        return identity
    return check(identity, "safety.intake")


Gateway = Annotated[Identity, Depends(gateway)]

FIELDS = frozenset(
    {
        "device",
        "time",
        "lat",
        "lon",
        "speed",
        "bearing",
        "altitude",
        "accuracy",
        "battery",
        "alarm",
        "attributes",
        "valid",
    }
)


def decode_item(item: Any) -> Position:
    """One gateway position (the platform's own units: m/s, degrees, metres, percent)."""
    if not isinstance(item, dict):
        raise refused("a position is a JSON object", "position", "not an object")
    device = item.get("device")
    if not isinstance(device, (str, int)) or isinstance(device, bool) or str(device).strip() == "":
        raise refused("device: missing", "device", "missing")
    attributes = item.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise refused("attributes must be an object", "attributes", "not an object")
    extra = {k: v for k, v in item.items() if k not in FIELDS}
    alarm = item.get("alarm")
    lat, lon = number(item.get("lat"), "lat"), number(item.get("lon"), "lon")
    if lat is None or lon is None:
        raise refused("lat/lon: a position needs both", "lat/lon", "missing")
    valid = item.get("valid", True)
    if not isinstance(valid, bool):
        raise refused("valid: must be true or false", "valid", "not a boolean")
    return Position(
        device=str(device).strip(),
        fix_time=epoch_or_iso(item.get("time"), "time"),
        lat=lat,
        lon=lon,
        speed=number(item.get("speed"), "speed"),
        bearing=number(item.get("bearing"), "bearing"),
        altitude=number(item.get("altitude"), "altitude"),
        accuracy=number(item.get("accuracy"), "accuracy"),
        battery=number(item.get("battery"), "battery"),
        alarm=str(alarm) if alarm not in (None, "") else None,
        attributes={**extra, **attributes},
        protocol="batch",
        valid=valid,
    )


NUMBERS = ("speed", "bearing", "altitude", "accuracy", "battery")
_PLAIN_NUMBERS = frozenset({float, int, type(None)})
MAX_EPOCH_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z: beyond, a time is out of range


def _numbers(values: list, name: str, errors: dict[int, SmartCityError]) -> np.ndarray:
    """A numeric field of every item as float64 (NaN: absent): at once when each is a JSON number or absent,
    else item by item through `number` (a string holding a number counts; anything else is the item's error)."""
    if set(map(type, values)) <= _PLAIN_NUMBERS:
        return np.array(values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    for i, raw in enumerate(values):
        try:
            value = number(raw, name)
        except SmartCityError as exc:
            errors.setdefault(i, exc)
            continue
        if value is not None:
            out[i] = value
    return out


def _times(values: list, errors: dict[int, SmartCityError]) -> np.ndarray:
    """Fix times as epoch milliseconds: epoch seconds or milliseconds at once, ISO 8601 item by item."""
    out = np.zeros(len(values), dtype=np.int64)
    if set(map(type, values)) <= {float, int}:
        raw = np.array(values, dtype=np.float64)
        ms = np.where(np.abs(raw) >= 1e11, raw, raw * 1000)  # 1e11 seconds is the year 5138: milliseconds
        bad = ~(np.abs(ms) <= MAX_EPOCH_MS)
        for i in np.flatnonzero(bad).tolist():
            errors.setdefault(i, refused("time: out of range", "time", "out of range"))
        out[~bad] = np.rint(ms[~bad])
        return out
    for i, raw in enumerate(values):
        try:
            out[i] = epoch_ms(epoch_or_iso(raw, "time"))
        except SmartCityError as exc:
            errors.setdefault(i, exc)
    return out


def epoch_ms(at: datetime) -> int:
    """An aware time as integer epoch milliseconds."""
    return (at - EPOCH) // MILLISECOND


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def decode_columns(items: list) -> tuple[Columns, dict[int, SmartCityError]]:
    """A gateway's positions straight into columns (no object per position): the same rules and errors as
    `decode_item`, each field checked for the whole list at once where it can be. Returns the columns of
    every item (device identifiers, fix_time ms, lat, lon, the numbers, valid, alarm, attributes as JSON
    text, protocol) and the errors of the items refused, by index (the first problem of each, in
    `decode_item`'s order)."""
    n = len(items)
    errors: dict[int, SmartCityError] = {}
    if set(map(type, items)) != {dict}:
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                errors[i] = refused("a position is a JSON object", "position", "not an object")
        items = [item if isinstance(item, dict) else {} for item in items]
    devices = np.empty(n, dtype=object)
    for i, device in enumerate([d.get("device") for d in items]):
        if device.__class__ is str and device and not device[0].isspace() and not device[-1].isspace():
            devices[i] = device
        elif isinstance(device, (str, int)) and not isinstance(device, bool) and str(device).strip():
            devices[i] = str(device).strip()
        elif i not in errors:
            errors[i] = refused("device: missing", "device", "missing")
    attributes = np.full(n, None, dtype=object)
    fields = FIELDS
    for i, item in enumerate(items):
        if fields.issuperset(item) and not item.get("attributes"):
            continue
        extra = {k: v for k, v in item.items() if k not in fields}
        given = item.get("attributes") or {}
        if not isinstance(given, dict):
            errors.setdefault(i, refused("attributes must be an object", "attributes", "not an object"))
            continue
        merged = {**extra, **given}
        if merged:
            try:
                attributes[i] = orjson.dumps(merged).decode()
            except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
                errors.setdefault(i, refused("attributes: cannot be stored as JSON", "attributes", "not storable"))
    lat = _numbers([d.get("lat") for d in items], "lat", errors)
    lon = _numbers([d.get("lon") for d in items], "lon", errors)
    for i in np.flatnonzero(np.isnan(lat) | np.isnan(lon)).tolist():
        errors.setdefault(i, refused("lat/lon: a position needs both", "lat/lon", "missing"))
    valid_raw = [d.get("valid", True) for d in items]
    if set(map(type, valid_raw)) == {bool}:
        valid = np.array(valid_raw, dtype=np.bool_)
    else:
        valid = np.ones(n, dtype=np.bool_)
        for i, v in enumerate(valid_raw):
            if v.__class__ is bool:
                valid[i] = v
            else:
                errors.setdefault(i, refused("valid: must be true or false", "valid", "not a boolean"))
    fix_time = _times([d.get("time") for d in items], errors)
    cols = {
        "device": devices,
        "fix_time": fix_time,
        "lat": lat,
        "lon": lon,
        **{name: _numbers([d.get(name) for d in items], name, errors) for name in NUMBERS},
        "valid": valid,
        "attributes": attributes,
        "protocol": np.full(n, "batch", dtype=object),
    }
    alarms = [d.get("alarm") for d in items]
    alarm = np.full(n, None, dtype=object)
    for i, value in enumerate(alarms):
        if value is not None and value != "":
            alarm[i] = str(value)
    cols["alarm"] = alarm
    return Columns(cols, n), errors


def result_of(outcome) -> dict:
    if isinstance(outcome, Ack):
        if outcome.duplicate:
            return {"status": "duplicate"}
        return {"status": "ok"}
    if isinstance(outcome, SmartCityError):
        body = {"status": "error", "code": outcome.code, "message": outcome.message, "http_status": outcome.status}
        if outcome.details is not None:
            body["details"] = outcome.details
        return body
    return {"status": "error", "code": "internal_error", "message": "storing the position failed", "http_status": 500}


OK, DUPLICATE_RESULT = {"status": "ok"}, {"status": "duplicate"}


def results_of(outcome: BatchOutcome) -> list[dict]:
    """A batch's outcome as the endpoint's per-position results (shared dicts for the common answers)."""
    results = [OK] * len(outcome.status)
    for i in np.flatnonzero(outcome.status == DUPLICATE).tolist():
        results[i] = DUPLICATE_RESULT
    for i in np.flatnonzero(outcome.status == REFUSED).tolist():
        results[i] = result_of(outcome.errors.get(i))
    return results


def decode_all(items: list) -> list[Position | SmartCityError]:
    out: list[Position | SmartCityError] = []
    for item in items:
        try:
            out.append(decode_item(item))
        except SmartCityError as exc:
            out.append(exc)
    return out


@router.post("/api/safety/positions", summary="Store a gateway's batch of positions")
async def positions(request: Request, identity: Gateway) -> Response:
    """Store up to `SAFETY_GATEWAY_MAX_POSITIONS` positions; answers once each is stored (or refused),
    with one result per position in order."""
    settings = request.app.state.settings.of(SafetySettings)
    body = await read_body(request, settings.gateway_max_bytes)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("the body is not JSON", code="malformed_body") from None
    items = doc.get("positions") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise InvalidInput('the body is {"positions": [...]}', code="malformed_body")
    if len(items) > settings.gateway_max_positions:
        raise TooLarge(f"at most {settings.gateway_max_positions} positions per request", code="too_many_positions")
    # Decoding thousands of positions is CPU work: in a thread, so the event loop keeps its turns. The columns
    # then go to the engine as one batch, answered once its last row is written.
    cols, errors = await asyncio.to_thread(decode_columns, items) if len(items) > 100 else decode_columns(items)
    outcome = await engine_of(request.app).intake_columns(cols, errors)
    results = results_of(outcome)
    stored, duplicates = outcome.stored, outcome.duplicates
    for r in results:
        if r["status"] == "error":
            count(request.app, "batch", r["code"])
    count(request.app, "batch", "stored", stored)
    count(request.app, "batch", "duplicate", duplicates)
    wait = max((s for e in outcome.errors.values() if (s := retry_after(e)) is not None), default=None)
    headers = {"Retry-After": str(wait)} if wait is not None else None
    if wait is not None and not stored and not duplicates and all(map(retry_after, outcome.errors.values())):
        # Every position is to be sent again later (the store is behind, the queue is full): the platform's
        # JSON error for the whole request, as for any other 503.
        busy = next(iter(outcome.errors.values()))
        return Response(orjson.dumps(busy.to_dict()), status_code=503, headers=headers, media_type="application/json")
    return Response(
        orjson.dumps(
            {
                "stored": stored,
                "duplicates": duplicates,
                "errors": len(results) - stored - duplicates,
                "results": results,
            }
        ),
        headers=headers,
        media_type="application/json",
    )
