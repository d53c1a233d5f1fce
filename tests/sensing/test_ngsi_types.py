"""GET /ngsi-ld/v1/types, /types/{type}, /attributes and /attributes/{attr}: what entity types and attributes
the broker holds, in ETSI GS CIM 009's EntityTypeList / EntityType / EntityTypeInfo / AttributeList / Attribute
shapes, counted by the store on both backends; callers see only the types they may read."""

from __future__ import annotations

import json

import pytest

ERR = "https://uri.etsi.org/ngsi-ld/errors/"
NGSI = "https://uri.etsi.org/ngsi-ld/"
DEFAULT = f"{NGSI}default-context/"


def light(n: int, **attrs) -> dict:
    return {
        "id": f"urn:ngsi-ld:Streetlight:t{n}",
        "type": "Streetlight",
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [126.97, 37.56]}},
        **attrs,
    }


@pytest.fixture
def held(client, sender_key) -> dict:
    """Three streetlights (two with a lamp level, one with a Relationship to its cabinet) and two cabinets, a
    type only staff may read."""
    made = [
        light(1, level={"type": "Property", "value": 80}),
        light(2, level={"type": "Property", "value": 40}, cabinet={"type": "Relationship", "object": "urn:x:c1"}),
        light(3),
        {"id": "urn:ngsi-ld:Cabinet:c1", "type": "Cabinet", "level": {"type": "Property", "value": "B2"}},
        {"id": "urn:ngsi-ld:Cabinet:c2", "type": "Cabinet", "owner": {"type": "Property", "value": "Jung-gu"}},
    ]
    r = client.post(
        "/ngsi-ld/v1/entityOperations/create",
        content=json.dumps(made),
        headers={"Content-Type": "application/json", "X-API-Key": sender_key},
    )
    assert r.status_code == 201, r.text
    return {"X-API-Key": sender_key}


def get(client, path: str, headers: dict | None = None, **params):
    r = client.get(f"/ngsi-ld/v1/{path}", params=params, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()


def test_type_list_and_details(client, held):
    listed = get(client, "types", held)
    assert listed["type"] == "EntityTypeList" and listed["id"].startswith("urn:ngsi-ld:EntityTypeList:")
    assert listed["typeList"] == ["Cabinet", "Streetlight"]
    # Anonymous callers read the public types only: the cabinets are not listed to them.
    assert get(client, "types")["typeList"] == ["Streetlight"]
    detailed = get(client, "types", held, details="true")
    assert detailed == [
        {"id": f"{DEFAULT}Cabinet", "type": "EntityType", "typeName": "Cabinet", "attributeNames": ["level", "owner"]},
        {
            "id": f"{DEFAULT}Streetlight",
            "type": "EntityType",
            "typeName": "Streetlight",
            "attributeNames": ["cabinet", "level", "location"],
        },
    ]


def test_type_info(client, held):
    info = get(client, "types/Streetlight", held)
    assert info == {
        "id": f"{DEFAULT}Streetlight",
        "type": "EntityTypeInfo",
        "typeName": "Streetlight",
        "entityCount": 3,
        "attributeDetails": [
            {
                "id": f"{DEFAULT}cabinet",
                "type": "Attribute",
                "attributeName": "cabinet",
                "attributeTypes": ["Relationship"],
            },
            {"id": f"{DEFAULT}level", "type": "Attribute", "attributeName": "level", "attributeTypes": ["Property"]},
            {
                "id": f"{NGSI}location",
                "type": "Attribute",
                "attributeName": "location",
                "attributeTypes": ["GeoProperty"],
            },
        ],
    }
    for path, headers in (("types/Cabinet", {}), ("types/Bench", held)):
        r = client.get(f"/ngsi-ld/v1/{path}", headers=headers)
        assert (r.status_code, r.json()["type"]) == (404, ERR + "ResourceNotFound"), path


def test_attribute_list_and_details(client, held):
    listed = get(client, "attributes", held)
    assert listed["type"] == "AttributeList" and listed["id"].startswith("urn:ngsi-ld:AttributeList:")
    assert listed["attributeList"] == ["cabinet", "level", "location", "owner"]
    assert get(client, "attributes")["attributeList"] == ["cabinet", "level", "location"]
    detailed = {a["attributeName"]: a for a in get(client, "attributes", held, details="true")}
    assert detailed["level"] == {
        "id": f"{DEFAULT}level",
        "type": "Attribute",
        "attributeName": "level",
        "typeNames": ["Cabinet", "Streetlight"],
    }
    level = get(client, "attributes/level", held)
    assert level == {
        "id": f"{DEFAULT}level",
        "type": "Attribute",
        "attributeName": "level",
        "attributeCount": 3,
        "attributeTypes": ["Property"],
        "typeNames": ["Cabinet", "Streetlight"],
    }
    assert get(client, "attributes/level")["attributeCount"] == 2  # the cabinet's is not counted for the public
    r = client.get("/ngsi-ld/v1/attributes/owner")
    assert (r.status_code, r.json()["type"]) == (404, ERR + "ResourceNotFound")


def test_bad_details_is_400(client, held):
    r = client.get("/ngsi-ld/v1/types", params={"details": "yes"}, headers=held)
    assert (r.status_code, r.json()["type"]) == (400, ERR + "BadRequestData")
