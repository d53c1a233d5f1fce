"""A saved analysis published to the open data catalogue (issue 17, item 6) through core's dataset declaration,
on both stores: publishing it (or withdrawing it) is an event the catalogue follows, the rows read back with CKAN's
API as any client reads them hold only cells counted from k records or more — the lonely cell under k never
appears — and no position finer than the H3 cell."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from smartcity.analytics import service
from smartcity.app import create_app
from smartcity.core.auth import Identity
from smartcity.opendata import feeds
from tests.analytics.conftest import night_cluster
from tests.conftest import make_settings, make_user

NAME = feeds.catalogue_name("analytics.hotspots")


def _refreshed(db) -> list[str]:
    """Run the catalogue's refresh of what events marked until it publishes the dataset (PostgreSQL's events
    arrive through LISTEN, a moment after the commit)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = [line for line in feeds.refresh_all(db, only_due=True) if line.startswith("analytics.hotspots:")]
        if lines:
            return lines
        time.sleep(0.1)
    raise AssertionError("the catalogue was not told of the publication")


def _rows(client) -> list[dict]:
    package = client.get("/api/3/action/package_show", params={"id": NAME}).json()
    assert package["success"], package
    rid = package["result"]["resources"][0]["id"]
    found = client.get("/api/3/action/datastore_search", params={"resource_id": rid, "limit": 1000}).json()
    return found["result"]["records"]


def test_a_published_analysis_reaches_the_catalogue_with_small_cells_suppressed(db, db_url, tmp_path):
    settings = make_settings(db_url, tmp_path, run_jobs=False, analytics_k_anonymity=10)
    app = create_app(settings, db)
    centre, lonely = night_cluster(settings)  # the lonely cell: 4 records, under k
    owner = make_user(db, "analyst1", "analyst")
    who = Identity(user_id=owner, username="analyst1", role="analyst", via="session")
    analysis = service.save(db, who, service.AnalysisSpec(name="심야 수요", kinds=["phone"], hours=[1]))
    service.start_run(db, settings, who, analysis, background=False)

    with TestClient(app) as client:  # the app running: on PostgreSQL its listener hears the event
        if db.is_postgres:
            assert db.events.listening.wait(10), "the app is not listening for NOTIFY"
        service.set_published(db, who, analysis, True)
        assert _refreshed(db)[0].startswith("analytics.hotspots: version 1,")
        rows = _rows(client)
        cells = {str(r["cell"]) for r in rows}
        assert centre in cells and lonely not in cells
        assert min(int(r["count"]) for r in rows) >= 10
        assert not {"lat", "lon", "time", "user", "owner"} & set(rows[0])

        # Withdrawn: the catalogue's next version has no rows.
        service.set_published(db, who, analysis, False)
        assert _refreshed(db)[0].startswith("analytics.hotspots: version 2, 0 rows")
        assert _rows(client) == []
