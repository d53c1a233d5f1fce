"""The city asset registry: import from the city's CSV lists, list and map assets, find the nearest ones.

`nearest(db, kind, lat, lon, k)` is this module's exported function for other modules (the safety
service's control-room console asks it for the cameras nearest an incident). It answers from the
in-memory index of index.py, with no database read once it is built. The CSV formats are formats.py's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from smartcity.assets.formats import FORMATS, CsvFormat, ParsedAsset, RowDefect, decode, detect_format, read_rows
from smartcity.assets.index import AssetIndex, AssetRef, KindIndex, asset_index, invalidate, nearest_brute_force
from smartcity.assets.models import Asset
from smartcity.core import audit
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.events import publish
from smartcity.core.geo import check_coordinates, geo_index
from smartcity.core.geo import transverse_mercator as city_plane
from smartcity.core.params import bbox as parse_bbox
from smartcity.core.render import Points

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


@dataclass(frozen=True)
class KindCounts:
    """How many assets of a kind there are, and how many of them have a district and an external id (not empty)."""

    assets: int
    with_district: int
    with_external_id: int


def kind_counts(session: Session, kinds: Iterable[str]) -> dict[str, KindCounts]:
    """Exported for other modules (the NGSI-LD broker's /types and /attributes): the counts of each kind asked
    (a kind without assets is left out), from one aggregate the kind/district/external id index answers."""
    kinds = sorted({check_kind(k) for k in kinds})
    if not kinds:
        return {}
    rows = session.execute(
        select(
            Asset.kind,
            func.count(),
            func.count(func.nullif(Asset.district_code, "")),
            func.count(func.nullif(Asset.external_id, "")),
        )
        .where(Asset.kind.in_(kinds))
        .group_by(Asset.kind)
    )
    return {kind: KindCounts(n, d, e) for kind, n, d, e in rows}


def ids_of_kind(kind: str) -> Select:
    """Exported for other modules: the ids of a kind's assets as a subquery to filter their own rows by (the
    Wi-Fi status of access points that are still registered), without naming this module's table."""
    return select(Asset.id).where(Asset.kind == check_kind(kind))


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


def get_asset(session: Session, asset_id: int) -> Asset:
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise NotFound(f"no asset {asset_id}")
    return asset


def as_points(assets: Iterable[Asset]) -> Points:
    """Assets as points (a map's GeoJSON, through core.render)."""
    return Points("assets", [to_dict(a) for a in assets])


def nearest(db, kind: str, lat: float, lon: float, k: int = 5) -> list[tuple[AssetRef, float]]:
    """The `k` assets of `kind` nearest the point, nearest first, each with its distance in metres.

    Exported for other modules (the safety console's nearest cameras). No database read once the
    index is built."""
    check_kind(kind)
    lat, lon = check_coordinates(lat, lon)
    if not 1 <= k <= MAX_NEAREST:
        raise InvalidInput(f"k must be between 1 and {MAX_NEAREST}", code="invalid_k")
    return asset_index(db).kind(kind).nearest(lat, lon, k)


DEMO_SOURCE = "demo (synthetic)"


def named_places(context) -> list:
    """The named assets, as places the city's place search finds (core.places; declared in the module's
    `places`): read from this table, not copied; a camera's name is often its address."""
    from smartcity.core.places import PlaceHit

    with context.db.session() as s:
        rows = s.execute(select(Asset.name, Asset.lat, Asset.lon, Asset.district_code).where(Asset.name != ""))
        return [PlaceHit("asset", name, "", lat, lon, district, None, "assets") for name, lat, lon, district in rows]


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


# The one public surface of the registry (the formats and the index are re-exported from their modules).
__all__ = [
    "DEMO_SOURCE",
    "FORMATS",
    "KINDS",
    "MAX_NEAREST",
    "AssetIndex",
    "AssetRef",
    "CsvFormat",
    "ImportReport",
    "KindIndex",
    "ParsedAsset",
    "RowDefect",
    "RowProblem",
    "as_points",
    "asset_index",
    "check_kind",
    "city_plane",
    "create_asset",
    "decode",
    "delete_asset",
    "demo_assets",
    "detect_format",
    "get_asset",
    "import_csv",
    "invalidate",
    "list_assets",
    "nearest",
    "nearest_brute_force",
    "parse_bbox",
    "read_rows",
    "to_dict",
]
