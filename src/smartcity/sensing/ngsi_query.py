"""The NGSI-LD query language (`q`) and geo-queries, parsed once per request and evaluated on entities in
their normalized form.

q: terms joined by `;` (and) and `|` (or; `;` binds tighter), parentheses; a term is `attr`, `!attr` (absent)
or `attr OP value` with OP one of == != < <= > >= ~= !~=; a value is a number, a "string", true/false, a
date-time, a range `a..b` (with == and !=) or a list `a,b,c`. `attr.sub` reads a sub-attribute's value,
`attr[key]` a key inside the value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smartcity.core.geo import haversine_m
from smartcity.sensing.ngsi_wire import bad_data, invalid_request

Test = Callable[[dict], bool]
_OPS = ("==", "!=", ">=", "<=", "~=", "!~=", ">", "<")
_TOKEN = re.compile(
    r'\s*(?:(\()|(\))|(;)|(\|)|(!?[A-Za-z_@][\w.\[\]:@-]*)(?:(!~=|==|!=|>=|<=|~=|>|<)((?:"[^"]*"|[^;|()"])*))?)'
)


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return json.loads(text) if re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", text) else _time_or_text(text)
    except ValueError:
        return text


def _time_or_text(text: str) -> Any:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """The pair made comparable (a stored date-time string against a parsed one), or None."""
    if isinstance(b, datetime) and isinstance(a, str):
        try:
            a = datetime.fromisoformat(a.replace("Z", "+00:00"))
        except ValueError:
            return None
        if (a.tzinfo is None) != (b.tzinfo is None):
            return None
    if isinstance(a, bool) or isinstance(b, bool):
        return (a, b) if type(a) is type(b) else None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a, b
    if type(a) is type(b):
        return a, b
    return None


def _values(entity: dict, path: str) -> list[Any]:
    """The values a path names in an entity (a list value is read as its members)."""
    key = None
    if "[" in path:
        path, _, rest = path.partition("[")
        key = rest.rstrip("]")
    name, *subs = path.split(".")
    if name == "id":
        return [entity.get("id")]
    if name == "type":
        return [entity.get("type")]
    node = entity.get(name)
    for sub in subs:
        if not isinstance(node, dict) or sub not in node:
            return []
        node = node[sub]
    if not isinstance(node, dict):
        return []
    value = node.get("value", node.get("object"))
    if key is not None:
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _compare(op: str, found: Any, wanted: Any) -> bool:
    if op in ("~=", "!~=") and isinstance(found, str):
        return bool(wanted.search(found)) == (op == "~=")
    if isinstance(wanted, tuple):  # a range
        low, high = (_comparable(found, w) for w in wanted)
        inside = low is not None and high is not None and low[1] <= low[0] <= high[1]
        return inside if op == "==" else not inside
    if isinstance(wanted, list):
        hit = any((p := _comparable(found, w)) is not None and p[0] == p[1] for w in wanted)
        return hit if op == "==" else not hit
    pair = _comparable(found, wanted)
    if pair is None:
        return op == "!="
    a, b = pair
    return {"==": a == b, "!=": a != b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}.get(op, False)


@dataclass(frozen=True)
class Term:
    """One term of q: `path` present (op None), absent (op "!"), or compared with `wanted` (a scalar, a
    compiled pattern for ~= and !~=, a (low, high) range or a list)."""

    path: str
    op: str | None
    wanted: Any = None

    def __call__(self, e: dict) -> bool:
        found = _values(e, self.path)
        if self.op is None:
            return bool(found)
        if self.op == "!":
            return not found
        if self.op == "!=":
            return bool(found) and all(_compare(self.op, v, self.wanted) for v in found)
        return any(_compare(self.op, v, self.wanted) for v in found)


@dataclass(frozen=True)
class AllOf:
    parts: tuple

    def __call__(self, e: dict) -> bool:
        return all(p(e) for p in self.parts)


@dataclass(frozen=True)
class AnyOf:
    parts: tuple

    def __call__(self, e: dict) -> bool:
        return any(p(e) for p in self.parts)


Node = Term | AllOf | AnyOf


def _term(path: str, op: str | None, raw: str | None) -> Term:
    if path.startswith("!"):
        if op:
            raise bad_data(f"q: '!{path[1:]}' takes no comparison")
        return Term(path[1:], "!")
    if not op:
        return Term(path, None)
    raw = (raw or "").strip()
    if not raw:
        raise bad_data(f"q: {path}{op} needs a value")
    wanted: Any
    if op in ("~=", "!~="):
        try:
            wanted = re.compile(raw.strip('"'))
        except re.error as exc:
            raise bad_data(f"q: not a regular expression: {exc}") from None
    elif ".." in raw and not raw.startswith('"') and op in ("==", "!="):
        low, _, high = raw.partition("..")
        wanted = (_scalar(low), _scalar(high))
    elif "," in raw and op in ("==", "!="):
        wanted = [_scalar(part) for part in raw.split(",")]
    else:
        wanted = _scalar(raw)
    return Term(path, op, wanted)


def parse_q(text: str) -> Node:
    """`q` as a test of a normalized entity (a tree of terms the store can also read as SQL, ngsi_sql); 400
    BadRequestData when it does not parse."""
    tokens: list[tuple[str, Any]] = []
    at = 0
    text = text.strip()
    while at < len(text):
        m = _TOKEN.match(text, at)
        if not m or m.end() == at:
            raise bad_data(f"q does not parse at {text[at : at + 20]!r}")
        at = m.end()
        if m[1]:
            tokens.append(("(", None))
        elif m[2]:
            tokens.append((")", None))
        elif m[3]:
            tokens.append(("and", None))
        elif m[4]:
            tokens.append(("or", None))
        else:
            tokens.append(("term", _term(m[5], m[6], m[7])))
    pos = 0

    def peek() -> str | None:
        return tokens[pos][0] if pos < len(tokens) else None

    def take() -> tuple[str, Any]:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> Node:
        kind, value = take() if peek() else (None, None)
        if kind == "term":
            return value
        if kind == "(":
            inner = either()
            if peek() != ")":
                raise bad_data("q: a parenthesis is not closed")
            take()
            return inner
        raise bad_data("q: a term is missing")

    def both() -> Node:
        parts = [atom()]
        while peek() == "and":
            take()
            parts.append(atom())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def either() -> Node:
        parts = [both()]
        while peek() == "or":
            take()
            parts.append(both())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    if not tokens:
        raise bad_data("q is empty")
    test = either()
    if pos != len(tokens):
        raise bad_data("q: unexpected text after the query")
    return test


# --- geo-queries --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeoQuery:
    """A georel on a Point (near, with maxDistance/minDistance in metres) or a Polygon (within, intersects)."""

    rel: str
    geometry: str
    coordinates: Any
    max_m: float | None = None
    min_m: float | None = None

    def box(self) -> tuple[float, float, float, float] | None:
        """(south, west, north, east) holding every match, for the store's index; None: no bound."""
        if self.geometry == "Point":
            if self.max_m is None:
                return None
            lon, lat = self.coordinates
            dlat = self.max_m / 111_195.0 + 1e-9
            dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
            return lat - dlat, lon - dlon, lat + dlat, lon + dlon
        ring = self.coordinates[0]
        lats, lons = [p[1] for p in ring], [p[0] for p in ring]
        return min(lats), min(lons), max(lats), max(lons)

    def admits(self, lat: float, lon: float) -> bool:
        if self.geometry == "Point":
            plon, plat = self.coordinates
            d = haversine_m(lat, lon, plat, plon)
            if self.rel == "equals":
                return d < 0.01
            return (self.max_m is None or d <= self.max_m) and (self.min_m is None or d >= self.min_m)
        return _in_ring(lon, lat, self.coordinates[0])


def _in_ring(x: float, y: float, ring: list) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def _position(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) in (2, 3)
        and all(isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) for c in value)
        and -180 <= value[0] <= 180
        and -90 <= value[1] <= 90
    )


def parse_geo(georel: str | None, geometry: str | None, coordinates: str | None, geoproperty: str | None) -> GeoQuery:
    """A geo-query from its parameters: all of georel, geometry and coordinates, or 400 BadRequestData."""
    if not (georel and geometry and coordinates):
        raise bad_data("a geo-query needs georel, geometry and coordinates")
    if geoproperty not in (None, "location"):
        raise invalid_request("only the location GeoProperty can be queried")
    rel, *mods = georel.split(";")
    if rel not in ("near", "within", "intersects", "equals"):
        raise bad_data(f"georel {rel!r} is not near, within, intersects or equals")
    try:
        coords = json.loads(coordinates)
    except json.JSONDecodeError:
        raise bad_data("coordinates must be JSON") from None
    limits: dict[str, float] = {}
    for mod in mods:
        name, sep, value = mod.partition("==")
        try:
            limits[name] = float(value) if sep else math.nan
        except ValueError:
            limits[name] = math.nan
        if name not in ("maxDistance", "minDistance") or not math.isfinite(limits[name]) or limits[name] < 0:
            raise bad_data(f"georel modifier {mod!r}: maxDistance==metres or minDistance==metres")
    if geometry == "Point":
        if not _position(coords):
            raise bad_data("a Point's coordinates are [longitude, latitude]")
        if rel == "near" and not limits:
            raise bad_data("near needs maxDistance or minDistance")
    elif geometry == "Polygon":
        if rel == "near" or not (
            isinstance(coords, list)
            and coords
            and isinstance(coords[0], list)
            and len(coords[0]) >= 4
            and all(_position(p) for p in coords[0])
        ):
            raise bad_data("a Polygon is a list of closed rings of [longitude, latitude]; near takes a Point")
    else:
        raise bad_data(f"geometry {geometry!r}: Point or Polygon")
    return GeoQuery(rel, geometry, coords, limits.get("maxDistance"), limits.get("minDistance"))


def point_of(attribute: Any) -> tuple[float, float] | None:
    """(lat, lon) of a GeoProperty holding a Point, else None."""
    if not isinstance(attribute, dict):
        return None
    value = attribute.get("value")
    if isinstance(value, dict) and value.get("type") == "Point" and _position(value.get("coordinates")):
        lon, lat = value["coordinates"][:2]
        return float(lat), float(lon)
    return None
