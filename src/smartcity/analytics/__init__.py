"""City analytics (issue 17): demand data (phone activity, taxi trips, transit boardings) imported as Parquet,
counted per H3 cell × hour × day type with small counts suppressed, hot spots (Getis-Ord Gi*), on DuckDB or
Apache Spark from the same SQL; the night route planner builds on its demand. See docs/analytics.md.

CLI: `smartcity analytics import KIND FILE`, `smartcity analytics synthesize --rows N`, `smartcity analytics cells`.
"""

from __future__ import annotations

import importlib.util

from smartcity.analytics.settings import AnalyticsSettings
from smartcity.core.module import Module, Role


def _routers() -> tuple[str, ...]:
    # Other parts of the module (the night route planner) bring their routes in files of their own.
    names = ("smartcity.analytics.planner_pages", "smartcity.analytics.planner_api")
    return tuple(f"{n}:router" for n in names if importlib.util.find_spec(n) is not None)


module = Module(
    name="analytics",
    routers=_routers(),
    roles=(Role("analyst", "Analyses the city's data: demand, hot spots, trends, night routes"),),
    permissions={"analytics.analyse": ("analyst",)},
    settings=AnalyticsSettings,
    cli="smartcity.analytics.cli:commands",
)
