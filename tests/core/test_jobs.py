"""Background work and the scheduler: a serving process lets go of its store only after the work it started
has ended (a thread still writing into a dropped store failed in a later test's time on CI)."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from smartcity.app import create_app
from smartcity.core import jobs
from smartcity.opendata.models import Resource
from tests.conftest import make_user, signin
from tests.helpers import csrf_token


def test_the_app_stops_only_after_the_work_a_request_left_running_has_ended(db, settings):
    app = create_app(settings, db)
    release, stored = threading.Event(), []

    def work() -> None:
        assert release.wait(30), "never released"
        with db.session() as s:
            stored.append(s.scalar(text("SELECT count(*) FROM districts")))

    @app.post("/test/slow")
    def slow() -> dict:
        jobs.in_background(db, "test-slow", work)
        return {}

    with TestClient(app) as client:
        assert client.post("/test/slow").status_code == 200
        # Released only once the app is stopping: the stop must wait for it.
        threading.Timer(0.3, release.set).start()
    assert stored and stored[0] > 0
    assert jobs.wait_for_background(db, timeout=0) == []


def test_an_upload_nobody_follows_is_loaded_before_the_server_stops(db, settings):
    app = create_app(settings, db)
    make_user(db, "pub", "data_publisher")
    rows = "".join(f"담배꽁초,대치동 선릉로{n},2022.1.{n % 28 + 1} 10:11,37.50,127.05\n" for n in range(20_000))
    data = ("위반쓰레기,장소,위반일시,lat,lng\n" + rows).encode()
    with TestClient(app) as client:
        signin(client, "pub")
        token = csrf_token(client, "/opendata/publish")
        created = client.post(
            "/opendata/publish/datasets",
            data={"csrf_token": token, "name": "dumping", "title_ko": "무단투기 단속"},
            follow_redirects=False,
        )
        assert created.status_code == 303, created.text
        sent = client.post(
            "/opendata/publish/datasets/dumping/upload",
            data={"csrf_token": token, "resource": "2022"},
            files={"file": ("dumping.csv", data, "text/csv")},
            headers={"Accept": "application/json"},
        )
        assert sent.status_code == 202, sent.text
    # The client is closed without asking how the load went: the server's stop waited for it.
    with db.session() as s:
        assert s.scalar(select(Resource.row_count).where(Resource.name == "2022")) == 20_000


def test_wait_for_background_names_what_still_runs_when_time_is_up(db):
    release = threading.Event()
    jobs.in_background(db, "test-held", release.wait, 30)
    assert jobs.wait_for_background(db, timeout=0.05) == ["test-held"]
    release.set()
    assert jobs.wait_for_background(db, timeout=10) == []
