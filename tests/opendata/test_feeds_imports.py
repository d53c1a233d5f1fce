"""The asset dataset follows an import of a list (not only one asset's change): every imported asset is
published by itself, the skipped rows are not."""

from __future__ import annotations

import ckanapi

from smartcity.assets import service as assets
from tests.opendata.test_feeds import _rows_of

LIST = (
    "id,name,lat,lon\n"
    "gn-1,역삼역 1번 출구 CCTV,37.5006,127.0364\n"
    "gn-2,선릉역 CCTV,37.5045,127.0490\n"
    "gn-3,좌표 없는 CCTV,,\n"
    "gn-4,강남역 CCTV,37.4979,127.0276\n"
).encode()


def test_an_imported_asset_list_publishes_itself(live, db):
    ckan = ckanapi.RemoteCKAN(live.url)
    with db.session() as s:
        report = assets.import_csv(s, LIST, "cctv", source="gangnam-cctv.csv", fmt="generic")
    assert report.skipped  # the row without a position
    names = {"역삼역 1번 출구 CCTV", "선릉역 CCTV", "강남역 CCTV"}
    rows = _rows_of(ckan, "assets-assets", until=lambda rows: names <= {r.get("name") for r in rows})
    published = {r["name"] for r in rows if r["kind"] == "cctv"}
    assert names <= published and "좌표 없는 CCTV" not in published
