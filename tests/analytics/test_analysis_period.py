"""An analysis's period (issue 17, session 24): optional first and last local days bound the demand a run reads,
on both stores; bad periods are refused in the API's error format and on the page's form; the period is shown
with the result and carried by every download; cells under k within the period stay out of every output."""

from __future__ import annotations

import io
import json
import re

import h3
import pyarrow.parquet as pq
import pytest

from smartcity.analytics import service
from smartcity.analytics.ingest import import_file
from smartcity.core.city import load_profile
from tests.analytics.conftest import csv_bytes, night_cluster, wait_for_run
from tests.conftest import make_user, signin


def _two_nights(settings) -> tuple[str, str]:
    """Night of Wed 4 March (night_cluster: 01:20 KST, 3 March in UTC) and, the next night, 25 more records at
    the centre at 00:10 KST on Thu 5 March (4 March in UTC): a period read in UTC days would swap the nights.
    `edge` is a cell beside the cluster with 8 records each night: 16 over both, under k = 10 on one."""
    centre, _ = night_cluster(settings)
    edge = next(c for c in h3.grid_ring(centre, 5))
    lat, lon = h3.cell_to_latlng(centre)
    elat, elon = h3.cell_to_latlng(edge)
    rows = [{"time": "2026-03-05T00:10:00+09:00", "lat": lat, "lon": lon, "count": 1}] * 25
    rows += [{"time": "2026-03-04T00:30:00+09:00", "lat": elat, "lon": elon, "count": 1}] * 8
    rows += [{"time": "2026-03-05T00:30:00+09:00", "lat": elat, "lon": elon, "count": 1}] * 8
    import_file(settings, load_profile("seoul"), "phone", csv_bytes(rows))
    return centre, edge


def _run(client, headers, **period) -> tuple[int, dict]:
    made = client.post(
        "/api/analytics/analyses",
        json={"name": "night", "kinds": ["phone"], "hours": [0, 1, 2], **period},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    run = client.post(f"/api/analytics/analyses/{made.json()['id']}/runs", headers=headers).json()["run"]
    status = wait_for_run(client, run, headers)
    assert status["status"] == "done", status
    return run, status


def test_a_period_bounds_the_demand_by_local_days(client, settings, analyst):
    centre, edge = _two_nights(settings)
    run, status = _run(client, analyst)
    cells = {r["cell"]: r for r in client.get(f"/api/analytics/runs/{run}/cells.json", headers=analyst).json()}
    assert cells[centre]["count"] == 85 and cells[edge]["count"] == 16
    assert status["start"] is None and status["end"] is None

    run, status = _run(client, analyst, start="2026-03-04", end="2026-03-04")
    assert (status["start"], status["end"]) == ("2026-03-04", "2026-03-04")
    cells = {r["cell"]: r for r in client.get(f"/api/analytics/runs/{run}/cells.json", headers=analyst).json()}
    assert cells[centre]["count"] == 60  # the night of the 4th only, by the city's clock
    assert edge not in cells  # 8 records within the period: under k

    # Every download says which days it counts, and none has the suppressed cell.
    geo = json.loads(client.get(f"/api/analytics/runs/{run}/cells.geojson", headers=analyst).content)
    assert geo["period"] == {"start": "2026-03-04", "end": "2026-03-04"}
    assert edge not in {f["properties"]["cell"] for f in geo["features"]}
    lines = client.get(f"/api/analytics/runs/{run}/cells.csv", headers=analyst).text.splitlines()
    assert lines[0] == "cell,count,z,p,significance,period_start,period_end"
    assert all(line.endswith(",2026-03-04,2026-03-04") for line in lines[1:]) and len(lines) == len(cells) + 1
    assert not any(line.startswith(edge) for line in lines)
    table = pq.read_table(io.BytesIO(client.get(f"/api/analytics/runs/{run}/cells.parquet", headers=analyst).content))
    assert str(table.schema.field("period_start").type) == "date32[day]"
    assert {d.isoformat() for d in table.column("period_end").to_pylist()} == {"2026-03-04"}
    assert edge not in table.column("cell").to_pylist()
    hourly = client.get(f"/api/analytics/runs/{run}/hourly.json", headers=analyst).json()
    assert sum(h["count"] for h in hourly if h["cell"] == centre) == 60 and edge not in {h["cell"] for h in hourly}

    # Published, the open data rows say the period too, and hold no cell under k within it.
    analysis = status["analysis_id"]
    assert client.post(f"/api/analytics/analyses/{analysis}/publication", headers=analyst).status_code == 200
    with client.app.state.db.session() as s:
        published = [r for r in service.published_rows(s) if r["period_start"] == "2026-03-04"]
    assert {(r["period_start"], r["period_end"]) for r in published} == {("2026-03-04", "2026-03-04")}
    assert edge not in {r["cell"] for r in published} and centre in {r["cell"] for r in published}

    # Open on one side: from the 5th on.
    run, _ = _run(client, analyst, start="2026-03-05")
    cells = {r["cell"] for r in client.get(f"/api/analytics/runs/{run}/cells.json", headers=analyst).json()}
    assert centre not in cells  # 25 records at one cell with no neighbour counted: no Gi* statistic


@pytest.mark.parametrize(
    ("period", "code"),
    [
        ({"start": "2026-03-05", "end": "2026-03-04"}, "invalid_period_order"),
        ({"start": "4 March"}, "invalid_period_day"),
        ({"end": "2026-02-30"}, "invalid_period_day"),
    ],
)
def test_a_bad_period_is_refused_in_the_api_format(client, analyst, period, code):
    bad = client.post(
        "/api/analytics/analyses", json={"name": "x", "kinds": ["phone"], "hours": [1], **period}, headers=analyst
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == code, bad.text
    assert client.get("/api/analytics/analyses", headers=analyst).json() == []  # nothing saved


def test_the_page_takes_a_period_shows_it_and_refuses_a_bad_one(client, db, settings):
    _two_nights(settings)
    make_user(db, "analyst5", "analyst")
    assert signin(client, "analyst5").status_code == 303
    page = client.get("/analytics")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {"name": "night", "kinds": "phone", "hours": ["0", "1"], "day_type": "all", "csrf_token": token}
    bad = client.post("/analytics", data={**form, "start": "2026-03-05", "end": "2026-03-04"})
    assert bad.status_code == 200 and 'role="alert"' in bad.text and "2026-03-05" in bad.text
    assert "<strong>night</strong>" not in client.get("/analytics").text  # not saved
    made = client.post("/analytics", data={**form, "start": "2026-03-04", "end": "2026-03-04"}, follow_redirects=False)
    assert made.status_code == 303
    shown = client.get(made.headers["location"])
    assert re.search(r'class="period">[^<]*2026-03-04 – 2026-03-04', shown.text), shown.text


def _edges(settings, seoul) -> str:
    """12 records in the last second of Wed 4 March (KST) and 12 in the first second of the 5th, one cell."""
    rows = [{"time": "2026-03-04T23:59:59+09:00", "lat": 37.5663, "lon": 126.9779, "count": 1}] * 12
    rows += [{"time": "2026-03-05T00:00:00+09:00", "lat": 37.5663, "lon": 126.9779, "count": 1}] * 12
    import_file(settings, seoul, "phone", csv_bytes(rows))
    return h3.latlng_to_cell(37.5663, 126.9779, 8)


def test_the_period_ends_at_the_local_midnight(analytics_settings, seoul):
    from datetime import date

    from smartcity.analytics.cells import demand, local_days_to_utc

    _edges(analytics_settings, seoul)
    until_4th = local_days_to_utc(None, date(2026, 3, 4), "Asia/Seoul")
    from_5th = local_days_to_utc(date(2026, 3, 5), None, "Asia/Seoul")
    assert until_4th[1].isoformat() == "2026-03-05T00:00:00+09:00"
    first = demand(analytics_settings, hours=None, since=until_4th[0], until=until_4th[1])
    second = demand(analytics_settings, hours=None, since=from_5th[0], until=from_5th[1])
    assert list(zip(first["hour"], first["count"], strict=True)) == [(23, 12)]
    assert list(zip(second["hour"], second["count"], strict=True)) == [(0, 12)]


@pytest.mark.spark
def test_a_period_gives_the_same_demand_on_duckdb_and_spark(analytics_settings, seoul, spark_engine):
    from datetime import date

    from smartcity.analytics.cells import demand, local_days_to_utc
    from smartcity.analytics.engine import DuckDBEngine
    from smartcity.analytics.settings import AnalyticsSettings, data_dir
    from smartcity.analytics.synthetic import generate, hubs_from

    out = data_dir(analytics_settings, analytics_settings.of(AnalyticsSettings)) / "phone"
    generate(hubs_from(seoul, seed=3), 40_000, out, start=date(2026, 3, 2), days=4, seed=3, chunk_rows=40_000)
    _edges(analytics_settings, seoul)
    since, until = local_days_to_utc(date(2026, 3, 3), date(2026, 3, 4), "Asia/Seoul")
    on_duckdb = demand(analytics_settings, hours=None, engine=DuckDBEngine(), since=since, until=until)
    on_spark = demand(analytics_settings, hours=None, engine=spark_engine, since=since, until=until)
    everything = demand(analytics_settings, hours=None, engine=DuckDBEngine())
    assert 0 < on_duckdb["count"].sum() < everything["count"].sum()
    assert on_duckdb.to_dict("list") == on_spark.to_dict("list")
