"""Open Data Plaza's settings: SMARTCITY_OPENDATA_<FIELD>. Declared in `smartcity.opendata.module`; services
read them from their store's context (`context_of(db).settings_of(OpendataSettings)`)."""

from __future__ import annotations

from dataclasses import dataclass

from smartcity.settings import setting


@dataclass(frozen=True)
class OpendataSettings:
    openapi_daily_quota: int = setting(
        1000,
        "Calls one Seoul-style OpenAPI key may make a day (the city's date); beyond it the call is answered "
        "ERROR-337. The key 'sample' has no quota but at most 5 rows a call.",
    )
    live_datasets: bool = setting(
        True,
        "Publish the datasets modules declare (reports, assets) by themselves: after their events and at least "
        "every 15 minutes (a new version each time their rows change). Off: only `smartcity opendata refresh`.",
    )
    version_snapshots_kept: int = setting(
        200,
        "How many of a live resource's latest versions keep their rows as a downloadable Parquet file; an older "
        "version keeps its record and what changed, not its rows. Files a publisher loaded are always kept.",
    )
