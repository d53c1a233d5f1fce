"""OwnTracks over HTTP: the app's identity headers and Basic credentials, units, message types, JSON errors,
replays."""

from __future__ import annotations

import base64
import math
import time
from datetime import timedelta

from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from smartcity.safety import service
from smartcity.safety.models import PositionRow
from smartcity.safety.settings import SafetySettings
from tests.safety.helpers import HOME, make_world

IDENTITY = {"X-Limit-U": "haneul", "X-Limit-D": "phone"}


def basic(password: str, user: str = "haneul") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def app_headers(secret: str) -> dict:
    """What the OwnTracks app sends in HTTP mode: its user and device, and Basic credentials."""
    return {**IDENTITY, "Authorization": basic(secret)}


def owntracks_world(db, **kw):
    return make_world(db, device="haneul/phone", protocols="owntracks", **kw)


def refusals(db, wait: float = 5.0) -> list[dict]:
    """The audit log's device refusals (written by the intake's writer within a second or so)."""
    deadline = time.monotonic() + wait
    while True:
        with db.session() as s:
            got = [
                e.detail
                for e in s.scalars(
                    select(AuditEntry).where(AuditEntry.action == "device_refused").order_by(AuditEntry.id)
                )
            ]
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def location(at, point=HOME, **extra) -> dict:
    msg = {
        "_type": "location",
        "lat": point[0],
        "lon": point[1],
        "tst": int(at.timestamp()),
        "acc": 12,
        "alt": 31,
        "vel": 18,
        "cog": 270,
        "batt": 64,
        "tid": "hn",
        "t": "u",
        "conn": "w",
        "BSSID": "aa:bb:cc:dd:ee:ff",
    }
    msg.update(extra)
    return msg


def stored(db):
    with db.session() as s:
        return list(s.scalars(select(PositionRow).order_by(PositionRow.fix_time)))


def test_a_location_is_stored_and_answered_with_an_empty_array(db, client):
    w = owntracks_world(db)
    HEADERS = app_headers(w.secret)
    at = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
    r = client.post("/owntracks", json=location(at), headers=HEADERS)
    assert (r.status_code, r.json()) == (200, [])
    [row] = stored(db)
    assert (row.fix_time, row.lat, row.accuracy, row.altitude, row.bearing, row.battery, row.protocol) == (
        at,
        HOME[0],
        12,
        31,
        270,
        64,
        "owntracks",
    )
    assert math.isclose(row.speed, 5.0)  # 18 km/h
    assert row.attributes == {"tid": "hn", "t": "u", "conn": "w", "BSSID": "aa:bb:cc:dd:ee:ff"}
    # The same message again (the app resends when unsure): acknowledged, stored once.
    assert client.post("/api/safety/owntracks", json=location(at), headers=HEADERS).status_code == 200
    assert len(stored(db)) == 1


def test_identity_from_the_query_or_basic_auth(db, client):
    w = owntracks_world(db)
    at = utcnow() - timedelta(minutes=2)
    r = client.post("/owntracks?u=haneul&d=phone", json=location(at), headers={"Authorization": basic(w.secret)})
    assert r.status_code == 200
    r = client.post(
        "/owntracks?d=phone", json=location(at + timedelta(seconds=5)), headers={"Authorization": basic(w.secret)}
    )
    assert r.status_code == 200
    assert len(stored(db)) == 2


def test_transitions_are_kept_and_other_types_ignored(db, client):
    w = owntracks_world(db)
    HEADERS = app_headers(w.secret)
    at = utcnow() - timedelta(minutes=3)
    transition = {
        "_type": "transition",
        "event": "leave",
        "desc": "School",
        "lat": HOME[0],
        "lon": HOME[1],
        "tst": int(at.timestamp()),
        "wtst": 1700000000,
        "acc": 10,
        "t": "c",
    }
    assert client.post("/owntracks", json=transition, headers=HEADERS).json() == []
    for other in (
        {"_type": "waypoint", "desc": "Home", "lat": 1, "lon": 2, "rad": 50, "tst": 1},
        {"_type": "lwt", "tst": 1},
        {"_type": "card", "name": "Haneul"},
    ):
        r = client.post("/owntracks", json=other, headers=HEADERS)
        assert (r.status_code, r.json()) == (200, [])
    [row] = stored(db)
    assert row.attributes["transition"] is True and row.attributes["event"] == "leave"


def test_refusals_are_json_errors_with_the_right_status(db, client):
    w = owntracks_world(db)
    HEADERS = app_headers(w.secret)
    at = utcnow() - timedelta(minutes=1)
    cases = [
        (
            {"X-Limit-U": "nobody", "X-Limit-D": "phone", "Authorization": basic(w.secret, "nobody")},
            location(at),
            404,
            "unknown_device",
        ),
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
    r = client.post(
        "/owntracks",
        content=b"[" + b" " * client.app.state.settings.of(SafetySettings).device_max_bytes + b"]",
        headers=HEADERS,
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert stored(db) == []


def test_no_consent_is_403(db, client):
    w = owntracks_world(db, consent=False)
    HEADERS = app_headers(w.secret)
    r = client.post("/owntracks", json=location(utcnow()), headers=HEADERS)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "no_consent")
    assert stored(db) == []


def test_identity_headers_alone_store_nothing_and_are_audited(db, client):
    """Issue 10.2: X-Limit-U/X-Limit-D without credentials used to store positions for a registered device."""
    w = owntracks_world(db)
    at = utcnow() - timedelta(minutes=1)
    r = client.post("/owntracks", json=location(at), headers=IDENTITY)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "bad_credentials")
    assert r.headers["www-authenticate"].startswith("Basic")
    assert stored(db) == []
    [entry] = refusals(db)
    assert (entry["protocol"], entry["reason"], entry["count"]) == ("owntracks", "missing_secret", 1)
    # The app with its secret is taken.
    assert client.post("/owntracks", json=location(at), headers=app_headers(w.secret)).status_code == 200
    assert len(stored(db)) == 1


def test_a_wrong_password_stores_nothing_even_after_the_right_one_was_seen(db, client):
    w = owntracks_world(db)
    at = utcnow() - timedelta(minutes=5)
    # The right secret first: it is remembered as verified, which must not let a wrong one through later.
    assert client.post("/owntracks", json=location(at), headers=app_headers(w.secret)).status_code == 200
    for i in range(3):
        r = client.post(
            "/owntracks", json=location(at + timedelta(seconds=10 + i)), headers=app_headers(w.secret + "x")
        )
        assert (r.status_code, r.json()["error"]["code"]) == (401, "bad_credentials")
    r = client.post("/owntracks", json=location(at + timedelta(seconds=20)), headers=app_headers("secret"))
    assert r.status_code == 401
    assert len(stored(db)) == 1
    entries = refusals(db)
    assert {e["reason"] for e in entries} == {"bad_secret"}
    assert sum(e["count"] for e in entries) == 4  # every refusal counted, however few entries
    # A Basic user other than the X-Limit-U user is refused too.
    r = client.post(
        "/owntracks",
        json=location(at + timedelta(seconds=30)),
        headers={**IDENTITY, "Authorization": basic(w.secret, "mallory")},
    )
    assert r.status_code == 401
    assert len(stored(db)) == 1


def test_a_device_registered_for_osmand_is_refused_through_owntracks(db, client):
    w = make_world(db, device="haneul/phone")  # OsmAnd only: no secret issued
    assert w.secret is None
    at = utcnow() - timedelta(minutes=1)
    r = client.post("/owntracks", json=location(at), headers={**IDENTITY, "Authorization": basic("anything")})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "protocol_not_allowed")
    assert stored(db) == []
    [entry] = refusals(db)
    assert (entry["protocol"], entry["reason"]) == ("owntracks", "protocol_not_allowed")


def test_a_new_secret_replaces_the_old_one(db, client):
    w = owntracks_world(db)
    at = utcnow() - timedelta(minutes=5)
    assert client.post("/owntracks", json=location(at), headers=app_headers(w.secret)).status_code == 200
    with db.session() as s:
        fresh = service.reset_device_secret(s, w.device_id, actor="test")
    assert fresh != w.secret
    r = client.post("/owntracks", json=location(at + timedelta(seconds=10)), headers=app_headers(w.secret))
    assert r.status_code == 401
    r = client.post("/owntracks", json=location(at + timedelta(seconds=20)), headers=app_headers(fresh))
    assert r.status_code == 200
    assert len(stored(db)) == 2
    with db.session() as s:  # only a hash is kept
        from smartcity.safety.models import Device

        kept = s.get(Device, w.device_id).secret_hash
    assert fresh not in kept and kept.startswith("$argon2")


def test_error_messages_name_the_field(db, client):
    w = owntracks_world(db)
    at = utcnow() - timedelta(minutes=1)
    r = client.post("/owntracks", json=location(at, lat=95), headers=app_headers(w.secret))
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "lat: must be between -90 and 90"
    r = client.post("/owntracks", json=location(at, vel="fast"), headers=app_headers(w.secret))
    assert r.json()["error"]["message"].startswith("vel: ")
    r = client.post(
        "/owntracks", json={k: v for k, v in location(at).items() if k != "tst"}, headers=app_headers(w.secret)
    )
    assert r.json()["error"]["message"].startswith("tst: ")
    r = client.post("/owntracks", json=location(at, batt=120), headers=app_headers(w.secret))
    assert r.json()["error"]["message"] == "batt: must be between 0 and 100"  # the app's own key
    assert r.json()["error"]["details"] == [{"field": "batt", "problem": "must be between 0 and 100"}]
