"""package_search's hot path (issue 14's performance goal): a page of packages read in a fixed number of
statements, read as rows rather than ORM objects, and the GET route of its own answering as POST does."""

from __future__ import annotations

import threading

import ckanapi
import httpx
from sqlalchemy import event, select

from smartcity.core.jobs import JOB_THREAD
from smartcity.opendata import catalogue, publishing
from smartcity.opendata.models import Organisation
from tests.opendata.helpers import PUBLISHER, publish

DATASETS = 12


def _catalogue(db) -> None:
    """DATASETS published datasets over three organisations, each with two tags; every third with a CSV."""
    with db.session() as s:
        orgs = list(s.scalars(select(Organisation.name).order_by(Organisation.name).limit(3)))
        for i in range(DATASETS):
            info = publishing.DatasetInfo(
                f"bus-stops-{i:02d}",
                title_ko=f"버스 정류소 현황 {i}",
                title_en=f"Bus stops {i}",
                organisation=orgs[i % 3],
                tags=["bus", f"area-{i % 4}"],
                theme="transport",
            )
            publishing.save_dataset(s, PUBLISHER, info)
    for i in range(0, DATASETS, 3):
        publish(db, f"bus-stops-{i:02d}", f"stop,lat,lon\nS{i},37.5,127.0\n".encode(), f"stops-{i}.csv")


def test_a_get_package_search_runs_the_same_few_statements_for_a_page_of_one_or_of_twelve(client, db):
    """Regression guard (speed): a page's organisations, tags and resources are read once for the page, not per
    package (an N+1 made CKAN's default page of ten thirty statements). Counted through the app's GET route;
    the scheduler's statements (core.jobs.JOB_THREAD) are not the request's."""
    _catalogue(db)
    ran: list[tuple[int, str]] = []

    def record(conn, cursor, statement, *args) -> None:
        if threading.current_thread().name != JOB_THREAD:
            ran.append((threading.get_ident(), statement))

    def search(rows: int) -> tuple[int, dict]:
        params = {"q": "버스", "facet.field": '["organization", "tags", "res_format"]', "rows": str(rows)}
        ran.clear()
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            answer = client.get("/api/3/action/package_search", params=params)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        assert answer.status_code == 200, answer.text
        # The app's other threads share the engine (the event log's poller, the WAL checkpointer, a feed's
        # refresh): only the thread that ran the search's full-text match is the request's.
        request = next(thread for thread, statement in ran if "bm25(" in statement or "ts_rank(" in statement)
        return len([statement for thread, statement in ran if thread == request]), answer.json()["result"]

    search(1)  # the matches' facets are read once, then remembered (tests/opendata/test_search.py)
    one, small = search(1)
    many, found = search(DATASETS)
    assert found["count"] == DATASETS and len(found["results"]) == DATASETS and len(small["results"]) == 1
    assert one == many <= 5  # the matches, the page's datasets, organisations, tags, resources
    with_file = [p for p in found["results"] if p["num_resources"]]
    assert len(with_file) == DATASETS // 3 and all(p["resources"][0]["format"] == "CSV" for p in with_file)
    assert all(p["num_tags"] == 2 and p["organization"]["name"] for p in found["results"])
    assert found["facets"]["res_format"] == {"CSV": DATASETS // 3}
    assert sum(found["facets"]["organization"].values()) == DATASETS


def test_a_search_reads_its_page_as_rows_and_keeps_no_orm_objects(db):
    """Regression (speed): the page's datasets, organisations and resources were loaded as ORM objects (every
    column, a resource's JSON column list decoded, the identity map filled): a third of a package_search's CPU
    at 5,000 datasets. They are read as rows (no object is loaded into the session), and the packages are
    package_show's."""
    _catalogue(db)
    loaded: list[object] = []
    with db.session() as s:
        event.listen(s, "loaded_as_persistent", lambda session, instance: loaded.append(instance))
        found = catalogue.search_packages(s, "http://city", q="버스", rows=DATASETS, facet_fields=["tags"])
    assert len(found["results"]) == DATASETS
    assert loaded == []
    with db.session() as s:
        shown = {p["name"]: p for p in (catalogue.package_dict(s, d, "http://city") for d in _datasets(s))}
    assert {p["name"]: p for p in found["results"]} == shown


def _datasets(s):
    from smartcity.opendata.models import Dataset

    return list(s.scalars(select(Dataset).where(Dataset.published)))


def test_package_search_by_get_answers_as_by_post_and_errs_in_ckans_envelope(live, db):
    """GET package_search has a route of its own (the hot path): ckanapi's GET mode gets what POST gets, and
    a bad parameter is CKAN's error, the help naming the action."""
    _catalogue(db)
    by_get = ckanapi.RemoteCKAN(live.url, get_only=True)
    by_post = ckanapi.RemoteCKAN(live.url)
    wanted = {"q": "버스", "fq": "tags:area-1", "sort": "name desc", "rows": 2, "start": 1}
    got = by_get.call_action("package_search", {**wanted, "facet.field": '["tags", "organization"]'})
    assert got == by_post.call_action("package_search", {**wanted, "facet.field": ["tags", "organization"]})
    assert got["count"] == 3 and [p["name"] for p in got["results"]] == ["bus-stops-05", "bus-stops-01"]
    with httpx.Client(base_url=live.url) as http:
        for path in ("/api/3/action/package_search", "/api/action/package_search"):
            bad = http.get(path, params={"rows": "ten"})
            assert bad.status_code == 409 and bad.json()["success"] is False
            assert bad.json()["error"]["__type"] == "Validation Error" and "rows" in bad.json()["error"]
            assert bad.json()["help"].endswith("/api/3/action/help_show?name=package_search")
            refused = http.get(path, params={"fq": "owner:1"})
            assert refused.status_code == 400 and refused.json()["error"]["__type"] == "Search Query Error"
