"""Saved analyses through the JSON API, on both stores: run in the background with progress, hot spots per cell,
downloads in four formats, another analyst's unshared analysis answered as missing, reruns on schedule, and the
open data rows carry only suppressed, aggregated cells."""

from __future__ import annotations

import io

import pyarrow.parquet as pq

from smartcity.analytics import service
from tests.analytics.conftest import night_cluster, wait_for_run
from tests.conftest import make_key, make_user


def test_an_analyst_runs_hot_spots_and_downloads_them(client, settings, analyst):
    centre, lonely = night_cluster(settings)
    made = client.post(
        "/api/analytics/analyses",
        json={"name": "심야 수요", "kinds": ["phone"], "hours": [0, 1, 2], "day_type": "weekday"},
        headers=analyst,
    )
    assert made.status_code == 201, made.text
    run = client.post(f"/api/analytics/analyses/{made.json()['id']}/runs", headers=analyst).json()["run"]
    status = wait_for_run(client, run, analyst)
    assert status["status"] == "done" and status["progress"] == 1.0
    cells = {r["cell"]: r for r in client.get(f"/api/analytics/runs/{run}/cells.json", headers=analyst).json()}
    assert cells[centre]["significance"].startswith("hot")
    assert cells[centre]["count"] == 60
    assert lonely not in cells  # 4 records: under k = 10
    geo = client.get(f"/api/analytics/runs/{run}/cells.geojson", headers=analyst)
    assert geo.headers["content-type"].startswith("application/geo+json")
    feature = next(f for f in geo.json()["features"] if f["properties"]["cell"] == centre)
    assert len(feature["geometry"]["coordinates"][0]) == 7  # a hexagon, closed
    text = client.get(f"/api/analytics/runs/{run}/cells.csv", headers=analyst).text
    assert (
        text.splitlines()[0] == "cell,count,z,p,significance,period_start,period_end"
        and len(text.splitlines()) == len(cells) + 1
    )
    table = pq.read_table(io.BytesIO(client.get(f"/api/analytics/runs/{run}/cells.parquet", headers=analyst).content))
    assert sorted(table.column("cell").to_pylist()) == sorted(cells)
    assert client.get(f"/api/analytics/runs/{run}/cells.xlsx", headers=analyst).status_code == 422


def test_a_run_without_data_fails_with_why(client, analyst):
    made = client.post(
        "/api/analytics/analyses", json={"name": "taxi", "kinds": ["taxi"], "hours": [1]}, headers=analyst
    ).json()
    run = client.post(f"/api/analytics/analyses/{made['id']}/runs", headers=analyst).json()["run"]
    status = wait_for_run(client, run, analyst)
    assert status["status"] == "failed" and "no data" in status["message"]


def test_bad_requests_and_other_analysts(client, db, analyst):
    bad = client.post("/api/analytics/analyses", json={"name": "x", "kinds": ["cats"], "hours": [1]}, headers=analyst)
    assert bad.status_code == 422 and "kinds" in bad.text
    bad = client.post("/api/analytics/analyses", json={"name": "x", "kinds": ["phone"], "hours": [25]}, headers=analyst)
    assert bad.status_code == 422 and "hours" in bad.text
    mine = client.post(
        "/api/analytics/analyses", json={"name": "mine", "kinds": ["phone"], "hours": [1]}, headers=analyst
    ).json()["id"]
    make_user(db, "analyst2", "analyst")
    other = {"X-API-Key": make_key(db, "analyst2")}
    assert client.post(f"/api/analytics/analyses/{mine}/runs", headers=other).status_code == 404
    assert [a["name"] for a in client.get("/api/analytics/analyses", headers=other).json()] == []
    make_user(db, "clerk", "staff", department="11230-roads")
    staff = {"X-API-Key": make_key(db, "clerk")}
    assert client.get("/api/analytics/analyses", headers=staff).status_code == 403


def test_published_rows_and_scheduled_reruns(db, settings):
    from smartcity.core.auth import Identity

    centre, lonely = night_cluster(settings)
    owner = make_user(db, "analyst3", "analyst")
    who = Identity(user_id=owner, username="analyst3", role="analyst", via="session")
    spec = service.AnalysisSpec(name="night", kinds=["phone"], hours=[1], rerun_hours=6)
    analysis = service.save(db, who, spec)
    first = service.rerun_due(db, settings)
    assert len(first) == 1
    assert service.rerun_due(db, settings) == []  # not due again for six hours
    with db.session() as s:
        assert list(service.published_rows(s)) == []  # not published yet
    service.set_published(db, who, analysis, True)
    with db.session() as s:
        rows = list(service.published_rows(s))
    assert {r["cell"] for r in rows} >= {centre} and lonely not in {r["cell"] for r in rows}
    assert min(r["count"] for r in rows) >= 10
    assert set(rows[0]) == {
        "analysis",
        "hours",
        "day_type",
        "period_start",
        "period_end",
        "cell",
        "count",
        "z",
        "p",
        "significance",
        "computed_at",
    }
    assert rows[0]["period_start"] is None  # no period: all data


def test_a_run_started_by_a_request_is_waited_for_by_the_stop(db, settings):
    """Regression (issue 17, H8's core.jobs): a run was a bare thread the app's stop did not wait for (cut off
    mid-write it stayed "running"); it is now background work the stop waits for, and done once waited."""
    from smartcity.core.auth import Identity
    from smartcity.core.jobs import wait_for_background

    night_cluster(settings)
    owner = make_user(db, "analyst4", "analyst")
    who = Identity(user_id=owner, username="analyst4", role="analyst", via="session")
    analysis = service.save(db, who, service.AnalysisSpec(name="night", kinds=["phone"], hours=[1]))
    run_id = service.start_run(db, settings, who, analysis)
    assert wait_for_background(db) == []
    assert service.run_status(db, who, run_id)["status"] == "done"
