"""The gazetteer: place search (jamo and romanised keys, one typo forgiven), reverse geocoding, the import of
the city's bus-stop and subway-station lists (written here, and the real ones where found), its HTTP API and
the geocoder setting — on both stores."""

from __future__ import annotations

import time

import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import func, select

from smartcity.cli import main
from smartcity.core import geo, places, places_import
from smartcity.core.city import load_profile
from smartcity.core.errors import InvalidInput
from smartcity.settings import get_settings
from tests.conftest import make_settings, seoul_data

SEOUL = load_profile("seoul")
# Gangnam station's exit 10, about 60 m from the station's point in the list.
NEAR_GANGNAM = (37.4985, 127.0276)

BUS_HEADER = "NODE_ID,ARS_ID,정류소명,X좌표,Y좌표,정류소타입\n"
BUS_ROWS = [
    "121000011,22011,역삼세무서,127.0373,37.4958,중앙차로\n",  # line 2
    "121000012,22012,테헤란로북측.강남역방면,127.0301,37.4991,일반차로\n",  # 3
    "121000013,22013,,127.0301,37.4991,일반차로\n",  # 4: no name
    "121000014,22014,도곡동,127.04x,37.48,일반차로\n",  # 5: not a number
    "121000015,22015,부산역,129.0415,35.1151,일반차로\n",  # 6: outside the city
    "121000011,22016,역삼세무서,127.0373,37.4958,중앙차로\n",  # 7: the id again
    "121000017,22017,선릉역.포스코사거리,127.0489,37.5045,일반차로\n",  # 8
]


def bus_file(tmp_path, encoding="utf-8-sig", rows=BUS_ROWS):
    path = tmp_path / "bus_stops.csv"
    path.write_bytes((BUS_HEADER + "".join(rows)).encode(encoding))
    return path


def subway_file(tmp_path):
    path = tmp_path / "subway_stations.csv"
    path.write_text(
        "\ufeff역명,ROUTE,위도,경도,역_승하차_일평균\n"
        "매봉,3호선,37.486947,127.046769,30000.0\n"
        "도곡,3호선,37.490922,127.055452,20000.0\n"
        "도곡,수인분당선,37.491224,127.055186,18000.0\n"
        "한티(대치),수인분당선,37.496237,127.052873,15000.0\n"
        "오남,진접선,37.705,127.19281,\n",
        encoding="utf-8",
    )
    return path


# --- keys ----------------------------------------------------------------------------------------


def test_half_typed_hangul_is_a_prefix_of_the_name():
    name = places.search_key("화곡역")
    for typed in ("ㅎ", "호", "화", "화ㄱ", "화고", "화곡"):  # what the keyboard shows on the way
        assert name.startswith(places.search_key(typed)), typed
    assert places.search_key("가나").startswith(places.search_key("간"))  # ㄴ taken as a final, then moved on
    assert not places.search_key("강남").startswith(places.search_key("감"))


def test_romanised_keys_ignore_case_spaces_and_punctuation():
    assert places.search_key("Gangnam Station") == places.search_key("gangnam-station") == "gangnamstation"
    assert places.romanise("신촌역") == "Sinchonyeok"
    assert places.romanise("선릉") == "Seolleung"


# --- search and reverse on the built-in gazetteer ------------------------------------------------


def test_search_finds_well_known_places_by_prefix_typo_and_romanised_name(db):
    g = places.Gazetteer(_context(db))
    assert [p.name_ko for p in g.search("강남역", "ko")][:1] == ["강남역"]
    assert g.search("강남", "ko")[0].name_ko == "강남역"  # a station before the district office and district
    assert {"강남구청", "강남구"} <= {p.name_ko for p in g.search("강남", "ko")}
    assert g.search("강넘역", "ko")[0].name_ko == "강남역"  # one wrong vowel
    assert g.search("홍대입구", "ko")[0].name_ko == "홍대입구역"
    assert g.search("GANGNAM station", "en")[0].name_ko == "강남역"
    assert g.search("seoul stat", "en")[0].name_en == "Seoul Station"
    assert g.search("seoul stetion", "en")[0].name_en == "Seoul Station"  # one wrong letter
    assert g.search("zzzz", "ko") == []


def test_reverse_names_the_nearest_place_and_the_areas(db, boundaries):
    _import_boundaries(db, boundaries)
    g = places.Gazetteer(_context(db))
    near = g.reverse(*NEAR_GANGNAM)
    assert near.place is not None and near.place.name_ko == "강남역"
    assert near.distance_m == pytest.approx(geo.haversine_m(*NEAR_GANGNAM, near.place.lat, near.place.lon), rel=0.01)
    located = geo.geo_index(db).locate(*NEAR_GANGNAM)
    assert near.district == located.district and near.neighbourhood == located.neighbourhood
    assert near.neighbourhood is not None
    assert near.text("ko") == f"강남역 근처, {located.neighbourhood.name_ko}, {located.district.name_ko}"
    assert near.text("en").startswith("near Gangnam Station, ")
    # Far from every named point (Bukhansan's slopes): only the areas, no "near".
    lonely = g.reverse(37.6400, 126.9750)
    assert lonely.place is None and not any("근처" in part for part in lonely.parts("ko"))


# --- import --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949"])
def test_a_bus_stop_list_is_read_in_any_encoding_and_its_defects_reported(tmp_path, encoding):
    parsed = places_import.parse_places(bus_file(tmp_path, encoding).read_bytes(), SEOUL)
    assert parsed.layout == "bus_stops" and parsed.rows == 7
    assert [(p["line"], p["problem"]) for p in parsed.problems] == [
        (4, "no usable name"),
        (5, "the coordinates are not numbers"),
        (6, "the place lies outside the city"),
        (7, "the id appears twice in the file"),
    ]
    assert parsed.problems[1]["value"] == "37.48, 127.04x"
    assert [(p.ref, p.name_ko, p.line) for p in parsed.places] == [
        ("121000011", "역삼세무서", 2),
        ("121000012", "테헤란로북측.강남역방면", 3),
        ("121000017", "선릉역.포스코사거리", 8),
    ]
    assert parsed.places[0].kind == "bus_stop" and parsed.places[0].lat == 37.4958


def test_a_subway_list_gives_one_place_per_station(tmp_path):
    parsed = places_import.parse_places(subway_file(tmp_path).read_bytes(), SEOUL)
    assert parsed.layout == "subway_stations"
    assert [p.name_ko for p in parsed.places] == ["매봉역", "도곡역", "한티역 (대치)"]
    assert parsed.merged == 1  # 도곡 on its second line
    assert parsed.places[1].name_en == "Dogok Station"
    assert [(p["line"], p["problem"]) for p in parsed.problems] == [(6, "the place lies outside the city")]


def test_an_unknown_layout_is_refused_naming_the_expected_columns():
    with pytest.raises(InvalidInput) as err:
        places_import.parse_places(b"a,b,c\n1,2,3\n", SEOUL)
    assert err.value.code == "unknown_layout" and "정류소명" in err.value.message


def test_import_places_command_loads_reports_and_is_idempotent(run, db, tmp_path):
    path = bus_file(tmp_path)
    out = run("import", "places", str(path))
    assert out.exit_code == 0, out.output
    assert "3 added, 0 updated, 0 unchanged, 4 rows skipped" in out.output
    assert "line 5: the coordinates are not numbers (37.48, 127.04x)" in out.output
    with db.session() as s:
        stored = s.scalar(select(func.count()).select_from(places.Place))
        tax = s.scalar(select(places.Place).where(places.Place.ref == "121000011"))
        assert stored == 3 and tax.district_code == geo.geo_index(db).district_at(37.4958, 127.0373).code
    again = run("import", "places", str(path))
    assert "0 added, 0 updated, 3 unchanged" in again.output
    out = run("import", "places", str(subway_file(tmp_path)), "--kind", "subway_station")
    assert "3 added" in out.output and "1 rows were other lines of a station" in out.output
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(places.Place)) == 6


def test_imported_places_are_found_once_the_import_commits(db, tmp_path):
    g = places.Gazetteer(_context(db))
    assert not g.search("역삼세무서", "ko")  # the index is built before the import
    parsed = places_import.parse_places(bus_file(tmp_path).read_bytes(), SEOUL)
    with db.session() as s:
        places_import.import_places(s, parsed.places, "bus_stops.csv", geo.geo_index(db))
    assert g.search("역삼세무", "ko")[0].name_ko == "역삼세무서"
    assert g.search("포스코", "ko")[0].name_ko == "선릉역.포스코사거리"  # a later word of the name
    assert g.search("Yeoksamsemuseo", "en")[0].name_ko == "역삼세무서"  # the romanised name made on import


def test_a_module_s_named_things_join_the_search_and_leave_it_when_removed(client, db):
    """Assets declare their names to the gazetteer (Module.places): read from their table, not copied, and
    read again when `assets.changed` arrives (on PostgreSQL through LISTEN, as in a serving process)."""
    from smartcity.assets import service as assets
    from tests.conftest import eventually

    def found():
        return client.get("/api/places", params={"q": "테헤란로 152"}).json()["places"]

    assert not found()  # the index is built before the asset exists
    with db.session() as s:
        camera = assets.create_asset(s, "wifi", 37.5006, 127.0366, name="테헤란로 152 강남파이낸스센터").id
    hit = eventually(found)[0]
    assert (hit["kind"], hit["name_ko"]) == ("asset", "테헤란로 152 강남파이낸스센터")
    near = client.get("/api/places/reverse", params={"lat": 37.5006, "lon": 127.0366}).json()
    assert near["place"] is None or near["place"]["kind"] != "asset"  # never "near a camera"
    with db.session() as s:
        assets.delete_asset(s, camera)
    eventually(lambda: not found())
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(places.Place)) == 0  # nothing was copied


# --- HTTP ----------------------------------------------------------------------------------------


def test_the_places_api_searches_and_reverses(client, db):
    body = client.get("/api/places", params={"q": "강남역", "lang": "en"}).json()
    first = body["places"][0]
    assert (first["name"], first["kind"]) == ("Gangnam Station", "subway_station")
    assert first["district_code"] == geo.geo_index(db).district_at(first["lat"], first["lon"]).code
    near = client.get("/api/places/reverse", params={"lat": NEAR_GANGNAM[0], "lon": NEAR_GANGNAM[1]}).json()
    assert near["place"]["name_ko"] == "강남역" and near["text"].startswith("강남역 근처")
    assert near["district"]["code"] == geo.geo_index(db).district_at(*NEAR_GANGNAM).code
    assert client.get("/api/places", params={"q": ""}).status_code == 422
    bad = client.get("/api/places", params={"q": "강남", "near": "north"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_near"


def test_the_base_layer_endpoints_answer_for_the_view(client, db, boundaries):
    _import_boundaries(db, boundaries)
    box = (127.02, 37.49, 127.04, 37.51)  # around Gangnam station
    hoods = client.get("/api/geo/neighbourhoods.geojson", params={"bbox": ",".join(map(str, box))}).json()
    index = geo.geo_index(db)
    areas = geo.parse_boundaries(boundaries.neighbourhoods.read_bytes(), SEOUL)
    expected = {a.code for a in areas if shapely.box(*box).intersects(a.geometry)}
    assert {f["properties"]["code"] for f in hoods["features"]} == expected
    assert 0 < len(expected) < len(areas)
    for f in hoods["features"]:
        lat, lon = f["properties"]["label"]
        assert index.neighbourhood_at(lat, lon).code == f["properties"]["code"]  # the name sits inside
    labels = client.get("/api/places", params={"bbox": ",".join(map(str, box)), "limit": 50}).json()["places"]
    assert "강남역" in {p["name_ko"] for p in labels}
    assert all(box[0] <= p["lon"] <= box[2] and box[1] <= p["lat"] <= box[3] for p in labels)
    assert not {p["kind"] for p in labels} & {"district", "neighbourhood", "asset"}
    missing = client.get("/api/places")
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "required"


class FixedGeocoder:
    """A deployment's own geocoder, as SMARTCITY_GEOCODER names it: answers one place for anything."""

    def __init__(self, context):
        self.context = context

    def search(self, text, language, near=None, limit=10):
        return [places.PlaceHit("landmark", f"외부 {text}", f"external {text}", 37.5, 127.0)]

    def reverse(self, lat, lon):
        return places.Nearby(lat, lon, None, None, None, None)


def test_the_geocoder_setting_replaces_the_gazetteer(db, tmp_path):
    from fastapi.testclient import TestClient

    from smartcity.app import create_app

    settings = make_settings(db.url, tmp_path, geocoder="tests.core.test_places:FixedGeocoder")
    with TestClient(create_app(settings, db)) as c:
        assert c.get("/api/places", params={"q": "강남역"}).json()["places"][0]["name_ko"] == "외부 강남역"


# --- the real lists ------------------------------------------------------------------------------


@pytest.mark.real_data
def test_the_real_bus_stop_and_subway_lists(db):
    bus = places_import.parse_places(seoul_data("bus_stops.csv").read_bytes(), SEOUL)
    assert bus.layout == "bus_stops" and bus.rows == 11_250
    assert len(bus.places) + len(bus.problems) == bus.rows and len(bus.places) > 11_000
    subway = places_import.parse_places(seoul_data("subway_stations.csv").read_bytes(), SEOUL)
    assert subway.rows == 783 and subway.merged > 50
    assert all(p["problem"] == "the place lies outside the city" for p in subway.problems)
    with db.session() as s:
        places_import.import_places(s, bus.places, "bus_stops.csv", geo.geo_index(db))
        places_import.import_places(s, subway.places, "subway_stations.csv", geo.geo_index(db))
    g = places.Gazetteer(_context(db))
    built = time.perf_counter()
    g.search("강남역", "ko")  # builds the index
    built = time.perf_counter() - built
    started = time.perf_counter()
    hits = g.search("강남역", "ko")
    g.search("잠실", "ko")
    g.search("ㅅㅓㄹ", "ko")
    took = (time.perf_counter() - started) / 3
    assert hits[0].name_ko == "강남역" and hits[0].kind == "subway_station"
    # The list's stop names that mention the station come after it.
    assert any(h.kind == "bus_stop" and "강남역" in h.name_ko for h in g.search("강남역", "ko", limit=20))
    assert took < 0.02, f"a search took {took * 1000:.1f} ms"
    assert built < 5, f"building the index took {built:.1f} s"
    assert g.search("잠실", "ko")[0].name_ko.startswith("잠실")


# --- helpers -------------------------------------------------------------------------------------


def _context(db):
    from smartcity.core.context import context_of

    return context_of(db)


def _import_boundaries(db, boundaries):
    with db.session() as s:
        geo.import_districts(s, geo.parse_boundaries(boundaries.districts.read_bytes(), SEOUL), "d")
    geo.invalidate(db)
    with db.session() as s:
        hoods = geo.parse_boundaries(boundaries.neighbourhoods.read_bytes(), SEOUL)
        geo.import_neighbourhoods(s, hoods, "n", geo.geo_index(db))
    geo.invalidate(db)


@pytest.fixture
def run(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()
