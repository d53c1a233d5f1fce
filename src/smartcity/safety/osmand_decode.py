"""The OsmAnd protocol's decoding, pure (parameters or a JSON body → `Position`s; a plain Traccar Client query →
one batch row, `fast_row`): no HTTP, no store. osmand.py serves it (the port, the web routes, the answers) and
re-exports these names; its docstring describes the requests.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import orjson

from smartcity.safety.engine import KNOT, Position, knots_to_ms
from smartcity.safety.intake_api import epoch_or_iso, number, refused

PROTOCOL = "osmand"

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
