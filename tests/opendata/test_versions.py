"""Every publication of a live resource stays downloadable: a version made from a live dataset's changed rows
keeps its rows as Parquet, shown with what changed; past the retention setting only its record stays."""

from __future__ import annotations

import io
import re
from datetime import date

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from smartcity.app import create_app
from smartcity.core.module import Dataset, Module, datasets
from smartcity.opendata import feeds
from tests.conftest import make_settings


class Things:
    """A module's rows by id (what a live dataset declares: all of them, or those of some keys)."""

    def __init__(self) -> None:
        self.rows = {n: {"id": n, "name": f"물건 {n}", "seen": date(2026, 1, n)} for n in (1, 2, 3)}

    def every(self, session):
        return [dict(r) for r in self.rows.values()]

    def by_key(self, session, keys):
        return [dict(self.rows[k]) for k in keys if k in self.rows]


@pytest.fixture
def live_things(db, db_url, tmp_path):
    """A keyed live dataset published once in full, in an app keeping the rows of its two newest versions."""
    app = create_app(make_settings(db_url, tmp_path, opendata_version_snapshots_kept=2), db)
    things = Things()
    module = Module(
        name="tracker", datasets=(Dataset("things", "물건", things.every, key="id", rows_by_key=things.by_key),)
    )
    (declared,) = datasets([module])
    with TestClient(app) as client:
        first = feeds.publish_feed(db, declared, [module])
        assert first.version == 1

        def change(keys) -> int:
            done = feeds.publish_feed_changes(db, declared, [module], set(keys))
            return done.version

        yield client, things, change, first.resource_id


def rows_of(client, uid: str, number: int) -> list[tuple]:
    got = client.get(f"/opendata/resources/{uid}/versions/{number}/download")
    assert got.status_code == 200, got.text
    table = pq.read_table(io.BytesIO(got.content))
    return sorted(zip(*(table.column(n).to_pylist() for n in ("id", "name", "seen")), strict=True))


def test_a_version_made_from_changed_rows_is_downloadable_with_its_diff(live_things):
    client, things, change, uid = live_things
    things.rows[2]["name"] = "바뀐 물건"
    things.rows[4] = {"id": 4, "name": "새 물건", "seen": date(2026, 1, 4)}
    del things.rows[1]
    assert change({1, 2, 4}) == 2
    things.rows[3]["name"] = "또 바뀐 물건"
    assert change({3}) == 3
    assert rows_of(client, uid, 2) == [
        (2, "바뀐 물건", date(2026, 1, 2)),
        (3, "물건 3", date(2026, 1, 3)),
        (4, "새 물건", date(2026, 1, 4)),
    ]
    assert rows_of(client, uid, 3)[1] == (3, "또 바뀐 물건", date(2026, 1, 3))
    # The same file through the download API, and the first version's CSV as it was published.
    same = client.get(f"/opendata/resources/{uid}/download", params={"version": 2})
    assert same.status_code == 200 and same.content[:4] == b"PAR1"
    first = client.get(f"/opendata/resources/{uid}/versions/1/download")
    assert first.status_code == 200 and "물건 1" in first.content.decode()
    # The dataset page lists each version with what changed and a link to its file.
    page = client.get("/opendata/datasets/tracker-things").text
    row = re.search(r'<tr data-version="2">(.*?)</tr>', page, re.S)[1]
    assert 'data-added="1" data-removed="1" data-changed="1"' in row and "+1" in row and "−1" in row
    assert f"/opendata/resources/{uid}/versions/2/download" in row and "rows-v2.parquet" in row
    # In Korean, counts other than one read in Korean too (the merged catalogues kept English's plural rule).
    assert "3행" in page and "버전 3개" in page and "수시(실시간)" in page


def test_past_the_retention_a_version_keeps_its_record_not_its_rows(live_things):
    client, things, change, uid = live_things
    for n in range(2, 6):  # versions 2..5, each changing one name
        things.rows[1]["name"] = f"이름 {n}"
        assert change({1}) == n
    gone = client.get(f"/opendata/resources/{uid}/versions/3/download")
    assert gone.status_code == 404
    assert rows_of(client, uid, 4)[0][1] == "이름 4" and rows_of(client, uid, 5)[0][1] == "이름 5"
    # A file the whole publication made is not a snapshot: it stays.
    assert client.get(f"/opendata/resources/{uid}/versions/1/download").status_code == 200
    page = client.get("/opendata/datasets/tracker-things").text
    row = re.search(r'<tr data-version="3">(.*?)</tr>', page, re.S)[1]
    assert 'data-added="0" data-removed="0" data-changed="1"' in row and "download" not in row


def test_the_demo_catalogues_live_datasets_and_the_first_refresh_publishes_their_first_version(db, app):
    from sqlalchemy import select

    from smartcity.opendata.models import Dataset as CatalogueDataset
    from smartcity.opendata.models import Resource
    from tests.reports.helpers import GANGNAM, file_report

    report = file_report(db, where=GANGNAM)  # made before the server starts, as the demo's are
    lines = list(feeds.demo(db))
    assert "reports-reports" in lines[0]
    with db.session() as s:
        assert s.scalar(select(Resource.id)) is None  # catalogued, nothing published yet
        feeds_catalogued = set(s.scalars(select(CatalogueDataset.feed)))
    assert {"reports.reports", "assets.assets"} <= feeds_catalogued
    # A process that just started publishes what is catalogued without waiting for an event.
    done = feeds.refresh_all(db, only_due=True)
    assert "reports.reports: version 1, 1 rows (+1 -0 ~0)" in done, done
    with TestClient(app) as client:
        page = client.get("/opendata/datasets/reports-reports").text
        assert "1행" in page and report
