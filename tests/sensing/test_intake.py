"""Readings in by HTTP batch: each stored once, the bad ones refused with their index and reason and recorded,
nothing accepted lost; on both stores."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from smartcity.sensing.models import Reading, Rejection


def seoul_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone(timedelta(hours=9))).isoformat()


def _stored(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Reading))


def _rejections(db) -> list[tuple[str, str, str]]:
    with db.session() as s:
        return [(r.channel, r.sensor, r.code) for r in s.scalars(select(Rejection).order_by(Rejection.id))]


def test_a_batch_is_stored_once_and_its_bad_readings_refused_and_recorded(db, client, sensors, sender_key):
    now = int(time.time())
    one, two = sensors.serials[:2]
    batch = [
        {"sensor": one, "quantity": "pm10", "time": now - 120, "value": 31},
        {"sensor": one, "quantity": "pm2.5", "time": now - 120, "value": 12.5},
        {"sensor": two, "quantity": "temperature", "time": seoul_time(now - 3600), "value": -7.5},
        {"sensor": two, "quantity": "temperature", "time": seoul_time(now - 40 * 86400), "value": -7.5},
        {"sensor": one, "quantity": "pm10", "time": now - 120, "value": 31},  # the same reading again
        {"sensor": "V02Q0000000", "quantity": "pm10", "time": now, "value": 10},
        {"sensor": one, "quantity": "pm10", "time": now, "value": -4},
        {"sensor": one, "quantity": "humidity", "time": now, "value": 130},
        {"sensor": one, "quantity": "noise", "time": now + 86400, "value": 50},
        {"sensor": one, "quantity": "radon", "time": now, "value": 1},
        {"sensor": one, "quantity": "noise", "time": "yesterday", "value": 50},
        {"sensor": one, "quantity": "noise", "time": now, "value": "loud"},
        ["not", "an", "object"],
    ]
    r = client.post("/api/sensing/readings", json=batch, headers={"X-API-Key": sender_key})
    assert r.status_code == 200, r.text
    body = r.json()
    refused = {x["index"]: x["code"] for x in body["rejected"]}
    expected = {
        3: "too_old",
        5: "unknown_sensor",
        6: "out_of_range",
        7: "out_of_range",
        8: "future",
        9: "unknown_quantity",
        10: "invalid_time",
        11: "invalid_value",
        12: "malformed",
    }
    assert refused == expected
    assert body["stored"] == 3
    assert body["duplicates"] == 1
    assert _stored(db) == body["stored"]
    assert sorted(code for _, _, code in _rejections(db)) == sorted(expected.values())
    assert {channel for channel, _, _ in _rejections(db)} == {"http"}

    again = client.post("/api/sensing/readings", json=batch[:2], headers={"X-API-Key": sender_key}).json()
    assert again == {"stored": 0, "duplicates": 2, "rejected": []}
    assert _stored(db) == body["stored"]


def test_stored_values_and_times_are_those_sent(db, client, sensors, sender_key):
    now = int(time.time())
    serial = sensors.serials[5]
    sent = [{"sensor": serial, "quantity": "wind", "time": now - 60 * i, "value": 0.5 * i} for i in range(10)]
    r = client.post("/api/sensing/readings", json=sent, headers={"X-API-Key": sender_key})
    assert r.json()["stored"] == 10
    got = client.get(
        f"/api/sensing/sensors/{serial}/series", params={"quantity": "wind", "start": now - 3600, "end": now + 1}
    ).json()
    assert got["unit"] == "m/s"
    assert [(p["time"], p["value"]) for p in got["points"]] == sorted((x["time"], x["value"]) for x in sent)


def test_a_body_that_is_not_json_is_refused_whole(db, client, sensors, sender_key):
    r = client.post(
        "/api/sensing/readings",
        content=b'[{"sensor": "x", "quantity": "pm10"',
        headers={"X-API-Key": sender_key, "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_json", r.text
    assert _stored(db) == 0


@pytest.mark.parametrize("role", [None, "citizen"])
def test_only_senders_may_post_readings(db, client, sensors, role):
    from tests.conftest import make_key, make_user

    headers = {}
    if role:
        make_user(db, "someone", role)
        headers["X-API-Key"] = make_key(db, "someone")
    reading = {"sensor": sensors.serials[0], "quantity": "pm10", "time": int(time.time()), "value": 3}
    r = client.post("/api/sensing/readings", json=[reading], headers=headers)
    assert r.status_code == (401 if role is None else 403), r.text
    assert _stored(db) == 0


def test_staff_read_the_refusals(db, client, sensors, sender_key):
    client.post(
        "/api/sensing/readings",
        json=[{"sensor": "V02Q0000001", "quantity": "pm10", "time": int(time.time()), "value": 1}],
        headers={"X-API-Key": sender_key},
    )
    r = client.get("/api/sensing/rejections", headers={"X-API-Key": sender_key})
    assert r.status_code == 200
    [only] = r.json()["rejections"]
    assert (only["sensor"], only["code"], only["channel"]) == ("V02Q0000001", "unknown_sensor", "http")
    assert client.get("/api/sensing/rejections").status_code == 401


def test_a_time_beyond_what_the_store_holds_is_refused_not_an_error(db, client, sensors, sender_key):
    """Found by the property test: 9.2e18 overflowed the int64 column (a 500, the whole batch lost)."""
    serial = sensors.serials[0]
    batch = [
        {"sensor": serial, "quantity": "pm10", "time": 9.223372036854776e18, "value": 1},
        {"sensor": serial, "quantity": "pm10", "time": -5, "value": 1},
        {"sensor": serial, "quantity": "pm10", "time": int(time.time()) - 60, "value": 1},
    ]
    r = client.post("/api/sensing/readings", json=batch, headers={"X-API-Key": sender_key})
    assert r.status_code == 200, r.text
    assert [(x["index"], x["code"]) for x in r.json()["rejected"]] == [(0, "invalid_time"), (1, "invalid_time")]
    assert r.json()["stored"] == 1 and _stored(db) == 1
