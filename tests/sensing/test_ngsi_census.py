"""The census behind GET /ngsi-ld/v1/types and /attributes (sensing_ngsi_census), kept by every write: after a
seeded random mix of creates, appends, updates, partial updates, attribute and entity deletes and batch
operations, it equals a count over every stored entity's attributes, and the four answers are the standard's
shapes built from that count (with the assets registry's read-only Camera/AccessPoint/Device); concurrent
writers of one entity leave it right; the answers no longer read the entities. On both stores."""

from __future__ import annotations

import json
import random
import threading
from urllib.parse import quote

from sqlalchemy import event

from smartcity.assets import service as assets
from smartcity.sensing import ngsi_assets
from smartcity.sensing import ngsi_entities as store

NGSI = "https://uri.etsi.org/ngsi-ld/"
DEFAULT = f"{NGSI}default-context/"
TYPES = ("Streetlight", "Cabinet", "Bench")
IDS = [f"urn:ngsi-ld:{t}:c{n}" for t in TYPES for n in range(4)]
NAMES = ("level", "owner", "cabinet", "location", "label", "note")
CORE_TERMS = ("location", "name")  # the core context's terms among the names here (the registry's too)


def iri(name: str) -> str:
    return f"{NGSI}{name}" if name in CORE_TERMS else f"{DEFAULT}{name}"


def attr(rng: random.Random) -> dict:
    """An attribute in one of the four attribute types, so that one name carries several across entities."""
    kind = rng.choice(("Property", "Property", "Relationship", "GeoProperty", "LanguageProperty"))
    if kind == "Relationship":
        return {"type": "Relationship", "object": f"urn:ngsi-ld:Cabinet:c{rng.randint(0, 3)}"}
    if kind == "GeoProperty":
        point = [round(126.9 + rng.random() / 10, 5), round(37.5 + rng.random() / 10, 5)]
        return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": point}}
    if kind == "LanguageProperty":
        return {"type": "LanguageProperty", "languageMap": {"ko": "가로등", "en": "streetlight"}}
    return {"type": "Property", "value": rng.randint(0, 100)}


def attrs(rng: random.Random) -> dict:
    return {n: attr(rng) for n in rng.sample(NAMES, rng.randint(0, 4))}


def entity(rng: random.Random, eid: str | None = None) -> dict:
    eid = eid or rng.choice(IDS)
    return {"id": eid, "type": eid.split(":")[2], **attrs(rng)}


def send(client, key: str, method: str, path: str, body=None):
    return client.request(
        method,
        f"/ngsi-ld/v1{path}",
        content=json.dumps(body) if body is not None else None,
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )


def write(client, key: str, rng: random.Random) -> None:
    """One random write, through the broker's API as a client sends it (its answer may be a refusal)."""
    eid = rng.choice(IDS)
    op = rng.choice(
        ("create", "create", "batch_create", "upsert", "upsert_update", "batch_update", "append", "append_keep")
        + ("patch", "partial", "delete_attr", "delete", "batch_delete")
    )
    many = [entity(rng) for _ in range(rng.randint(1, 4))]
    if op == "create":
        send(client, key, "POST", "/entities", entity(rng, eid))
    elif op == "batch_create":
        send(client, key, "POST", "/entityOperations/create", many)
    elif op in ("upsert", "upsert_update"):
        options = "?options=update" if op == "upsert_update" else ""
        send(client, key, "POST", f"/entityOperations/upsert{options}", many)
    elif op == "batch_update":
        options = rng.choice(("", "?options=noOverwrite"))
        send(client, key, "POST", f"/entityOperations/update{options}", [{**e, "type": e["type"]} for e in many])
    elif op in ("append", "append_keep"):
        options = "?options=noOverwrite" if op == "append_keep" else ""
        send(client, key, "POST", f"/entities/{eid}/attrs{options}", attrs(rng) or {"note": attr(rng)})
    elif op == "patch":
        send(client, key, "PATCH", f"/entities/{eid}/attrs", attrs(rng) or {"level": attr(rng)})
    elif op == "partial":
        send(client, key, "PATCH", f"/entities/{eid}/attrs/{rng.choice(NAMES)}", {"value": rng.randint(0, 9)})
    elif op == "delete_attr":
        send(client, key, "DELETE", f"/entities/{eid}/attrs/{rng.choice(NAMES)}")
    elif op == "delete":
        send(client, key, "DELETE", f"/entities/{eid}")
    else:
        send(client, key, "POST", "/entityOperations/delete", rng.sample(IDS, 3))


def counted(db, readable: tuple[str, ...] | None) -> store.Census:
    """What a count over every stored entity (and every entity the registry's assets build) gives."""
    with db.session() as s:
        out = store.scan_census(s, readable)
        ngsi_assets.built_census(s, out, readable)
    return out


def by_attribute(found: store.Census) -> dict[str, tuple[set[str], set[str], int]]:
    out: dict[str, tuple[set[str], set[str], int]] = {}
    for etype, found_attrs in found.attributes.items():
        for name, (kinds, n) in found_attrs.items():
            k, t, c = out.get(name, (set(), set(), 0))
            out[name] = (k | kinds, t | {etype}, c + n)
    return out


def get(client, path: str, key: str | None = None, **params):
    r = client.get(f"/ngsi-ld/v1{path}", params=params, headers={"X-API-Key": key} if key else {})
    assert r.status_code == 200, (path, r.text)
    return r.json()


def check_answers(client, key: str | None, found: store.Census) -> None:
    """The four answers, in GS CIM 009's shapes, against the count (default context: names are as stored)."""
    listed = get(client, "/types", key)
    assert listed["type"] == "EntityTypeList" and listed["typeList"] == sorted(found.entities)
    assert get(client, "/types", key, details="true") == [
        {
            "id": f"{DEFAULT}{t}",
            "type": "EntityType",
            "typeName": t,
            "attributeNames": sorted(found.attributes.get(t, {})),
        }
        for t in sorted(found.entities)
    ]
    for t, n in found.entities.items():
        held = found.attributes.get(t, {})
        assert get(client, f"/types/{t}", key) == {
            "id": f"{DEFAULT}{t}",
            "type": "EntityTypeInfo",
            "typeName": t,
            "entityCount": n,
            "attributeDetails": [
                {"id": iri(a), "type": "Attribute", "attributeName": a, "attributeTypes": sorted(held[a][0])}
                for a in sorted(held)
            ],
        }
    named = by_attribute(found)
    assert get(client, "/attributes", key)["attributeList"] == sorted(named)
    assert get(client, "/attributes", key, details="true") == [
        {"id": iri(a), "type": "Attribute", "attributeName": a, "typeNames": sorted(named[a][1])} for a in sorted(named)
    ]
    for a, (kinds, types, n) in named.items():
        assert get(client, f"/attributes/{quote(a)}", key) == {
            "id": iri(a),
            "type": "Attribute",
            "attributeName": a,
            "attributeCount": n,
            "attributeTypes": sorted(kinds),
            "typeNames": sorted(types),
        }
    for t in TYPES:
        if t not in found.entities:
            r = client.get(f"/ngsi-ld/v1/types/{t}", headers={"X-API-Key": key} if key else {})
            assert r.status_code == 404, r.text


def test_the_kept_census_equals_a_count_of_every_entity_after_random_writes(db, client, sender_key):
    with db.session() as s:
        assets.create_asset(s, "cctv", 37.5665, 126.978, name="시청 앞", actor="test")
        assets.create_asset(s, "wifi", 37.5796, 126.977, name="경복궁역", actor="test")
        assets.create_asset(s, "sensor", 37.5512, 126.988, external_id="V02Q1940999", actor="test")
    rng = random.Random(1624)
    seen: set[str] = set()
    for step in range(1, 161):
        write(client, sender_key, rng)
        if step % 40:
            continue
        for readable in (None, store.PUBLIC_TYPES):
            with db.session() as s:
                kept = store.census(s, readable)
                ngsi_assets.census(s, kept, readable)
            assert kept == counted(db, readable), step
        found = counted(db, None)
        seen |= set(found.entities)
        check_answers(client, sender_key, found)
        check_answers(client, None, counted(db, store.PUBLIC_TYPES))
    # The mix did what it is meant to: several types, attribute types mixed under one name, and deletes.
    named = by_attribute(counted(db, None))
    assert {"Camera", "AccessPoint", "Device"} <= seen and len(seen & set(TYPES)) == 3
    assert any(len(kinds) > 1 for kinds, _, _ in named.values())
    with db.session() as s:
        assert len(store.exists(s, IDS)) < len(IDS)


def test_concurrent_writers_of_one_entity_keep_the_census(db):
    """Writers that each read an entity, add an attribute and write it back, at once: whatever the entity ends
    up with (the last writer's attributes), the census counts that, not every writer's change."""
    eid = "urn:ngsi-ld:Bench:busy"
    with db.session() as s:
        store.insert_new(s, [store.Entity(eid, "Bench", {"seat": {"type": "Property", "value": 0}})])
    start = threading.Barrier(6)
    failed: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait(10)
            for round_ in range(4):
                with db.session() as s:
                    e = store.find(s, eid)
                    e.attrs[f"a{n}x{round_}"] = {"type": "Property", "value": n}
                    if n % 2:
                        e.attrs.pop("seat", None)
                    store.save(s, e)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failed.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failed, failed
    with db.session() as s:
        assert store.census(s, None) == store.scan_census(s, None)
        stored = store.find(s, eid)
        assert store.census(s, None).attributes["Bench"].keys() == stored.attrs.keys()


def test_type_and_attribute_answers_do_not_read_the_entities(db, client, sender_key):
    """Regression: every call listed every stored entity's attributes (json_each over the whole table)."""
    made = [entity(random.Random(n), IDS[n]) for n in range(len(IDS))]
    r = send(client, sender_key, "POST", "/entityOperations/create", made)
    assert r.status_code == 201, r.text
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        for path in ("/types", "/types?details=true", "/types/Bench", "/attributes", "/attributes/level"):
            assert client.get(f"/ngsi-ld/v1{path}", headers={"X-API-Key": sender_key}).status_code in (200, 404)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert any("sensing_ngsi_census" in s for s in statements), statements
    assert not [s for s in statements if "sensing_ngsi_entities" in s]


def test_the_registry_types_follow_assets_added_removed_and_changed(db, client, sender_key):
    """Regression: the registry's Camera, AccessPoint and Device were built whole on each /types and /attributes
    call (6 s at 110,000 cameras); their census is now counted by the store. After each change to the registry
    it equals what building every entity gives, and the four answers are built from that."""
    from smartcity.sensing import wifi

    def same() -> None:
        for readable in (None, store.PUBLIC_TYPES):
            with db.session() as s:
                kept = store.census(s, readable)
                ngsi_assets.census(s, kept, readable)
            assert kept == counted(db, readable)
        check_answers(client, sender_key, counted(db, None))
        check_answers(client, None, counted(db, store.PUBLIC_TYPES))

    same()  # no assets: none of the registry's types
    with db.session() as s:
        cameras = [assets.create_asset(s, "cctv", 37.5665 + n / 1000, 126.978, actor="test").id for n in range(3)]
        aps = [
            assets.create_asset(s, "wifi", 37.5796, 126.977 + n / 1000, name=f"AP {n}", actor="test").id
            for n in range(3)
        ]
        assets.create_asset(s, "sensor", 37.5512, 126.988, external_id="V02Q1940999", actor="test")
        assets.create_asset(s, "sensor", 37.5522, 126.988, actor="test")  # no serial: no serialNumber
    same()
    # Changed: two access points report a status (their entities gain status and connectedClients).
    outcome = wifi.record_status(
        db, [{"access_point": ap, "time": 1_780_000_000, "up": True, "clients": 4} for ap in aps[:2]], "http"
    )
    assert outcome.stored == 2, outcome.as_dict()
    with db.session() as s:
        assert store.census(s, None).entities.get("AccessPoint") is None  # the broker stores none of them
    same()
    with db.session() as s:
        found = store.Census()
        ngsi_assets.census(s, found, None)
    assert found.attributes["AccessPoint"]["status"] == ({"Property"}, 2)
    # Removed: a reporting access point (its reports stay in the status table) and a camera.
    with db.session() as s:
        assets.delete_asset(s, aps[0], actor="test")
        assets.delete_asset(s, cameras[0], actor="test")
    same()
    with db.session() as s:
        for a in assets.list_assets(s, kind="sensor"):
            assets.delete_asset(s, a.id, actor="test")
    same()  # no sensors left: no Device


def test_the_registry_types_are_not_built_for_the_census(db, client, sender_key):
    """The answers read counts, not the registry's rows (list_assets reads every column, attributes too)."""
    from smartcity.core.jobs import JOB_THREAD

    with db.session() as s:
        assets.create_asset(s, "cctv", 37.5665, 126.978, name="시청 앞", actor="test")
        assets.create_asset(s, "wifi", 37.5796, 126.977, name="경복궁역", actor="test")
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        if threading.current_thread().name != JOB_THREAD:  # the app's jobs run beside the requests
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        for path in ("/types", "/types?details=true", "/types/Camera", "/attributes", "/attributes/name"):
            assert client.get(f"/ngsi-ld/v1{path}", headers={"X-API-Key": sender_key}).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert any("count" in s and "assets" in s for s in statements), statements
    assert not [s for s in statements if "assets.attributes" in s], statements
