"""Importing demand data into typed Parquet, one folder per day: phone activity, taxi trips, transit boardings.

Every kind becomes rows of the same columns — time (UTC), hour and weekend (in the city's time zone), lat, lon,
cell (H3, int64), count — plus a kind's own (a taxi trip's drop-off point and cell; a boarding's stop). A file's
rows are checked as a whole first: wrong columns refuse the file (naming them) and nothing is written; rows that
cannot be kept (bad or missing values, points outside the city, a time whose offset is not the city's) are
reported by line and reason and left out; the hours of the covered period without any row are reported too.
Files are written to a staging folder and moved into place when the whole file is done."""

from __future__ import annotations

import io
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from smartcity.analytics.cells import cell_of
from smartcity.analytics.settings import AnalyticsSettings, data_dir
from smartcity.core.errors import InvalidInput
from smartcity.core.text import decode_korean

CHUNK_ROWS = 200_000
_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


@dataclass(frozen=True)
class Defect:
    line: int  # the file's line (the header is line 1)
    reason: str


@dataclass
class ImportReport:
    kind: str
    kept: int = 0
    days: list[str] = field(default_factory=list)
    defects: list[Defect] = field(default_factory=list)
    empty_hours: list[str] = field(default_factory=list)  # local hours of the covered period without a row

    def summary(self) -> str:
        return (
            f"{self.kind}: {self.kept} rows kept over {len(self.days)} day(s), {len(self.defects)} left out, "
            f"{len(self.empty_hours)} empty hour(s) in the period"
        )


@dataclass(frozen=True)
class Kind:
    """A kind of demand data: the columns its files must have, those it may have."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    alternatives: tuple[tuple[str, ...], ...] = ()  # groups of which one is enough (lat/lon or cell)


KINDS = {
    "phone": Kind("phone", ("time",), ("count",), (("lat", "lon"), ("cell",))),
    "taxi": Kind("taxi", ("pickup_time", "pickup_lat", "pickup_lon", "dropoff_time", "dropoff_lat", "dropoff_lon")),
    # Seoul's published boardings are daily averages per stop (ARS number); an hour column is used when present.
    "boardings": Kind("boardings", ("ARS", "승차_일평균"), ("hour",)),
}


def check_columns(kind: Kind, columns: list[str]) -> None:
    """Refuse a file whose columns are not the kind's, naming the missing and unknown ones."""
    present = set(columns)
    missing = [c for c in kind.required if c not in present]
    if kind.alternatives and not any(all(c in present for c in group) for group in kind.alternatives):
        missing.append(" or ".join("+".join(g) for g in kind.alternatives))
    known = set(kind.required) | set(kind.optional) | {c for g in kind.alternatives for c in g}
    if missing:
        unknown = [c for c in columns if c not in known]
        raise InvalidInput(
            f"{kind.name} file: missing column(s) {', '.join(missing)}"
            + (f"; not understood: {', '.join(unknown)}" if unknown else "")
            + f". Expected: {', '.join([*kind.required, *('/'.join('+'.join(g) for g in kind.alternatives),)])}"
        )


def local_times(texts: pd.Series, tz: str) -> tuple[pd.Series, np.ndarray]:
    """UTC times of ISO texts, and which rows are bad: unparsable, or with an offset other than the city's at
    that instant (an export in the wrong zone). A time without an offset is the city's."""
    texts = texts.astype("string").str.strip()
    offsets = texts.str.extract(_OFFSET, expand=False)
    naive = offsets.isna()
    parsed = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns, UTC]")
    if naive.any():
        local = pd.to_datetime(texts[naive], format="ISO8601", errors="coerce")
        parsed[naive] = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    wrong_zone = np.zeros(len(texts), dtype=bool)
    if (~naive).any():
        aware = pd.to_datetime(texts[~naive], format="ISO8601", errors="coerce", utc=True)
        parsed[~naive] = aware
        given = offsets[~naive].str.replace(":", "", regex=False).replace("Z", "+0000")
        expected = aware.dt.tz_convert(tz).dt.strftime("%z")
        wrong_zone[np.flatnonzero(~naive.to_numpy())] = (given != expected).to_numpy() & aware.notna().to_numpy()
    return parsed, wrong_zone


def _when(utc: pd.Series, tz: str) -> dict[str, np.ndarray]:
    local = utc.dt.tz_convert(tz)
    return {
        "hour": local.dt.hour.to_numpy(dtype=np.int8),
        "weekend": local.dt.day_of_week.to_numpy() >= 5,
        "day": local.dt.strftime("%Y-%m-%d").to_numpy(),
    }


class _Writer:
    """Parquet files of one import, staged and moved into `<root>/<kind>/day=…/` at the end."""

    def __init__(self, root: Path, kind: str) -> None:
        self.root = root
        self.kind = kind
        self.stage = root / ".staging" / uuid.uuid4().hex
        self.stage.mkdir(parents=True)
        self.part = 0

    def write(self, table: pa.Table, days: np.ndarray) -> None:
        for day in np.unique(days):
            folder = self.stage / f"day={day}"
            folder.mkdir(exist_ok=True)
            pq.write_table(table.filter(pa.array(days == day)), folder / f"{self.stage.name}-{self.part}.parquet")
            self.part += 1

    def commit(self) -> list[str]:
        days = []
        for folder in sorted(self.stage.glob("day=*")):
            target = self.root / self.kind / folder.name
            target.mkdir(parents=True, exist_ok=True)
            for f in folder.iterdir():
                f.rename(target / f.name)
            days.append(folder.name.removeprefix("day="))
        shutil.rmtree(self.stage, ignore_errors=True)
        return days

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce")


def _frame(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(decode_korean(data).text), dtype=str, keep_default_na=False, na_values=[""])


def import_file(
    settings,
    profile,
    kind_name: str,
    data: bytes,
    *,
    stops: bytes | None = None,
    day: date | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one file of `kind_name` (phone, taxi, boardings); `stops` (Seoul's stop list: ARS_ID, X좌표, Y좌표)
    places boardings, `day` dates them. Raises InvalidInput (nothing written) for a file that cannot be read."""
    kind = KINDS.get(kind_name)
    if kind is None:
        raise InvalidInput(f"unknown kind {kind_name!r}: one of {', '.join(KINDS)}")
    analytics = settings.of(AnalyticsSettings)
    frame = _frame(data)
    frame.columns = [c.strip() for c in frame.columns]
    check_columns(kind, list(frame.columns))
    if kind.name == "boardings":
        if stops is None or day is None:
            raise InvalidInput("boardings need the stop list (--stops) and the day they describe (--day)")
        frame = _place_stops(frame, _frame(stops), day)
    tz = profile.timezone
    outline = profile.outline_polygon
    report = ImportReport(kind.name)
    writer = _Writer(data_dir(settings, analytics), kind.name)
    seen_hours: set[pd.Timestamp] = set()
    try:
        for start in range(0, len(frame), CHUNK_ROWS):
            chunk = frame.iloc[start : start + CHUNK_ROWS]
            table, days, defects, hours = _rows(kind, chunk, start, tz, outline, analytics.h3_resolution)
            report.defects += defects
            seen_hours |= hours
            if table.num_rows:
                writer.write(table, days)
                report.kept += table.num_rows
            if progress:
                progress(len(chunk))
        if not report.kept:
            raise InvalidInput(_nothing_kept(kind.name, report.defects))
        report.days = writer.commit()
    except BaseException:
        writer.abort()
        raise
    if seen_hours and kind.name != "boardings":
        period = pd.date_range(min(seen_hours), max(seen_hours), freq="h")
        report.empty_hours = [h.tz_convert(tz).strftime("%Y-%m-%d %H:00") for h in period if h not in seen_hours]
    return report


def _nothing_kept(kind: str, defects: list[Defect]) -> str:
    """Why a file gave no row to keep: it has none, or every row's reasons with how often each came."""
    if not defects:
        return f"{kind} file: no data rows (only a header or nothing); nothing was imported"
    reasons = Counter(d.reason for d in defects)
    lines: dict[str, list[str]] = {}
    for d in defects:
        lines.setdefault(d.reason, []).append(str(d.line))
    told = "; ".join(f"{n} × {r} (line {', '.join(lines[r][:3])})" for r, n in reasons.most_common(5))
    return f"{kind} file: none of its {len(defects)} rows could be kept ({told}); nothing was imported"


def _place_stops(frame: pd.DataFrame, stops: pd.DataFrame, day: date) -> pd.DataFrame:
    stops.columns = [c.strip() for c in stops.columns]
    needed = [c for c in ("ARS_ID", "X좌표", "Y좌표") if c not in stops.columns]
    if needed:
        raise InvalidInput(f"stop list: missing column(s) {', '.join(needed)}")
    where = stops.drop_duplicates("ARS_ID").set_index("ARS_ID")
    placed = frame.assign(
        lat=frame["ARS"].map(where["Y좌표"]),
        lon=frame["ARS"].map(where["X좌표"]),
        count=frame["승차_일평균"],
        time=day.isoformat() + (("T" + frame["hour"].str.zfill(2) + ":00:00") if "hour" in frame else "T00:00:00"),
    )
    placed["_hourly"] = "hour" in frame
    return placed


def _rows(kind: Kind, chunk: pd.DataFrame, start: int, tz: str, outline, res: int):
    """One chunk's kept rows as an Arrow table, their local days, the chunk's defects and the UTC hours seen."""
    n = len(chunk)
    reasons = np.full(n, "", dtype=object)

    def flag(bad: np.ndarray, reason: str) -> None:
        reasons[(reasons == "") & bad] = reason

    time_col = "pickup_time" if kind.name == "taxi" else "time"
    utc, wrong_zone = local_times(chunk[time_col], tz)
    flag(utc.isna().to_numpy(), f"{time_col}: not a date and time")
    flag(wrong_zone, f"{time_col}: the offset is not {tz}'s")
    count = _numbers(chunk, "count") if "count" in chunk else pd.Series(1.0, index=chunk.index)
    flag((count.isna() | (count < 0)).to_numpy(), "count: not a number of zero or more")
    columns: dict[str, np.ndarray] = {}
    if kind.name == "taxi":
        points = [("pickup_lat", "pickup_lon", ""), ("dropoff_lat", "dropoff_lon", "dropoff_")]
        off_utc, off_wrong = local_times(chunk["dropoff_time"], tz)
        flag(off_utc.isna().to_numpy(), "dropoff_time: not a date and time")
        flag(off_wrong, f"dropoff_time: the offset is not {tz}'s")
        flag((off_utc < utc).to_numpy(), "dropoff_time: before the pick-up")
        columns["dropoff_time"] = off_utc
    elif "lat" in chunk:
        points = [("lat", "lon", "")]
    else:
        points = []
    for lat_col, lon_col, prefix in points:
        lat, lon = _numbers(chunk, lat_col).to_numpy(), _numbers(chunk, lon_col).to_numpy()
        flag(np.isnan(lat) | np.isnan(lon), f"{lat_col}/{lon_col}: missing or not a number")
        ok = ~(np.isnan(lat) | np.isnan(lon))
        inside = np.zeros(n, dtype=bool)
        inside[ok] = shapely.contains_xy(outline, lon[ok], lat[ok])
        flag(ok & ~inside, f"{lat_col}/{lon_col}: outside the city")
        columns[f"{prefix}lat"], columns[f"{prefix}lon"] = lat, lon
    if not points:
        # Kept as Python ints: a pandas column of ints and None would become float64 and round the ids.
        cells = [_h3_int(c) for c in chunk["cell"].tolist()]
        flag(np.array([c is None for c in cells], dtype=bool), "cell: not an H3 cell")
        columns["cell"] = np.array([c or 0 for c in cells], dtype=np.int64)
    keep = reasons == ""
    defects = [Defect(start + i + 2, str(reasons[i])) for i in np.flatnonzero(~keep)]
    kept_utc = utc[keep]
    when = _when(kept_utc, tz)
    out: dict[str, pa.Array | np.ndarray] = {
        "time": pa.array(kept_utc.dt.tz_localize(None).to_numpy(), pa.timestamp("us", tz="UTC")),
        "hour": when["hour"],
        "weekend": when["weekend"],
    }
    if kind.name == "boardings" and n and not bool(chunk["_hourly"].iloc[0]):
        out["hour"] = pa.nulls(int(keep.sum()), pa.int8())  # daily averages: no hour of the day
    for _, _, prefix in points:
        lat, lon = columns[f"{prefix}lat"][keep], columns[f"{prefix}lon"][keep]
        out[f"{prefix}lat"], out[f"{prefix}lon"] = lat, lon
        out[f"{prefix}cell"] = cell_of(lat, lon, res)
    if not points:
        out["cell"] = columns["cell"][keep]
    out["count"] = np.rint(count.to_numpy()[keep]).astype(np.int64)
    if "dropoff_time" in columns:
        out["dropoff_time"] = pa.array(
            columns["dropoff_time"][keep].dt.tz_localize(None).to_numpy(), pa.timestamp("us", tz="UTC")
        )
    if kind.name == "boardings":
        out["stop"] = chunk["ARS"].to_numpy()[keep].astype(str)
    hours = set(kept_utc.dt.floor("h"))
    return pa.table(out), when["day"], defects, hours


def _h3_int(text: str) -> int | None:
    import h3

    try:
        return h3.str_to_int(text) if isinstance(text, str) and h3.is_valid_cell(text) else None
    except (ValueError, TypeError):
        return None
