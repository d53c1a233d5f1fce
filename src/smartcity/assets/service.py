"""The city asset registry: import from the city's CSV lists, list and map assets, find the nearest ones.

`nearest(db, kind, lat, lon, k)` is this module's exported function for other modules (the safety
service's control-room console asks it for the cameras nearest an incident). It answers from an
in-memory k-d tree per asset kind, built once per process on a metric plane (a transverse Mercator
projection centred on the city, so distances are true to well under 0.01 % across Seoul) and dropped
when an `assets.changed` event arrives — from this process or, on PostgreSQL, from any other.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyproj import Geod, Transformer
from scipy.spatial import cKDTree
from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.assets.models import Asset
from smartcity.core import audit
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.events import publish
from smartcity.core.geo import check_coordinates, geo_index
from smartcity.core.geo import transverse_mercator as city_plane
from smartcity.core.params import bbox as parse_bbox  # noqa: F401 - exported: the API parses ?bbox= with it

KINDS = {
    "cctv": "CCTV camera",
    "wifi": "public Wi-Fi access point",
    "air_sensor": "air quality sensor",
    "noise_sensor": "noise sensor",
    "sensor": "urban IoT sensor (several readings)",
    "streetlight": "street light",
    "other": "other equipment",
}
MAX_NEAREST = 100


def _changed(session: Session, data: dict) -> None:
    """Publish `assets.changed` (other processes drop their index when it arrives) and drop this
    process's index as soon as the change commits (on PostgreSQL the event comes back only through
    LISTEN, which a CLI or test process may not run)."""
    from sqlalchemy import event as sa_event

    publish(session, "assets.changed", data)
    db = session.info["db"]
    sa_event.listen(session, "after_commit", lambda _s: invalidate(db), once=True)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown asset kind {kind!r}; kinds are: {', '.join(KINDS)}", code="unknown_kind")
    return kind


# --- CSV formats ----------------------------------------------------------------------------------


class RowDefect(Exception):
    """A row that cannot be imported, and why."""


@dataclass
class ParsedAsset:
    lat: float
    lon: float
    name: str = ""
    external_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _number(value: str | None, what: str) -> float:
    text = (value or "").strip()
    try:
        number = float(text)
    except ValueError:
        raise RowDefect(f"{what} is not a number: {text!r}") from None
    if not math.isfinite(number):
        raise RowDefect(f"{what} is not a finite number: {text!r}")
    return number


def _int_or_none(value: str | None) -> int | None:
    text = (value or "").strip()
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _broken(text: str) -> bool:
    """Text damaged before it reached us: replacement characters, or question marks standing in for
    Korean letters (what a lossy re-encoding leaves behind)."""
    return "\ufffd" in text or "??" in text or text.lstrip().startswith("?")


def _text(row: dict, column: str, warnings: list[str]) -> str:
    value = (row.get(column) or "").strip()
    if value and _broken(value):
        warnings.append(f"broken text in {column!r}")
    return value


def _latlon(row: dict, lat_col: str, lon_col: str) -> tuple[float, float]:
    lat, lon = _number(row.get(lat_col), "latitude"), _number(row.get(lon_col), "longitude")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise RowDefect(f"coordinates out of range: {lat}, {lon}")
    if lat == 0 and lon == 0:
        raise RowDefect("coordinates are 0, 0 (missing)")
    return lat, lon


def _national_cctv(row: dict) -> ParsedAsset:
    """National CCTV standard data: latitude, longitude, old/new address, keep_day, count, agency."""
    warnings: list[str] = []
    lat, lon = _latlon(row, "latitude", "longitude")
    address = _text(row, "new_address", warnings) or _text(row, "old_address", warnings)
    attrs = {
        "address": address,
        "old_address": _text(row, "old_address", warnings),
        "cameras": _int_or_none(row.get("count")),
        "keep_days": _int_or_none(row.get("keep_day")),
        "agency": _text(row, "mng_name", warnings),
        "agency_phone": (row.get("mng_phone") or "").strip(),
    }
    return ParsedAsset(lat, lon, name=address, attributes=attrs, warnings=warnings)


def _seoul_safety_cctv(row: dict) -> ParsedAsset:
    """Seoul Safety (안심이) CCTV list: district, damaged address text, restorable part, lat, lng, count."""
    cols = list(row)
    warnings: list[str] = []
    lat_col = next(c for c in cols if c.startswith("위도"))
    lon_col = next(c for c in cols if c.startswith("경도"))
    lat, lon = _latlon(row, lat_col, lon_col)
    raw_col = next((c for c in cols if c.startswith("안심 주소(원문")), None)
    fixed_col = next((c for c in cols if c.startswith("안심 주소_복원")), None)
    raw = (row.get(raw_col) or "").strip() if raw_col else ""
    fixed = (row.get(fixed_col) or "").strip() if fixed_col else ""
    if raw and _broken(raw):
        warnings.append("broken text in the address; kept its restorable part")
    count_col = next((c for c in cols if c.startswith("CCTV")), None)
    attrs = {
        "address": fixed,
        "address_original": raw,
        "district_name": (row.get("자치구") or "").strip(),
        "cameras": _int_or_none(row.get(count_col)) if count_col else None,
        "updated": (row.get("수정 일시") or "").strip(),
    }
    return ParsedAsset(lat, lon, name=fixed, attributes=attrs, warnings=warnings)


def _wifi(row: dict) -> ParsedAsset:
    """Public Wi-Fi standard data: latitude, longitude, addresses, place, place_detail, agency."""
    warnings: list[str] = []
    lat, lon = _latlon(row, "latitude", "longitude")
    place = _text(row, "place", warnings)
    detail = _text(row, "place_detail", warnings)
    attrs = {
        "address": _text(row, "new_address", warnings) or _text(row, "old_address", warnings),
        "place": place,
        "place_detail": detail,
        "agency": _text(row, "mng_name", warnings),
        "agency_phone": (row.get("mng_phone") or "").strip(),
    }
    return ParsedAsset(lat, lon, name=" ".join(p for p in (place, detail) if p), attributes=attrs, warnings=warnings)


def _sdot(row: dict) -> ParsedAsset:
    """S-DoT sensor list: serial (시리얼), 위도, 경도."""
    serial = (row.get("시리얼") or "").strip()
    if not serial:
        raise RowDefect("no serial number")
    lat, lon = _latlon(row, "위도", "경도")
    return ParsedAsset(lat, lon, name=serial, external_id=serial, attributes={"serial": serial})


def _generic(row: dict) -> ParsedAsset:
    """Any CSV with lat/latitude and lon/lng/longitude columns; optional id, name; the rest as attributes."""
    lower = {k.lower().strip(): k for k in row if k}
    lat_col = next((lower[c] for c in ("lat", "latitude", "위도") if c in lower), None)
    lon_col = next((lower[c] for c in ("lon", "lng", "longitude", "경도") if c in lower), None)
    if not lat_col or not lon_col:
        raise RowDefect("no latitude/longitude columns")
    warnings: list[str] = []
    lat, lon = _latlon(row, lat_col, lon_col)
    id_col = next((lower[c] for c in ("id", "external_id", "serial") if c in lower), None)
    name_col = next((lower[c] for c in ("name", "place") if c in lower), None)
    attrs = {k: (v or "").strip() for k, v in row.items() if k and k not in (lat_col, lon_col)}
    for k, v in attrs.items():
        if v and _broken(v):
            warnings.append(f"broken text in {k!r}")
    return ParsedAsset(
        lat,
        lon,
        name=_text(row, name_col, []) if name_col else "",
        external_id=(row.get(id_col) or "").strip() or None if id_col else None,
        attributes=attrs,
        warnings=warnings,
    )


@dataclass(frozen=True)
class CsvFormat:
    name: str
    description: str
    parse: Callable[[dict], ParsedAsset]
    signature: tuple[str, ...]  # header columns (prefixes) that identify the format


FORMATS: dict[str, CsvFormat] = {
    f.name: f
    for f in (
        CsvFormat(
            "national-cctv",
            "national CCTV standard data (data.go.kr)",
            _national_cctv,
            ("latitude", "longitude", "keep_day", "count"),
        ),
        CsvFormat(
            "seoul-safety-cctv",
            "Seoul Safety (안심이) CCTV list (data.seoul.go.kr OA-20923)",
            _seoul_safety_cctv,
            ("자치구", "위도", "경도", "CCTV"),
        ),
        CsvFormat("wifi", "public Wi-Fi standard data", _wifi, ("latitude", "longitude", "place")),
        CsvFormat("sdot", "S-DoT sensor list (data.seoul.go.kr OA-15969)", _sdot, ("시리얼", "위도", "경도")),
        CsvFormat("generic", "any CSV with lat/lon columns (optional id, name)", _generic, ()),
    )
}


def detect_format(header: list[str]) -> CsvFormat:
    """The first format whose signature columns all appear (as prefixes) in the header."""
    cols = [h.strip() for h in header]
    for fmt in FORMATS.values():
        if fmt.signature and all(any(c.startswith(s) for c in cols) for s in fmt.signature):
            return fmt
    return FORMATS["generic"]


def decode(data: bytes) -> str:
    """CSV bytes as text: UTF-8 (with or without BOM), else CP949 (what Korean spreadsheets save)."""
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("the file is neither UTF-8 nor CP949 text", code="invalid_encoding")


# --- importing ------------------------------------------------------------------------------------


@dataclass
class RowProblem:
    row: int  # line number in the file (the header is line 1)
    reason: str


@dataclass
class ImportReport:
    format: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)

    def reasons(self, problems: list[RowProblem]) -> Counter:
        """How many rows per reason (reasons with a value in them are grouped by their first words)."""
        return Counter(p.reason.split(":")[0] for p in problems)

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.created} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.skipped)} skipped, {len(self.warnings)} imported with warnings"
        )


def read_rows(data: bytes, fmt: str | None = None) -> tuple[CsvFormat, list[dict]]:
    """Parse the CSV and pick its format (given or detected from the header)."""
    text = decode(data)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if not header:
        raise InvalidInput("the file is empty", code="empty_file")
    if fmt is None:
        chosen = detect_format(header)
    elif fmt in FORMATS:
        chosen = FORMATS[fmt]
    else:
        raise InvalidInput(f"unknown format {fmt!r}; formats are: {', '.join(FORMATS)}", code="unknown_format")
    return chosen, list(reader)


def _position_key(lat: float, lon: float) -> str:
    return f"{lat:.6f},{lon:.6f}"


def import_csv(
    session: Session,
    data: bytes,
    kind: str,
    *,
    source: str,
    fmt: str | None = None,
    actor="cli",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import assets of `kind` from CSV bytes. Bad rows are skipped and reported with their reasons; the
    rest are imported. Re-importing the same file changes nothing (rows are matched by the source's id,
    else by position and order at that position)."""
    check_kind(kind)
    if not source.strip():
        raise InvalidInput("an import needs a source name", code="invalid_source")
    chosen, rows = read_rows(data, fmt)
    report = ImportReport(format=chosen.name, rows=len(rows))
    index = geo_index(session.info["db"])
    parsed: list[tuple[int, ParsedAsset]] = []
    for line, row in enumerate(rows, start=2):
        if None in row:  # csv puts surplus cells under the key None
            report.skipped.append(RowProblem(line, f"too many cells: {len(row) - 1 + len(row[None])}"))
            continue
        try:
            asset = chosen.parse(row)
        except RowDefect as exc:
            report.skipped.append(RowProblem(line, str(exc)))
            continue
        except StopIteration:
            report.skipped.append(RowProblem(line, "a column the format needs is missing"))
            continue
        parsed.append((line, asset))
    districts = index.districts_at([a.lat for _, a in parsed], [a.lon for _, a in parsed]) if parsed else []

    existing = {a.key: a for a in session.scalars(select(Asset).where(Asset.kind == kind, Asset.source == source))}
    seen_at: Counter = Counter()
    seen_keys: set[str] = set()
    for (line, asset), district in zip(parsed, districts, strict=True):
        if progress:
            progress(1)
        if district is None:
            report.skipped.append(RowProblem(line, f"outside the city: {asset.lat}, {asset.lon}"))
            continue
        if asset.external_id:
            key = "id:" + asset.external_id
        else:
            pos = _position_key(asset.lat, asset.lon)
            seen_at[pos] += 1
            key = f"at:{pos}#{seen_at[pos]}"
        if key in seen_keys:
            report.skipped.append(RowProblem(line, f"duplicate id: {asset.external_id}"))
            continue
        seen_keys.add(key)
        for w in asset.warnings:
            report.warnings.append(RowProblem(line, w))
        values = {
            "name": asset.name[:300],
            "lat": asset.lat,
            "lon": asset.lon,
            "district_code": district.code,
            "attributes": asset.attributes,
            "external_id": asset.external_id,
        }
        row = existing.get(key)
        if row is None:
            session.add(Asset(kind=kind, source=source, key=key, **values))
            report.created += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            report.updated += 1
        else:
            report.unchanged += 1
    session.flush()
    audit.record(
        session,
        actor,
        "import",
        "assets",
        kind,
        {
            "source": source,
            "format": chosen.name,
            "created": report.created,
            "updated": report.updated,
            "skipped": len(report.skipped),
        },
    )
    if report.created or report.updated:
        _changed(session, {"kind": kind, "source": source})
    return report


# --- plain CRUD -----------------------------------------------------------------------------------


def create_asset(
    session: Session,
    kind: str,
    lat: Any,
    lon: Any,
    *,
    name: str = "",
    attributes: dict | None = None,
    source: str = "manual",
    external_id: str | None = None,
    actor="cli",
) -> Asset:
    """Add one asset; the point must be inside the city."""
    check_kind(kind)
    loc = geo_index(session.info["db"]).locate(lat, lon)
    key = "id:" + external_id if external_id else f"at:{_position_key(loc.lat, loc.lon)}#m"
    taken = session.scalar(select(Asset.id).where(Asset.kind == kind, Asset.source == source, Asset.key == key))
    if taken:
        from smartcity.core.errors import Conflict

        raise Conflict(f"a {kind} from {source!r} is already registered there", code="duplicate_asset")
    asset = Asset(
        kind=kind,
        name=name[:300],
        lat=loc.lat,
        lon=loc.lon,
        district_code=loc.district.code,
        attributes=attributes or {},
        source=source,
        external_id=external_id,
        key=key,
    )
    session.add(asset)
    session.flush()
    audit.record(session, actor, "create", "asset", asset.id, {"kind": kind})
    _changed(session, {"kind": kind})
    return asset


def delete_asset(session: Session, asset_id: int, actor="cli") -> None:
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise NotFound(f"no asset {asset_id}")
    kind = asset.kind
    session.delete(asset)
    audit.record(session, actor, "delete", "asset", asset_id, {"kind": kind})
    _changed(session, {"kind": kind})


def list_assets(
    session: Session,
    kind: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    district: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[Asset]:
    q = select(Asset).order_by(Asset.id).limit(limit).offset(offset)
    if kind:
        q = q.where(Asset.kind == check_kind(kind))
    if bbox:
        west, south, east, north = bbox
        q = q.where(Asset.lon >= west, Asset.lon <= east, Asset.lat >= south, Asset.lat <= north)
    if district:
        q = q.where(Asset.district_code == district)
    return list(session.scalars(q))


def to_dict(asset: Asset) -> dict:
    return {
        "id": asset.id,
        "kind": asset.kind,
        "name": asset.name,
        "lat": asset.lat,
        "lon": asset.lon,
        "district": asset.district_code,
        "source": asset.source,
        "external_id": asset.external_id,
        "attributes": asset.attributes or {},
    }


def geojson(assets: Iterable[Asset]) -> dict:
    features = []
    for a in assets:
        props = to_dict(a)
        props.pop("lat"), props.pop("lon")
        features.append(
            {
                "type": "Feature",
                "id": a.id,
                "properties": props,
                "geometry": {"type": "Point", "coordinates": [a.lon, a.lat]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


# --- nearest: the in-memory index -----------------------------------------------------------------


@dataclass(frozen=True)
class AssetRef:
    """What the nearest-asset index keeps of an asset (no attributes: 110,000 cameras stay small)."""

    id: int
    kind: str
    name: str
    lat: float
    lon: float
    district_code: str | None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "lat": self.lat,
            "lon": self.lon,
            "district": self.district_code,
        }


class KindIndex:
    """A k-d tree over one kind's assets on the city's metric plane."""

    def __init__(self, refs: list[AssetRef], plane: Transformer):
        self.refs = refs
        self.plane = plane
        if refs:
            xs, ys = plane.transform(np.array([r.lon for r in refs]), np.array([r.lat for r in refs]))
            self.tree: cKDTree | None = cKDTree(np.column_stack([xs, ys]))
        else:
            self.tree = None

    def nearest(self, lat: float, lon: float, k: int) -> list[tuple[AssetRef, float]]:
        if self.tree is None or k <= 0:
            return []
        k = min(k, len(self.refs))
        x, y = self.plane.transform(lon, lat)
        dist, idx = self.tree.query((x, y), k=k)
        if k == 1:
            dist, idx = [dist], [idx]
        return [(self.refs[int(i)], float(d)) for d, i in zip(dist, idx, strict=True)]


class AssetIndex:
    """Per-process nearest-asset lookups: one k-d tree per kind, built on first use."""

    def __init__(self, db, center: tuple[float, float]):
        self.db = db
        self.plane = city_plane(center)
        self._kinds: dict[str, KindIndex] = {}
        self._lock = threading.Lock()

    def kind(self, kind: str) -> KindIndex:
        index = self._kinds.get(kind)
        if index is None:
            with self._lock:
                index = self._kinds.get(kind)
                if index is None:
                    index = KindIndex(self._load(kind), self.plane)
                    self._kinds[kind] = index
        return index

    def _load(self, kind: str) -> list[AssetRef]:
        cols = (Asset.id, Asset.name, Asset.lat, Asset.lon, Asset.district_code)
        with self.db.session() as s:
            rows = s.execute(select(*cols).where(Asset.kind == kind).order_by(Asset.id)).all()
        return [AssetRef(r.id, kind, r.name, r.lat, r.lon, r.district_code) for r in rows]


def asset_index(db) -> AssetIndex:
    """The process's index for `db`; it follows `assets.changed` events from then on."""
    from smartcity.core.context import context_of

    return db.derived(
        "assets.index", lambda: AssetIndex(db, context_of(db).profile.center), invalidated_by="assets.changed"
    )


def invalidate(db) -> None:
    """Forget the index (assets changed here or in another process); the next query rebuilds it."""
    db.cache.pop("assets.index", None)


def nearest(db, kind: str, lat: float, lon: float, k: int = 5) -> list[tuple[AssetRef, float]]:
    """The `k` assets of `kind` nearest the point, nearest first, each with its distance in metres.

    Exported for other modules (the safety console's nearest cameras). No database read once the
    index is built."""
    check_kind(kind)
    lat, lon = check_coordinates(lat, lon)
    if not 1 <= k <= MAX_NEAREST:
        raise InvalidInput(f"k must be between 1 and {MAX_NEAREST}", code="invalid_k")
    return asset_index(db).kind(kind).nearest(lat, lon, k)


def nearest_brute_force(refs: Iterable[AssetRef], lat: float, lon: float, k: int) -> list[tuple[AssetRef, float]]:
    """The reference answer (ellipsoidal geodesic distances to every asset): for tests and sanity checks."""
    refs = list(refs)
    if not refs:
        return []
    _, _, dist = _GEOD.inv(
        np.full(len(refs), lon),
        np.full(len(refs), lat),
        np.array([r.lon for r in refs]),
        np.array([r.lat for r in refs]),
    )
    order = np.argsort(dist, kind="stable")[:k]
    return [(refs[int(i)], float(dist[int(i)])) for i in order]


_GEOD = Geod(ellps="GRS80")


DEMO_SOURCE = "demo (synthetic)"


def demo_assets(db, per_district: int = 40, gangnam: int = 240, seed: int = 11) -> str:
    """Scatter synthetic cameras (and a few Wi-Fi points) inside each stored district polygon."""
    import random

    import shapely

    with db.session() as s:
        if s.scalar(select(Asset.id).where(Asset.source == DEMO_SOURCE).limit(1)) is not None:
            return "demo assets: already there"
        index = geo_index(db)
        rng = random.Random(seed)
        made = {"cctv": 0, "wifi": 0}
        for area, polygon in zip(index.districts, index._district_geoms, strict=True):
            west, south, east, north = polygon.bounds
            counts = {
                "cctv": gangnam if area.name_en.startswith("Gangnam") else per_district,
                "wifi": per_district // 4,
            }
            for kind, wanted in counts.items():
                placed = 0
                while placed < wanted:
                    lat, lon = rng.uniform(south, north), rng.uniform(west, east)
                    if not shapely.contains_xy(polygon, lon, lat):
                        continue
                    placed += 1
                    s.add(
                        Asset(
                            kind=kind,
                            name=f"{area.name_ko} {kind.upper()} {placed:03d}",
                            lat=lat,
                            lon=lon,
                            district_code=area.code,
                            attributes={"synthetic": True},
                            source=DEMO_SOURCE,
                            external_id=f"demo-{area.code}-{kind}-{placed}",
                            key=f"id:demo-{area.code}-{kind}-{placed}",
                        )
                    )
                made[kind] += placed
        audit.record(s, "demo", "create", "assets", None, made)
        _changed(s, {"kind": "cctv"})
    return f"demo assets: {made['cctv']} cameras and {made['wifi']} Wi-Fi points (synthetic)"
