"""Importing gazetteer lists into the `places` table (core.places): Seoul's bus-stop and subway-station lists
and any list of named points, read as UTF-8 or CP949, each unusable row reported by line and skipped.
Importing the same list again changes nothing; a change publishes `places.changed`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import shapely
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.city import CityProfile
from smartcity.core.errors import InvalidInput
from smartcity.core.geo import GeoIndex
from smartcity.core.places import PLACE_INDEX, Place, keys_of, romanise
from smartcity.core.text import decode_korean


@dataclass
class NewPlace:
    kind: str
    ref: str
    name_ko: str
    name_en: str
    lat: float
    lon: float
    line: int


@dataclass
class ParsedPlaces:
    layout: str
    rows: int = 0
    places: list[NewPlace] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {line, value, problem}: rows skipped
    merged: int = 0  # rows that are another line of a station already read


@dataclass(frozen=True)
class Layout:
    """A gazetteer list's columns, recognised by its header."""

    name: str
    kind: str
    name_col: tuple[str, ...]
    lat_col: tuple[str, ...]
    lon_col: tuple[str, ...]
    ref_col: tuple[str, ...] = ()
    name_en_col: tuple[str, ...] = ()
    kind_col: tuple[str, ...] = ()


LAYOUTS = (
    # Seoul's bus-stop list (OA-15067): NODE_ID, ARS_ID, 정류소명, X좌표 (lon), Y좌표 (lat), 정류소타입.
    Layout("bus_stops", "bus_stop", ("정류소명",), ("Y좌표",), ("X좌표",), ("NODE_ID", "ARS_ID")),
    # Seoul's subway-station list (OA-21232): 역명, ROUTE, 위도, 경도, …
    Layout("subway_stations", "subway_station", ("역명",), ("위도",), ("경도",)),
    # Any list of named points: name_ko (or name), name_en, lat, lon, and optionally kind and ref.
    Layout(
        "generic",
        "landmark",
        ("name_ko", "name"),
        ("lat", "latitude"),
        ("lon", "longitude"),
        ("ref", "id"),
        ("name_en",),
        ("kind",),
    ),
)


def decode(data: bytes) -> str:
    """A list's bytes as text: UTF-8 (with or without BOM), else CP949 (what Korean spreadsheets save)."""
    return decode_korean(data, code="invalid_encoding").text


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def detect_layout(header: list[str]) -> Layout:
    cols = [h.strip() for h in header]
    for layout in LAYOUTS:
        if all(_column(cols, c) is not None for c in (layout.name_col, layout.lat_col, layout.lon_col)):
            return layout
    raise InvalidInput(
        f"unknown gazetteer layout (columns: {', '.join(cols)}); expected Seoul's bus-stop list (정류소명, X좌표, "
        "Y좌표), its subway-station list (역명, 위도, 경도) or name_ko, name_en, lat, lon",
        code="unknown_layout",
    )


def _station_name(name: str) -> tuple[str, str]:
    """A station's name as people say it ("잠실역") and what the list adds in brackets ("송파구청")."""
    base, _, aside = name.partition("(")
    base = base.strip()
    return (base if base.endswith("역") else base + "역"), aside.rstrip(")").strip()


def parse_places(data: bytes, profile: CityProfile, kind: str | None = None) -> ParsedPlaces:
    """Read a gazetteer list; rows that cannot be used are reported (line, value, problem) and skipped."""
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise InvalidInput("the file is empty", code="empty_file")
    header = [h.strip() for h in header]
    layout = detect_layout(header)
    cols = {
        attr: _column(header, getattr(layout, attr))
        for attr in ("name_col", "lat_col", "lon_col", "ref_col", "name_en_col", "kind_col")
    }
    west, south, east, north = profile.bbox
    outline = profile.outline_polygon.buffer(0.01)
    shapely.prepare(outline)  # one containment test per row
    result = ParsedPlaces(layout.name)
    seen: dict[tuple[str, str], NewPlace] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        result.rows += 1

        def cell(attr: str, row=row) -> str:
            at = cols[attr]
            return row[at].strip() if at is not None and at < len(row) else ""

        def problem(value: str, why: str, line=line) -> None:
            result.problems.append({"line": line, "value": value, "problem": why})

        name = cell("name_col")
        if not name or "\ufffd" in name:
            problem(name, "no usable name")
            continue
        try:
            lat, lon = float(cell("lat_col")), float(cell("lon_col"))
        except ValueError:
            problem(f"{cell('lat_col')}, {cell('lon_col')}", "the coordinates are not numbers")
            continue
        if not (math.isfinite(lat) and math.isfinite(lon)):
            problem(f"{lat}, {lon}", "the coordinates are not numbers")
            continue
        if not (west - 0.05 <= lon <= east + 0.05 and south - 0.05 <= lat <= north + 0.05) or not shapely.contains_xy(
            outline, lon, lat
        ):
            problem(f"{lat}, {lon}", "the place lies outside the city")
            continue
        place_kind = kind or cell("kind_col") or layout.kind
        if layout.name == "subway_stations":
            name_ko, aside = _station_name(name)
            name_en = romanise(name_ko.removesuffix("역")) + " Station"
            if aside:
                name_ko = f"{name_ko} ({aside})"
            ref = name_ko
            earlier = seen.get((place_kind, ref))
            if earlier and _distance_m(earlier, lat, lon) < 2000:
                result.merged += 1  # the same station on another line
                continue
            if earlier:
                ref = f"{name_ko}|{cell('lat_col')},{cell('lon_col')}"
        else:
            name_ko = name
            name_en = cell("name_en_col") or romanise(name)
            ref = cell("ref_col") or f"{name}|{lat:.5f},{lon:.5f}"
        if (place_kind, ref) in seen:
            problem(ref, "the id appears twice in the file")
            continue
        place = NewPlace(place_kind, ref, name_ko, name_en, lat, lon, line)
        seen[(place_kind, ref)] = place
        result.places.append(place)
    return result


def _distance_m(place: NewPlace, lat: float, lon: float) -> float:
    from smartcity.core.geo import haversine_m

    return haversine_m(place.lat, place.lon, lat, lon)


@dataclass
class PlacesImport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def import_places(
    session: Session, places: list[NewPlace], source: str, geo: GeoIndex, progress: Callable[[int], None] | None = None
) -> PlacesImport:
    """Store places, inserted or updated by (kind, ref): importing the same list again changes nothing."""
    result = PlacesImport()
    kinds = {p.kind for p in places}
    existing = {(r.kind, r.ref): r for r in session.scalars(select(Place).where(Place.kind.in_(kinds)))}
    districts = geo.districts_at([p.lat for p in places], [p.lon for p in places])
    for p, district in zip(places, districts, strict=True):
        hood = geo.neighbourhood_at(p.lat, p.lon)
        values = {
            "name_ko": p.name_ko,
            "name_en": p.name_en,
            "lat": p.lat,
            "lon": p.lon,
            "district_code": district.code if district else None,
            "neighbourhood_code": hood.code if hood else None,
            "source": source,
            "search_key": " ".join(sorted(keys_of(p.name_ko, p.name_en))),
        }
        row = existing.get((p.kind, p.ref))
        if row is None:
            session.add(Place(kind=p.kind, ref=p.ref, **values))
            result.created += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            result.updated += 1
        else:
            result.unchanged += 1
        if progress:
            progress(1)
    session.flush()
    if result.created or result.updated:
        from smartcity.core.events import publish

        publish(session, "places.changed", {"created": result.created, "updated": result.updated})
        # This process reads its own import at once; on PostgreSQL the event comes back through LISTEN later.
        db = session.info["db"]
        sa_event.listen(session, "after_commit", lambda _s: PLACE_INDEX.drop(db), once=True)
    return result


__all__ = ["NewPlace", "ParsedPlaces", "PlacesImport", "import_places", "parse_places"]
