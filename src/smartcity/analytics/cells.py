"""H3 cells of demand points, and demand per cell × hour × day type with small counts suppressed.

Calling h3 once per point costs about 3 µs in Python (300 M points: 15 minutes). `cell_of` instead samples the
cells once on a fine lattice over the points' extent (a twentieth of a cell's edge) and gives every point the
cell of its lattice square's centre: numpy indexing per point, h3 once per lattice square. A point is thus
placed as if moved by at most half a square's diagonal (about 19 m at resolution 8); only points that close to a
cell's border can land in the neighbouring cell. bench/bench_analytics.py measures both steps."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

import h3
import numpy as np
import pandas as pd

from smartcity.analytics import engine as engines
from smartcity.analytics.settings import AnalyticsSettings

LATTICE_PER_EDGE = 20  # lattice steps per cell edge: finer costs more h3 calls, coarser misplaces more points


@lru_cache(maxsize=8)
def _lattice(res: int, south: float, west: float, step_lat: float, step_lon: float, rows: int, cols: int) -> np.ndarray:
    lats = south + (np.arange(rows) + 0.5) * step_lat
    lons = west + (np.arange(cols) + 0.5) * step_lon
    table = np.empty((rows, cols), dtype=np.int64)
    to_cell = h3.latlng_to_cell
    for i, lat in enumerate(lats.tolist()):
        table[i] = [h3.str_to_int(to_cell(lat, lon, res)) for lon in lons.tolist()]
    return table


def cell_of(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """The H3 cell (as int64) of each point, vectorised (see the module's docstring for the precision)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.size == 0:
        return np.empty(0, dtype=np.int64)
    step_lat = h3.average_hexagon_edge_length(res, "m") / LATTICE_PER_EDGE / 111_320.0
    # The lattice is aligned to whole steps so that the same point always meets the same lattice (cached).
    south = math.floor(float(lat.min()) / step_lat) * step_lat
    step_lon = step_lat / max(math.cos(math.radians(south)), 0.1)
    west = math.floor(float(lon.min()) / step_lon) * step_lon
    rows = int((float(lat.max()) - south) / step_lat) + 1
    cols = int((float(lon.max()) - west) / step_lon) + 1
    table = _lattice(res, round(south, 9), round(west, 9), step_lat, step_lon, rows, cols)
    i = np.minimum(((lat - south) / step_lat).astype(np.int64), rows - 1)
    j = np.minimum(((lon - west) / step_lon).astype(np.int64), cols - 1)
    return table[i, j]


def exact_cell_of(lat: Iterable[float], lon: Iterable[float], res: int) -> np.ndarray:
    """h3 per point (the slow, exact reference)."""
    return np.array(
        [h3.str_to_int(h3.latlng_to_cell(a, o, res)) for a, o in zip(lat, lon, strict=True)], dtype=np.int64
    )


# Written once (DuckDB's dialect) and transpiled for Spark by the engine.
CELL_HOUR_SQL = """
SELECT cell, hour, day_type, CAST(SUM("count") AS BIGINT) AS "count"
FROM {table}
WHERE hour IS NOT NULL {hours}
GROUP BY cell, hour, day_type
HAVING SUM("count") >= {k}
ORDER BY cell, hour, day_type
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
