"""OwnTracks over HTTP: the app's identity headers, units, message types, JSON errors, replays."""

from __future__ import annotations

import base64
import math
from datetime import timedelta

from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.safety.models import PositionRow
from tests.safety.helpers import HOME, make_world

HEADERS = {"X-Limit-U": "haneul", "X-Limit-D": "phone"}


def location(at, point=HOME, **extra) -> dict:
    msg = {"_type": "location", "lat": point[0], "lon": point[1], "tst": int(at.timestamp()), "acc": 12, "alt": 31,
           "vel": 18, "cog": 270, "batt": 64, "tid": "hn", "t": "u", "conn": "w", "BSSID": "aa:bb:cc:dd:ee:ff"}
    msg.update(extra)
    return msg


def stored(db):
    with db.session() as s:
        return list(s.scalars(select(PositionRow).order_by(PositionRow.fix_time)))


def test_a_location_is_stored_and_answered_with_an_empty_array(db, client):
    make_world(db, device="haneul/phone")
    at = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
    r = client.post("/owntracks", json=location(at), headers=HEADERS)
    assert (r.status_code, r.json()) == (200, [])
    [row] = stored(db)
    assert (row.fix_time, row.lat, row.accuracy, row.altitude, row.bearing, row.battery, row.protocol) == (
        at, HOME[0], 12, 31, 270, 64, "owntracks")
    assert math.isclose(row.speed, 5.0)  # 18 km/h
    assert row.attributes == {"tid": "hn", "t": "u", "conn": "w", "BSSID": "aa:bb:cc:dd:ee:ff"}
    # The same message again (the app resends when unsure): acknowledged, stored once.
    assert client.post("/api/safety/owntracks", json=location(at), headers=HEADERS).status_code == 200
    assert len(stored(db)) == 1


def test_identity_from_the_query_or_basic_auth(db, client):
    make_world(db, device="haneul/phone")
    at = utcnow() - timedelta(minutes=2)
    assert client.post("/owntracks?u=haneul&d=phone", json=location(at)).status_code == 200
    basic = "Basic " + base64.b64encode(b"haneul:secret").decode()
    r = client.post("/owntracks?d=phone", json=location(at + timedelta(seconds=5)), headers={"Authorization": basic})
    assert r.status_code == 200
    assert len(stored(db)) == 2


def test_transitions_are_kept_and_other_types_ignored(db, client):
    make_world(db, device="haneul/phone")
    at = utcnow() - timedelta(minutes=3)
    transition = {"_type": "transition", "event": "leave", "desc": "School", "lat": HOME[0], "lon": HOME[1],
                  "tst": int(at.timestamp()), "wtst": 1700000000, "acc": 10, "t": "c"}
    assert client.post("/owntracks", json=transition, headers=HEADERS).json() == []
    for other in ({"_type": "waypoint", "desc": "Home", "lat": 1, "lon": 2, "rad": 50, "tst": 1},
                  {"_type": "lwt", "tst": 1}, {"_type": "card", "name": "Haneul"}):
        r = client.post("/owntracks", json=other, headers=HEADERS)
        assert (r.status_code, r.json()) == (200, [])
    [row] = stored(db)
    assert row.attributes["transition"] is True and row.attributes["event"] == "leave"


def test_refusals_are_json_errors_with_the_right_status(db, client):
    make_world(db, device="haneul/phone")
    at = utcnow() - timedelta(minutes=1)
    cases = [
        ({"X-Limit-U": "nobody", "X-Limit-D": "phone"}, location(at), 404, "unknown_device"),
        ({}, location(at), 400, "invalid_position"),
        (HEADERS, location(at, lat="north"), 400, "invalid_position"),
        (HEADERS, location(at, lat=95), 400, "invalid_position"),
        (HEADERS, location(at + timedelta(hours=3)), 400, "future_fix"),
        (HEADERS, {"_type": "encrypted", "data": "abc"}, 400, "encrypted_payload"),
        (HEADERS, {"_type": "nonsense"}, 400, "invalid_position"),
        (HEADERS, {k: v for k, v in location(at).items() if k != "tst"}, 400, "invalid_position"),
    ]
    for headers, body, status, code in cases:
        r = client.post("/owntracks", json=body, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
    r = client.post("/owntracks", content=b"{not json", headers=HEADERS)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_position"
    r = client.post("/owntracks", content=b"[" + b" " * client.app.state.settings.safety_device_max_bytes + b"]",
                    headers=HEADERS)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert stored(db) == []


def test_no_consent_is_403(db, client):
    make_world(db, consent=False, device="haneul/phone")
    r = client.post("/owntracks", json=location(utcnow()), headers=HEADERS)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "no_consent")
    assert stored(db) == []
