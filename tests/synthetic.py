"""Synthetic stand-ins for the real Seoul files, made by code, and where to find the real ones.

The real files (../shared/data/seoul, or the folder SMARTCITY_REAL_DATA names) are third-party
republications of public data: the project does not carry them. Everything a test needs to check the
platform's *behaviour* is built here instead: boundaries drawn around the city profile's representative
points, and CSVs with the same columns as the official lists and the same kinds of defects (text damaged
at the source, several cameras on one pole, points outside the city, unparsable numbers, surplus cells,
duplicate serials, UTF-8 with or without a BOM, CP949). Every builder is deterministic (seeded) and says
which defects it planted on which line, so a test can hold the import's report against them.

Tests about *facts* of the real data (its counts, real places) are marked `real_data` and run only where
the real folder is found (see `real_data_dir`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import shapely
from shapely.geometry import MultiPoint, Point, mapping

from smartcity.core.city import CityProfile, load_profile

REAL_DATA_ENV = "SMARTCITY_REAL_DATA"
DEFAULT_REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seoul"
SEOUL = load_profile("seoul")
GANGNAM = "11230"
# Clearly outside Seoul's outline: Busan, Incheon's harbour, Suwon.
OUTSIDE = [(35.1796, 129.0756), (37.4560, 126.5950), (37.2636, 127.0286)]
# Coordinates are published to 1e-5 degrees (about a metre); rounding on this grid keeps polygons valid.
GRID = 1e-5


def real_data_dir() -> tuple[Path | None, str]:
    """The folder of the real Seoul files, or None and why it is not used.

    When SMARTCITY_REAL_DATA is set it is the only place looked at (set it to a missing path, or to
    nothing, to run as a bare clone would); otherwise ../shared/data/seoul beside the checkout."""
    configured = os.environ.get(REAL_DATA_ENV)
    if configured is not None:
        path = Path(configured).expanduser()
        if configured.strip() and path.is_dir():
            return path.resolve(), ""
        return None, f"{REAL_DATA_ENV}={configured!r} is not a folder"
    if DEFAULT_REAL_DATA.is_dir():
        return DEFAULT_REAL_DATA, ""
    return None, f"../shared/data/seoul not found beside the checkout (set {REAL_DATA_ENV})"


# --- boundaries -----------------------------------------------------------------------------------


def _polygonal(geometry):
    """Only the polygons of a clipping result (an intersection can also yield stray lines or points)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [g for g in getattr(geometry, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _cells(seeds: list[Point], clip) -> list:
    """Voronoi cells of `seeds` (in seed order) clipped to `clip` and rounded onto the publishing grid."""
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=clip.envelope.buffer(0.1))
    out = []
    for seed in seeds:
        cell = next(c for c in cells.geoms if c.contains(seed))
        out.append(_polygonal(shapely.set_precision(_polygonal(cell.intersection(clip)), GRID)))
    return out


def _feature(code: str, name: str, name_eng: str, geometry) -> dict:
    return {
        "type": "Feature",
        "properties": {"code": code, "name": name, "name_eng": name_eng, "base_year": "2013"},
        "geometry": mapping(geometry),
    }


def districts(profile: CityProfile = SEOUL, seed: int = 2013) -> dict:
    """The city's districts as a GeoJSON FeatureCollection, with the properties of the KOSTAT file
    (code, name, name_eng, base_year). Cells around each district's representative point, nudged a few
    hundred metres so that they are not the approximate districts the store is seeded with."""
    rng = random.Random(seed)
    outline = profile.outline_polygon
    seeds = [
        Point(d.point[1] + rng.uniform(-0.003, 0.003), d.point[0] + rng.uniform(-0.003, 0.003))
        for d in profile.districts
    ]
    cells = _cells(seeds, outline)
    return {
        "type": "FeatureCollection",
        "features": [
            _feature(d.code, d.name_ko, d.name_en, cell) for d, cell in zip(profile.districts, cells, strict=True)
        ],
    }


def _points_inside(polygon, n: int, rng: random.Random) -> list[Point]:
    west, south, east, north = polygon.bounds
    points: list[Point] = []
    while len(points) < n:
        p = Point(rng.uniform(west, east), rng.uniform(south, north))
        if polygon.contains(p):
            points.append(p)
    return points


def neighbourhoods(district_collection: dict | None = None, seed: int = 2013) -> dict:
    """Neighbourhoods (동): each district split into three to seven cells, coded like KOSTAT's
    (district code + two digits) and named after their district ("강남3동", "Gangnam 3-dong")."""
    rng = random.Random(seed)
    features = []
    for district in (district_collection or districts())["features"]:
        props = district["properties"]
        polygon = shapely.geometry.shape(district["geometry"])
        stem_ko, stem_en = props["name"].removesuffix("구"), props["name_eng"].removesuffix("-gu")
        cells = _cells(_points_inside(polygon, rng.randint(3, 7), rng), polygon)
        for i, cell in enumerate(c for c in cells if not c.is_empty):
            features.append(
                _feature(f"{props['code']}{51 + i}", f"{stem_ko}{i + 1}동", f"{stem_en} {i + 1}-dong", cell)
            )
    return {"type": "FeatureCollection", "features": features}


def codes_at(path: Path, lat: float, lon: float) -> set[str]:
    """The codes of the areas of a GeoJSON file holding a point: a lookup's answer by brute force."""
    point = Point(lon, lat)
    return {
        f["properties"]["code"]
        for f in json.loads(path.read_text(encoding="utf-8"))["features"]
        if shapely.geometry.shape(f["geometry"]).intersects(point)
    }


def detailed(collection: dict, vertices: int = 25_000) -> dict:
    """The same areas with about `vertices` vertices in all (the real detailed file has 25,222): what a
    lookup costs depends on how many edges a polygon has."""
    geoms = [shapely.geometry.shape(f["geometry"]) for f in collection["features"]]
    length = sum(
        g.exterior.length if g.geom_type == "Polygon" else sum(p.exterior.length for p in g.geoms) for g in geoms
    )
    step = length / vertices
    return {
        "type": "FeatureCollection",
        "features": [
            {**f, "geometry": mapping(shapely.segmentize(g, step))}
            for f, g in zip(collection["features"], geoms, strict=True)
        ],
    }


# --- CSV lists ------------------------------------------------------------------------------------


@dataclass
class Planted:
    """A synthetic CSV and what an import must make of it. Lines count as in the file (header = 1)."""

    name: str
    data: bytes
    rows: int
    skipped: dict[int, str] = field(default_factory=dict)  # line -> how the skip reason starts
    warned: dict[int, str] = field(default_factory=dict)  # line -> how the warning starts
    stacked: tuple[float, float] | None = None  # a position several rows share (one pole, several lenses)
    stacked_rows: int = 0

    @property
    def imported(self) -> int:
        return self.rows - len(self.skipped)

    def positions(self) -> list[tuple[float, float]]:
        """Every (lat, lon) of a row the import keeps."""
        header, *rows = csv.reader(io.StringIO(self.data.decode(_encoding_of(self.data))))
        lat_col = next(i for i, h in enumerate(header) if h.lower().startswith(("latitude", "위도")))
        lon_col = next(i for i, h in enumerate(header) if h.lower().startswith(("longitude", "경도")))
        return [
            (float(r[lat_col]), float(r[lon_col])) for line, r in enumerate(rows, start=2) if line not in self.skipped
        ]


def _encoding_of(data: bytes) -> str:
    try:
        data.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp949"


class _Sheet:
    """Rows being written, with the defects planted among them."""

    def __init__(self, name: str, header: list[str]):
        self.name, self.header = name, header
        self.rows: list[list[str]] = []
        self.skipped: dict[int, str] = {}
        self.warned: dict[int, str] = {}

    @property
    def next_line(self) -> int:
        return len(self.rows) + 2

    def add(self, row: list[str], skip: str | None = None, warn: str | None = None) -> None:
        if skip:
            self.skipped[self.next_line] = skip
        elif warn:
            self.warned[self.next_line] = warn
        self.rows.append(row)

    def planted(self, encoding: str, **extra) -> Planted:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return Planted(
            self.name, out.getvalue().encode(encoding), len(self.rows), dict(self.skipped), dict(self.warned), **extra
        )


def _gangnam(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Points well inside Gangnam (away from its border, so any district map of Seoul agrees)."""
    core = shapely.geometry.shape(
        next(f for f in districts()["features"] if f["properties"]["code"] == GANGNAM)["geometry"]
    ).buffer(-0.004)
    return [(round(p.y, 6), round(p.x, 6)) for p in _points_inside(core, n, rng)]


def _phone(rng: random.Random) -> str:
    # No exchange starts with 0: the number has the published shape but can reach no one.
    return f"02-0{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}"


AGENCIES = ["서울특별시 강남구청", "강남경찰서", "서울특별시 시청", "한국도로공사"]


def national_cctv(n: int = 240, seed: int = 1, encoding: str = "utf-8", defects: bool = True) -> Planted:
    """The national CCTV standard data's columns (latitude, longitude, old_address, new_address, keep_day,
    count, mng_name, mng_phone), with one pole of three cameras, one address with damaged text and (with
    `defects`) one row of each defect the import must skip."""
    rng = random.Random(seed)
    sheet = _Sheet(
        "cctv_gangnam.csv",
        ["latitude", "longitude", "old_address", "new_address", "keep_day", "count", "mng_name", "mng_phone"],
    )
    points = _gangnam(rng, n)
    pole = points[n // 3]
    points[n // 3 + 1] = points[n // 3 + 2] = pole

    def good(lat: float, lon: float, i: int) -> list[str]:
        lot = f"서울특별시 강남구 가상동 {100 + i}-{rng.randint(1, 40)}"
        road = f"서울특별시 강남구 가상로 {rng.randint(1, 90)}길 {rng.randint(1, 60)}" if rng.random() < 0.7 else ""
        return [
            str(lat),
            str(lon),
            lot,
            road,
            rng.choice(["0", "30"]),
            str(rng.randint(1, 12)),
            rng.choice(AGENCIES),
            _phone(rng),
        ]

    blank = ["x", "y", "30", "1", "강남구청", "02-0000-0000"]
    bad_rows = (
        [
            (["abc", "127.05", *blank], "latitude is not a number"),
            (["37.5", "", *blank], "longitude is not a number"),
            (["137.5", "127.05", *blank], "coordinates out of range"),
            ([*map(str, OUTSIDE[0]), *blank], "outside the city"),
            (["37.5", "127.05", *blank, "surplus", "cells"], "too many cells"),
            (["nan", "127.05", *blank], "latitude is not a finite number"),
            (["0", "0", *blank], "coordinates are 0, 0"),
        ]
        if defects
        else []
    )
    every = n // (len(bad_rows) + 1)
    for i, (lat, lon) in enumerate(points):
        if i and i % every == 0 and bad_rows:
            row, reason = bad_rows.pop(0)
            sheet.add(row, skip=reason)
        if i == n // 2:  # a lossy re-encoding left question marks for the Korean letters
            row = good(lat, lon, i)
            row[3] = "?????? ??? ???? 12"
            sheet.add(row, warn="broken text in 'new_address'")
            continue
        sheet.add(good(lat, lon, i))
    return sheet.planted(encoding, stacked=pole, stacked_rows=3)


SAFETY_RAW = "안심 주소(원문, 한글 손상: ?로 표시)"


def safety_cctv(n: int = 120, seed: int = 2, encoding: str = "utf-8") -> Planted:
    """The Seoul Safety (안심이) CCTV list's columns. As in the published file, the Korean address text was
    damaged at the source (question marks), only its numbers survive; several lenses share one pole."""
    rng = random.Random(seed)
    sheet = _Sheet(
        "cctv_gangnam_safety.csv",
        ["자치구", SAFETY_RAW, "안심 주소_복원가능부분", "위도(lat)", "경도(lng)", "CCTV 수량", "수정 일시"],
    )
    points = [(round(lat, 4), round(lon, 4)) for lat, lon in _gangnam(rng, n)]
    pole = points[10]
    for i in range(11, 15):
        points[i] = pole
    for i, (lat, lon) in enumerate(points):
        number = f"1-{100 + i // 4}-{i % 4:02d}"
        damaged = rng.choice(["????", " ?Ｚ", "??"]) + number
        sheet.add(
            ["강남구", damaged, number, str(lat), str(lon), "1", f"2022-{rng.randint(1, 12):02d}-01"],
            warn="broken text in the address",
        )
    return sheet.planted(encoding, stacked=pole, stacked_rows=5)


def wifi(n: int = 80, seed: int = 3, encoding: str = "utf-8") -> Planted:
    """Public Wi-Fi standard data's columns; a community centre with an access point on every floor."""
    rng = random.Random(seed)
    sheet = _Sheet(
        "wifi_gangnam.csv",
        ["latitude", "longitude", "old_address", "new_address", "place", "place_detail", "mng_name", "mng_phone"],
    )
    points = _gangnam(rng, n)
    centre = points[5]
    for i in range(6, 12):
        points[i] = centre
    for i, (lat, lon) in enumerate(points):
        place = "가상1동주민센터" if (lat, lon) == centre else rng.choice(["버스정류소", "공원", "도서관", "전통시장"])
        detail = f"{i % 6 + 1}층" if (lat, lon) == centre else ""
        row = [
            str(lat),
            str(lon),
            f"서울특별시 강남구 가상동 {200 + i}",
            "",
            place,
            detail,
            "서울특별시 강남구청",
            _phone(rng),
        ]
        if i == 40:
            row[4] = "\ufffd\ufffd\ufffd 정류소"
            sheet.add(row, warn="broken text in 'place'")
        else:
            sheet.add(row)
    return sheet.planted(encoding, stacked=centre, stacked_rows=7)


def sdot(n: int = 90, seed: int = 4, encoding: str = "utf-8") -> Planted:
    """The S-DoT sensor list's columns (시리얼, 위도, 경도): sensors across the whole city, a few standing
    outside it, one serial listed twice and one row without a serial."""
    rng = random.Random(seed)
    sheet = _Sheet("sdot_sensors.csv", ["시리얼", "위도", "경도"])
    inner = SEOUL.outline_polygon.buffer(-0.01)
    points = [(round(p.y, 8), round(p.x, 7)) for p in _points_inside(inner, n, rng)]
    serials = [f"V02Q{s:07d}" for s in rng.sample(range(10**7), n)]
    for i, ((lat, lon), serial) in enumerate(zip(points, serials, strict=True)):
        sheet.add([serial, str(lat), str(lon)])
        if i in (20, 45, 70):
            lat, lon = OUTSIDE[(i // 25) % len(OUTSIDE)]
            sheet.add([f"V02Q9{i:06d}", str(lat), str(lon)], skip="outside the city")
    sheet.add([serials[3], str(points[30][0]), str(points[30][1])], skip="duplicate id")
    sheet.add(["", str(points[31][0]), str(points[31][1])], skip="no serial number")
    return sheet.planted(encoding)


# --- all of it, on disk ---------------------------------------------------------------------------


def write_all(directory: Path) -> Path:
    """Write every synthetic file under the real file's name into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    areas = districts()
    (directory / "districts.geojson").write_text(json.dumps(areas, ensure_ascii=False), encoding="utf-8")
    (directory / "districts_detailed.geojson").write_text(
        json.dumps(detailed(areas), ensure_ascii=False), encoding="utf-8"
    )
    (directory / "neighbourhoods.geojson").write_text(
        json.dumps(neighbourhoods(areas), ensure_ascii=False), encoding="utf-8"
    )
    for planted in (national_cctv(), safety_cctv(), wifi(), sdot()):
        (directory / planted.name).write_bytes(planted.data)
    return directory
