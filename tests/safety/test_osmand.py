"""OsmAnd as the Traccar Client apps send it: exact requests on both stores, every refusal's status code,
nothing lost of what was accepted, and the listener on its own port."""

from __future__ import annotations

import math
import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from smartcity.core.db import Database, utcnow
from smartcity.core.errors import OutsideCity, TooLarge
from smartcity.safety import osmand
from smartcity.safety.engine import KNOT, FutureFix, InvalidPosition, NoConsent, Overloaded, UnknownDevice
from smartcity.safety.models import Incident, PositionRow
from smartcity.safety.settings import SafetySettings
from tests.conftest import LiveServer, make_settings
from tests.helpers import run_async
from tests.safety.helpers import HOME, make_world, rows, traccar_query
from tests.servers import free_port

# --- decoding -------------------------------------------------------------------------------------


def test_the_traccar_client_query_decodes_to_a_position():
    [p] = osmand.decode(
        b"id=123456&timestamp=1700000000&lat=37.5&lon=127.05&speed=10.0&bearing=91.5&altitude=30.0"
        b"&accuracy=12.0&batt=87.0&charge=true&hdop=0.9&driverUniqueId=D7&wifi=aa:bb",
        "",
        b"",
    )
    assert (p.device, p.fix_time, p.lat, p.lon) == (
        "123456",
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        37.5,
        127.05,
    )
    assert math.isclose(p.speed, 10 * KNOT) and (p.bearing, p.altitude, p.accuracy, p.battery) == (91.5, 30, 12, 87)
    assert p.attributes == {"charge": True, "hdop": 0.9, "driverUniqueId": "D7", "wifi": "aa:bb"}
    assert p.protocol == "osmand" and p.alarm is None


def test_deviceid_location_heading_and_a_form_body():
    [p] = osmand.decode(
        b"deviceid=abc",
        "application/x-www-form-urlencoded",
        b"location=37.51,127.02&heading=270&alarm=sos&timestamp=1700000000000",
    )
    assert (p.device, p.lat, p.lon, p.bearing, p.alarm) == ("abc", 37.51, 127.02, 270, "sos")
    assert p.fix_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # milliseconds detected


@given(st.integers(min_value=946_684_800, max_value=4_102_444_800))
def test_seconds_milliseconds_and_iso_times_agree(epoch):
    at = datetime.fromtimestamp(epoch, UTC)
    forms = [
        str(epoch),
        str(epoch * 1000),
        at.isoformat(),
        at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Seoul")).isoformat().replace("+", " "),
    ]
    for form in forms:
        [p] = osmand.decode(f"id=d&lat=37.5&lon=127&timestamp={form}", "", b"")
        assert p.fix_time == at, form


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=6))
def test_arbitrary_parameters_never_crash_the_decoder(params):
    from urllib.parse import urlencode

    try:
        positions = osmand.decode(urlencode(params), "", b"")
    except InvalidPosition as exc:
        assert exc.details and exc.details[0]["field"]
    else:
        assert len(positions) == 1 and positions[0].device


def test_the_json_body_of_the_newer_traccar_client():
    body = (
        b'{"device_id":"123456","location":{"timestamp":"2024-05-01T08:30:00.000Z","uuid":"u-1",'
        b'"coords":{"latitude":37.5,"longitude":127.05,"accuracy":9.5,"speed":1.5,"heading":-1,"altitude":31,'
        b'"altitude_accuracy":3},"is_moving":true,"odometer":1200.5,"event":"motionchange",'
        b'"battery":{"level":0.42,"is_charging":true},"activity":{"type":"walking"},"extras":{"note":"x"}}}'
    )
    [p] = osmand.decode(b"", "application/json", body)
    assert (p.device, p.fix_time) == ("123456", datetime(2024, 5, 1, 8, 30, tzinfo=UTC))
    assert (p.lat, p.lon, p.accuracy, p.speed, p.bearing, p.altitude, p.battery) == (
        37.5,
        127.05,
        9.5,
        1.5,
        None,
        31,
        42.0,
    )
    assert p.attributes == {
        "altitude_accuracy": 3,
        "charge": True,
        "activity": "walking",
        "uuid": "u-1",
        "is_moving": True,
        "odometer": 1200.5,
        "event": "motionchange",
        "note": "x",
    }
    many = osmand.decode(
        b"",
        "application/json",
        b'{"device_id":"d","location":[{"coords":{"latitude":1,'
        b'"longitude":2},"timestamp":"2024-05-01T08:30:00Z"},{"coords":{"latitude":3,"longitude":4},'
        b'"timestamp":"2024-05-01T08:31:00Z","extras":{"alarm":"sos"}}]}',
    )
    assert [(p.lat, p.alarm) for p in many] == [(1, None), (3, "sos")]


@pytest.mark.parametrize(
    "query,field",
    [
        ("lat=37.5&lon=127", "id"),
        ("id=d&lat=north&lon=127", "lat"),
        ("id=d&lat=37.5", "lat/lon"),
        ("id=d&location=37.5", "location"),
        ("id=d&lat=37.5&lon=127&speed=fast", "speed"),
        ("id=d&lat=37.5&lon=127&timestamp=yesterday", "timestamp"),
        ("id=d&lat=37.5&lon=127&timestamp=1e300", "timestamp"),
    ],
)
def test_malformed_parameters_name_the_field(query, field):
    with pytest.raises(InvalidPosition) as err:
        osmand.decode(query, "", b"")
    assert err.value.details[0]["field"] == field


def test_each_refusal_has_the_status_traccar_client_gets():
    assert osmand.status_of(InvalidPosition("x")) == 400
    assert osmand.status_of(FutureFix("x")) == 400
    assert osmand.status_of(OutsideCity("x")) == 400
    assert osmand.status_of(UnknownDevice("x")) == 400
    assert osmand.status_of(NoConsent("x")) == 403
    assert osmand.status_of(TooLarge("x")) == 413
    assert osmand.status_of(Overloaded("x")) == 503


# --- through the web server, on both stores -------------------------------------------------------


def test_a_traccar_client_get_is_stored_before_the_200(db, client):
    w = make_world(db)
    at = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
    r = client.get(f"/osmand?{traccar_query(w.device, at, speed='3.0', hdop='1.2')}")
    assert (r.status_code, r.content) == (200, b"")
    [row] = rows(db)
    assert (row.fix_time, row.lat, row.lon, row.battery, row.accuracy, row.protocol) == (
        at,
        HOME[0],
        HOME[1],
        87,
        12,
        "osmand",
    )
    assert math.isclose(row.speed, 3 * KNOT) and row.attributes == {"hdop": 1.2}


def test_post_forms_json_and_replays_are_stored_once(db, client):
    w = make_world(db)
    at = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    form = traccar_query(w.device, at)
    for _ in range(3):  # Traccar Client resends when it missed the answer
        r = client.post(
            "/api/safety/osmand", content=form, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert (r.status_code, r.content) == (200, b"")
    later = (at + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    body = {
        "device_id": w.device,
        "location": {
            "timestamp": later,
            "coords": {
                "latitude": HOME[0],
                "longitude": HOME[1],
                "accuracy": 5,
                "speed": 1.0,
                "heading": 10,
                "altitude": 20,
            },
            "battery": {"level": 0.5, "is_charging": False},
        },
    }
    assert client.post("/osmand", json=body).status_code == 200
    assert client.post("/osmand", json=body).status_code == 200
    got = rows(db)
    assert [(r.fix_time, r.battery) for r in got] == [(at, 87), (at + timedelta(seconds=30), 50)]


def test_refusals_store_nothing_and_keep_what_was_accepted(db, client, tmp_path):
    w = make_world(db)
    now = utcnow().replace(microsecond=0)
    assert client.get(f"/osmand?{traccar_query(w.device, now - timedelta(minutes=2))}").status_code == 200
    cases = [
        (traccar_query("no-such-phone", now), 400),  # as Traccar answers an unknown device
        (traccar_query(w.device, now, lat="91.0"), 400),
        (traccar_query(w.device, now, lon="abc"), 400),
        (traccar_query(w.device, now, batt="150"), 400),
        (traccar_query(w.device, now + timedelta(hours=2)), 400),
        (traccar_query(w.device, now, speed="NaN"), 400),
        ("id=&lat=37.5&lon=127", 400),
    ]
    for query, status in cases:
        r = client.get(f"/osmand?{query}")
        assert r.status_code == status, (query, r.text)
        assert r.text  # a line saying why
    too_big = "x" * (client.app.state.settings.of(SafetySettings).device_max_bytes + 1)
    r = client.post(
        "/osmand",
        content=f"{traccar_query(w.device, now)}&note={too_big}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert len(rows(db)) == 1
    # A JSON batch with one bad fix: the good one is kept, the client is told to retry (and the
    # retry of the good one is a replay).
    good = {"timestamp": (now - timedelta(minutes=1)).isoformat(), "coords": {"latitude": 37.5, "longitude": 127.05}}
    bad = {"timestamp": now.isoformat(), "coords": {"latitude": 137.5, "longitude": 127.05}}
    r = client.post("/osmand", json={"device_id": w.device, "location": [good, bad]})
    assert r.status_code == 400
    assert len(rows(db)) == 2


def test_no_consent_is_403_and_nothing_is_stored(db, client):
    w = make_world(db, consent=False)
    r = client.get(f"/osmand?{traccar_query(w.device, utcnow())}")
    assert r.status_code == 403 and "consent" in r.text
    assert rows(db) == []


def test_an_sos_alarm_opens_an_incident(db, client):
    w = make_world(db)
    r = client.get(f"/osmand?{traccar_query(w.device, utcnow() - timedelta(seconds=5), alarm='sos')}")
    assert r.status_code == 200
    with db.session() as s:
        incident = s.scalars(select(Incident)).one()
        assert (incident.kind, incident.person_id, incident.status) == ("sos", w.person_id, "open")
        assert s.scalar(select(PositionRow.alarm)) == "sos"


def test_intake_counts_are_exposed_as_metrics(db, client):
    w = make_world(db)
    client.get(f"/osmand?{traccar_query(w.device, utcnow() - timedelta(seconds=5))}")
    client.get(f"/osmand?{traccar_query('nobody', utcnow())}")
    text = client.get("/metrics").text
    assert 'smartcity_intake_total{protocol="osmand",result="stored"} 1.0' in text
    assert 'smartcity_intake_total{protocol="osmand",result="unknown_device"} 1.0' in text


# --- the listener on its own port -----------------------------------------------------------------


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_osmand_port_serves_traccar_client_and_closes_at_shutdown(sqlite_url, tmp_path):
    from smartcity.app import create_app

    db = Database(sqlite_url)
    w = make_world(db)
    port = free_port()
    app = create_app(make_settings(sqlite_url, tmp_path, osmand_port=port), db)
    at = (utcnow() - timedelta(minutes=3)).replace(microsecond=0)
    try:
        with LiveServer(app):
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(timeout=10) as http:
                r = http.get(f"{base}/?{traccar_query(w.device, at)}")
                assert (r.status_code, r.content) == (200, b"")
                r = http.post(
                    f"{base}/",
                    content=traccar_query(w.device, at + timedelta(seconds=10)),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                assert r.status_code == 200
                r = http.post(
                    f"{base}/any/path",
                    json={
                        "device_id": w.device,
                        "location": {
                            "timestamp": (at + timedelta(seconds=20)).isoformat(),
                            "coords": {"latitude": HOME[0], "longitude": HOME[1]},
                        },
                    },
                )
                assert r.status_code == 200
                assert http.get(f"{base}/?{traccar_query('stranger-phone', at)}").status_code == 400
                assert http.get(f"{base}/?id={w.device}&lat=x&lon=1").status_code == 400
                assert http.put(f"{base}/").status_code == 405
                r = http.post(f"{base}/", content=b"a" * (app.state.settings.of(SafetySettings).device_max_bytes + 10))
                assert r.status_code == 413
            assert len(rows(db)) == 3
        deadline = time.monotonic() + 5
        while not _closed(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _closed(port)
    finally:
        db.dispose()


def test_a_busy_osmand_port_leaves_the_web_server_running(sqlite_url, tmp_path):
    from smartcity.app import create_app

    db = Database(sqlite_url)
    w = make_world(db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(make_settings(sqlite_url, tmp_path, osmand_port=port), db)
        try:
            with LiveServer(app) as server, httpx.Client(timeout=10) as http:
                r = http.get(f"{server.url}/osmand?{traccar_query(w.device, utcnow() - timedelta(seconds=1))}")
                assert r.status_code == 200
        finally:
            db.dispose()


# --- issue 10: invalid fixes, field-named errors, protocols ---------------------------------------------


def test_invalid_fixes_are_stored_flagged_and_never_move_the_person(db, client):
    """Traccar Client's valid=false, and a fix at exactly 0,0, are not positions: kept flagged, but the live
    position, zones and alerts stay where the last real fix put them, and tracks never show them."""
    from smartcity.safety import service
    from smartcity.safety.models import DeviceState, SafetyEvent

    w = make_world(db)
    at = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    assert client.get(f"/osmand?{traccar_query(w.device, at)}").status_code == 200
    far = (35.1, 129.0)  # Busan: outside the city, where a bad fix would raise "outside the city"
    for i, query in enumerate(
        [
            traccar_query(w.device, at + timedelta(seconds=10), far, valid="false"),
            traccar_query(w.device, at + timedelta(seconds=20), (0.0, 0.0)),
            traccar_query(w.device, at + timedelta(seconds=30), (0, 0), valid="true"),
        ]
    ):
        assert client.get(f"/osmand?{query}").status_code == 200, i
    got = rows(db)
    assert [r.valid for r in got] == [True, False, False, False]
    assert not any(r.outside_city for r in got)
    with db.session() as s:
        st = s.get(DeviceState, w.device_id)
        assert (st.lat, st.lon, st.fix_time) == (HOME[0], HOME[1], at)
        assert not (st.flags or {}).get("outside_city")
        assert s.scalars(select(SafetyEvent.kind)).all() == []
        track = service.track(s, w.identity(db, w.guardian_id), w.person_id, since=at - timedelta(minutes=1))
    assert [(p["lat"], p["lon"]) for p in track] == [HOME]


def test_an_sos_on_an_invalid_fix_is_raised_at_the_last_known_position(db, client):
    w = make_world(db)
    at = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    assert client.get(f"/osmand?{traccar_query(w.device, at)}").status_code == 200
    r = client.get(f"/osmand?{traccar_query(w.device, at + timedelta(seconds=5), (0.0, 0.0), alarm='sos')}")
    assert r.status_code == 200
    with db.session() as s:
        inc = s.scalar(select(Incident))
    assert (inc.kind, inc.lat, inc.lon, inc.district_code) == ("sos", HOME[0], HOME[1], "11230")


def test_errors_name_the_field_in_the_answer(db, client):
    w = make_world(db)
    now = utcnow().replace(microsecond=0)
    r = client.get(f"/osmand?{traccar_query(w.device, now, lat='91.0')}")
    assert (r.status_code, r.text) == (400, "lat: must be between -90 and 90")
    r = client.get(f"/osmand?{traccar_query(w.device, now, speed='fast')}")
    assert r.status_code == 400 and r.text.startswith("speed: ")
    r = client.get(f"/osmand?{traccar_query(w.device, now, batt='150')}")
    assert r.text == "batt: must be between 0 and 100"  # the parameter Traccar Client sent
    r = client.get(f"/osmand?{traccar_query(w.device, now + timedelta(hours=2))}")
    assert r.status_code == 400 and r.text.startswith("timestamp: ")
    r = client.post(
        "/osmand",
        json={"device_id": w.device, "location": {"timestamp": now.isoformat(), "coords": {"latitude": 37.5}}},
    )
    assert r.status_code == 400 and r.text.startswith("coords: ")
    assert rows(db) == []


def test_a_device_registered_for_owntracks_only_is_refused_through_osmand(db, client):
    w = make_world(db, device="haneul/phone", protocols="owntracks")
    r = client.get(f"/osmand?{traccar_query(w.device, utcnow() - timedelta(minutes=1))}")
    assert r.status_code == 403 and "osmand" in r.text
    assert rows(db) == []


# --- issue 13: the fast path, one batch per loop turn, back-pressure ----------------------------------

_KEYS = ["id", "deviceid", "timestamp", "lat", "lon", "speed", "bearing", "heading", "altitude", "accuracy"]
_KEYS += ["batt", "valid", "charge", "hdop", "alarm", "location", "driverUniqueId", ""]
_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**16), max_value=10**16).map(str),
    st.sampled_from(["", "true", "false", "1", "0", " 12.5 ", "1e400", "nan", "phone-1", "37.5,127.0", "sos"]),
    st.text(alphabet="abc019.-_ =%+", max_size=10),
)


def _as_row(p) -> tuple:
    """The full decoder's position as the fast path's row (its columns, times in epoch ms)."""
    from smartcity.safety.rules import to_ms

    attributes = orjson.dumps(p.attributes).decode() if p.attributes else None
    numbers = (p.lat, p.lon, p.speed, p.bearing, p.altitude, p.accuracy, p.battery)
    return (p.device, to_ms(p.fix_time), *numbers, p.valid, attributes)


@given(st.lists(st.tuples(st.sampled_from(_KEYS), _VALUE), max_size=14))
@example([("id", "d"), ("lat", "1"), ("lon", "2"), ("timestamp", "1700000000"), ("bearing", ""), ("heading", "9")])
@example([("id", "d"), ("deviceid", "e"), ("lat", "1"), ("lon", "2"), ("timestamp", "1700000000123"), ("x", "")])
def test_the_fast_path_reads_every_query_it_takes_as_the_full_decoder_does(pairs):
    """A query the fast path takes gives the row the full decoder's position would (the same device, time to
    the millisecond, numbers, validity and attributes); one it declines goes to the full decoder, which then
    stores it or says what is wrong."""
    query = "&".join(f"{k}={v}" for k, v in pairs)
    row = osmand.fast_row(query)
    if row is None:
        return
    [p] = osmand.decode(query, "", b"")
    if dict(pairs).get("timestamp"):
        assert row == _as_row(p)
    else:  # the time it arrived, on both paths
        assert row[:1] + row[2:] == _as_row(p)[:1] + _as_row(p)[2:]
        assert abs(row[1] - _as_row(p)[1]) < 5_000


def test_the_traccar_client_query_takes_the_fast_path_and_others_the_full_one():
    at = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    row = osmand.fast_row(traccar_query("phone-1", at) + "&charge=true&hdop=0.9")
    assert row == ("phone-1", 1_700_000_000_000, *HOME, 0.0, 0.0, 30.0, 12.0, 87.0, True, '{"charge":true,"hdop":0.9}')
    for declined in (
        traccar_query("phone-1", at, alarm="sos"),  # alarms go to the writer at once, on their own
        "id=phone-1&location=37.5,127.0",
        "id=phone%2D1&lat=37.5&lon=127.0",
        f"id=phone-1&lat=37.5&lon=127.0&timestamp={at.isoformat()}",
        "id=phone-1&lat=nan&lon=127.0",
        "id=&lat=37.5&lon=127.0",
        "id=phone-1&lat=37.5",
    ):
        assert osmand.fast_row(declined) is None, declined


def test_concurrent_traccar_clients_are_stored_in_a_few_batches_and_each_gets_its_answer(sqlite_url, tmp_path):
    """Requests arriving together share their loop turn's batch (one round trip to the writer, one commit) and
    each still gets its own answer: 200 once stored, the refused one its own error."""
    import asyncio

    from smartcity.app import create_app

    db = Database(sqlite_url)
    w = make_world(db)
    port = free_port()
    app = create_app(make_settings(sqlite_url, tmp_path, osmand_port=port), db)
    start = (utcnow() - timedelta(minutes=30)).replace(microsecond=0)

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            queries = [traccar_query(w.device, start + timedelta(seconds=i)) for i in range(40)]
            queries.append(traccar_query(w.device, start, batt="150.0"))
            return await asyncio.gather(*(http.get(f"/?{q}") for q in queries))

    try:
        with LiveServer(app):
            answers = run_async(send_all())
            batcher = app.state.osmand_batcher
            assert [r.status_code for r in answers[:40]] == [200] * 40
            assert (answers[40].status_code, answers[40].text) == (400, "batt: must be between 0 and 100")
            assert len(rows(db)) == 40
            assert batcher.rows == 41 and batcher.batches < 41
    finally:
        db.dispose()


def test_a_staging_table_too_far_behind_answers_503_with_retry_after_but_takes_alarms(sqlite_url, tmp_path):
    """SQLite: while the staging table holds more than SAFETY_STAGING_MAX_BEHIND positions the mover has not
    moved, ordinary positions are refused with 503 and Retry-After (OsmAnd: a line of text; the batch endpoint:
    the platform's JSON error), nothing of them stored; an SOS is still taken."""
    from fastapi.testclient import TestClient

    from smartcity.app import create_app
    from smartcity.core import accounts
    from smartcity.safety.intake_api import GATEWAY_SCOPE

    db = Database(sqlite_url)
    w = make_world(db)
    with db.session() as s:
        _, key = accounts.create_api_key(s, "gateway", scope=GATEWAY_SCOPE)
    settings = make_settings(sqlite_url, tmp_path, safety_writer="process", safety_staging_max_behind=3)
    start = (utcnow() - timedelta(minutes=30)).replace(microsecond=0)
    try:
        with TestClient(create_app(settings, db)) as client:
            answers = [client.get(f"/osmand?{traccar_query(w.device, start + timedelta(seconds=i))}") for i in range(6)]
            statuses = [r.status_code for r in answers]
            assert statuses[:4] == [200] * 4 and statuses[4:] == [503, 503], statuses
            refused = answers[4]
            assert refused.headers["retry-after"].isdigit() and refused.headers["content-type"].startswith("text/")
            assert "retry" in refused.text
            r = client.post(
                "/api/safety/positions",
                json={"positions": [{"device": w.device, "time": start.isoformat(), "lat": HOME[0], "lon": HOME[1]}]},
                headers={"X-API-Key": key},
            )
            assert r.status_code == 503 and r.headers["retry-after"].isdigit()
            assert r.json()["error"]["code"] == "backlogged"
            sos = client.get(f"/osmand?{traccar_query(w.device, start + timedelta(seconds=30), alarm='sos')}")
            assert sos.status_code == 200
            assert count_all(db) == 5  # the four before the limit and the alarm
    finally:
        db.dispose()


def count_all(db) -> int:
    from sqlalchemy import func

    from smartcity.safety.models import all_positions

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(all_positions()))
