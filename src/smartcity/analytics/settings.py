"""The analytics module's settings: SMARTCITY_ANALYTICS_<FIELD>. Read with `settings.of(AnalyticsSettings)` or
`context.settings_of(AnalyticsSettings)`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smartcity.settings import setting


@dataclass(frozen=True)
class AnalyticsSettings:
    engine: str = setting(
        "duckdb",
        "Where analyses run: duckdb (embedded, over the Parquet files under the data folder) or spark (PySpark; "
        "SMARTCITY_ANALYTICS_SPARK_MASTER says which cluster).",
        choices=("duckdb", "spark"),
    )
    spark_master: str = setting("local[2]", "Spark master URL when the engine is spark.")
    h3_resolution: int = setting(8, "H3 resolution of the analysis cells (8: about 0.74 km² a cell).")
    k_anonymity: int = setting(
        10,
        "A cell-hour counted from fewer records than this is suppressed in every output (pages, downloads, open data).",
    )
    data_dir: str = setting("", "Folder of the imported demand data (Parquet). Empty: <var_dir>/analytics.")
    # The night route planner's model of the city (analytics/planner.py).
    road_factor: float = setting(1.3, "Night routes: road distance ÷ straight-line distance between stops.")
    night_speed_kmh: float = setting(25.0, "Night routes: a bus's average speed at night, stops included (km/h).")
    layover_min: float = setting(10.0, "Night routes: minutes a round trip spends at its two terminals.")
    capture_rate: float = setting(
        0.02, "Night routes: share of a served cell's late-night demand expected to ride the bus (riders per route)."
    )
    planner_seconds: float = setting(20.0, "Night routes: the route search's time limit (guided local search).")
    planner_keep_days: int = setting(
        30, "Night routes: days a plan made on the planner page stays on disk (its files and downloads)."
    )


def data_dir(settings, analytics: AnalyticsSettings) -> Path:
    """The folder holding each kind's Parquet files (`<kind>/day=YYYY-MM-DD/*.parquet`)."""
    return Path(analytics.data_dir) if analytics.data_dir else Path(settings.var_dir) / "analytics"
