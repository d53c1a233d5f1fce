"""City analytics (issue 17): demand data (phone activity, taxi trips, transit boardings) imported as Parquet,
counted per H3 cell × hour × day type with small counts suppressed, hot spots (Getis-Ord Gi*), on DuckDB or
Apache Spark from the same SQL; the night route planner builds on its demand. See docs/analytics.md.

CLI: `smartcity analytics import KIND FILE`, `smartcity analytics synthesize --rows N`, `smartcity analytics cells`.
"""

from __future__ import annotations

import importlib.util

from smartcity.analytics.settings import AnalyticsSettings
from smartcity.core.i18n import N_
from smartcity.core.jobs import Job
from smartcity.core.module import Dataset, Module, Role
from smartcity.core.web import NavLink


def _routers() -> tuple[str, ...]:
    # Other parts of the module (the night route planner) bring their routes in files of their own.
    names = ("smartcity.analytics.planner_pages", "smartcity.analytics.planner_api")
    found = tuple(f"{n}:router" for n in names if importlib.util.find_spec(n) is not None)
    return ("smartcity.analytics.api:router", "smartcity.analytics.pages:router", *found)


def _rerun(db, settings) -> None:
    from smartcity.analytics.service import rerun_due

    rerun_due(db, settings)


def _prune_plans(db, settings) -> None:
    from smartcity.analytics.planner_run import prune_runs

    prune_runs(settings)


def _published(session):
    from smartcity.analytics.service import published_rows

    yield from published_rows(session)


def _demo(db, profile):
    """The demo's analyst. Demand data is not made here (the demo loader has no data folder of its own in
    tests): `smartcity analytics synthesize --rows N` writes a synthetic set (docs/analytics.md)."""
    from smartcity.core.accounts import NewUser
    from smartcity.core.demo import DEMO_PASSWORD, add_accounts

    yield from add_accounts(db, [NewUser("analyst", DEMO_PASSWORD, "analyst", "한지우")])


module = Module(
    name="analytics",
    routers=_routers(),
    roles=(Role("analyst", N_("Analyst: studies the city's data (demand, hot spots, night routes)")),),
    permissions={"analytics.analyse": ("analyst",)},
    nav=(NavLink(N_("Analyses"), "/analytics", "analytics.analyse"),),
    settings=AnalyticsSettings,
    cli="smartcity.analytics.cli:commands",
    demo=_demo,
    jobs=(Job("analytics.rerun", 600, _rerun), Job("analytics.planner_prune", 3600, _prune_plans)),
    models="smartcity.analytics.models",
    datasets=(
        Dataset(
            name="hotspots",
            title="수요 핫스팟 (H3 셀)",
            title_en="Demand hot spots (H3 cells)",
            description="분석가가 공개한 분석의 최신 결과: 셀별 수요(개인정보 보호 기준에 못 미치는 셀은 제외)와 "
            "Getis-Ord Gi* 통계.",
            description_en="The latest result of each analysis analysts published: demand per H3 cell (cells under "
            "the privacy threshold left out) with its Getis-Ord Gi* z, p and class.",
            rows=_published,
            events=("analytics.publication",),
            tags=("analytics", "H3"),
        ),
    ),
)
