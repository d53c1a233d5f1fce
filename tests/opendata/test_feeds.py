"""Live platform datasets: reports and assets publish themselves after their events (no export by hand),
without contact data and with sensitive locations rounded; a dataset carrying persons' locations is refused."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date

import ckanapi
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from smartcity.assets import service as assets
from smartcity.core import audit
from smartcity.core.module import Dataset, Module, PersonalTopic, declared
from smartcity.opendata import feeds
from smartcity.opendata.models import Dataset as CatalogueDataset
from smartcity.reports.views import Contact
from tests.reports.helpers import GANGNAM, file_report


def _rows_of(ckan, name: str, timeout: float = 30.0, until=lambda rows: True) -> list[dict]:
    """The rows of the dataset `name` through CKAN once it exists and `until(rows)` holds (the refresh job
    runs every few seconds)."""
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        try:
            package = ckan.action.package_show(id=name)
            rid = package["resources"][0]["id"]
            rows = ckan.action.datastore_search(resource_id=rid, limit=1000)["records"]
            if until(rows):
                return rows
        except ckanapi.NotFound:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{name} did not update by itself within {timeout} s: {rows[:3]}")


def test_reports_publish_themselves_without_contacts_and_with_sensitive_places_rounded(live, db):
    ckan = ckanapi.RemoteCKAN(live.url)
    contact = Contact(name="김민수", email="kim@example.kr", phone="010-1234-5678")
    pothole = file_report(db, where=GANGNAM, contact=contact)
    parked = file_report(db, category="traffic-illegal-parking", where=(37.497912, 127.027619), title="불법 주차")
    rows = _rows_of(ckan, "reports-reports", until=lambda rows: {pothole, parked} <= {r["id"] for r in rows})
    by_id = {r["id"]: r for r in rows}
    assert by_id[pothole]["lat"] == pytest.approx(GANGNAM[0], abs=1e-6) and not by_id[pothole]["location_rounded"]
    assert (by_id[parked]["lat"], by_id[parked]["lon"]) == (37.498, 127.028) and by_id[parked]["location_rounded"]
    fields = set(rows[0])
    assert not fields & {"email", "phone", "contact", "description", "address_string", "reporter_id", "public_name"}
    assert not {"kim@example.kr", "010-1234-5678", "김민수"} & {v for r in rows for v in r.values()}
    counts = _rows_of(ckan, "reports-daily-counts", until=lambda rows: sum(r["reports"] for r in rows) >= 2)
    assert {r["district_code"]: r["reports"] for r in counts} == Counter(r["district_code"] for r in rows)
    assert all(isinstance(r["district_code"], str) for r in counts)  # a code, not a number
    # A new report is a new version with one row added.
    third = file_report(db, where=GANGNAM, title="또 다른 포트홀")
    _rows_of(ckan, "reports-reports", until=lambda rows: third in {r["id"] for r in rows})
    with db.session() as s:
        entries = audit.entries(s, object_type="opendata.resource")
        assert any(e.detail.get("dataset") == "reports-reports" and e.detail.get("version", 0) >= 2 for e in entries)


def test_assets_publish_themselves_after_a_change(live, db):
    ckan = ckanapi.RemoteCKAN(live.url)
    with db.session() as s:
        camera = assets.create_asset(s, "cctv", 37.5013, 127.0396, name="역삼역 CCTV").id
    rows = _rows_of(ckan, "assets-assets", until=lambda rows: camera in {r["id"] for r in rows})
    assert next(r for r in rows if r["id"] == camera)["kind"] == "cctv"


ASSET_LIST = (
    "id,name,lat,lon\n"
    "gn-1,역삼역 1번 출구 CCTV,37.5006,127.0364\n"
    "gn-2,선릉역 CCTV,37.5045,127.0490\n"
    "gn-3,좌표 없는 CCTV,,\n"
    "gn-4,강남역 CCTV,37.4979,127.0276\n"
).encode()


def test_an_imported_asset_list_publishes_itself(live, db):
    ckan = ckanapi.RemoteCKAN(live.url)
    with db.session() as s:
        report = assets.import_csv(s, ASSET_LIST, "cctv", source="gangnam-cctv.csv", fmt="generic")
    assert report.skipped  # the row without a position
    names = {"역삼역 1번 출구 CCTV", "선릉역 CCTV", "강남역 CCTV"}
    rows = _rows_of(ckan, "assets-assets", until=lambda rows: names <= {r.get("name") for r in rows})
    published = {r["name"] for r in rows if r["kind"] == "cctv"}
    assert names <= published and "좌표 없는 CCTV" not in published


def _module_with(dataset: Dataset, personal: tuple[PersonalTopic, ...] = ()) -> Module:
    return Module(name="tracker", datasets=(dataset,), personal=personal)


def _positions(session):
    yield {"person": "p1", "lat": 37.5, "lon": 127.0}


def test_a_dataset_following_a_personal_topic_is_refused(db):
    # safety declares its live positions a personal topic: a dataset refreshed by them is never published.
    modules = [*declared()]
    assert any(t.prefix == "safety.position" for m in modules for t in m.personal)
    tracker = _module_with(Dataset("positions", "위치", _positions, events=("safety.position",)))
    (declared_dataset,) = [d for d in _datasets([*modules, tracker]) if d.module == "tracker"]
    with pytest.raises(feeds.Refused, match="personal event topic safety.position"):
        feeds.publish_feed(db, declared_dataset, [*modules, tracker])
    with db.session() as s:
        assert s.scalar(select(CatalogueDataset).where(CatalogueDataset.feed == "tracker.positions")) is None
        refusals = audit.entries(s, object_type="opendata.dataset", object_id="tracker.positions")
        assert [e.action for e in refusals] == ["refuse"]


def test_a_dataset_declared_personal_or_carrying_a_protected_persons_places_is_refused(db):
    flagged = _module_with(Dataset("walks", "산책", _positions, personal=True))
    with pytest.raises(feeds.Refused, match="persons' locations"):
        feeds.publish_feed(db, _datasets([flagged])[0], [flagged])
    # A module with personal topics publishing rows with coordinates, under no personal event: refused too.
    own = (PersonalTopic("tracker.live", lambda *a: False, lambda *a: None),)
    quiet = _module_with(Dataset("places", "장소", _positions), own)
    with pytest.raises(feeds.Refused):
        feeds.publish_feed(db, _datasets([quiet])[0], [quiet])
    with db.session() as s:
        assert s.scalars(select(CatalogueDataset.feed)).all() == []


def _datasets(modules):
    from smartcity.core.module import datasets

    return datasets(modules)


def test_live_datasets_can_be_left_to_the_command(db, db_url, tmp_path):
    from smartcity.app import create_app
    from tests.conftest import LiveServer, eventually, make_settings
    from tests.helpers import run_cli

    app = create_app(make_settings(db_url, tmp_path, opendata_live_datasets=False), db)
    with LiveServer(app) as server:
        ckan = ckanapi.RemoteCKAN(server.url)
        report = file_report(db, where=GANGNAM)
        # The scheduler runs its jobs one after another and counts a run as it starts: two more counts than
        # now mean a whole refresh began and ended after the report's event (waited on, not slept on).
        counted = _refresh_runs(server.url)
        eventually(lambda: _refresh_runs(server.url) >= counted + 2)
        with pytest.raises(ckanapi.NotFound):
            ckan.action.package_show(id="reports-reports")
        out = run_cli(db_url, "opendata", "refresh")
        assert "reports.reports: version 1, 1 rows (+1 -0 ~0)" in out
        assert [r["id"] for r in _rows_of(ckan, "reports-reports")] == [report]


def _refresh_runs(url: str) -> float:
    """How many runs of the opendata refresh job the served process has started, by its /metrics."""
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "smartcity_job_runs_total" and sample.labels.get("job") == "opendata.refresh":
                return sample.value
    return 0.0


class _Things:
    """A module's rows by id, and how often it was asked for all of them."""

    def __init__(self) -> None:
        self.rows = {n: {"id": n, "name": f"물건 {n}", "seen": date(2026, 1, n)} for n in (1, 2, 3)}
        self.full_reads = 0

    def every(self, session):
        self.full_reads += 1
        return [dict(r) for r in self.rows.values()]

    def by_key(self, session, keys):
        return [dict(self.rows[k]) for k in keys if k in self.rows]


def test_a_keyed_dataset_is_refreshed_by_the_changed_rows_only(db):
    """Regression (issue 14): each report event republished every report; now the rows of the keys the
    events named are applied by key — one version for the batch, the other rows not read."""
    from smartcity.opendata import datastore

    things = _Things()
    module = _module_with(Dataset("things", "물건", things.every, key="id", rows_by_key=things.by_key))
    (dataset,) = _datasets([module])
    first = feeds.publish_feed(db, dataset, [module])
    assert (first.version, first.rows, things.full_reads) == (1, 3, 1)
    things.rows[2]["name"] = "바뀐 물건"
    things.rows[4] = {"id": 4, "name": "새 물건", "seen": date(2026, 1, 4)}
    del things.rows[1]
    done = feeds.publish_feed_changes(db, dataset, [module], {1, 2, 4, 3})
    assert (done.version, done.rows, done.added, done.removed, done.changed) == (2, 3, 1, 1, 1)
    assert things.full_reads == 1  # the whole dataset was not read again
    with db.session() as s:
        found = datastore.search(s, done.resource_id, sort="id")
        assert found["total"] == 3
        assert [(r["id"], r["name"], r["seen"]) for r in found["records"]] == [
            (2, "바뀐 물건", "2026-01-02"),
            (3, "물건 3", "2026-01-03"),
            (4, "새 물건", "2026-01-04"),
        ]
        unchanged_kept_place = {r["id"]: r["_id"] for r in found["records"]}
        assert unchanged_kept_place[2] == 2 and unchanged_kept_place[4] == 4
    assert feeds.publish_feed_changes(db, dataset, [module], {3}) is None  # nothing changed: no version
    # A row whose value no longer fits its column is published with the whole dataset instead.
    things.rows[3]["seen"] = "someday"
    again = feeds.publish_feed_changes(db, dataset, [module], {3})
    assert again.version == 3 and things.full_reads == 2


def test_a_module_rewording_its_dataset_updates_the_entry_except_what_staff_changed(db):
    from dataclasses import replace

    from smartcity.opendata import publishing

    things = _Things()
    first = Dataset("things", "물건", things.every, description="물건 목록", description_en="Things")
    module = _module_with(first)
    feeds.publish_feed(db, _datasets([module])[0], [module])
    with db.session() as s:  # staff reword the English description only
        entry = s.scalar(select(CatalogueDataset).where(CatalogueDataset.feed == "tracker.things"))
        info = publishing.DatasetInfo(entry.name, title_ko=entry.title_ko, description_ko=entry.description_ko)
        publishing.save_dataset(s, "staff1", replace(info, description_en="Things we keep (staff's words)"))
    module = _module_with(replace(first, title="물건들", description="바뀐 설명", description_en="Changed"))
    feeds.publish_feed(db, _datasets([module])[0], [module])
    with db.session() as s:
        entry = s.scalar(select(CatalogueDataset).where(CatalogueDataset.feed == "tracker.things"))
        assert (entry.title_ko, entry.description_ko) == ("물건들", "바뀐 설명")
        assert entry.description_en == "Things we keep (staff's words)"
        [update] = [
            e for e in audit.entries(s, object_id=entry.name) if e.actor == feeds.ACTOR and e.action == "update"
        ]
        assert sorted(update.detail["fields"]) == ["description_ko", "title_ko"]
