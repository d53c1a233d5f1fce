"""The NGSI-LD broker's entity, attribute and query operations, with the status codes and ProblemDetails types
of ETSI GS CIM 009 (create 201 + Location, 409 AlreadyExists, 404 ResourceNotFound, 400 BadRequestData,
415/406, 207 for partial success); on both stores."""

from __future__ import annotations

import json

from sqlalchemy import select

from smartcity.core.models import AuditEntry

ERR = "https://uri.etsi.org/ngsi-ld/errors/"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
LINK = f'<{CORE}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def station(n: int, *, lon: float = 126.978, lat: float = 37.5665, pm10: float = 20, name: str = "") -> dict:
    return {
        "id": f"urn:ngsi-ld:Streetlight:ap{n:03d}",
        "type": "Streetlight",
        "name": {"type": "Property", "value": name or f"AP {n}"},
        "clients": {"type": "Property", "value": pm10, "unitCode": "E50"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }


def post(client, key, path, body, **headers):
    return client.post(
        f"/ngsi-ld/v1{path}",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "X-API-Key": key, **headers},
    )


def test_create_retrieve_delete_answer_the_standards_codes(sender_key, client):
    r = post(client, sender_key, "/entities", station(1))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap001"

    again = post(client, sender_key, "/entities", station(1))
    assert again.status_code == 409
    assert again.json()["type"] == ERR + "AlreadyExists"

    got = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap001")
    assert got.status_code == 200
    assert got.json()["clients"] == {"type": "Property", "value": 20, "unitCode": "E50"}
    assert CORE in got.headers["link"]

    kv = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap001?options=keyValues&pick=id,clients").json()
    assert kv == {"id": "urn:ngsi-ld:Streetlight:ap001", "clients": 20}
    omitted = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap001?omit=location,name").json()
    assert set(omitted) == {"id", "type", "clients"}
    ld = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap001", headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert ld.json()["@context"] == CORE

    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:nope").json()["type"] == ERR + "ResourceNotFound"
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:nope").status_code == 404
    assert client.get("/ngsi-ld/v1/entities/not-a-uri").json()["type"] == ERR + "BadRequestData"

    gone = client.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap001", headers={"X-API-Key": sender_key})
    assert gone.status_code == 204
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap001").status_code == 404
    again = client.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap001", headers={"X-API-Key": sender_key})
    assert again.status_code == 404


def test_bad_entities_are_refused_as_bad_request_data_and_nothing_is_stored(sender_key, client):
    bad = [
        {"type": "Streetlight"},
        {"id": "urn:ngsi-ld:Streetlight:x", "type": "Streetlight", "clients": {"type": "Property"}},
        {"id": "urn:ngsi-ld:Streetlight:x", "type": "Streetlight", "clients": {"type": "Thing", "value": 1}},
        {"id": "urn:ngsi-ld:Streetlight:x", "type": "Streetlight", "owner": {"type": "Relationship", "object": 3}},
        {
            "id": "urn:ngsi-ld:Streetlight:x",
            "type": "Streetlight",
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [200, 37]}},
        },
        [1, 2],
    ]
    for body in bad:
        r = post(client, sender_key, "/entities", body)
        assert r.status_code == 400, body
        assert r.json()["type"] == ERR + "BadRequestData"
    r = client.post(
        "/ngsi-ld/v1/entities",
        content=b"{not json",
        headers={"Content-Type": "application/json", "X-API-Key": sender_key},
    )
    assert (r.status_code, r.json()["type"]) == (400, ERR + "InvalidRequest")
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:x").status_code == 404


def test_writes_need_a_sensing_key_and_are_audited(db, sender_key, client):
    anonymous = client.post("/ngsi-ld/v1/entities", json=station(2))
    assert anonymous.status_code == 401
    assert "detail" in anonymous.json() and "type" in anonymous.json()
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap002").status_code == 404

    assert post(client, sender_key, "/entities", station(2)).status_code == 201
    with db.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "ngsi.create")).one()
        assert entry.object_id == "urn:ngsi-ld:Streetlight:ap002"
        assert entry.actor == "gateway"


def test_private_types_are_not_read_by_the_public(sender_key, client):
    private = {"id": "urn:ngsi-ld:TrafficFlowObserved:c1", "type": "TrafficFlowObserved", "name": "gate"}
    assert post(client, sender_key, "/entities", private).status_code == 201
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:TrafficFlowObserved:c1").status_code == 404
    assert client.get("/ngsi-ld/v1/entities?type=TrafficFlowObserved").json() == []
    staff = client.get("/ngsi-ld/v1/entities?type=TrafficFlowObserved", headers={"X-API-Key": sender_key}).json()
    assert [e["id"] for e in staff] == ["urn:ngsi-ld:TrafficFlowObserved:c1"]


def test_media_types_and_the_context_follow_the_standard(sender_key, client):
    body = station(3)
    text = client.post(
        "/ngsi-ld/v1/entities",
        content=json.dumps(body),
        headers={"Content-Type": "text/plain", "X-API-Key": sender_key},
    )
    assert text.status_code == 415
    no_context = post(client, sender_key, "/entities", body, **{"Content-Type": "application/ld+json"})
    assert (no_context.status_code, no_context.json()["type"]) == (400, ERR + "BadRequestData")
    json_with_context = post(client, sender_key, "/entities", {**body, "@context": CORE})
    assert (json_with_context.status_code, json_with_context.json()["type"]) == (400, ERR + "BadRequestData")
    both = post(
        client,
        sender_key,
        "/entities",
        {**body, "@context": CORE},
        **{"Content-Type": "application/ld+json", "Link": LINK},
    )
    assert both.status_code == 400
    html = client.get("/ngsi-ld/v1/entities?type=Streetlight", headers={"Accept": "text/html"})
    assert (html.status_code, html.json()["type"]) == (406, ERR + "NotAcceptable")
    assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:ap003").status_code == 404

    ld = post(client, sender_key, "/entities", {**body, "@context": CORE}, **{"Content-Type": "application/ld+json"})
    assert ld.status_code == 201
    linked = post(client, sender_key, "/entities", station(4), Link=LINK)
    assert linked.status_code == 201


def test_attribute_append_update_partial_update_and_delete(sender_key, client):
    eid = "urn:ngsi-ld:Streetlight:ap005"
    assert post(client, sender_key, "/entities", station(5)).status_code == 201
    key = {"X-API-Key": sender_key, "Content-Type": "application/json"}
    url = f"/ngsi-ld/v1/entities/{eid}"

    added = client.post(
        f"{url}/attrs", content=json.dumps({"status": {"type": "Property", "value": "up"}}), headers=key
    )
    assert added.status_code == 204
    kept = client.post(
        f"{url}/attrs?options=noOverwrite",
        content=json.dumps({"status": {"type": "Property", "value": "down"}, "band": "5GHz"}),
        headers=key,
    )
    assert kept.status_code == 207
    assert [n["attributeName"] for n in kept.json()["notUpdated"]] == ["status"]
    assert kept.json()["updated"] == ["band"]
    now = client.get(f"{url}?options=keyValues").json()
    assert (now["status"], now["band"]) == ("up", "5GHz")

    update = client.patch(
        f"{url}/attrs", content=json.dumps({"status": {"type": "Property", "value": "down"}, "nothere": 1}), headers=key
    )
    assert update.status_code == 207
    assert [n["attributeName"] for n in update.json()["notUpdated"]] == ["nothere"]
    assert "nothere" not in client.get(url).json()

    partial = client.patch(f"{url}/attrs/clients", content=json.dumps({"value": 31}), headers=key)
    assert partial.status_code == 204
    assert client.get(url).json()["clients"] == {"type": "Property", "value": 31, "unitCode": "E50"}
    missing = client.patch(f"{url}/attrs/absent", content=json.dumps({"value": 1}), headers=key)
    assert (missing.status_code, missing.json()["type"]) == (404, ERR + "ResourceNotFound")

    assert client.delete(f"{url}/attrs/band", headers=key).status_code == 204
    assert "band" not in client.get(url).json()
    assert client.delete(f"{url}/attrs/band", headers=key).status_code == 404
    assert client.post("/ngsi-ld/v1/entities/urn:x:none/attrs", content=b'{"a": 1}', headers=key).status_code == 404
