"""H3 cells of demand points, and demand per cell × hour × day type with small counts suppressed.

Calling h3 once per point costs about 3 µs in Python (300 M points: 15 minutes). `cell_of` instead samples the
cells once on a fine lattice of equal steps in degrees (a twentieth of a cell's edge), in tiles kept for the
process, and gives every point the cell of its lattice square's centre: numpy indexing per point, h3 once per
lattice square the data touches. A point is thus placed as if moved by at most half a square's diagonal (about
19 m at resolution 8); only points that close to a cell's border can land in the neighbouring cell.
bench/bench_analytics.py measures both steps."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import h3
import numpy as np
import pandas as pd

from smartcity.analytics import engine as engines
from smartcity.analytics.settings import AnalyticsSettings

LATTICE_PER_EDGE = 20  # lattice steps per cell edge: finer costs more h3 calls, coarser misplaces more points
TILE = 128  # lattice squares per tile side: tiles are sampled once per process and reused by every batch


def _step(res: int) -> float:
    # The same step in degrees of longitude and latitude: a degree of longitude is never longer than one of
    # latitude, so the lattice is at least as fine east-west as north-south, wherever the city is.
    return h3.average_hexagon_edge_length(res, "m") / LATTICE_PER_EDGE / 111_320.0


@lru_cache(maxsize=4096)
def _tile(res: int, ti: int, tj: int) -> np.ndarray:
    step = _step(res)
    lats = ((ti * TILE + np.arange(TILE) + 0.5) * step).tolist()
    lons = ((tj * TILE + np.arange(TILE) + 0.5) * step).tolist()
    to_cell, as_int = h3.latlng_to_cell, h3.str_to_int
    return np.array([[as_int(to_cell(lat, lon, res)) for lon in lons] for lat in lats], dtype=np.int64)


def cell_of(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """The H3 cell (as int64) of each point, vectorised (see the module's docstring for the precision)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.size == 0:
        return np.empty(0, dtype=np.int64)
    step = _step(res)
    i = np.floor(lat / step).astype(np.int64)
    j = np.floor(lon / step).astype(np.int64)
    ti0, tj0 = int(i.min()) // TILE, int(j.min()) // TILE
    ti1, tj1 = int(i.max()) // TILE, int(j.max()) // TILE
    # The batch's tiles side by side, then one fancy index (tiles no point falls in are not sampled).
    rows, cols = ti1 - ti0 + 1, tj1 - tj0 + 1
    used = np.bincount(((i // TILE - ti0) * cols + (j // TILE - tj0)).ravel(), minlength=rows * cols) > 0
    table = np.zeros((rows * TILE, cols * TILE), dtype=np.int64)
    for k in np.flatnonzero(used).tolist():
        a, b = divmod(k, cols)
        table[a * TILE : (a + 1) * TILE, b * TILE : (b + 1) * TILE] = _tile(res, ti0 + a, tj0 + b)
    return table[i - ti0 * TILE, j - tj0 * TILE]


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
WHERE hour IS NOT NULL {hours}
GROUP BY cell, hour, weekend
HAVING SUM("count") >= {k}
"""


def cell_hour_sql(table: str, k: int, hours: Iterable[int] | None = None) -> str:
    """The cell × hour × day type aggregation of a kind's table, suppressing cell-hours under k records."""
    wanted = "" if hours is None else f"AND hour IN ({', '.join(str(int(h)) for h in hours) or 'NULL'})"
    return CELL_HOUR_SQL.format(table=table, hours=wanted, k=int(k))


def as_h3(cells: pd.Series) -> pd.Series:
    return cells.map(lambda c: h3.int_to_str(int(c)))


def demand(
    settings,
    kinds: Iterable[str] = ("phone",),
    hours: Iterable[int] | None = range(0, 6),
    engine: engines.Engine | None = None,
) -> pd.DataFrame:
    """Demand per cell × hour × day type of the imported kinds, added up: columns cell (H3 string), hour,
    day_type (weekday|weekend), count; cell-hours under the k-anonymity threshold are left out (per kind and in
    the sum). Kinds without data contribute nothing."""
    analytics = settings.of(AnalyticsSettings)
    engine = engine or engines.engine_for(settings)
    frames = []
    for kind in kinds:
        tables = engines.tables(settings, (kind,))
        if tables:
            frames.append(engine.query(cell_hour_sql(kind, analytics.k_anonymity, hours), tables).to_pandas())
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
