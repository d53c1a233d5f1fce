"""Public Wi-Fi (issue 16, item 4): access points are assets of kind `wifi` (the assets registry: position,
district, the list's place and place detail), each with an installation type read from where it is (indoor:
a floor, inside a building; outdoor: in front of a shop, a park, a bus stop); their status history (up or down,
clients connected) reported by MQTT or HTTP; coverage per district and the gap finder over the city's demand
points (the gazetteer's bus stops and subway stations). Read models only: no HTTP here. See docs/sensing.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from smartcity.assets import service as assets
from smartcity.core.batchstore import batch_store
from smartcity.core.context import context_of
from smartcity.core.errors import InvalidInput
from smartcity.core.geo import geo_index
from smartcity.core.places import Place
from smartcity.sensing import coverage
from smartcity.sensing.intake import _epoch
from smartcity.sensing.models import Rejection, WifiStatus
from smartcity.sensing.settings import SensingSettings

KIND = "wifi"
SOURCE = "public Wi-Fi standard data"
INDOOR, OUTDOOR = "indoor", "outdoor"
DEMAND_KINDS = ("bus_stop", "subway_station")
MOST = 1_000_000
MAX_PROPOSALS = 200
STATUS_KEY = ("access_point_id", "observed_at")

# A place detail naming a floor or "inside" puts the access point indoors even in a park's building; one naming
# the street side of something ("앞": in front of) puts it outdoors. With neither, the place's own name decides.
_INDOOR = re.compile(r"\d+\s*층|지하|(^|\s)내(\s|$)|실내|내부|로비|민원실|사무실|열람실|대합실|강당|홀")
_OUTDOOR = re.compile(
    r"앞|옆|건너편|맞은편|코너|실외|옥외|외부|야외|광장|공원|정류소|정류장|거리|골목|사거리|놀이터|주차장|입구|산책로"
)


def installation_of(place: str, detail: str) -> str:
    """indoor or outdoor, from the list's place and place detail. A place saying neither (a library, a market)
    is taken as indoor: the smaller radius, so that coverage is never overstated."""
    if _INDOOR.search(detail):
        return INDOOR
    if _OUTDOOR.search(detail) or _OUTDOOR.search(place):
        return OUTDOOR
    return INDOOR


@dataclass(frozen=True)
class AccessPoint:
    id: int
    name: str
    lat: float
    lon: float
    district: str | None
    installation: str
    radius_m: float

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "lat": self.lat,
            "lon": self.lon,
            "district": self.district,
            "installation": self.installation,
            "radius_m": self.radius_m,
        }


def radii(db) -> dict[str, float]:
    settings = context_of(db).settings_of(SensingSettings)
    return {INDOOR: settings.wifi_indoor_radius_m, OUTDOOR: settings.wifi_outdoor_radius_m}


@dataclass
class WifiImport:
    """The assets import's report, and how many of the list's access points are indoor and outdoor."""

    report: Any
    indoor: int = 0
    outdoor: int = 0

    def summary(self) -> str:
        return f"{self.report.summary()}; {self.indoor} indoor, {self.outdoor} outdoor access points"


def import_access_points(db, data: bytes, *, source: str = SOURCE, actor="cli") -> WifiImport:
    """A public Wi-Fi list (latitude, longitude, addresses, place, place_detail, …; UTF-8 or CP949) as assets
    of kind `wifi`: rows that cannot be used reported by line and reason; re-importing changes nothing."""
    with db.session() as s:
        report = assets.import_csv(s, data, KIND, source=source, fmt="wifi", actor=actor)
        s.flush()
        counts = {INDOOR: 0, OUTDOOR: 0}
        for ap in access_points(s, db, source=source):
            counts[ap.installation] += 1
    return WifiImport(report, counts[INDOOR], counts[OUTDOOR])


def access_points(session: Session, db=None, *, district: str | None = None, source: str | None = None):
    """The registered access points with their installation type and coverage radius."""
    r = radii(db if db is not None else session.info["db"])
    out = []
    for a in assets.list_assets(session, kind=KIND, district=district, limit=MOST):
        if source is not None and a.source != source:
            continue
        attrs = a.attributes or {}
        kind = installation_of(attrs.get("place", "") or "", attrs.get("place_detail", "") or "")
        out.append(AccessPoint(a.id, a.name, a.lat, a.lon, a.district_code, kind, r[kind]))
    return out


def demand_points(session: Session) -> list[coverage.DemandPoint]:
    """The gazetteer's bus stops and subway stations (`smartcity import places`)."""
    rows = session.execute(
        select(Place.kind, Place.name_ko, Place.lat, Place.lon).where(Place.kind.in_(DEMAND_KINDS)).order_by(Place.id)
    )
    return [coverage.DemandPoint(k, n, lat, lon) for k, n, lat, lon in rows]


def _plane(db) -> coverage.Plane:
    return coverage.Plane(context_of(db).profile.center)


@dataclass
class CoverageView:
    """What the coverage map, its table and downloads show: access points, each district's shares, the demand
    left uncovered and the proposed sites."""

    access_points: list[AccessPoint]
    districts: list[coverage.DistrictCoverage]
    uncovered: list[coverage.DemandPoint]
    proposals: list[coverage.Proposal] = field(default_factory=list)
    demand: int = 0

    def totals(self) -> dict:
        area = sum(d.area_km2 for d in self.districts)
        covered = sum(d.covered_km2 for d in self.districts)
        return {
            "access_points": len(self.access_points),
            "area_km2": round(area, 3),
            "covered_km2": round(covered, 3),
            "area_share": round(covered / area, 4) if area else 0.0,
            "demand": self.demand,
            "demand_covered": self.demand - len(self.uncovered),
            "demand_share": round((self.demand - len(self.uncovered)) / self.demand, 4) if self.demand else 0.0,
        }

    def as_dict(self) -> dict:
        return {
            "totals": self.totals(),
            "districts": [
                {
                    "code": d.code,
                    "name": d.name,
                    "area_km2": round(d.area_km2, 3),
                    "covered_km2": round(d.covered_km2, 3),
                    "area_share": round(d.area_share, 4),
                    "demand": d.demand,
                    "demand_covered": d.demand_covered,
                    "demand_share": round(d.demand_share, 4),
                }
                for d in self.districts
            ],
            "access_points": [a.as_dict() for a in self.access_points],
            "uncovered": [{"kind": d.kind, "name": d.name, "lat": d.lat, "lon": d.lon} for d in self.uncovered],
            "proposals": [proposal_dict(p) for p in self.proposals],
        }


def proposal_dict(p: coverage.Proposal) -> dict:
    return {
        "rank": p.rank,
        "lat": round(p.lat, 6),
        "lon": round(p.lon, 6),
        "radius_m": p.radius_m,
        "newly_covered": p.newly_covered,
        "total_covered": p.total_covered,
        "near": p.near,
    }


def _districts(db, language: str, code: str | None) -> list[coverage.DistrictShape]:
    found = geo_index(db).districts_geojson(language)["features"]
    return [
        coverage.DistrictShape(f["properties"]["code"], f["properties"]["name"], shapely.geometry.shape(f["geometry"]))
        for f in found
        if code is None or f["properties"]["code"] == code
    ]


def check_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_PROPOSALS:
        raise InvalidInput(f"the number of proposed sites must be 0 to {MAX_PROPOSALS}", code="invalid_count")
    return n


def coverage_view(db, language: str = "ko", *, district: str | None = None, proposals: int = 0) -> CoverageView:
    """Coverage per district (all of them, or one), the uncovered demand and the next `proposals` sites."""
    check_count(proposals)
    plane = _plane(db)
    with db.session() as s:
        aps = access_points(s, db)
        demand = demand_points(s)
    shapes = _districts(db, language, district)
    if district is not None:
        if not shapes:
            raise InvalidInput(f"no district {district!r}", code="unknown_district")
        inside = shapely.contains_xy(shapes[0].geometry, [d.lon for d in demand], [d.lat for d in demand])
        demand = [d for d, keep in zip(demand, np.atleast_1d(inside), strict=True) if keep]
    sites = [coverage.Site(a.lat, a.lon, a.radius_m) for a in aps]
    rows = coverage.by_district(plane, sites, shapes, demand)
    covered = coverage.covered_mask(plane, sites, demand)
    view = CoverageView(aps, rows, [d for d, c in zip(demand, covered, strict=True) if not c], demand=len(demand))
    if proposals:
        view.proposals = coverage.propose(plane, sites, demand, proposals, radii(db)[OUTDOOR])
    return view


# --- status ----------------------------------------------------------------------------------------------


@dataclass
class StatusOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"stored": self.stored, "duplicates": self.duplicates, "rejected": self.rejected}


def record_status(db, reports: Sequence[Any], channel: str, *, access_point: int | None = None, now=None):
    """Status reports {"access_point": id, "time", "up": bool, "clients": n ≥ 0} (over MQTT the topic names
    the access point): each stored once by (access point, time) or refused with its reason, the refusals
    recorded in `sensing_rejections`, all in one transaction."""
    settings = context_of(db).settings_of(SensingSettings)
    now = time.time() if now is None else now
    latest = now + settings.future_tolerance_s
    with db.session() as s:
        known = {a.id for a in assets.list_assets(s, kind=KIND, limit=MOST)}
    rows: dict[str, list] = {k: [] for k in ("access_point_id", "observed_at", "up", "clients")}
    refused: list[dict] = []

    def refuse(i: int, item: Any, code: str, message: str) -> None:
        shown = item if isinstance(item, Mapping) else {}
        refused.append({"index": i, "code": code, "message": message, "sent": shown, "raw": str(item)[:100]})

    for i, item in enumerate(reports):
        if not isinstance(item, Mapping):
            refuse(i, item, "malformed", "a status report must be a JSON object")
            continue
        ap = access_point if access_point is not None else item.get("access_point")
        when, up, clients = _epoch(item.get("time")), item.get("up"), item.get("clients", 0)
        if isinstance(ap, bool) or not isinstance(ap, int) or ap not in known:
            refuse(i, item, "unknown_access_point", f"no public Wi-Fi access point {ap!r}")
        elif when is None:
            refuse(i, item, "invalid_time", "time must be epoch seconds or ISO 8601 with an offset")
        elif when > latest:
            refuse(i, item, "future", "the time is in the future")
        elif not isinstance(up, bool):
            refuse(i, item, "invalid_value", "up must be true or false")
        elif isinstance(clients, bool) or not isinstance(clients, int) or not 0 <= clients <= 100_000:
            refuse(i, item, "invalid_value", "clients must be a whole number from 0")
        else:
            for k, v in zip(rows, (ap, when, up, clients), strict=True):
                rows[k].append(v)
    columns = {
        "access_point_id": np.array(rows["access_point_id"], dtype=np.int64),
        "observed_at": np.array(rows["observed_at"], dtype=np.int64),
        "up": np.array(rows["up"], dtype=bool),
        "clients": np.array(rows["clients"], dtype=np.int64),
    }
    store = batch_store(db)
    with db.session() as s:
        conn = s.connection()
        store.prepare(conn)
        stored = (
            store.insert_new(conn, "sensing_wifi_status", columns, STATUS_KEY)
            if len(columns["observed_at"])
            else np.zeros(0, dtype=bool)
        )
        if refused:
            s.execute(
                insert(Rejection),
                [
                    {
                        "channel": channel,
                        "sensor": str(access_point if access_point is not None else r["sent"].get("access_point", ""))[
                            :100
                        ],
                        "quantity": "wifi_status",
                        "observed_at": None,
                        "value": r["raw"],
                        "code": r["code"],
                        "detail": r["message"],
                    }
                    for r in refused
                ],
            )
    n = int(stored.sum())
    return StatusOutcome(n, len(stored) - n, [{k: r[k] for k in ("index", "code", "message")} for r in refused])


def latest_status(session: Session) -> dict[int, dict]:
    """Each access point's newest report: {id: {"time", "up", "clients"}}."""
    newest = (
        select(WifiStatus.access_point_id, func.max(WifiStatus.observed_at).label("t"))
        .group_by(WifiStatus.access_point_id)
        .subquery()
    )
    rows = session.execute(
        select(WifiStatus.access_point_id, WifiStatus.observed_at, WifiStatus.up, WifiStatus.clients).join(
            newest,
            (newest.c.access_point_id == WifiStatus.access_point_id) & (newest.c.t == WifiStatus.observed_at),
        )
    )
    return {ap: {"time": t, "up": up, "clients": clients} for ap, t, up, clients in rows}


def status_history(session: Session, access_point: int, start: int, end: int) -> list[dict]:
    """An access point's reports over [start, end), oldest first."""
    rows = session.execute(
        select(WifiStatus.observed_at, WifiStatus.up, WifiStatus.clients)
        .where(
            WifiStatus.access_point_id == access_point,
            WifiStatus.observed_at >= start,
            WifiStatus.observed_at < end,
        )
        .order_by(WifiStatus.observed_at)
    )
    return [{"time": t, "up": up, "clients": c} for t, up, c in rows]


def _path(geom: shapely.Geometry) -> str:
    """An SVG path of a (multi)polygon on the plane, north up (y flipped)."""
    parts = []
    for poly in getattr(geom, "geoms", [geom]):
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords)
            parts.append("M" + "L".join(f"{x:.0f},{-y:.0f}" for x, y in xy) + "Z")
    return "".join(parts)


def drawing(db, view: CoverageView, district: str | None = None) -> dict:
    """The coverage map as SVG shapes in metres on the city's plane (no tiles, no script needed): district
    outlines, the access points' discs, the uncovered demand points and the proposed sites."""
    plane = _plane(db)
    shapes = [plane.geometry(d.geometry).simplify(10) for d in _districts(db, "ko", district)]
    if not shapes:
        return {}
    west, south, east, north = shapely.union_all(shapes).bounds
    pad = 200.0

    def points(lats, lons) -> list[tuple[float, float]]:
        return [(float(x), float(-y)) for x, y in plane.xy(lats, lons)]

    aps = view.access_points
    if district is not None:
        aps = [a for a in aps if a.district == district]
    return {
        "view_box": f"{west - pad:.0f} {-north - pad:.0f} {east - west + 2 * pad:.0f} {north - south + 2 * pad:.0f}",
        "districts": [_path(g) for g in shapes],
        "discs": [
            (x, y, a.radius_m, a.installation)
            for (x, y), a in zip(points([a.lat for a in aps], [a.lon for a in aps]), aps, strict=True)
        ],
        "uncovered": points([d.lat for d in view.uncovered], [d.lon for d in view.uncovered]),
        "proposals": [
            (x, y, p.radius_m, p.rank)
            for (x, y), p in zip(
                points([p.lat for p in view.proposals], [p.lon for p in view.proposals]), view.proposals, strict=True
            )
        ],
        "scale": max(east - west, north - south) / 400,  # metres per CSS pixel at 400 px, for marker sizes
    }


def district_names(db, language: str) -> list[dict]:
    """Every district's code and name in `language`, for the page's choice."""
    return [{"code": a.code, "name": a.name(language)} for a in geo_index(db).districts]
