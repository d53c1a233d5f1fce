"""Planner runs kept on disk only as long as SMARTCITY_ANALYTICS_PLANNER_KEEP_DAYS says: the module's hourly job
deletes older ones (their downloads go with them), and leaves anything that is not a run alone."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from smartcity.analytics import module
from smartcity.analytics.planner_run import runs_dir, write_status
from tests.conftest import make_settings, make_user, signin

DAY = 86_400


def prune_job():
    found = [j for j in module.jobs if j.name == "analytics.planner_prune"]
    assert len(found) == 1
    return found[0]


def make_run(settings, age_days: float, state: str = "done") -> str:
    """A run folder as the planner page leaves it, last changed `age_days` ago."""
    run_id = uuid.uuid4().hex
    path = runs_dir(settings) / run_id
    path.mkdir(parents=True)
    write_status(path, state=state, owner="analyst1", constraints={})
    (path / "gtfs.zip").write_bytes(b"PK")
    when = time.time() - age_days * DAY
    for f in (path / "status.json", path / "gtfs.zip", path):
        os.utime(f, (when, when))
    return run_id


@pytest.mark.parametrize(("keep_days", "expect_kept"), [(30, {"new", "ten_days"}), (7, {"new"})])
def test_the_job_deletes_runs_older_than_the_setting(tmp_path, keep_days, expect_kept):
    settings = make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path, analytics_planner_keep_days=keep_days)
    runs = {
        "new": make_run(settings, 0.5),
        "ten_days": make_run(settings, 10),
        "old": make_run(settings, 45),
        # Its process is long gone: a "running" status that old is not waited for.
        "stale_running": make_run(settings, 60, state="running"),
    }
    other = runs_dir(settings) / "notes"
    other.mkdir()
    os.utime(other, (time.time() - 400 * DAY,) * 2)

    prune_job().run(None, settings)

    left = {p.name for p in runs_dir(settings).iterdir()}
    assert left == {runs[k] for k in expect_kept} | {"notes"}
    assert (runs_dir(settings) / runs["new"] / "gtfs.zip").exists()


def test_the_job_with_no_runs_yet_does_nothing(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path)
    prune_job().run(None, settings)
    assert not runs_dir(settings).exists()


def test_a_pruned_runs_page_and_downloads_are_gone(client, db):
    """Through the app: the kept run still answers, the deleted one is a 404 on its page and its files."""
    settings = client.app.state.settings
    kept, gone = make_run(settings, 1), make_run(settings, 31)
    make_user(db, "analyst1", "analyst")
    signin(client, "analyst1")

    prune_job().run(db, settings)

    assert client.get(f"/analytics/planner/runs/{kept}/gtfs.zip").status_code == 200
    assert client.get(f"/analytics/planner/runs/{gone}").status_code == 404
    assert client.get(f"/analytics/planner/runs/{gone}/gtfs.zip").status_code == 404
