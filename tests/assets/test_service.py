"""The asset registry: importing the official lists (defects reported, re-imports idempotent), listing,
and nearest() against brute force — on both stores where storage is involved.

Imports are checked on synthetic lists with planted defects (tests/synthetic.py) always, and on the real
Gangnam lists (`real_data`) where they are found."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from sqlalchemy import func, select

from smartcity.assets import service
from smartcity.assets.models import Asset
from smartcity.core import audit, render
from smartcity.core.errors import InvalidInput, OutsideCity
from tests import synthetic
from tests.conftest import seoul_data


def _import(db, name, kind, source=None, fmt=None):
    data = seoul_data(name).read_bytes()
    with db.session() as s:
        return service.import_csv(s, data, kind, source=source or name, fmt=fmt)


def _load(db, planted: synthetic.Planted, kind: str):
    with db.session() as s:
        return service.import_csv(s, planted.data, kind, source=planted.name)


def _matches_planted(problems, planted: dict[int, str]) -> bool:
    """The import reported exactly the planted lines, each for the planted reason."""
    return {p.row for p in problems} == set(planted) and all(p.reason.startswith(planted[p.row]) for p in problems)


def _count(db, **where):
    with db.session() as s:
        q = select(func.count()).select_from(Asset)
        for k, v in where.items():
            q = q.where(getattr(Asset, k) == v)
        return s.scalar(q)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949"])
def test_national_cctv_list_reports_its_defects_and_reimports_idempotently(db, encoding):
    planted = synthetic.national_cctv(encoding=encoding)
    report = _load(db, planted, "cctv")
    assert report.format == "national-cctv" and report.rows == planted.rows
    assert _matches_planted(report.skipped, planted.skipped), report.skipped
    assert _matches_planted(report.warnings, planted.warned), report.warnings
    assert report.created == planted.imported
    assert _count(db, kind="cctv") == report.created
    with db.session() as s:
        rows = list(s.scalars(select(Asset).where(Asset.kind == "cctv")))
        assert all(a.district_code is not None and a.attributes["keep_days"] in (0, 30) for a in rows)
        assert {a.attributes["agency"] for a in rows} <= set(synthetic.AGENCIES)  # Korean text decoded
        lat, lon = planted.stacked
        assert len([a for a in rows if (a.lat, a.lon) == (lat, lon)]) == planted.stacked_rows
        assert audit.entries(s, object_type="assets", object_id="cctv")[0].action == "import"
    again = _load(db, planted, "cctv")
    assert (again.created, again.updated, again.unchanged) == (0, 0, report.created)
    assert _count(db, kind="cctv") == report.created


def test_safety_cctv_list_keeps_rows_with_broken_text_and_says_so(db):
    planted = synthetic.safety_cctv()
    report = _load(db, planted, "cctv")
    assert report.format == "seoul-safety-cctv"
    assert report.skipped == [] and report.created == planted.rows
    assert _matches_planted(report.warnings, planted.warned)
    with db.session() as s:
        rows = list(s.scalars(select(Asset).where(Asset.source == planted.name)))
    assert len([a for a in rows if (a.lat, a.lon) == planted.stacked]) == planted.stacked_rows
    assert all(
        "?" in a.attributes["address_original"] and "?" not in a.attributes["address"] and a.attributes["address"]
        for a in rows
    )
    assert _load(db, planted, "cctv").created == 0


def test_wifi_and_sensor_lists_report_their_defects(db):
    wifi = synthetic.wifi()
    report = _load(db, wifi, "wifi")
    assert report.format == "wifi" and report.created == wifi.imported
    assert _matches_planted(report.warnings, wifi.warned)
    assert _count(db, kind="wifi", lat=wifi.stacked[0], lon=wifi.stacked[1]) == wifi.stacked_rows
    sensors = synthetic.sdot()
    report = _load(db, sensors, "sensor")
    assert report.format == "sdot"
    assert _matches_planted(report.skipped, sensors.skipped), report.skipped
    assert report.created == sensors.imported == _count(db, kind="sensor")


@pytest.mark.real_data
def test_real_national_cctv_list_imports_and_reimports_idempotently(db):
    report = _import(db, "cctv_gangnam.csv", "cctv")
    assert report.format == "national-cctv"
    assert report.rows == 1763
    assert report.created + len(report.skipped) == 1763
    assert report.created > 1700
    assert _count(db, kind="cctv") == report.created
    with db.session() as s:
        a = s.scalars(select(Asset).where(Asset.kind == "cctv").order_by(Asset.id)).first()
        assert a.district_code is not None
        assert a.attributes["keep_days"] in (0, 30)
        assert a.attributes["agency"]
        assert audit.entries(s, object_type="assets", object_id="cctv")[0].action == "import"
    again = _import(db, "cctv_gangnam.csv", "cctv")
    assert (again.created, again.updated) == (0, 0)
    assert again.unchanged == report.created
    assert _count(db, kind="cctv") == report.created


@pytest.mark.real_data
def test_seoul_safety_cctv_list_keeps_rows_with_broken_text_and_says_so(db):
    report = _import(db, "cctv_gangnam_safety.csv", "cctv")
    assert report.format == "seoul-safety-cctv"
    assert report.rows == 7007
    # The Korean address text was damaged at the source: every row is imported, each with a warning.
    assert len(report.warnings) >= 7000
    assert report.reasons(report.warnings).most_common(1)[0][0].startswith("broken text")
    assert report.created + len(report.skipped) == 7007
    # Several cameras share a position (one pole, several lenses): all are kept, in file order.
    with db.session() as s:
        at_one_spot = s.scalar(
            select(func.count()).select_from(Asset).where(Asset.lat == 37.4866, Asset.lon == 127.0567)
        )
        assert at_one_spot >= 3
        row = s.scalars(select(Asset).where(Asset.source == "cctv_gangnam_safety.csv")).first()
        assert row.attributes["address"] and "?" in row.attributes["address_original"]
    assert _import(db, "cctv_gangnam_safety.csv", "cctv").created == 0


@pytest.mark.real_data
def test_wifi_and_sensor_lists(db):
    wifi = _import(db, "wifi_gangnam.csv", "wifi")
    assert wifi.format == "wifi" and wifi.created == 799 - len(wifi.skipped)
    sensors = _import(db, "sdot_sensors.csv", "sensor")
    assert sensors.format == "sdot"
    # A few sensors lie outside the (approximate) district polygons: skipped with the reason.
    assert all(p.reason.startswith("outside the city") for p in sensors.skipped)
    assert sensors.created + len(sensors.skipped) == 851
    with db.session() as s:
        serial = s.scalar(select(Asset.external_id).where(Asset.kind == "sensor").limit(1))
        assert serial.startswith("V0")


def test_defective_rows_are_reported_and_the_rest_imported(db):
    clean = synthetic.national_cctv(n=9, defects=False).data.decode("utf-8").splitlines()
    lines = (
        clean[:6]
        + [
            "abc,127.05,x,y,30,1,agency,02",  # bad number
            "37.5,,x,y,30,1,agency,02",  # missing longitude
            "137.5,127.05,x,y,30,1,agency,02",  # out of range
            "35.1796,129.0756,Busan,Busan,30,1,agency,02",  # outside the city
            "37.5,127.05,x,y,30,1,agency,02,surplus,cells",  # too many cells
            "nan,127.05,x,y,30,1,agency,02",
        ]
        + clean[6:10]
    )
    data = ("\n".join(lines) + "\n").encode()
    with db.session() as s:
        report = service.import_csv(s, data, "cctv", source="mixed.csv")
    assert report.created == 9
    reasons = {p.row: p.reason for p in report.skipped}
    assert set(reasons) == {7, 8, 9, 10, 11, 12}
    assert reasons[7].startswith("latitude is not a number")
    assert reasons[8].startswith("longitude is not a number")
    assert reasons[9].startswith("coordinates out of range")
    assert reasons[10].startswith("outside the city")
    assert reasons[11].startswith("too many cells")
    assert "finite" in reasons[12]


def test_cp949_files_and_bad_arguments(db):
    text = "lat,lon,name\n37.5172,127.0473,강남구청\n"
    with db.session() as s:
        report = service.import_csv(s, text.encode("cp949"), "other", source="cp949.csv")
        assert report.created == 1 and report.format == "generic"
        assert s.scalar(select(Asset.name).where(Asset.source == "cp949.csv")) == "강남구청"
    with pytest.raises(InvalidInput) as e, db.session() as s:
        service.import_csv(s, b"lat,lon\n", "submarine", source="x")
    assert e.value.code == "unknown_kind"
    with pytest.raises(InvalidInput) as e, db.session() as s:
        service.import_csv(s, b"lat,lon\n", "cctv", source="x", fmt="xml")
    assert e.value.code == "unknown_format"
    with pytest.raises(InvalidInput), db.session() as s:
        service.import_csv(s, b"", "cctv", source="x")


def test_create_list_bbox_and_delete(db):
    with db.session() as s:
        a = service.create_asset(s, "cctv", 37.5172, 127.0473, name="Gangnam-gu office", actor="test")
        b = service.create_asset(s, "wifi", 37.5665, 126.9780, name="City Hall", actor="test")
        ids = (a.id, b.id)
    with pytest.raises(OutsideCity), db.session() as s:
        service.create_asset(s, "cctv", 35.1796, 129.0756)
    with db.session() as s:
        assert [x.id for x in service.list_assets(s, "cctv")] == [ids[0]]
        box = service.parse_bbox("127.0,37.5,127.1,37.55")
        assert [x.id for x in service.list_assets(s, bbox=box)] == [ids[0]]
        gj = render.feature_collection(service.as_points(service.list_assets(s)))
        assert gj["features"][0]["geometry"]["coordinates"] == [127.0473, 37.5172]
        assert gj["features"][0]["properties"]["name"] == "Gangnam-gu office"
    with pytest.raises(InvalidInput):
        service.parse_bbox("1,2,3")
    with db.session() as s:
        service.delete_asset(s, ids[0])
        assert service.list_assets(s, "cctv") == []


def test_nearest_follows_changes_in_the_registry(db):
    planted = synthetic.national_cctv()
    _load(db, planted, "cctv")
    found = service.nearest(db, "cctv", 37.5172, 127.0473, k=5)
    assert len(found) == 5
    assert [d for _, d in found] == sorted(d for _, d in found)
    # The nearest camera in the file, by geodesic distance on the ellipsoid.
    closest = min(Geod(ellps="GRS80").inv(127.0473, 37.5172, lon, lat)[2] for lat, lon in planted.positions())
    assert found[0][1] == pytest.approx(closest, rel=1e-4, abs=0.05)
    with db.session() as s:
        new = service.create_asset(s, "cctv", 37.51721, 127.04731, name="new camera", actor="test")
        new_id = new.id
    # The create published assets.changed; this process's index was rebuilt.
    first, distance = service.nearest(db, "cctv", 37.5172, 127.0473, k=1)[0]
    assert first.id == new_id and distance < 2
    assert service.nearest(db, "wifi", 37.5, 127.0) == []
    with pytest.raises(InvalidInput):
        service.nearest(db, "cctv", 37.5, 127.0, k=0)


def test_the_index_is_kept_once_per_store_and_dropped_when_assets_change(db):
    index = service.asset_index(db)
    assert service.asset_index(db) is index  # built once, kept in the context's slot
    with db.session() as s:
        camera = service.create_asset(s, "cctv", 37.5665, 126.978, actor="test").id
    rebuilt = service.asset_index(db)
    assert rebuilt is not index
    assert [r.id for r in rebuilt.kind("cctv").refs] == [camera]
    with db.session() as s:
        service.delete_asset(s, camera, actor="test")
    assert service.asset_index(db).kind("cctv").refs == []


# --- nearest() against brute force (no store needed: the index is built from refs) --------------

REFS = [
    service.AssetRef(i, "cctv", f"c{i}", lat, lon, None)
    for i, (lat, lon) in enumerate(
        (37.42 + (i * 7919 % 1000) / 1000 * 0.28, 126.76 + (i * 104729 % 1000) / 1000 * 0.43) for i in range(3000)
    )
]
INDEX = service.KindIndex(REFS, service.city_plane((37.5665, 126.9780)))


@settings(max_examples=200, deadline=None)
@given(lat=st.floats(37.40, 37.72), lon=st.floats(126.74, 127.21), k=st.integers(1, 12))
def test_nearest_matches_brute_force(lat, lon, k):
    got = INDEX.nearest(lat, lon, k)
    want = service.nearest_brute_force(REFS, lat, lon, k)
    assert len(got) == k
    # Distances on the city's plane agree with ellipsoidal geodesics to about 1e-5 across Seoul, so the
    # k nearest are the same up to ties, and each distance matches its rank's true distance.
    for (_, d), (_, true_d) in zip(got, want, strict=True):
        assert d == pytest.approx(true_d, rel=1e-4, abs=0.05)
    # And no asset left out is nearer than the farthest one returned.
    kth = want[-1][1]
    assert all(true_d <= kth + 0.05 for _, true_d in service.nearest_brute_force([r for r, _ in got], lat, lon, k))


def test_demo_assets_lie_in_their_districts_and_are_made_once(db):
    from smartcity.assets.service import demo_assets, nearest
    from smartcity.core.geo import geo_index

    first = demo_assets(db, per_district=4, gangnam=12)
    assert "cameras" in first and demo_assets(db) == "demo assets: already there"
    index = geo_index(db)
    with db.session() as s:
        rows = list(s.scalars(select(Asset)))
    assert len([a for a in rows if a.kind == "cctv"]) == 24 * 4 + 12
    for asset in rows:
        assert index.district_at(asset.lat, asset.lon).code == asset.district_code
    found = nearest(db, "cctv", 37.4966, 127.0577, 5)  # Daechi-dong, Gangnam
    assert len(found) == 5 and all(ref.name.startswith("강남구") for ref, _ in found)
