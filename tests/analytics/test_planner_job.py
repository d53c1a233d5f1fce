"""The planner page's runs in a process of their own (not the serving process's thread): progress in the run's
status while it works, one run at a time (a second is refused with a link to the first), a run whose process died
shown as failed and its lock freed — on both stores, through the app."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from smartcity.analytics import synthetic
from smartcity.analytics.planner_run import runs_dir
from smartcity.analytics.settings import AnalyticsSettings, data_dir
from smartcity.core.city import load_profile
from tests.conftest import make_settings, make_user, signin


@pytest.fixture
def planner(db, db_url, tmp_path):
    from fastapi.testclient import TestClient

    from smartcity.app import create_app

    settings = make_settings(db_url, tmp_path, analytics_planner_seconds=2)
    phone = data_dir(settings, settings.of(AnalyticsSettings)) / "phone"
    profile = load_profile("seoul")
    synthetic.generate(synthetic.hubs_from(profile, seed=3), 60_000, phone, start=date(2026, 3, 2), days=1, seed=3)
    make_user(db, "analyst1", "analyst")
    with TestClient(create_app(settings, db)) as client:
        signin(client, "analyst1")
        yield client


STOPS = "id,name,lat,lon\n" + "".join(
    f"{i:05d},정류소 {i},{37.45 + (i // 50) * 0.0045:.6f},{126.82 + (i % 50) * 0.0068:.6f}\n" for i in range(2500)
)


def _start(client, routes: str = "3", baseline: str = "", stops: str = STOPS):
    form = client.get("/analytics/planner")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    return client.post(
        "/analytics/planner",
        data={
            "csrf_token": token,
            "routes": routes,
            "max_km": "15",
            "headway": "40",
            "fleet": "20",
            "baseline": baseline,
        },
        files={"stops": ("stops.csv", stops.encode(), "text/csv")},
        follow_redirects=False,
    )


def _status(client, run_id: str) -> dict:
    return json.loads((runs_dir(client.app.state.settings) / run_id / "status.json").read_text(encoding="utf-8"))


def _wait(client, run_id: str, until, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(client, run_id)
        if until(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {status}")


def test_a_plan_runs_in_its_own_process_with_progress_and_one_at_a_time(planner):
    started = _start(planner)
    assert started.status_code == 303
    run_id = started.headers["location"].rsplit("/", 1)[1]

    # A second plan while the first is being made: refused, with the way to the one running.
    second = _start(planner, routes="2")
    assert second.status_code == 409
    assert f'href="/analytics/planner/runs/{run_id}"' in second.text
    # Who asked for the running plan, when (the city's clock), with what constraints (session 24).
    first = _status(planner, run_id)
    since = datetime.fromtimestamp(first["started"], ZoneInfo("Asia/Seoul")).strftime("%Y-%m-%d %H:%M")
    shown = re.search(r'<div id="planner-running" data-run="(\w+)">(.*?)</div>', second.text, re.S)
    assert shown and shown.group(1) == run_id, second.text
    assert first["owner"] and first["owner"] in shown.group(2) and since in shown.group(2)
    assert "노선 3개, 최대 15 km, 배차 간격 40분, 버스 20대" in shown.group(2)  # the page is in Korean by default
    assert abs(first["started"] - time.time()) < 60
    assert len([p for p in runs_dir(planner.app.state.settings).iterdir() if p.is_dir()]) == 1

    working = _wait(planner, run_id, lambda s: "pid" in s)
    assert working["pid"] != os.getpid()
    page = planner.get(f"/analytics/planner/runs/{run_id}")
    assert 'id="planner-progress"' in page.text and 'http-equiv="refresh"' in page.text
    seen = set()
    done = _wait(planner, run_id, lambda s: seen.add((s["step"], s["progress"])) or s["state"] != "running")
    assert done["state"] == "done", done
    steps = [step for step, _ in sorted(seen, key=lambda sp: sp[1])]
    assert "search" in steps and 0 < min(p for _, p in seen) < max(p for _, p in seen) <= 1
    page = planner.get(f"/analytics/planner/runs/{run_id}")
    assert 'data-state="done"' in page.text and 'id="planner-progress"' not in page.text
    assert page.text.count('<tr data-route="') >= 1
    assert planner.get(f"/analytics/planner/runs/{run_id}/gtfs.zip").status_code == 200

    # Once it has finished, the next plan may start.
    after = _start(planner, routes="2")
    assert after.status_code == 303
    next_id = after.headers["location"].rsplit("/", 1)[1]
    assert _wait(planner, next_id, lambda s: s["state"] not in ("queued", "running"))["state"] == "done"


def test_a_run_whose_process_died_is_failed_and_frees_the_planner(planner):
    started = _start(planner)
    run_id = started.headers["location"].rsplit("/", 1)[1]
    pid = _wait(planner, run_id, lambda s: "pid" in s)["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while 'data-state="failed"' not in (page := planner.get(f"/analytics/planner/runs/{run_id}")).text:
        assert time.monotonic() < deadline, "the dead run still shows as working"
        time.sleep(0.1)
    assert 'id="planner-error"' in page.text
    again = _start(planner, routes="2")
    assert again.status_code == 303
    next_id = again.headers["location"].rsplit("/", 1)[1]
    assert _wait(planner, next_id, lambda s: s["state"] not in ("queued", "running"))["state"] == "done"


def test_a_bad_baseline_or_stop_list_is_refused_on_the_form_before_any_run(planner):
    """Regression (issue 17, bad input): a baseline naming stops the list lacks, or a stop list with wrong columns,
    started a run that failed in its process; now the form is answered at once, naming which, and no run exists."""
    unknown = _start(planner, baseline="N26: 00100 99999 00102\nN37: 88888")
    assert unknown.status_code == 422
    assert re.search(r'id="planner-error">[^<]*99999, 88888', unknown.text)
    wrong = _start(planner, stops="stop,x,y\n1,126.97,37.56\n")
    assert wrong.status_code == 422
    assert "X좌표" in re.search(r'id="planner-error">([^<]*)<', wrong.text).group(1)
    no_route = _start(planner, baseline="N26 00100 00101")
    assert no_route.status_code == 422
    plans = runs_dir(planner.app.state.settings)
    assert not plans.exists() or [p for p in plans.iterdir() if p.is_dir()] == []
    good = _start(planner, baseline="N26: 00100 00101 00102")  # the same form, good input: a run
    assert good.status_code == 303
    run_id = good.headers["location"].rsplit("/", 1)[1]
    assert _wait(planner, run_id, lambda s: s["state"] not in ("queued", "running"))["state"] == "done"
