"""The city's CSV lists of assets: each known format's columns read into a `ParsedAsset` (or a `RowDefect`
saying why a row cannot be used), the format told from the header, the bytes' encoding (UTF-8 or CP949)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smartcity.core.errors import InvalidInput
from smartcity.core.text import decode_korean


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
    return decode_korean(data, code="invalid_encoding").text


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
