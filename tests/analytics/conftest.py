"""Fixtures of the analytics tests: settings whose data folder is the test's own, the Seoul profile, CSV text."""

from __future__ import annotations

import csv
import io

import h3
import pytest

from smartcity.analytics.ingest import import_file
from smartcity.core.city import load_profile
from tests.conftest import eventually, make_key, make_settings, make_user


@pytest.fixture
def analytics_settings(tmp_path):
    """Settings with the analytics data under this test's folder (no platform store is touched)."""
    return make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path)


@pytest.fixture(scope="session")
def seoul():
    return load_profile("seoul")


def csv_bytes(rows: list[dict], encoding: str = "utf-8") -> bytes:
    """A CSV file of `rows` (the header from the first row's keys)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


@pytest.fixture(scope="session")
def spark_engine():
    """Spark in local mode, started once per test process (start-up takes seconds)."""
    from smartcity.analytics.engine import SparkEngine, spark_session

    spark_session("local[2]")
    return SparkEngine("local[2]")


CENTRE = (37.5663, 126.9779)  # City Hall


def night_cluster(settings) -> tuple[str, str]:
    """A night with a busy cluster around City Hall, a quiet ring around it, and one cell under k."""
    centre = h3.latlng_to_cell(*CENTRE, 8)
    rows = []
    for cell in h3.grid_disk(centre, 4):
        dist = h3.grid_distance(centre, cell)
        n = 60 if dist <= 1 else 12
        lat, lon = h3.cell_to_latlng(cell)
        rows += [{"time": "2026-03-04T01:20:00+09:00", "lat": lat, "lon": lon, "count": 1}] * n
    lonely = h3.latlng_to_cell(37.50, 127.03, 8)
    lat, lon = h3.cell_to_latlng(lonely)
    rows += [{"time": "2026-03-04T01:20:00+09:00", "lat": lat, "lon": lon, "count": 1}] * 4
    import_file(settings, load_profile("seoul"), "phone", csv_bytes(rows))
    return centre, lonely


@pytest.fixture
def analyst(db):
    """An analyst's API key headers."""
    make_user(db, "analyst1", "analyst")
    return {"X-API-Key": make_key(db, "analyst1")}


def wait_for_run(client, run_id, headers) -> dict:
    """An analysis run's status once it is done or failed (runs go on off the request)."""

    def finished():
        status = client.get(f"/api/analytics/runs/{run_id}", headers=headers).json()
        return status if status["status"] in ("done", "failed") else None

    return eventually(finished, timeout=120, interval=0.1)
