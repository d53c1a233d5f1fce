"""City geography: boundary import, point lookup, approximate districts — on both stores.

Boundary tests run on the synthetic files (tests/synthetic.py) always and on the real KOSTAT files where
they are found (the `boundaries` fixture)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, shape
from sqlalchemy import func, select

from smartcity.core import geo
from smartcity.core.city import load_profile
from smartcity.core.errors import InvalidInput, OutsideCity
from smartcity.core.models import District, Neighbourhood
from tests import synthetic

SEOUL = load_profile("seoul")


def _features(path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def _import(db, boundaries):
    districts = geo.parse_boundaries(boundaries.districts.read_bytes(), SEOUL)
    with db.session() as s:
        result = geo.import_districts(s, districts, boundaries.districts.name)
    geo.invalidate(db)
    hoods = geo.parse_boundaries(boundaries.neighbourhoods.read_bytes(), SEOUL)
    with db.session() as s:
        geo.import_neighbourhoods(s, hoods, boundaries.neighbourhoods.name, geo.geo_index(db))
    geo.invalidate(db)
    return result


def test_imported_boundaries_replace_the_approximate_ones(db, boundaries):
    with db.session() as s:
        assert s.scalar(select(func.count()).where(District.approximate)) == 25
    result = _import(db, boundaries)
    assert (result.created, result.updated) == (0, 25)  # same KOSTAT codes as the profile's points
    hoods = _features(boundaries.neighbourhoods)
    if boundaries.real:
        assert len(hoods) == 423
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(District).where(District.approximate)) == 0
        assert s.scalar(select(func.count()).select_from(Neighbourhood)) == len(hoods)
        # Each neighbourhood is tied to the district holding it, and KOSTAT codes start with the district's.
        placed = dict(s.execute(select(Neighbourhood.code, Neighbourhood.district_code)).all())
    assert placed == {f["properties"]["code"]: f["properties"]["code"][:5] for f in hoods}


def test_lookup_finds_the_district_and_neighbourhood_of_known_places(db, boundaries):
    _import(db, boundaries)
    index = geo.geo_index(db)
    # Seoul City Hall is in Jung-gu; COEX is in Gangnam-gu (Samseong-dong); Lotte World Tower in Songpa-gu.
    assert index.locate(37.5663, 126.9779).district.name_en == "Jung-gu"
    coex = index.locate(37.5116, 127.0594)
    assert coex.district.name_en == "Gangnam-gu"
    holding = synthetic.codes_at(boundaries.neighbourhoods, 37.5116, 127.0594)
    assert coex.neighbourhood is not None and coex.neighbourhood.code in holding
    if boundaries.real:
        assert coex.neighbourhood.name_ko.startswith("삼성")
    assert coex.neighbourhood.district_code == coex.district.code
    assert index.locate(37.5126, 127.1026).district.name_en == "Songpa-gu"


def test_points_outside_the_city_are_refused(db):
    index = geo.geo_index(db)
    with pytest.raises(OutsideCity):
        index.locate(35.1796, 129.0756)  # Busan
    with pytest.raises(InvalidInput):
        index.locate(91, 0)
    with pytest.raises(InvalidInput):
        index.locate("north", 127)


@pytest.fixture(scope="module")
def real_index(boundaries):
    """Index over the districts of a boundary file, with the polygons kept for a brute-force cross-check."""
    areas = [
        (geo.Area(f["properties"]["code"], f["properties"]["name"], f["properties"]["name_eng"]), shape(f["geometry"]))
        for f in _features(boundaries.districts)
    ]
    return geo.GeoIndex(areas, [], SEOUL.outline_polygon), areas


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(37.40, 37.72), lon=st.floats(126.74, 127.21))
def test_index_agrees_with_a_loop_over_every_polygon(real_index, lat, lon):
    index, areas = real_index
    point = Point(lon, lat)
    expected = {a.code for a, g in areas if g.intersects(point)}
    found = index.district_at(lat, lon)
    if expected:
        assert found is not None and found.code in expected
    else:
        assert found is None


def test_vectorised_lookup_matches_single_lookups(real_index):
    index, _ = real_index
    lats = [37.5663, 37.5116, 35.0, 37.6543]
    lons = [126.9779, 127.0594, 129.0, 127.0565]
    assert index.districts_at(lats, lons) == [index.district_at(a, b) for a, b in zip(lats, lons, strict=True)]


def test_approximate_districts_cover_the_city_without_overlap():
    areas = geo.approximate_districts(SEOUL)
    assert len(areas) == 25
    outline = SEOUL.outline_polygon
    total = sum(a.geometry.area for a in areas)
    assert abs(total - outline.area) / outline.area < 1e-6
    for seed, area in zip(SEOUL.districts, areas, strict=True):
        assert area.geometry.contains(Point(seed.point[1], seed.point[0]))


# --- bad input: nothing is half-written ----------------------------------------------------------


def _fc(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def _square(code, x=127.0, y=37.5, size=0.01, name="테스트구"):
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {
        "type": "Feature",
        "properties": {"code": code, "name": name, "name_eng": "Test-gu"},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


@pytest.mark.parametrize(
    "data, problem",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"type": "Feature"}), "FeatureCollection"),
        (json.dumps(_fc()), "no features"),
    ],
)
def test_malformed_files_are_refused(data, problem):
    with pytest.raises(InvalidInput, match=problem):
        geo.parse_boundaries(data, SEOUL)


def test_every_problem_is_reported_and_nothing_is_stored(db):
    bowtie = _square("B2")
    ring = [[127.0, 37.5], [127.01, 37.51], [127.01, 37.5], [127.0, 37.51], [127.0, 37.5]]
    bowtie["geometry"]["coordinates"] = [ring]
    point = _square("P3")
    point["geometry"] = {"type": "Point", "coordinates": [127.0, 37.5]}
    busan = _square("F4", x=129.0, y=35.1)
    nameless = _square("N5", name="")
    data = _fc(_square("OK1"), bowtie, point, busan, nameless, _square("OK1", x=127.05))
    with pytest.raises(InvalidInput) as caught:
        geo.parse_boundaries(json.dumps(data), SEOUL)
    problems = {(d["feature"], d["problem"].split(":")[0]) for d in caught.value.details}
    assert problems == {
        (1, "polygon is not valid"),
        (2, "geometry must be a Polygon or MultiPolygon, not Point"),
        (3, "polygon lies outside the city's extent"),
        (4, "no name property"),
        (5, "code appears twice"),
    }
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(District).where(District.code == "OK1")) == 0


# --- the one metric plane -------------------------------------------------------------------------

_GRS80 = __import__("pyproj").Geod(ellps="GRS80")


@settings(max_examples=200, deadline=None)
@given(st.floats(-0.25, 0.25), st.floats(-0.3, 0.3), st.floats(-0.25, 0.25), st.floats(-0.3, 0.3))
def test_the_local_plane_measures_like_the_ellipsoid_near_its_centre(dlat1, dlon1, dlat2, dlon2):
    """Within about 30 km of the centre the plane's distances are the geodesic ones to 0.5 %."""
    lat0, lon0 = SEOUL.center
    a, b = (lat0 + dlat1, lon0 + dlon1), (lat0 + dlat2, lon0 + dlon2)
    plane = geo.LocalPlane(SEOUL.center)
    (x1, y1), (x2, y2) = plane.xy(*a), plane.xy(*b)
    on_plane = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
    true = _GRS80.inv(a[1], a[0], b[1], b[0])[2]
    assert on_plane == pytest.approx(true, rel=0.005, abs=0.5)
    assert geo.haversine_m(*a, *b) == pytest.approx(true, rel=0.005, abs=0.5)


@pytest.mark.parametrize("lat", [0.0, 20.0, 37.55, 50.0])
def test_area_in_square_metres_matches_the_ellipsoid(lat):
    """Good to 1 % up to mid latitudes (a zone's size limits need no more)."""
    square = shape(
        {
            "type": "Polygon",
            "coordinates": [[(10, lat), (10.01, lat), (10.01, lat + 0.01), (10, lat + 0.01), (10, lat)]],
        }
    )
    true = abs(_GRS80.geometry_area_perimeter(square)[0])
    assert geo.area_m2(square) == pytest.approx(true, rel=0.01)


def test_the_transverse_mercator_plane_keeps_distances_across_the_city():
    plane = geo.transverse_mercator(SEOUL.center)
    west, south, east, north = SEOUL.bbox
    (x1, y1), (x2, y2) = plane.transform(west, south), plane.transform(east, north)
    true = _GRS80.inv(west, south, east, north)[2]
    assert ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5 == pytest.approx(true, rel=1e-4)
