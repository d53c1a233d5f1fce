"""GET /ngsi-ld/v1/entities: type, id, idPattern, the query language q, geo-queries, pick/omit, limit/offset
and count; and the parser alone, with hypothesis (any text: a test or a 400 BadRequestData, never a crash)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.core.geo import haversine_m
from smartcity.sensing.ngsi_query import parse_q
from smartcity.sensing.ngsi_wire import NgsiError

ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def ap(n: int, clients: float, name: str, lon: float, lat: float, **extra) -> dict:
    return {
        "id": f"urn:ngsi-ld:Streetlight:ap{n:03d}",
        "type": "Streetlight",
        "name": {"type": "Property", "value": name},
        "clients": {
            "type": "Property",
            "value": clients,
            "band": {"type": "Property", "value": "5GHz" if n % 2 else "2.4GHz"},
        },
        "installedAt": {"type": "Property", "value": f"2026-0{1 + n % 9}-01T00:00:00Z"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        **extra,
    }


CITY_HALL = (126.9780, 37.5665)


@pytest.fixture
def points(sender_key, client) -> list[dict]:
    """Twelve access points east of City Hall every 150 m, clients 0, 5, 10 …; two of them outdoor."""
    made = []
    for n in range(12):
        lon = CITY_HALL[0] + n * 150 / (111_195 * math.cos(math.radians(CITY_HALL[1])))
        extra = {"outdoor": {"type": "Property", "value": True}} if n in (3, 7) else {}
        made.append(ap(n, n * 5, f"{'Jongno' if n < 6 else 'Jung'} AP {n}", lon, CITY_HALL[1], **extra))
    r = client.post(
        "/ngsi-ld/v1/entityOperations/create",
        content=json.dumps(made),
        headers={"Content-Type": "application/json", "X-API-Key": sender_key},
    )
    assert r.status_code == 201, r.text
    return made


def ids(r) -> list[int]:
    assert r.status_code == 200, r.text
    return sorted(int(e["id"][-3:]) for e in r.json())


def find(client, **params):
    params.setdefault("limit", "100")
    return client.get("/ngsi-ld/v1/entities", params=params)


def test_q_selects_what_the_query_language_says(client, points):
    expect = {
        "clients>20": [n for n in range(12) if n * 5 > 20],
        "clients>=20;clients<=30": [4, 5, 6],
        "clients==10..25": [2, 3, 4, 5],
        "clients!=10..25": [0, 1, 6, 7, 8, 9, 10, 11],
        "clients==0,15,55": [0, 3, 11],
        "clients<10|clients>50": [0, 1, 11],
        "(clients<10|clients>50);name~=Jung": [11],
        "clients<10|clients>50;name~=Jung": [0, 1, 11],
        "outdoor": [3, 7],
        "!outdoor;clients<20": [0, 1, 2],
        'name=="Jung AP 8"': [8],
        "name~=^Jongno": list(range(6)),
        'clients.band=="5GHz";clients<30': [1, 3, 5],
        "installedAt>2026-07-01T00:00:00Z": [n for n in range(12) if 1 + n % 9 > 7],
    }
    for q, want in expect.items():
        assert ids(find(client, type="Streetlight", q=q)) == want, q


def test_type_id_and_id_pattern(client, points):
    assert ids(find(client, type="Streetlight")) == list(range(12))
    assert find(client, type="AirQualityObserved").json() == []
    assert ids(find(client, id="urn:ngsi-ld:Streetlight:ap002,urn:ngsi-ld:Streetlight:ap009")) == [2, 9]
    assert ids(find(client, type="Streetlight", idPattern=r"urn:ngsi-ld:Streetlight:ap01\d")) == [10, 11]


def test_a_query_needs_type_id_q_or_geo_and_bad_ones_are_400(client, points):
    for params in ({}, {"limit": "5"}):
        r = client.get("/ngsi-ld/v1/entities", params=params)
        assert (r.status_code, r.json()["type"]) == (400, ERR + "BadRequestData")
    for params in (
        {"type": "Streetlight", "q": "clients>"},
        {"type": "Streetlight", "q": "(clients>1"},
        {"type": "Streetlight", "q": "clients>1;"},
        {"type": "Streetlight", "idPattern": "("},
        {"type": "Streetlight", "limit": "-1"},
        {"type": "Streetlight", "pick": "name", "omit": "clients"},
        {"georel": "near;maxDistance==100", "geometry": "Point", "coordinates": "[126.97"},
        {"georel": "near", "geometry": "Point", "coordinates": "[126.97, 37.56]"},
        {"georel": "near;maxDistance==100", "geometry": "Point", "coordinates": "[37.56, 226.9]"},
        {"georel": "around;maxDistance==100", "geometry": "Point", "coordinates": "[126.97, 37.56]"},
    ):
        r = client.get("/ngsi-ld/v1/entities", params=params)
        assert (r.status_code, r.json()["type"]) == (400, ERR + "BadRequestData"), params


def test_near_and_within(client, points):
    for metres in (100, 400, 1000):
        got = ids(
            find(client, georel=f"near;maxDistance=={metres}", geometry="Point", coordinates=json.dumps(CITY_HALL))
        )
        want = [
            n
            for n, p in enumerate(points)
            if haversine_m(
                CITY_HALL[1],
                CITY_HALL[0],
                p["location"]["value"]["coordinates"][1],
                p["location"]["value"]["coordinates"][0],
            )
            <= metres
        ]
        assert got == want and want, metres
    far = ids(
        find(
            client,
            type="Streetlight",
            georel="near;minDistance==1000",
            geometry="Point",
            coordinates=json.dumps(CITY_HALL),
        )
    )
    assert far == [n for n in range(12) if n * 150 >= 1000 + 1]
    lon = lambda n: points[n]["location"]["value"]["coordinates"][0]  # noqa: E731
    west, east = (lon(2) + lon(3)) / 2, (lon(5) + lon(6)) / 2
    ring = [[west, 37.56], [east, 37.56], [east, 37.57], [west, 37.57], [west, 37.56]]
    inside = find(client, georel="within", geometry="Polygon", coordinates=json.dumps([ring]))
    assert ids(inside) == [3, 4, 5]


def test_pick_omit_limit_offset_count_and_key_values(client, points):
    page = find(client, type="Streetlight", limit="5", offset="3", count="true", options="keyValues", pick="id,clients")
    assert page.headers["NGSILD-Results-Count"] == "12"
    assert page.json() == [{"id": f"urn:ngsi-ld:Streetlight:ap{n:03d}", "clients": n * 5} for n in range(3, 8)]
    busy = find(client, type="Streetlight", q="clients>40", count="true", limit="1")
    assert busy.headers["NGSILD-Results-Count"] == "3" and len(busy.json()) == 1
    assert "NGSILD-Results-Count" not in find(client, type="Streetlight").headers
    omitted = find(client, type="Streetlight", omit="location,installedAt", limit="1").json()[0]
    assert set(omitted) == {"id", "type", "name", "clients"}
    geo = client.get(
        "/ngsi-ld/v1/entities", params={"type": "Streetlight", "limit": "2"}, headers={"Accept": "application/geo+json"}
    ).json()
    assert geo["type"] == "FeatureCollection" and geo["features"][0]["geometry"]["type"] == "Point"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab=!<>~;|().,"0123456789 -:', max_size=30))
def test_any_q_parses_to_a_test_or_is_refused_as_bad_request_data(text):
    entity = {
        "id": "urn:x:1",
        "type": "T",
        "a": {"type": "Property", "value": 3},
        "b": {"type": "Property", "value": "x"},
    }
    try:
        test = parse_q(text)
    except NgsiError as exc:
        assert exc.status == 400 and exc.kind == "BadRequestData"
        return
    assert test(entity) in (True, False)


def test_a_near_query_reads_the_position_index_not_the_whole_type(db, points):
    """Regression: with type=… the store chose the type index and read every entity of the type (10 ms over
    25,000); the box on (lat, lon) is what narrows a near query."""
    from sqlalchemy import event

    from smartcity.sensing import ngsi_entities as store
    from smartcity.sensing.ngsi_query import parse_geo

    if db.is_postgres:
        pytest.skip("the plan checked is SQLite's; PostgreSQL's planner weighs the two indexes by statistics")
    seen: list[tuple[str, tuple]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "sensing_ngsi_entities" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        spec = store.Query(
            types=["Streetlight"],
            readable_types=store.PUBLIC_TYPES,
            geo=parse_geo("near;maxDistance==400", "Point", json.dumps(CITY_HALL), None),
        )
        with db.session() as s:
            found, _ = store.query(s, spec)
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    assert [e.id[-3:] for e in found] == ["000", "001", "002"]
    [(statement, parameters)] = seen
    with db.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    assert "ix_sensing_ngsi_entities_lat_lon" in plan, plan
