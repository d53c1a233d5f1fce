"""NGSI-LD batch operations (201/204/207 with BatchOperationResult) and sensor entities: an AirQualityObserved
written through NGSI-LD lands in the readings tables, refused by the same rules as MQTT and HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from sqlalchemy import select

from smartcity.sensing.models import Reading, Rejection
from smartcity.sensing.quantities import BY_NAME

ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def entity(n: int, **attrs) -> dict:
    return {"id": f"urn:ngsi-ld:Streetlight:b{n}", "type": "Streetlight", **attrs}


def batch(client, key, op, body, query=""):
    return client.post(
        f"/ngsi-ld/v1/entityOperations/{op}{query}",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )


def values(client, *ns) -> list:
    out = []
    for n in ns:
        r = client.get(f"/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:b{n}?options=keyValues")
        out.append(r.json() if r.status_code == 200 else None)
    return out


def test_batch_create_upsert_update_delete(sender_key, client):
    created = batch(client, sender_key, "create", [entity(1, clients=1), entity(2, clients=2)])
    assert created.status_code == 201
    assert sorted(created.json()) == ["urn:ngsi-ld:Streetlight:b1", "urn:ngsi-ld:Streetlight:b2"]

    mixed = batch(client, sender_key, "create", [entity(2, clients=9), entity(3, clients=3), {"id": "bad"}])
    assert mixed.status_code == 207
    result = mixed.json()
    assert result["success"] == ["urn:ngsi-ld:Streetlight:b3"]
    errors = {e["entityId"]: e["error"]["type"] for e in result["errors"]}
    assert errors == {"urn:ngsi-ld:Streetlight:b2": ERR + "AlreadyExists", "bad": ERR + "BadRequestData"}
    assert values(client, 2)[0]["clients"] == 2

    replaced = batch(client, sender_key, "upsert", [entity(1, band="5GHz")])
    assert replaced.status_code == 204
    assert values(client, 1)[0] == {"id": "urn:ngsi-ld:Streetlight:b1", "type": "Streetlight", "band": "5GHz"}
    merged = batch(client, sender_key, "upsert", [entity(2, band="2.4GHz"), entity(4, clients=4)], "?options=update")
    assert merged.status_code == 201
    assert merged.json() == ["urn:ngsi-ld:Streetlight:b4"]
    assert (values(client, 2)[0]["clients"], values(client, 2)[0]["band"]) == (2, "2.4GHz")

    updated = batch(client, sender_key, "update", [entity(3, clients=30), entity(9, clients=90)])
    assert updated.status_code == 207
    assert updated.json()["success"] == ["urn:ngsi-ld:Streetlight:b3"]
    assert updated.json()["errors"][0]["error"]["type"] == ERR + "ResourceNotFound"
    assert values(client, 3, 9) == [{"id": "urn:ngsi-ld:Streetlight:b3", "type": "Streetlight", "clients": 30}, None]
    kept = batch(client, sender_key, "update", [entity(3, clients=31)], "?options=noOverwrite")
    assert kept.status_code == 204 and values(client, 3)[0]["clients"] == 30

    deleted = batch(client, sender_key, "delete", ["urn:ngsi-ld:Streetlight:b1", "urn:ngsi-ld:Streetlight:b9"])
    assert deleted.status_code == 207
    assert deleted.json()["success"] == ["urn:ngsi-ld:Streetlight:b1"]
    assert batch(client, sender_key, "delete", ["urn:ngsi-ld:Streetlight:b2"]).status_code == 204
    assert values(client, 1, 2, 3) == [None, None, values(client, 3)[0]]

    for op, body in (("create", {}), ("upsert", []), ("delete", [1])):
        r = batch(client, sender_key, op, body)
        assert (r.status_code, r.json()["type"]) == (400, ERR + "BadRequestData"), op
    assert client.post("/ngsi-ld/v1/entityOperations/create", json=[entity(7)]).status_code == 401


def air(serial: str, when: int, **attrs) -> dict:
    stamp = datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")
    body = {
        "id": f"urn:ngsi-ld:AirQualityObserved:{serial}",
        "type": "AirQualityObserved",
        "dateObserved": {"type": "Property", "value": stamp},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [126.97, 37.56]}},
    }
    body.update({name: {"type": "Property", "value": value} for name, value in attrs.items()})
    return body


def _readings(db) -> set[tuple[int, float]]:
    with db.session() as s:
        return {(r.quantity, r.value) for r in s.scalars(select(Reading))}


def test_air_quality_written_through_ngsi_ld_lands_in_the_readings(db, sensors, sender_key, client):
    now = int(time.time()) - 60
    one, two, three = sensors.serials[:3]
    r = batch(client, sender_key, "upsert", [air(one, now, pm10=42, pm25=17.5, relativeHumidity=0.55)])
    assert r.status_code == 201, r.text
    assert _readings(db) == {(BY_NAME["pm10"].code, 42), (BY_NAME["pm25"].code, 17.5), (BY_NAME["humidity"].code, 55)}
    read = client.get(f"/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:{one}?options=keyValues").json()
    assert read["relativeHumidity"] == 0.55

    # The same rules as MQTT and HTTP: an impossible value or an unknown sensor refuses the entity, recorded.
    refused = batch(
        client,
        sender_key,
        "upsert",
        [air(two, now, pm10=-3), air("V02Q0000000", now, pm10=10), air(three, now, pm25=12)],
    )
    assert refused.status_code == 207
    assert refused.json()["success"] == [f"urn:ngsi-ld:AirQualityObserved:{three}"]
    assert {e["error"]["type"] for e in refused.json()["errors"]} == {ERR + "BadRequestData"}
    with db.session() as s:
        rejected = {(x.channel, x.code) for x in s.scalars(select(Rejection))}
    assert rejected == {("ngsi-ld", "out_of_range"), ("ngsi-ld", "unknown_sensor")}
    for missing in ("V02Q0000000", two):
        assert client.get(f"/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:{missing}").status_code == 404
    assert (BY_NAME["pm25"].code, 12) in _readings(db) and (BY_NAME["pm10"].code, -3) not in _readings(db)

    single = client.post(
        "/ngsi-ld/v1/entities",
        content=json.dumps(air(sensors.serials[3], now + 86400 * 2, pm10=1)),
        headers={"Content-Type": "application/json", "X-API-Key": sender_key},
    )
    assert (single.status_code, single.json()["type"]) == (400, ERR + "BadRequestData")
    assert "future" in single.json()["detail"]

    patched = client.patch(
        f"/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:{one}/attrs/pm10",
        content=json.dumps({"value": 2000}),
        headers={"Content-Type": "application/json", "X-API-Key": sender_key},
    )
    assert patched.status_code == 400
    assert (
        client.get(f"/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:{one}?options=keyValues").json()["pm10"] == 42
    )


def test_two_racing_batch_creates_of_one_id_store_it_once(db, sensors, sender_key, client):
    """Regression: a batch create checked which ids existed, then upserted: two batches racing for an id both
    answered 201 and the later one overwrote the first (its readings stored as well). Now one creates each id,
    the other gets an AlreadyExists error entry in a 207, and the loser's readings are not stored."""
    import threading

    now = int(time.time()) - 60
    serial = sensors.serials[0]
    for round_ in range(4):
        ids = [f"urn:ngsi-ld:Streetlight:race{round_}-{n}" for n in range(60)]
        bodies = {
            side: [{"id": i, "type": "Streetlight", "side": {"type": "Property", "value": side}} for i in ids]
            for side in ("A", "B")
        }
        # One sensor entity in the race too: its reading (pm10 = 10 or 20) is stored by the winner only.
        bodies["A"].append(air(serial, now - round_, pm10=10 + round_))
        bodies["B"].append(air(serial, now - round_, pm10=20 + round_))
        if round_:
            client.post(
                "/ngsi-ld/v1/entityOperations/delete",
                content=json.dumps([f"urn:ngsi-ld:AirQualityObserved:{serial}"]),
                headers={"Content-Type": "application/json", "X-API-Key": sender_key},
            )
        start = threading.Barrier(2)
        answers: dict[str, object] = {}

        def send(side: str, start=start, bodies=bodies, answers=answers) -> None:
            start.wait()
            answers[side] = batch(client, sender_key, "create", bodies[side])

        threads = [threading.Thread(target=send, args=(side,)) for side in ("A", "B")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        won: dict[str, str] = {}
        for side, r in answers.items():
            assert r.status_code in (201, 207), r.text
            success = r.json() if r.status_code == 201 else r.json()["success"]
            errors = [] if r.status_code == 201 else r.json()["errors"]
            assert {e["error"]["type"] for e in errors} <= {ERR + "AlreadyExists"}
            for eid in success:
                assert eid not in won, f"{eid} created by both batches"
                won[eid] = side
        every = ids + [f"urn:ngsi-ld:AirQualityObserved:{serial}"]
        assert sorted(won) == sorted(every)
        for eid in ids[::7]:
            stored = client.get(f"/ngsi-ld/v1/entities/{eid}?options=keyValues").json()
            assert stored["side"] == won[eid]
        pm10 = {v for q, v in _readings(db) if q == BY_NAME["pm10"].code}
        winner = won[f"urn:ngsi-ld:AirQualityObserved:{serial}"]
        assert (10 + round_ if winner == "A" else 20 + round_) in pm10
        assert (20 + round_ if winner == "A" else 10 + round_) not in pm10


def test_insert_new_waits_on_a_concurrent_writer_of_the_same_id(db):
    """Two connections inserting one id: the second waits for the first's commit and stores nothing."""
    import threading

    from smartcity.sensing import ngsi_entities as store

    def thing(side: str) -> store.Entity:
        return store.Entity("urn:ngsi-ld:Thing:one", "Thing", {"side": {"type": "Property", "value": side}})

    first = db.sessions()
    assert store.insert_new(first, [thing("A")]) == {"urn:ngsi-ld:Thing:one"}
    second: dict[str, set[str]] = {}

    def other() -> None:
        with db.session() as s:
            second["made"] = store.insert_new(s, [thing("B"), store.Entity("urn:ngsi-ld:Thing:two", "Thing")])

    t = threading.Thread(target=other)
    t.start()
    t.join(0.5)
    assert t.is_alive()  # waiting on the first writer
    first.commit()
    first.close()
    t.join(30)
    assert second["made"] == {"urn:ngsi-ld:Thing:two"}
    with db.session() as s:
        assert store.find(s, "urn:ngsi-ld:Thing:one").attrs["side"]["value"] == "A"
