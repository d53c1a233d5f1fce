"""H3 cells of demand points, and demand per cell × hour × day type with small counts suppressed.

Calling h3 once per point costs about 3 µs in Python (300 M points: 15 minutes). `cell_of` instead samples the
cells once on a fine lattice of equal steps in degrees (a twentieth of a cell's edge), in tiles kept for the
process, and gives every point the cell of its lattice square's centre: numpy indexing per point, h3 once per
lattice square the data touches. A point is thus placed as if moved by at most half a square's diagonal (about
19 m at resolution 8); only points that close to a cell's border can land in the neighbouring cell.
The sampled tiles are packed end to end and found through a small map of tile → slot, so a batch costs a few
integer passes and one gather, nothing per tile; points go through in blocks that stay in the CPU's cache.
bench/bench_analytics.py measures both steps on 300 M rows."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import h3
import numpy as np
import pandas as pd

from smartcity.analytics import engine as engines
from smartcity.analytics.settings import AnalyticsSettings

LATTICE_PER_EDGE = 20  # lattice steps per cell edge: finer costs more h3 calls, coarser misplaces more points
TILE_BITS = 7
TILE = 1 << TILE_BITS  # lattice squares per tile side: tiles are sampled once per process and reused by every batch
# Points per pass: a block's arrays stay in the CPU's cache between numpy's passes (4 M points at once ran at
# 24 M points/s, blocks of 256 Ki at 56 M/s; bench/bench_analytics.py).
BLOCK = 1 << 18
KEEP_TILES = 4096  # tiles kept per resolution (128 KiB each); past it the lattice starts again from the batch's own


def _step(res: int) -> float:
    # The same step in degrees of longitude and latitude: a degree of longitude is never longer than one of
    # latitude, so the lattice is at least as fine east-west as north-south, wherever the city is.
    return h3.average_hexagon_edge_length(res, "m") / LATTICE_PER_EDGE / 111_320.0


def _sample(res: int, ti: int, tj: int) -> np.ndarray:
    step = _step(res)
    lats = ((ti * TILE + np.arange(TILE) + 0.5) * step).tolist()
    lons = ((tj * TILE + np.arange(TILE) + 0.5) * step).tolist()
    to_cell, as_int = h3.latlng_to_cell, h3.str_to_int
    return np.array([as_int(to_cell(lat, lon, res)) for lat in lats for lon in lons], dtype=np.int64)


@dataclass(frozen=True)
class _Tiles:
    row: int  # the tile coordinates of slots[0, 0]
    col: int
    slots: np.ndarray  # int32 per tile of the box: where its squares start in `cells` ÷ TILE², or -1 if not sampled
    cells: np.ndarray  # int64: the sampled tiles' squares, tile after tile, row-major within a tile


class _Lattice:
    """One resolution's lattice, kept for the process: replaced whole when tiles are added, so a reader holding
    the previous `tiles` is never disturbed (cell_of may run in several threads)."""

    def __init__(self, res: int) -> None:
        self.res = res
        self.step = _step(res)
        self.tiles = _Tiles(0, 0, np.full((0, 0), -1, dtype=np.int32), np.empty(0, dtype=np.int64))
        self._lock = threading.Lock()

    def cover(self, ti: np.ndarray, tj: np.ndarray) -> _Tiles:
        """The lattice with every tile of the points' tiles (ti, tj) sampled."""
        with self._lock:
            have = self.tiles
            i0, i1, j0, j1 = int(ti.min()), int(ti.max()), int(tj.min()), int(tj.max())
            cols = j1 - j0 + 1
            touched = np.flatnonzero(np.bincount(((ti - i0) * cols + (tj - j0)).ravel()))
            wanted = [(i0 + int(k) // cols, j0 + int(k) % cols) for k in touched]
            old = (
                []
                if have.slots.size == 0
                else [(have.row, have.col), (have.row + have.slots.shape[0] - 1, have.col + have.slots.shape[1] - 1)]
            )
            kept = int((have.slots >= 0).sum())
            if kept + len(wanted) > KEEP_TILES:
                have, old, kept = _Tiles(0, 0, np.full((0, 0), -1, dtype=np.int32), have.cells[:0]), [], 0
            corners = [(i0, j0), (i1, j1), *old]
            r0, c0 = min(a for a, _ in corners), min(b for _, b in corners)
            r1, c1 = max(a for a, _ in corners), max(b for _, b in corners)
            slots = np.full((r1 - r0 + 1, c1 - c0 + 1), -1, dtype=np.int32)
            if have.slots.size:
                h, w = have.slots.shape
                slots[have.row - r0 : have.row - r0 + h, have.col - c0 : have.col - c0 + w] = have.slots
            added = [have.cells]
            for a, b in wanted:
                if slots[a - r0, b - c0] < 0:
                    slots[a - r0, b - c0] = kept
                    kept += 1
                    added.append(_sample(self.res, a, b))
            self.tiles = _Tiles(r0, c0, slots, np.concatenate(added))
            return self.tiles


_lattices: dict[int, _Lattice] = {}
_lattices_lock = threading.Lock()


def _lattice(res: int) -> _Lattice:
    found = _lattices.get(res)
    if found is None:
        with _lattices_lock:
            found = _lattices.setdefault(res, _Lattice(res))
    return found


def cell_of(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """The H3 cell (as int64) of each point, vectorised (see the module's docstring for the precision)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    lattice = _lattice(res)
    if lat.size <= BLOCK:
        return _block(lattice, lat, lon)
    out = np.empty(lat.size, dtype=np.int64)
    for k in range(0, lat.size, BLOCK):
        out[k : k + BLOCK] = _block(lattice, lat[k : k + BLOCK], lon[k : k + BLOCK])
    return out


def _block(lattice: _Lattice, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    if lat.size == 0:
        return np.empty(0, dtype=np.int64)
    # int32 halves the memory the passes below move; a square index fits it at every resolution (< 2^30).
    i = np.floor(lat / lattice.step).astype(np.int32)
    j = np.floor(lon / lattice.step).astype(np.int32)
    ti, tj = i >> TILE_BITS, j >> TILE_BITS
    tiles = lattice.tiles
    slot = _slots(tiles, ti, tj)
    if slot is None:
        tiles = lattice.cover(ti, tj)
        slot = _slots(tiles, ti, tj)
        assert slot is not None
    # Tiles hold under 2^17 × TILE² squares (KEEP_TILES, or one block's own), so the index fits int32 too.
    square = (slot << (2 * TILE_BITS)) | ((i & (TILE - 1)) << TILE_BITS) | (j & (TILE - 1))
    return tiles.cells.take(square)


def _slots(tiles: _Tiles, ti: np.ndarray, tj: np.ndarray) -> np.ndarray | None:
    """Each point's tile's slot, or None when a tile is not sampled yet."""
    h, w = tiles.slots.shape
    ri, rj = ti - tiles.row, tj - tiles.col
    if h == 0 or ri.min() < 0 or rj.min() < 0 or ri.max() >= h or rj.max() >= w:
        return None
    slot = tiles.slots.ravel().take(ri * w + rj)
    return None if slot.min() < 0 else slot


def exact_cell_of(lat: Iterable[float], lon: Iterable[float], res: int) -> np.ndarray:
    """h3 per point (the slow, exact reference)."""
    return np.array(
        [h3.str_to_int(h3.latlng_to_cell(a, o, res)) for a, o in zip(lat, lon, strict=True)], dtype=np.int64
    )


# Written once (DuckDB's dialect) and transpiled for Spark by the engine. The day type is stored as a boolean
# and named after grouping, and the rows are sorted by the caller: a text group key and the ORDER BY made the
# aggregation 2.5× and 2.7× slower on DuckDB (measured on 10 M rows, bench/bench_analytics.py).
CELL_HOUR_SQL = """
SELECT cell, hour, CASE WHEN weekend THEN 'weekend' ELSE 'weekday' END AS day_type,
       CAST(SUM("count") AS BIGINT) AS "count"
FROM {table}
WHERE hour IS NOT NULL {hours} {period}
GROUP BY cell, hour, weekend
HAVING SUM("count") >= {k}
"""


def cell_hour_sql(
    table: str,
    k: int,
    hours: Iterable[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """The cell × hour × day type aggregation of a kind's table, suppressing cell-hours under k records; only
    records at or after `since` and before `until` (aware datetimes) when given."""
    wanted = "" if hours is None else f"AND hour IN ({', '.join(str(int(h)) for h in hours) or 'NULL'})"
    period = ""
    # The instant is written with its UTC offset: DuckDB would otherwise read it in its session's zone, and
    # Spark (the transpiled CAST … AS TIMESTAMP) honours an offset given in the text.
    if since is not None:
        period += f"AND time >= CAST('{_utc_text(since)}' AS TIMESTAMPTZ) "
    if until is not None:
        period += f"AND time < CAST('{_utc_text(until)}' AS TIMESTAMPTZ)"
    return CELL_HOUR_SQL.format(table=table, hours=wanted, period=period, k=int(k))


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def local_days_to_utc(first: date | None, last: date | None, tz: str) -> tuple[datetime | None, datetime | None]:
    """The instants bounding local days `first` to `last` (both included) in zone `tz`: the first day's local
    midnight and the midnight after the last (a day of a DST change is 23 or 25 hours, as it should be)."""
    zone = ZoneInfo(tz)
    since = datetime.combine(first, time.min, zone) if first else None
    until = datetime.combine(last + timedelta(days=1), time.min, zone) if last else None
    return since, until


def as_h3(cells: pd.Series) -> pd.Series:
    return cells.map(lambda c: h3.int_to_str(int(c)))


def demand(
    settings,
    kinds: Iterable[str] = ("phone",),
    hours: Iterable[int] | None = range(0, 6),
    engine: engines.Engine | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Demand per cell × hour × day type of the imported kinds, added up: columns cell (H3 string), hour,
    day_type (weekday|weekend), count; cell-hours under the k-anonymity threshold are left out (per kind and in
    the sum). Kinds without data contribute nothing. `since`/`until` bound the records read (`until` excluded)."""
    analytics = settings.of(AnalyticsSettings)
    engine = engine or engines.engine_for(settings)
    frames = []
    for kind in kinds:
        tables = engines.tables(settings, (kind,))
        if tables:
            frames.append(
                engine.query(cell_hour_sql(kind, analytics.k_anonymity, hours, since, until), tables).to_pandas()
            )
    if not frames:
        return pd.DataFrame(
            {
                "cell": pd.Series(dtype=str),
                "hour": pd.Series(dtype="int64"),
                "day_type": pd.Series(dtype=str),
                "count": pd.Series(dtype="int64"),
            }
        )
    found = pd.concat(frames).groupby(["cell", "hour", "day_type"], as_index=False)["count"].sum()
    found["cell"] = as_h3(found["cell"])
    found["hour"] = found["hour"].astype("int64")
    found["count"] = found["count"].astype("int64")
    return found.sort_values(["cell", "hour", "day_type"], ignore_index=True)
