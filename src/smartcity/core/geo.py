"""City geography: district and neighbourhood polygons, fast point lookup, boundary import, distances.

Lookups use an in-memory Shapely STRtree built from the stored polygons (one per process, rebuilt when
boundaries change), so finding the district of a point never loops over polygons or reads the store.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point, mapping, shape
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.city import CityProfile
from smartcity.core.context import AppContext, Slot
from smartcity.core.errors import InvalidInput, OutsideCity
from smartcity.core.i18n import localized
from smartcity.core.models import District, Neighbourhood

# The metric of the whole platform: great-circle distances on the mean Earth sphere (IUGG), and planes in
# metres for what must be fast (geofencing) or exact (nearest assets). Nothing else holds these figures.
EARTH_RADIUS_M = 6_371_008.8
# WGS84 lengths of a degree: of latitude (about the same everywhere) and of longitude at the equator
# (times cos φ elsewhere).
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


class LocalPlane:
    """Degrees → metres on an equirectangular plane around a centre (the city's). Within 30 km of the
    centre, distances are off by well under 0.5 %: centimetres at the size of a safe zone. Linear, so a hot
    path may inline `(lon - lon0) * kx, (lat - lat0) * ky`."""

    def __init__(self, center: tuple[float, float]):
        self.lat0, self.lon0 = center
        self.kx = math.cos(math.radians(self.lat0)) * M_PER_DEG_LON_EQUATOR
        self.ky = M_PER_DEG_LAT

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky

    def geometry(self, geom):
        """A Shapely geometry in degrees (x = lon, y = lat), on this plane."""

        def to_plane(coords):
            out = coords.copy()
            out[:, 0] = (coords[:, 0] - self.lon0) * self.kx
            out[:, 1] = (coords[:, 1] - self.lat0) * self.ky
            return out

        return shapely.transform(geom, to_plane)


def area_m2(geom) -> float:
    """The area of a geometry in degrees, in square metres (on a plane centred on the geometry)."""
    c = geom.representative_point()
    return LocalPlane((c.y, c.x)).geometry(geom).area


def transverse_mercator(center: tuple[float, float]):
    """WGS84 → a transverse Mercator plane in metres centred on `center` (scale 1 there): true to well
    under 0.01 % across a city, for answers that report distances (nearest assets)."""
    from pyproj import Transformer

    lat0, lon0 = center
    return Transformer.from_crs(
        "EPSG:4326",
        f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +ellps=GRS80 +units=m",
        always_xy=True,
    )


def check_coordinates(lat: Any, lon: Any) -> tuple[float, float]:
    """Parse a latitude/longitude pair, or raise InvalidInput saying what is wrong with it."""
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError):
        raise InvalidInput("latitude and longitude must be numbers", code="invalid_coordinates") from None
    if not (math.isfinite(lat_f) and math.isfinite(lon_f)) or not (-90 <= lat_f <= 90 and -180 <= lon_f <= 180):
        raise InvalidInput("latitude must be within ±90 and longitude within ±180", code="invalid_coordinates")
    return lat_f, lon_f


@dataclass(frozen=True)
class Area:
    code: str
    name_ko: str
    name_en: str
    district_code: str | None = None
    approximate: bool = False

    def name(self, language: str, *fallbacks: str) -> str:
        return localized(self, "name", language, *fallbacks)


@dataclass(frozen=True)
class Location:
    """Where a point is in the city."""

    lat: float
    lon: float
    district: Area
    neighbourhood: Area | None


class GeoIndex:
    """Point → district/neighbourhood over in-memory spatial indexes."""

    def __init__(self, districts: list[tuple[Area, Any]], neighbourhoods: list[tuple[Area, Any]], outline):
        self.districts = [a for a, _ in districts]
        self.neighbourhoods = [a for a, _ in neighbourhoods]
        self._district_geoms = np.array([g for _, g in districts], dtype=object)
        self._hood_geoms = np.array([g for _, g in neighbourhoods], dtype=object)
        self._district_tree = shapely.STRtree(self._district_geoms)
        self._hood_tree = shapely.STRtree(self._hood_geoms)
        for geoms in (self._district_geoms, self._hood_geoms):
            shapely.prepare(geoms)
        self.extent = shapely.union_all(self._district_geoms) if districts else outline

    @staticmethod
    def _first(tree, areas, point) -> Area | None:
        hits = tree.query(point, predicate="intersects")
        return areas[int(hits.min())] if len(hits) else None

    def district_at(self, lat: float, lon: float) -> Area | None:
        return self._first(self._district_tree, self.districts, Point(lon, lat))

    def neighbourhood_at(self, lat: float, lon: float) -> Area | None:
        return self._first(self._hood_tree, self.neighbourhoods, Point(lon, lat))

    def districts_at(self, lats, lons) -> list[Area | None]:
        """Vectorised lookup for many points at once (imports, analysis)."""
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        point_idx, geom_idx = self._district_tree.query(points, predicate="intersects")
        found: list[Area | None] = [None] * len(points)
        for p, g in zip(point_idx[::-1], geom_idx[::-1], strict=True):
            found[int(p)] = self.districts[int(g)]
        return found

    def district_indexes(self, lats, lons) -> np.ndarray:
        """For many points at once, the index of each one's district in `districts` (-1: outside every
        district): no object per point (the intake's batches)."""
        lats, lons = np.asarray(lats, dtype=float), np.asarray(lons, dtype=float)
        found = np.full(len(lats), -1, dtype=np.int32)
        if len(lats) and self.districts:
            point_idx, geom_idx = self._district_tree.query(shapely.points(lons, lats), predicate="intersects")
            found[point_idx[::-1]] = geom_idx[::-1]  # where districts overlap, the first wins (as districts_at)
        return found

    def locate(self, lat: Any, lon: Any) -> Location:
        """The district and neighbourhood of a point, or OutsideCity."""
        lat_f, lon_f = check_coordinates(lat, lon)
        district = self.district_at(lat_f, lon_f)
        if district is None:
            raise OutsideCity(f"the point {lat_f:.6f}, {lon_f:.6f} is not inside the city")
        return Location(lat_f, lon_f, district, self.neighbourhood_at(lat_f, lon_f))

    def area_points(self) -> list[tuple[Area, float, float]]:
        """Every district and neighbourhood with a point inside it (lat, lon): where a search for its
        name takes the map (the gazetteer indexes areas from here instead of copying them)."""
        out = []
        for areas, geoms in ((self.districts, self._district_geoms), (self.neighbourhoods, self._hood_geoms)):
            for area, point in zip(areas, shapely.point_on_surface(geoms), strict=True):
                out.append((area, point.y, point.x))
        return out

    def neighbourhoods_geojson(self, language: str, bbox: tuple[float, float, float, float] | None = None) -> dict:
        """The neighbourhoods (in `bbox`: west, south, east, north, when given) with a label point each: the
        offline base map's street-zoom layer."""
        features = []
        box = shapely.box(*bbox) if bbox else None
        for area, geom in zip(self.neighbourhoods, self._hood_geoms, strict=True):
            if box is not None and not geom.intersects(box):
                continue
            point = shapely.point_on_surface(geom)
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "code": area.code,
                        "name": area.name(language, "ko"),
                        "district_code": area.district_code,
                        "label": [round(point.y, 6), round(point.x, 6)],
                    },
                    "geometry": mapping(geom),
                }
            )
        return {"type": "FeatureCollection", "features": features}

    def districts_geojson(self, language: str) -> dict:
        features = []
        for area, geom in zip(self.districts, self._district_geoms, strict=True):
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "code": area.code,
                        "name": area.name(language),
                        "name_ko": area.name_ko,
                        "name_en": area.name_en,
                        "approximate": area.approximate,
                    },
                    "geometry": mapping(geom),
                }
            )
        return {"type": "FeatureCollection", "features": features}


def geo_index(db) -> GeoIndex:
    """The process's index for `db`, built on first use from the stored polygons and rebuilt after
    boundaries change (a `geo.changed` event, from any process on PostgreSQL)."""
    return GEO_INDEX.get(db)


def invalidate(db) -> None:
    """Forget the cached index (boundaries changed here or in another process)."""
    GEO_INDEX.drop(db)


def _load_index(context: AppContext) -> GeoIndex:
    with context.db.session() as s:
        districts = [
            (Area(d.code, d.name_ko, d.name_en, approximate=d.approximate), shape(json.loads(d.geometry)))
            for d in s.scalars(select(District).order_by(District.code))
        ]
        hoods = [
            (Area(n.code, n.name_ko, n.name_en, n.district_code), shape(json.loads(n.geometry)))
            for n in s.scalars(select(Neighbourhood).order_by(Neighbourhood.code))
        ]
    return GeoIndex(districts, hoods, context.profile.outline_polygon)


GEO_INDEX: Slot[GeoIndex] = Slot("geo", _load_index, invalidated_by="geo.changed")


# --- importing boundaries -------------------------------------------------------------------------

CODE_FIELDS = ("code", "SIG_CD", "adm_cd", "ADM_CD", "EMD_CD", "id")
NAME_KO_FIELDS = ("name", "name_ko", "SIG_KOR_NM", "adm_nm", "EMD_KOR_NM")
NAME_EN_FIELDS = ("name_eng", "name_en", "SIG_ENG_NM", "EMD_ENG_NM")


@dataclass
class ParsedArea:
    code: str
    name_ko: str
    name_en: str
    geometry: Any


def _pick(props: dict, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = props.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return None


def _ring_problem(geometry: dict) -> str | None:
    """GeoJSON rings are closed (first position = last) with at least four positions (RFC 7946 3.1.6)."""
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    polygons = (
        [coords] if geometry.get("type") == "Polygon" else coords if geometry.get("type") == "MultiPolygon" else []
    )
    try:
        for polygon in polygons or []:
            for ring in polygon:
                if len(ring) < 4:
                    return "a ring has fewer than four positions"
                if list(ring[0]) != list(ring[-1]):
                    return "a ring is not closed (its first and last positions differ)"
    except TypeError:
        return "coordinates are not nested lists"
    return None


def parse_boundaries(data: str | bytes | dict, profile: CityProfile) -> list[ParsedArea]:
    """Check a GeoJSON FeatureCollection of areas; every problem found is reported, by feature."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"not valid JSON: {exc}", code="invalid_geojson") from None
    if (
        not isinstance(data, dict)
        or data.get("type") != "FeatureCollection"
        or not isinstance(data.get("features"), list)
    ):
        raise InvalidInput("expected a GeoJSON FeatureCollection", code="invalid_geojson")
    if not data["features"]:
        raise InvalidInput("the FeatureCollection has no features", code="invalid_geojson")

    # Allow a margin around the city's box: official boundaries follow rivers and ridges past it.
    west, south, east, north = profile.bbox
    margin = 0.05
    box = shapely.box(west - margin, south - margin, east + margin, north + margin)
    problems: list[dict] = []
    areas: list[ParsedArea] = []
    seen: set[str] = set()
    for i, feature in enumerate(data["features"]):
        where = {"feature": i}

        def problem(msg: str, where=where) -> None:
            problems.append({**where, "problem": msg})

        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            problem("not a GeoJSON Feature")
            continue
        props = feature.get("properties") or {}
        code = _pick(props, CODE_FIELDS)
        if code:
            where["code"] = code
        name_ko = _pick(props, NAME_KO_FIELDS)
        name_en = _pick(props, NAME_EN_FIELDS) or name_ko
        if not code:
            problem("no code property")
        elif code in seen:
            problem("code appears twice")
        if not name_ko:
            problem("no name property")
        if ring_problem := _ring_problem(feature.get("geometry") or {}):
            problem(f"polygon is not valid: {ring_problem}")
            continue
        try:
            geom = shape(feature.get("geometry") or {})
        except Exception as exc:  # shapely raises several types for malformed coordinates
            problem(f"geometry is malformed: {exc}")
            continue
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            problem(f"geometry must be a Polygon or MultiPolygon, not {geom.geom_type}")
            continue
        if geom.is_empty:
            problem("geometry is empty")
            continue
        if not geom.is_valid:
            problem(f"polygon is not valid: {explain_validity(geom)}")
            continue
        if not box.contains(geom):
            problem("polygon lies outside the city's extent")
            continue
        if code and name_ko:
            seen.add(code)
            areas.append(ParsedArea(code, name_ko, name_en or name_ko, geom))
    if problems:
        raise InvalidInput(
            f"{len(problems)} problem(s) in the boundary file; nothing was imported",
            code="invalid_boundaries",
            details=problems,
        )
    return areas


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    removed: int = 0


def _stored(session: Session, existing: dict, model, area: ParsedArea, source: str, result: ImportResult):
    """The row of `area` (made when new), with its names, shape and source set; counted in `result`."""
    row = existing.get(area.code)
    if row is None:
        row = model(code=area.code)
        session.add(row)
        result.created += 1
    else:
        result.updated += 1
    row.name_ko, row.name_en = area.name_ko, area.name_en
    row.geometry = json.dumps(mapping(area.geometry))
    row.source = source
    return row


def import_districts(session: Session, areas: list[ParsedArea], source: str, progress=None) -> ImportResult:
    """Store districts (insert or update by code); approximate districts the file does not name go away."""
    result = ImportResult()
    existing = {d.code: d for d in session.scalars(select(District))}
    for area in areas:
        row = _stored(session, existing, District, area, source, result)
        row.approximate = False
        if progress:
            progress(1)
    codes = {a.code for a in areas}
    stale = [d for d in existing.values() if d.approximate and d.code not in codes]
    for d in stale:
        session.delete(d)
    result.removed = len(stale)
    session.flush()
    return result


def import_neighbourhoods(
    session: Session, areas: list[ParsedArea], source: str, index: GeoIndex, progress=None
) -> ImportResult:
    """Store neighbourhoods, each tied to the district that holds it."""
    result = ImportResult()
    existing = {n.code: n for n in session.scalars(select(Neighbourhood))}
    district_codes = {d.code for d in index.districts}
    for area in areas:
        inside = area.geometry.representative_point()
        district = index.district_at(inside.y, inside.x)
        district_code = district.code if district else None
        if district_code is None and area.code[:5] in district_codes:
            district_code = area.code[:5]
        row = _stored(session, existing, Neighbourhood, area, source, result)
        row.district_code = district_code
        if progress:
            progress(1)
    session.flush()
    return result


def approximate_districts(profile: CityProfile) -> list[ParsedArea]:
    """Districts drawn as Voronoi cells around each district's representative point, clipped to the
    city's outline. Good enough for a demo map and routing; not official boundaries."""
    outline = profile.outline_polygon
    points = [Point(d.point[1], d.point[0]) for d in profile.districts]
    cells = shapely.voronoi_polygons(MultiPoint(points), extend_to=outline.envelope.buffer(0.1))
    areas = []
    for seed, point in zip(profile.districts, points, strict=True):
        cell = next(c for c in cells.geoms if c.contains(point))
        clipped = cell.intersection(outline)
        areas.append(ParsedArea(seed.code, seed.name_ko, seed.name_en, clipped))
    return areas


def seed_approximate_districts(session: Session, profile: CityProfile) -> int:
    """Store the approximate districts where no district is stored yet; returns how many were added."""
    if session.scalar(select(District.id).limit(1)) is not None:
        return 0
    for area in approximate_districts(profile):
        session.add(
            District(
                code=area.code,
                name_ko=area.name_ko,
                name_en=area.name_en,
                geometry=json.dumps(mapping(area.geometry)),
                approximate=True,
                source="approximate: Voronoi cells of representative points",
            )
        )
    session.flush()
    return len(profile.districts)
