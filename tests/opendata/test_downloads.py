"""Downloads of a resource: the current rows as CSV and GeoJSON, an old version's file as published; an
unpublished dataset's resource is not given out; publishing and withdrawing a dataset is audited."""

from __future__ import annotations

import csv
import io

from smartcity.core import audit
from smartcity.opendata import publishing
from tests.opendata.helpers import PUBLISHER, publish

FIRST = "장소,lat,lon,수량\n역삼역,37.5006,127.0364,3\n강남역,37.4979,127.0276,5\n"
SECOND = "장소,lat,lon,수량\n역삼역,37.5006,127.0364,4\n강남역,37.4979,127.0276,5\n선릉역,37.5045,127.0490,\n"


def test_current_rows_as_csv_and_geojson_and_an_old_version_as_published(client, db):
    first = publish(db, "stations", FIRST.encode("cp949"), "stations.csv")
    publish(db, "stations", SECOND.encode(), "stations.csv")
    url = f"/opendata/resources/{first.resource_id}/download"
    now = client.get(url)
    assert now.status_code == 200 and now.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(now.content.decode("utf-8-sig"))))
    assert table == [
        ["장소", "lat", "lon", "수량"],
        ["역삼역", "37.5006", "127.0364", "4"],
        ["강남역", "37.4979", "127.0276", "5"],
        ["선릉역", "37.5045", "127.049", ""],
    ]
    old = client.get(url, params={"version": 1})
    assert old.status_code == 200 and old.content == FIRST.encode("cp949")  # byte for byte, as published
    points = client.get(url, params={"format": "geojson"}).json()
    assert [f["geometry"]["coordinates"] for f in points["features"]] == [
        [127.0364, 37.5006],
        [127.0276, 37.4979],
        [127.049, 37.5045],
    ]
    assert points["features"][0]["properties"]["장소"] == "역삼역"
    assert client.get(url, params={"version": 9}).status_code == 404


def test_a_withdrawn_dataset_gives_nothing_out_and_both_steps_are_audited(client, db):
    done = publish(db, "withdrawn", FIRST.encode(), "w.csv")
    url = f"/opendata/resources/{done.resource_id}/download"
    with db.session() as s:
        publishing.set_published(s, PUBLISHER, "withdrawn", False)
    assert client.get(url).status_code == 403
    assert client.get("/api/3/action/package_search", params={"q": "withdrawn"}).json()["result"]["count"] == 0
    with db.session() as s:
        publishing.set_published(s, PUBLISHER, "withdrawn", True)
    assert client.get(url).status_code == 200
    assert client.get("/api/3/action/package_search", params={"q": "withdrawn"}).json()["result"]["count"] == 1
    with db.session() as s:
        actions = [e.action for e in audit.entries(s, object_type="opendata.dataset", object_id="withdrawn")]
        assert actions.count("unpublish") == 1 and actions.count("publish") == 1
    no_points = publish(db, "no-points", b"a,b\n1,2\n", "n.csv")
    assert client.get(f"/opendata/resources/{no_points.resource_id}/download?format=geojson").status_code == 422
