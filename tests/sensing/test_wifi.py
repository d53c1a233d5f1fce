"""Public Wi-Fi: the access-point list imported as assets (indoor/outdoor), status reports by HTTP (stored once,
bad ones refused and recorded), coverage per district over the gazetteer's stops and stations, the proposed
sites as GeoJSON and CSV, the staff's coverage page (both stores; the real Gangnam list where ../shared has it)."""

from __future__ import annotations

import csv
import io
import time

import pytest
from sqlalchemy import select

from smartcity.core.geo import geo_index
from smartcity.core.places_import import import_places, parse_places
from smartcity.sensing import coverage, wifi
from smartcity.sensing.models import Rejection, WifiStatus
from tests import synthetic
from tests.conftest import make_key, make_user, seoul_data
from tests.sensing.helpers import stops_away_from


@pytest.fixture
def planted(db):
    data = synthetic.wifi()
    result = wifi.import_access_points(db, data.data)
    return data, result


@pytest.fixture
def staff_key(db) -> str:
    make_user(db, "planner", "staff", department="11230-roads")
    return make_key(db, "planner")


def places_csv(rows: list[tuple[str, str, float, float]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["ref", "kind", "name_ko", "lat", "lon"])
    for i, (kind, name, lat, lon) in enumerate(rows):
        writer.writerow([f"t{i}", kind, name, lat, lon])
    return out.getvalue().encode()


def import_demand(db, data: bytes, kind: str | None = None) -> int:
    parsed = parse_places(data, synthetic.SEOUL, kind)
    with db.session() as s:
        import_places(s, parsed.places, "test", geo_index(db))
    return len(parsed.places)


@pytest.mark.parametrize(
    ("place", "detail", "expected"),
    [
        ("개포1동주민센터", "2층", "indoor"),
        ("개포1동주민센터", "지하1층", "indoor"),
        ("강남구청소년상담복지센터", "강남구청소년상담복지센터 내", "indoor"),
        ("주택가", "빌라 앞", "outdoor"),
        ("도곡공원", "", "outdoor"),
        ("공원관리사무소", "2층", "indoor"),
        ("도서관", "", "indoor"),
        ("내곡동 주민센터", "", "indoor"),
    ],
)
def test_installation_type_from_place_and_detail(place, detail, expected):
    assert wifi.installation_of(place, detail) == expected


def test_the_list_is_imported_as_access_points_indoor_and_outdoor_once(db, planted):
    data, result = planted
    assert result.report.created == data.imported
    rows = list(csv.DictReader(io.StringIO(data.data.decode())))
    # The synthetic list's floors are indoor; its parks and bus stops outdoor; its libraries and markets say
    # neither and count as indoor.
    outdoor = sum(1 for r in rows if r["place"].endswith(("공원", "정류소")))
    assert (result.indoor, result.outdoor) == (data.imported - outdoor, outdoor)
    again = wifi.import_access_points(db, data.data)
    assert (again.report.created, again.report.updated, again.report.unchanged) == (0, 0, data.imported)
    with db.session() as s:
        aps = wifi.access_points(s)
    assert {a.radius_m for a in aps if a.installation == "indoor"} == {30.0}
    assert {a.radius_m for a in aps if a.installation == "outdoor"} == {100.0}


def test_a_cp949_list_reads_the_same(db):
    data = synthetic.wifi()
    # CP949 has no replacement character: the one broken name is written as a spreadsheet would save it.
    legacy = data.data.decode("utf-8").replace("\ufffd", "?").encode("cp949")
    result = wifi.import_access_points(db, legacy)
    assert result.report.created == data.imported
    with db.session() as s:
        names = {a.name for a in wifi.access_points(s)}
    assert any("주민센터" in n for n in names)


def test_rows_that_cannot_be_used_are_reported_by_line_and_the_rest_imported(db):
    data = synthetic.wifi()
    bad = [
        "37.5,not-a-number,주소,,공원,,서울특별시 강남구청,02-0000-0000",
        "35.1796,129.0756,부산,,공원,,부산시,051-000-0000",
        "37.49,127.05,주소,,공원,,서울특별시 강남구청,02-0000-0000,extra,cells",
    ]
    text = data.data.decode("utf-8").rstrip("\r\n") + "\r\n" + "\r\n".join(bad) + "\r\n"
    result = wifi.import_access_points(db, text.encode("utf-8"))
    first = data.rows + 2
    assert [(p.row, p.reason.split(":")[0]) for p in result.report.skipped] == [
        (first, "longitude is not a number"),
        (first + 2, "too many cells"),
        (first + 1, "outside the city"),
    ]
    assert result.report.created == data.imported


def test_status_reports_are_stored_once_and_bad_ones_refused_and_recorded(db, client, planted, staff_key):
    with db.session() as s:
        first, second = [a.id for a in wifi.access_points(s)][:2]
    now = int(time.time())
    reports = [
        {"access_point": first, "time": now - 60, "up": True, "clients": 12},
        {"access_point": second, "time": now - 60, "up": False, "clients": 0},
        {"access_point": 999_999, "time": now - 60, "up": True, "clients": 1},
        {"access_point": first, "time": now + 3600, "up": True, "clients": 1},
        {"access_point": first, "time": now - 30, "up": "yes", "clients": 1},
        {"access_point": first, "time": now - 30, "up": True, "clients": -4},
        "nonsense",
    ]
    r = client.post("/api/sensing/wifi/status", json=reports, headers={"X-API-Key": staff_key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["stored"], body["duplicates"]) == (2, 0)
    assert [(x["index"], x["code"]) for x in body["rejected"]] == [
        (2, "unknown_access_point"),
        (3, "future"),
        (4, "invalid_value"),
        (5, "invalid_value"),
        (6, "malformed"),
    ]
    again = client.post("/api/sensing/wifi/status", json=reports[:1], headers={"X-API-Key": staff_key}).json()
    assert (again["stored"], again["duplicates"]) == (0, 1)
    with db.session() as s:
        stored = s.execute(select(WifiStatus.access_point_id, WifiStatus.up, WifiStatus.clients)).all()
        codes = sorted(r.code for r in s.scalars(select(Rejection).where(Rejection.quantity == "wifi_status")))
    assert sorted(stored) == sorted([(first, True, 12), (second, False, 0)])
    assert codes == sorted(["unknown_access_point", "future", "invalid_value", "invalid_value", "malformed"])
    listed = client.get("/api/sensing/wifi/access-points", headers={"X-API-Key": staff_key}).json()
    by_id = {a["id"]: a for a in listed["access_points"]}
    assert by_id[first]["status"] == {"time": now - 60, "up": True, "clients": 12}
    history = client.get(f"/api/sensing/wifi/access-points/{second}/status", headers={"X-API-Key": staff_key}).json()
    assert history["status"] == [{"time": now - 60, "up": False, "clients": 0}]


def test_status_needs_a_senders_key(db, client, planted):
    r = client.post("/api/sensing/wifi/status", json=[])
    assert r.status_code in (401, 403)
    assert client.get("/api/sensing/wifi/coverage").status_code in (401, 403)


def test_not_json_is_refused_whole(db, client, planted, staff_key):
    r = client.post("/api/sensing/wifi/status", content=b"{nope", headers={"X-API-Key": staff_key})
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_json"
    with db.session() as s:
        assert s.scalars(select(WifiStatus)).first() is None


def test_coverage_and_proposals_over_the_gazetteers_stops(db, client, planted, staff_key):
    with db.session() as s:
        aps = wifi.access_points(s)
    ap = next(a for a in aps if a.installation == "outdoor")
    # One stop under an outdoor access point; a row of three stops 33 m apart far from any.
    far = stops_away_from(db, aps, 3)
    rows = [("bus_stop", "덮인 정류소", ap.lat, ap.lon)] + [
        ("bus_stop", f"빈 정류소 {i}", la, lo) for i, (la, lo) in enumerate(far)
    ]
    assert import_demand(db, places_csv(rows)) == 4
    body = client.get("/api/sensing/wifi/coverage?proposals=2", headers={"X-API-Key": staff_key}).json()
    totals = body["totals"]
    assert (totals["demand"], totals["demand_covered"]) == (4, 1)
    assert totals["access_points"] == len(aps)
    gangnam = next(d for d in body["districts"] if d["code"] == synthetic.GANGNAM)
    assert (gangnam["demand"], gangnam["demand_covered"]) == (4, 1)
    assert 0 < gangnam["area_share"] < 1
    covered = sum(d["covered_km2"] for d in body["districts"])
    assert covered == pytest.approx(totals["covered_km2"], abs=0.002) and 0 < covered < len(aps) * 0.0315
    assert [(p["rank"], p["newly_covered"]) for p in body["proposals"]] == [(1, 3.0)]
    assert sorted(u["name"] for u in body["uncovered"]) == ["빈 정류소 0", "빈 정류소 1", "빈 정류소 2"]
    geo = client.get("/api/sensing/wifi/proposals.geojson?n=5", headers={"X-API-Key": staff_key})
    assert geo.status_code == 200 and geo.headers["content-type"].startswith("application/geo+json")
    [feature] = geo.json()["features"]
    assert feature["properties"]["newly_covered"] == 3.0 and feature["geometry"]["type"] == "Point"
    text = client.get("/api/sensing/wifi/proposals.csv?n=5", headers={"X-API-Key": staff_key}).text
    [row] = list(csv.DictReader(io.StringIO(text)))
    # Each of the three covers all three (66 m end to end): the first of the tie is proposed.
    assert row["near"] == "빈 정류소 0" and float(row["lat"]) == pytest.approx(far[0][0], abs=1e-6)


@pytest.mark.real_data
def test_the_gangnam_list_its_defects_and_greedy_against_the_optimum(db):
    data = seoul_data("wifi_gangnam.csv").read_bytes()
    result = wifi.import_access_points(db, data)
    report = result.report
    assert report.rows == 799
    assert report.skipped == [] and report.created == 799
    assert report.created == report.rows - len(report.skipped)
    assert result.indoor > result.outdoor > 0
    stops = import_demand(db, seoul_data("bus_stops.csv").read_bytes())
    stations = import_demand(db, seoul_data("subway_stations.csv").read_bytes())
    assert stops > 10_000 and stations > 250
    view = wifi.coverage_view(db, "ko", district=synthetic.GANGNAM)
    [gangnam] = view.districts
    assert 0 < gangnam.area_share < 0.2
    assert 0 < gangnam.demand_covered < gangnam.demand
    # The exact optimum of 5 new sites in Gangnam against greedy's (docs/sensing.md gives the figures).
    plane = coverage.Plane(synthetic.SEOUL.center)
    demand = wifi.coverage_view(db, "ko", district=synthetic.GANGNAM).uncovered
    problem = coverage.instance(plane, demand, __import__("numpy").ones(len(demand), dtype=bool), 100.0)
    greedy = sum(g for _, g in coverage.greedy(problem, 5))
    _, best, optimal = coverage.best_sites(problem, 5, time_limit_s=60)
    print(f"gangnam: {len(demand)} uncovered, 5 sites: greedy {greedy}, optimum {best}")
    assert optimal and greedy <= best and greedy >= 0.9 * best


@pytest.mark.mqtt
def test_status_over_mqtt_is_stored_once_and_bad_reports_recorded(db, tmp_path, mosquitto, planted):
    import json
    import uuid

    import paho.mqtt.client as paho
    from fastapi.testclient import TestClient

    from smartcity.app import create_app
    from tests.conftest import eventually, make_settings

    with db.session() as s:
        ap = wifi.access_points(s)[0].id
    now = int(time.time())
    settings = make_settings(db.url, tmp_path, sensing_mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}")
    device = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"ap-{uuid.uuid4().hex[:8]}")
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()
    try:
        with TestClient(create_app(settings, db)) as client:
            [mqtt] = client.app.state.mqtt_clients.values()
            eventually(mqtt.connected.is_set)
            stats = client.app.state.sensing_mqtt.stats
            report = {"time": now - 60, "up": True, "clients": 7}
            for payload in (report, report, [{"time": now - 30, "up": False, "clients": 0}], b"{oops"):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                device.publish(f"city/wifi/{ap}/status", data, qos=1).wait_for_publish(5)
            device.publish("city/wifi/999999/status", json.dumps(report), qos=1).wait_for_publish(5)
            eventually(lambda: stats.get("status_stored", 0) + stats.get("status_refused", 0) >= 4, timeout=10)
    finally:
        device.disconnect()
        device.loop_stop()
    with db.session() as s:
        stored = sorted(s.execute(select(WifiStatus.observed_at, WifiStatus.up, WifiStatus.clients)).all())
        codes = sorted((r.channel, r.code) for r in s.scalars(select(Rejection)))
    assert stored == [(now - 60, True, 7), (now - 30, False, 0)]
    assert codes == [("mqtt", "malformed"), ("mqtt", "unknown_access_point")]
