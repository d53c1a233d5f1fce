"""Fixtures of the analytics tests: settings whose data folder is the test's own, the Seoul profile, CSV text."""

from __future__ import annotations

import csv
import io

import pytest

from smartcity.core.city import load_profile
from tests.conftest import make_settings


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
