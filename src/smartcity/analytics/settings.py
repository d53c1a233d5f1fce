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


def data_dir(settings, analytics: AnalyticsSettings) -> Path:
    """The folder holding each kind's Parquet files (`<kind>/day=YYYY-MM-DD/*.parquet`)."""
    return Path(analytics.data_dir) if analytics.data_dir else Path(settings.var_dir) / "analytics"
