"""The S-DoT raw export (Seoul's urban IoT sensors, data.seoul.go.kr OA-15969): one CSV row per sensor and
2-minute period, its fields named in Korean as the city's field list names them (sdot_sensor_fields.csv).

Values are stored scaled in the export: temperature as (°C + 100) × 10, wind and UV × 10, vibration × 100;
the time (측정시간) is `yyyymmddhi` in the city's time zone. A row gives one reading per quantity it has a value
for (an empty cell: not measured); vibration is the largest of the three axes' 2-minute averages. A row that
cannot be read (no serial, a bad time, a cell that is not a number) is reported by its line and nothing of it
is kept; each reading then goes through the intake's validation like any other (unknown serials, impossible
values are refused and recorded).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from smartcity.core.errors import InvalidInput
from smartcity.core.text import decode_korean


def _key(name: str) -> str:
    return re.sub(r"\s+", "", name).lower()


Scale = Callable[[float], float]
# Field (as the export names it, spaces ignored) → quantity and how its stored value becomes the unit's.
FIELDS: dict[str, tuple[str, Scale]] = {
    _key("미세먼지10(미세먼지)"): ("pm10", lambda v: v),
    _key("미세먼지2.5(초미세먼지)"): ("pm25", lambda v: v),
    _key("기온"): ("temperature", lambda v: v / 10 - 100),
    _key("상대습도"): ("humidity", lambda v: v),
    _key("풍속"): ("wind", lambda v: v / 10),
    _key("조도"): ("illuminance", lambda v: v),
    _key("자외선"): ("uv", lambda v: v / 10),
    _key("소음"): ("noise", lambda v: v),
}
VIBRATION = tuple(_key(f"진동({axis})") for axis in "xyz")
SERIAL, TIME = _key("시리얼"), _key("측정시간")


@dataclass
class RowDefect:
    line: int  # the header is line 1
    reason: str


@dataclass
class SdotReadings:
    """The readings of an export, each with the line it came from, and the rows that could not be read."""

    readings: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    defects: list[RowDefect] = field(default_factory=list)
    rows: int = 0


def parse_time(text: str, tz: ZoneInfo) -> int:
    """`yyyymmddhi` in the city's time zone as epoch seconds; ValueError when it is not such a time."""
    if not re.fullmatch(r"\d{12}", text):
        raise ValueError(f"측정시간 {text!r} is not yyyymmddhi")
    return int(datetime.strptime(text, "%Y%m%d%H%M").replace(tzinfo=tz).timestamp())


def _number(text: str, name: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None


def read_export(data: bytes, tz: ZoneInfo) -> SdotReadings:
    """The readings of an S-DoT raw export (UTF-8 or CP949)."""
    reader = csv.reader(io.StringIO(decode_korean(data).text))
    header = next(reader, None)
    if not header:
        raise InvalidInput("the file is empty", code="empty_file")
    keys = [_key(h) for h in header]
    if SERIAL not in keys or TIME not in keys:
        raise InvalidInput("not an S-DoT export: the header needs 시리얼 and 측정시간", code="unknown_format")
    at = {k: i for i, k in enumerate(keys)}
    found = [(at[k], *FIELDS[k]) for k in FIELDS if k in at]
    axes = [at[k] for k in VIBRATION if k in at]
    out = SdotReadings()
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        out.rows += 1
        if len(row) != len(header):
            out.defects.append(RowDefect(line, f"{len(row)} cells where the header has {len(header)}"))
            continue
        try:
            serial = row[at[SERIAL]].strip()
            if not serial:
                raise ValueError("no serial (시리얼)")
            when = parse_time(row[at[TIME]].strip(), tz)
            values = []
            for i, quantity, scale in found:
                value = _number(row[i], header[i].strip())
                if value is not None:
                    values.append((quantity, scale(value)))
            shaken = [v for v in (_number(row[i], header[i].strip()) for i in axes) if v is not None]
            if shaken:
                values.append(("vibration", max(shaken) / 100))
        except ValueError as exc:
            out.defects.append(RowDefect(line, str(exc)))
            continue
        for quantity, value in values:
            out.readings.append({"sensor": serial, "quantity": quantity, "time": when, "value": value})
            out.lines.append(line)
    return out
