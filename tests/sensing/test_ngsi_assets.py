"""The entities other modules own, served read-only by the NGSI-LD broker: the assets registry's cameras
(Camera), public Wi-Fi access points (AccessPoint, with their newest status) and sensors (Device) — queried,
retrieved and projected like stored entities, paged together with them, and every write refused with the
standard's OperationNotSupported; on both stores."""

from __future__ import annotations

import json
import time

import pytest

from smartcity.assets import service as assets
from smartcity.sensing import wifi

ERR = "https://uri.etsi.org/ngsi-ld/errors/"
# Three places in central Seoul, each more than a kilometre from the others.
CITY_HALL, PALACE, NAMSAN = (37.5665, 126.978), (37.5796, 126.977), (37.5512, 126.988)


@pytest.fixture
def registry(db) -> dict[str, int]:
    """A camera, two access points (one has reported its status) and a sensor, registered in the assets module."""
    with db.session() as s:
        ids = {
            "camera": assets.create_asset(s, "cctv", *CITY_HALL, name="시청 앞", actor="test").id,
            "ap1": assets.create_asset(
                s,
                "wifi",
                *CITY_HALL,
                name="시청 광장",
                attributes={"place": "공원", "place_detail": "광장"},
                actor="test",
            ).id,
            "ap2": assets.create_asset(
                s,
                "wifi",
                *PALACE,
                name="경복궁역",
                attributes={"place": "지하철역", "place_detail": "대합실"},
                actor="test",
            ).id,
            "sensor": assets.create_asset(s, "sensor", *NAMSAN, external_id="V02Q1940999", actor="test").id,
        }
    outcome = wifi.record_status(
        db, [{"access_point": ids["ap1"], "time": int(time.time()) - 60, "up": True, "clients": 7}], "http"
    )
    assert outcome.stored == 1
    return ids


def get(client, path: str, key: str | None = None, **params):
    return client.get(f"/ngsi-ld/v1{path}", params=params, headers={"X-API-Key": key} if key else {})


def send(client, key, method, path, body):
    return client.request(
        method,
        f"/ngsi-ld/v1{path}",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )


def test_access_points_are_served_from_the_registry_with_their_status(db, client, registry):
    ap1, ap2 = f"urn:ngsi-ld:AccessPoint:{registry['ap1']}", f"urn:ngsi-ld:AccessPoint:{registry['ap2']}"
    found = get(client, "/entities", type="AccessPoint", options="keyValues")
    assert found.status_code == 200, found.text
    by_id = {e["id"]: e for e in found.json()}
    assert sorted(by_id) == sorted([ap1, ap2])
    with db.session() as s:
        served = {ap.id: ap for ap in wifi.access_points(s)}
    for asset_id, eid in ((registry["ap1"], ap1), (registry["ap2"], ap2)):
        assert by_id[eid]["installation"] == served[asset_id].installation
        assert by_id[eid]["coverageRadius"] == served[asset_id].radius_m
        assert by_id[eid]["location"]["coordinates"] == pytest.approx([served[asset_id].lon, served[asset_id].lat])
    assert (by_id[ap1]["status"], by_id[ap1]["connectedClients"]) == ("up", 7)
    assert "status" not in by_id[ap2]

    normalized = get(client, f"/entities/{ap1}").json()
    assert normalized["connectedClients"]["type"] == "Property"
    assert normalized["connectedClients"]["observedAt"].endswith("Z")
    assert [e["id"] for e in get(client, "/entities", type="AccessPoint", q="connectedClients>5").json()] == [ap1]
    assert get(client, "/entities", type="AccessPoint", q="connectedClients>7").json() == []
    lon, lat = CITY_HALL[1], CITY_HALL[0]
    near = get(
        client,
        "/entities",
        type="AccessPoint",
        georel="near;maxDistance==200",
        geometry="Point",
        coordinates=f"[{lon},{lat}]",
    )
    assert [e["id"] for e in near.json()] == [ap1]
    picked = get(client, f"/entities/{ap2}", pick="id,name", options="keyValues").json()
    assert picked == {"id": ap2, "name": "경복궁역"}
    assert "location" not in get(client, f"/entities/{ap2}", omit="location").json()


def test_sensors_are_devices_and_cameras_are_for_staff_only(client, registry, sender_key):
    device = get(client, f"/entities/urn:ngsi-ld:Device:{registry['sensor']}", options="keyValues")
    assert device.status_code == 200, device.text
    assert device.json()["serialNumber"] == "V02Q1940999"
    camera = f"urn:ngsi-ld:Camera:{registry['camera']}"
    assert get(client, f"/entities/{camera}").status_code == 404
    assert get(client, "/entities", type="Camera").json() == []
    staff = get(client, "/entities", sender_key, type="Camera", options="keyValues").json()
    assert [(e["id"], e["name"]) for e in staff] == [(camera, "시청 앞")]
    # An id whose number is another kind's asset is no camera.
    assert get(client, f"/entities/urn:ngsi-ld:Camera:{registry['ap1']}", sender_key).status_code == 404
    assert get(client, "/entities/urn:ngsi-ld:Camera:999999", sender_key).status_code == 404


def test_owned_and_stored_entities_are_paged_together(client, registry, sender_key):
    stored = {"id": "urn:ngsi-ld:Streetlight:a", "type": "Streetlight", "lanternHeight": 8}
    assert send(client, sender_key, "POST", "/entities", stored).status_code == 201
    everything = get(client, "/entities", type="AccessPoint,Streetlight", count="true")
    ids = [e["id"] for e in everything.json()]
    assert everything.headers["NGSILD-Results-Count"] == "3"
    assert ids == sorted(ids) and "urn:ngsi-ld:Streetlight:a" in ids and len(ids) == 3
    page = get(client, "/entities", type="AccessPoint,Streetlight", limit="1", offset="1", count="true")
    assert [e["id"] for e in page.json()] == ids[1:2]
    assert page.headers["NGSILD-Results-Count"] == "3"
    assert [e["id"] for e in get(client, "/entities", id=ids[0]).json()] == ids[:1]


def test_writes_to_owned_entities_are_refused_and_change_nothing(client, registry, sender_key):
    ap1 = f"urn:ngsi-ld:AccessPoint:{registry['ap1']}"
    camera = {"id": "urn:ngsi-ld:Camera:new", "type": "Camera", "name": "x"}
    refusals = [
        send(client, sender_key, "POST", "/entities", camera),
        send(client, sender_key, "PATCH", f"/entities/{ap1}/attrs", {"name": "renamed"}),
        send(client, sender_key, "POST", f"/entities/{ap1}/attrs", {"name": "renamed"}),
        send(client, sender_key, "PATCH", f"/entities/{ap1}/attrs/name", {"value": "renamed"}),
        client.delete(f"/ngsi-ld/v1/entities/{ap1}/attrs/name", headers={"X-API-Key": sender_key}),
        client.delete(f"/ngsi-ld/v1/entities/{ap1}", headers={"X-API-Key": sender_key}),
    ]
    for r in refusals:
        assert (r.status_code, r.json()["type"]) == (422, ERR + "OperationNotSupported"), r.text
    batch = send(
        client,
        sender_key,
        "POST",
        "/entityOperations/upsert",
        [
            {"id": ap1, "type": "AccessPoint", "name": "renamed"},
            {"id": "urn:ngsi-ld:Streetlight:b", "type": "Streetlight"},
        ],
    )
    assert batch.status_code == 207, batch.text
    result = batch.json()
    assert result["success"] == ["urn:ngsi-ld:Streetlight:b"]
    assert [(e["entityId"], e["error"]["type"]) for e in result["errors"]] == [(ap1, ERR + "OperationNotSupported")]
    gone = send(client, sender_key, "POST", "/entityOperations/delete", [ap1])
    assert gone.json()["errors"][0]["error"]["type"] == ERR + "OperationNotSupported"
    assert get(client, f"/entities/{ap1}", options="keyValues").json()["name"] == "시청 광장"
    cameras = get(client, "/entities", sender_key, type="Camera").json()
    assert [e["id"] for e in cameras] == [f"urn:ngsi-ld:Camera:{registry['camera']}"]
