"""The NGSI-LD context broker at /ngsi-ld/v1/ (a conformant subset of ETSI GS CIM 009): entities and their
attributes, queries (type, id, idPattern, q, geo-queries, pick/omit, limit/offset/count, keyValues) and batch
operations. Every error is a ProblemDetails object with the standard's type URI (ngsi_wire).

Reads of public types (air quality, noise, public Wi-Fi) are open; other types and every write need an API key
of an account holding `sensing.submit` (sensing.manage to read the rest). Writes are audited. A sensor entity's
readings go through the sensing intake (the same validation and rejections as MQTT and HTTP) before the
entity is stored; an entity with a refused reading is refused whole, its refusals recorded.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.routing import APIRoute

from smartcity.core import audit
from smartcity.core.auth import Identity, current_identity
from smartcity.core.context import context_of
from smartcity.core.errors import SmartCityError
from smartcity.core.intake import Columns
from smartcity.sensing import ngsi_assets
from smartcity.sensing import ngsi_entities as store
from smartcity.sensing.intake import INTAKE, Batch, validate
from smartcity.sensing.ngsi_context import Names
from smartcity.sensing.ngsi_entities import Entity
from smartcity.sensing.ngsi_query import parse_geo, parse_q
from smartcity.sensing.ngsi_wire import (
    NgsiError,
    answer,
    bad_data,
    problem,
    read_body,
    request_context,
    response_type,
)

CHANNEL = "ngsi-ld"
MAX_BATCH = 10_000


class NgsiRoute(APIRoute):
    """Answers every failure under /ngsi-ld as ProblemDetails, the platform's own errors included."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NgsiError as exc:
                return problem(exc)
            except SmartCityError as exc:
                kind = {401: "about:blank", 403: "about:blank", 404: "ResourceNotFound"}.get(
                    exc.status, "InvalidRequest"
                )
                return problem(NgsiError(exc.status, kind, exc.message, title=exc.code))

        return route


router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"], route_class=NgsiRoute, include_in_schema=False)


async def writer(request: Request) -> Identity:
    identity = await current_identity(request)
    if not identity.can("sensing.submit"):
        raise NgsiError(
            401 if not identity.authenticated else 403,
            "about:blank",
            "writes need a sensing API key",
            title="Unauthorized" if not identity.authenticated else "Forbidden",
        )
    return identity


async def _readable(request: Request) -> tuple[str, ...] | None:
    """The types the caller may read: every type for staff, else the public ones."""
    identity = await current_identity(request)
    return None if identity.can("sensing.manage") else store.PUBLIC_TYPES


def options_of(request: Request) -> set[str]:
    return {o.strip() for raw in request.query_params.getlist("options") for o in raw.split(",") if o.strip()}


def _names(request: Request, name: str) -> set[str] | None:
    raw = request.query_params.getlist(name)
    if not raw:
        return None
    names = {n.strip() for part in raw for n in part.split(",") if n.strip()}
    if not names:
        raise bad_data(f"{name} names no attribute")
    return names


def _projection(request: Request) -> tuple[set[str] | None, set[str] | None, bool]:
    pick, omit, attrs = _names(request, "pick"), _names(request, "omit"), _names(request, "attrs")
    if pick is not None and omit is not None:
        raise bad_data("pick and omit cannot both be given")
    if attrs is not None:
        pick = (pick or set()) | attrs | {"id", "type"}
    options = options_of(request)
    if not options <= {"keyValues", "concise", "normalized", "sysAttrs"}:
        raise bad_data(f"unknown options: {', '.join(sorted(options))}")
    return pick, omit, "keyValues" in options


# --- readings ------------------------------------------------------------------------------------------------


@dataclass
class _Readings:
    """Readings checked and not yet stored: the accepted ones' columns with the entity each came from."""

    columns: Columns
    owners: np.ndarray
    refused: list

    def kept(self, ids: set[str]) -> Batch:
        """The batch to store: the accepted readings of the entities `ids`, every refusal recorded."""
        keep = np.isin(self.owners, list(ids)) if len(self.owners) else np.zeros(0, dtype=bool)
        return Batch(CHANNEL, Columns({name: col[keep] for name, col in self.columns.cols.items()}), self.refused)


async def _check_readings(
    db, sent: list[Entity], stored: dict[str, Entity] | None = None
) -> tuple[dict[str, NgsiError], _Readings | None]:
    """The readings the attributes sent carry, validated as one batch (`stored`: the entities as they were, for
    their dateObserved): the entity ids refused (one of their readings refused) and the readings to store."""
    owners: list[str] = []
    readings: list[dict] = []
    for e in sent:
        mine = store.readings_of(e, (stored or {}).get(e.id))
        owners += [e.id] * len(mine)
        readings += mine
    if not readings:
        return {}, None
    batch = await run_in_threadpool(validate, db, readings, CHANNEL)
    reasons: dict[str, list[str]] = {}
    for r in batch.refused:
        reasons.setdefault(owners[r.index], []).append(f"{r.quantity or 'reading'}: {r.code} ({r.detail})")
    # validate keeps the accepted readings in order: their owners are the owners of the unrefused indexes.
    refused_at = {r.index for r in batch.refused}
    kept_owners = np.array([owners[i] for i in range(len(readings)) if i not in refused_at], dtype=object)
    refusals = {eid: bad_data("readings refused: " + "; ".join(why)) for eid, why in reasons.items()}
    return refusals, _Readings(batch.columns, kept_owners, batch.refused)


async def _store_readings(db, pending: _Readings | None, ids: set[str]) -> None:
    """Store the checked readings of the entities `ids` (an entity with a refused reading keeps none)."""
    if pending is not None:
        await context_of(db).slot(INTAKE).intake(pending.kept(ids))


async def _take_readings(db, sent: list[Entity], stored: dict[str, Entity] | None = None) -> dict[str, NgsiError]:
    """Check and store the readings the attributes sent carry; the entity ids refused (their refusals
    recorded, none of their readings kept)."""
    refused, pending = await _check_readings(db, sent, stored)
    await _store_readings(db, pending, {e.id for e in sent} - set(refused))
    return refused


# --- entities ------------------------------------------------------------------------------------------------


@router.post("/entities")
async def create_entity(request: Request) -> Response:
    identity = await writer(request)
    body, context = await read_body(request)
    e = store.entity(Names(context).entity_in(body))
    db = request.app.state.db
    refused, pending = await _check_readings(db, [e])
    if refused:
        await _store_readings(db, pending, set())  # the refusals are recorded
        raise refused[e.id]

    def write() -> None:
        with db.session() as s:
            # The readings are stored once the entity is: an id taken (even by a racing request) stores none.
            if not store.insert_new(s, [e]):
                raise _exists(e.id)
            notify(s, [(e, set(e.attrs))])
            audit.record(s, identity, "ngsi.create", "ngsi_entity", e.id[:100], {"type": e.type, "id": e.id})

    await run_in_threadpool(write)
    await _store_readings(db, pending, {e.id})
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1/entities/{e.id}"})


@router.get("/entities")
async def query_entities(request: Request) -> Response:
    media = response_type(request)
    context = await request_context(request)
    names = Names(context)
    params = request.query_params
    pick, omit, key_values = _projection(request)
    pick, omit = names.stored_names(pick), names.stored_names(omit)
    spec = store.Query(readable_types=await _readable(request))
    if params.get("type"):
        spec.types = [names.stored_type(t.strip()) for t in params["type"].split(",") if t.strip()]
    if params.get("id"):
        spec.ids = [store.check_id(i.strip()) for i in params["id"].split(",") if i.strip()]
    if params.get("idPattern"):
        try:
            spec.id_pattern = re.compile(params["idPattern"])
        except re.error as exc:
            raise bad_data(f"idPattern is not a regular expression: {exc}") from None
    if params.get("q"):
        # q names attributes in the request's terms: read against the stored names through `names`.
        spec.q, spec.names = parse_q(params["q"]), (names if names.key else None)
    if params.get("georel") or params.get("geometry") or params.get("coordinates"):
        spec.geo = parse_geo(
            params.get("georel"), params.get("geometry"), params.get("coordinates"), params.get("geoproperty")
        )
    if not (spec.types or spec.ids or spec.q or spec.geo or params.get("attrs")):
        raise bad_data("a query needs type, id, q, attrs or a geo-query")
    spec.limit, spec.offset = (
        _count_param(params.get("limit"), 20, "limit"),
        _count_param(params.get("offset"), 0, "offset"),
    )
    if spec.limit > store.MAX_LIMIT:
        raise NgsiError(403, "TooManyResults", f"limit is at most {store.MAX_LIMIT}")
    db = request.app.state.db

    def read() -> tuple[list[Entity], int]:
        with db.session() as s:
            if not ngsi_assets.types_asked(spec):
                return store.query(s, spec)
            # The owned entities are paged together with the stored ones: both in id order, merged.
            owned = ngsi_assets.query(s, spec)
            stored, total = store.query(s, replace(spec, offset=0, limit=spec.offset + spec.limit))
            merged = sorted(stored + owned, key=lambda e: e.id)
            return merged[spec.offset : spec.offset + spec.limit], total + len(owned)

    found, total = await run_in_threadpool(read)
    headers = {"NGSILD-Results-Count": str(total)} if params.get("count") == "true" else {}
    body = [names.attrs_out(store.projected(e, pick, omit, key_values)) for e in found]
    if media == "application/geo+json":
        body = _feature_collection(found, body)
    return answer(request, body, media, headers=headers, context=context)


def _feature_collection(found: list[Entity], rendered: list[dict]) -> dict:
    features = []
    for e, props in zip(found, rendered, strict=True):
        location = e.attrs.get("location", {}).get("value")
        features.append({"id": e.id, "type": "Feature", "geometry": location, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _count_param(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise bad_data(f"{name} must be a non-negative integer")
    return int(raw)


@router.get("/entities/{entity_id}")
async def retrieve_entity(request: Request, entity_id: str) -> Response:
    media = response_type(request)
    context = await request_context(request)
    names = Names(context)
    store.check_id(entity_id)
    pick, omit, key_values = _projection(request)
    pick, omit = names.stored_names(pick), names.stored_names(omit)
    readable = await _readable(request)
    db = request.app.state.db

    def read() -> Entity | None:
        with db.session() as s:
            return store.find(s, entity_id) or ngsi_assets.find(s, entity_id)

    e = await run_in_threadpool(read)
    if e is None or (readable is not None and e.type not in readable):
        raise store.missing(entity_id)
    body = names.attrs_out(store.projected(e, pick, omit, key_values))
    if media == "application/geo+json":
        body = _feature_collection([e], [body])["features"][0]
    return answer(request, body, media, context=context)


@router.delete("/entities/{entity_id}")
async def delete_entity(request: Request, entity_id: str) -> Response:
    identity = await writer(request)
    store.refuse_owned(store.check_id(entity_id))
    db = request.app.state.db

    def write() -> bool:
        with db.session() as s:
            gone = store.remove(s, [entity_id])
            if gone:
                audit.record(s, identity, "ngsi.delete", "ngsi_entity", entity_id[:100])
            return bool(gone)

    if not await run_in_threadpool(write):
        raise store.missing(entity_id)
    return Response(status_code=204)


async def _change(
    request: Request,
    entity_id: str,
    change: Callable[[Entity, dict], list[str]],
    action: str,
    *,
    patch: bool = False,
    fragment: str | None = None,
) -> Response:
    """Read the entity, apply `change` to the attributes sent (it names those it did not write), store it with
    its readings. `fragment`: the body is that one attribute's members (partial update)."""
    identity = await writer(request)
    store.refuse_owned(store.check_id(entity_id))
    body, context = await read_body(request, patch=patch)
    names = Names(context)
    if not isinstance(body, dict):
        raise bad_data("the body must be a JSON object")
    if fragment is not None:
        new = {names.stored(fragment): body}
    else:
        if body.get("id", entity_id) != entity_id:
            raise bad_data("the body's id is not the entity's")
        new = store.attributes(names.entity_in(body))
        if not new:
            raise bad_data("no attribute to write")
    db = request.app.state.db

    def read() -> Entity | None:
        with db.session() as s:
            return store.find(s, entity_id)

    current = await run_in_threadpool(read)
    if current is None:
        raise store.missing(entity_id)
    before = Entity(current.id, current.type, dict(current.attrs))
    skipped = change(current, new)
    written = [n for n in new if n not in skipped]
    if written:
        sent = Entity(current.id, current.type, {n: current.attrs[n] for n in written})
        refused, pending = await _check_readings(db, [sent], {current.id: before})
        if refused:
            await _store_readings(db, pending, set())
            raise refused[entity_id]

        def write() -> None:
            with db.session() as s:
                if store.find(s, entity_id) is None:
                    raise store.missing(entity_id)
                store.save(s, current)
                notify(s, [(current, set(written))])
                audit.record(s, identity, action, "ngsi_entity", entity_id[:100], {"attrs": written[:50]})

        await run_in_threadpool(write)
        await _store_readings(db, pending, {entity_id})
    if skipped:
        not_updated = [{"attributeName": n, "reason": "the attribute exists or cannot be written"} for n in skipped]
        return answer(request, {"updated": written, "notUpdated": not_updated}, "application/json", status=207)
    return Response(status_code=204)


@router.post("/entities/{entity_id}/attrs")
async def append_attributes(request: Request, entity_id: str) -> Response:
    overwrite = "noOverwrite" not in options_of(request)
    return await _change(request, entity_id, lambda e, new: store.merge(e, new, overwrite=overwrite), "ngsi.append")


@router.patch("/entities/{entity_id}/attrs")
async def update_attributes(request: Request, entity_id: str) -> Response:
    def update(e: Entity, new: dict) -> list[str]:
        absent = [n for n in new if n not in e.attrs]
        store.merge(e, {n: a for n, a in new.items() if n in e.attrs})
        return absent

    return await _change(request, entity_id, update, "ngsi.update", patch=True)


@router.patch("/entities/{entity_id}/attrs/{attr}")
async def partial_update(request: Request, entity_id: str, attr: str) -> Response:
    def update(e: Entity, new: dict) -> list[str]:
        [name] = new  # the attribute's name as stored (under the request's @context)
        if name not in e.attrs:
            raise store.missing(f"{entity_id} attribute {attr}")
        # A partial update changes the members sent and keeps the rest (unitCode, observedAt, sub-attributes).
        e.attrs[name] = store.attribute(name, {**e.attrs[name], **new[name]})
        return []

    return await _change(request, entity_id, update, "ngsi.update", patch=True, fragment=attr)


@router.delete("/entities/{entity_id}/attrs/{attr}")
async def delete_attribute(request: Request, entity_id: str, attr: str) -> Response:
    identity = await writer(request)
    store.refuse_owned(store.check_id(entity_id))
    attr = Names(await request_context(request)).stored(attr)
    db = request.app.state.db

    def write() -> None:
        with db.session() as s:
            e = store.find(s, entity_id)
            if e is None or attr not in e.attrs:
                raise store.missing(f"{entity_id} attribute {attr}")
            del e.attrs[attr]
            store.save(s, e)
            audit.record(s, identity, "ngsi.delete_attribute", "ngsi_entity", entity_id[:100], {"attr": attr})

    await run_in_threadpool(write)
    return Response(status_code=204)


# --- types and attributes ------------------------------------------------------------------------------------


async def _census(request: Request, types: list[str] | None = None) -> store.Census:
    readable = await _readable(request)
    db = request.app.state.db

    def read() -> store.Census:
        with db.session() as s:
            out = store.census(s, readable, types)
            ngsi_assets.census(s, out, readable, types)
            return out

    return await run_in_threadpool(read)


def _details(request: Request) -> bool:
    raw = request.query_params.get("details", "false")
    if raw not in ("true", "false"):
        raise bad_data("details is true or false")
    return raw == "true"


@router.get("/types")
async def entity_types(request: Request) -> Response:
    """EntityTypeList, or with details=true every EntityType with its attribute names (GS CIM 009 5.7.5)."""
    media, details = response_type(request), _details(request)
    context = await request_context(request)
    names = Names(context)
    found = await _census(request)
    if details:
        body: Any = [
            {
                "id": Names.type_iri(t),
                "type": "EntityType",
                "typeName": names.client_type(t),
                "attributeNames": sorted(names.client(a) for a in found.attributes.get(t, {})),
            }
            for t in sorted(found.entities)
        ]
    else:
        typelist = sorted(names.client_type(t) for t in found.entities)
        body = {"id": f"urn:ngsi-ld:EntityTypeList:{uuid.uuid4()}", "type": "EntityTypeList", "typeList": typelist}
    return answer(request, body, media, context=context)


@router.get("/types/{etype:path}")
async def entity_type(request: Request, etype: str) -> Response:
    """EntityTypeInfo: how many entities of the type, and each attribute's types and count (5.7.6)."""
    media = response_type(request)
    context = await request_context(request)
    names = Names(context)
    stored = names.stored_type(etype)
    found = await _census(request, [stored])
    if not found.entities.get(stored):
        raise store.missing(f"of type {etype}")
    attrs = found.attributes.get(stored, {})
    body = {
        "id": Names.type_iri(stored),
        "type": "EntityTypeInfo",
        "typeName": names.client_type(stored),
        "entityCount": found.entities[stored],
        "attributeDetails": [
            {
                "id": Names.attribute_iri(a),
                "type": "Attribute",
                "attributeName": names.client(a),
                "attributeTypes": sorted(attrs[a][0]),
            }
            for a in sorted(attrs)
        ],
    }
    return answer(request, body, media, context=context)


def _by_attribute(found: store.Census) -> dict[str, tuple[set[str], set[str], int]]:
    """attribute name → (its attribute types, the entity types carrying it, how many entities carry it)."""
    out: dict[str, tuple[set[str], set[str], int]] = {}
    for etype, attrs in found.attributes.items():
        for name, (kinds, n) in attrs.items():
            seen_kinds, seen_types, count = out.get(name, (set(), set(), 0))
            out[name] = (seen_kinds | kinds, seen_types | {etype}, count + n)
    return out


@router.get("/attributes")
async def attributes_list(request: Request) -> Response:
    """AttributeList, or with details=true every Attribute with the types carrying it (5.7.8)."""
    media, details = response_type(request), _details(request)
    context = await request_context(request)
    names = Names(context)
    by_name = _by_attribute(await _census(request))
    if details:
        body: Any = [
            {
                "id": Names.attribute_iri(a),
                "type": "Attribute",
                "attributeName": names.client(a),
                "typeNames": sorted(names.client_type(t) for t in by_name[a][1]),
            }
            for a in sorted(by_name)
        ]
    else:
        attrlist = sorted(names.client(a) for a in by_name)
        body = {"id": f"urn:ngsi-ld:AttributeList:{uuid.uuid4()}", "type": "AttributeList", "attributeList": attrlist}
    return answer(request, body, media, context=context)


@router.get("/attributes/{attr:path}")
async def attribute_info(request: Request, attr: str) -> Response:
    """Attribute: how many entities carry it, its attribute types and the entity types carrying it (5.7.9)."""
    media = response_type(request)
    context = await request_context(request)
    names = Names(context)
    stored = names.stored(attr)
    entry = _by_attribute(await _census(request)).get(stored)
    if entry is None:
        raise store.missing(f"attribute {attr}")
    kinds, types, count = entry
    body = {
        "id": Names.attribute_iri(stored),
        "type": "Attribute",
        "attributeName": names.client(stored),
        "attributeCount": count,
        "attributeTypes": sorted(kinds),
        "typeNames": sorted(names.client_type(t) for t in types),
    }
    return answer(request, body, media, context=context)


# --- batch operations ----------------------------------------------------------------------------------------


def _batch_result(success: list[str], errors: list[dict], created_status: int | None) -> Response:
    """201 with the ids created / 204 when all succeeded; 207 with BatchOperationResult when any failed."""
    if errors:
        body = {"success": success, "errors": errors}
        return Response(json_dumps(body), status_code=207, media_type="application/json")
    if created_status == 201:
        return Response(json_dumps(success), status_code=201, media_type="application/json")
    return Response(status_code=204)


def json_dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


def _failure(eid: Any, error: NgsiError) -> dict:
    return {"entityId": eid if isinstance(eid, str) else str(eid), "error": {**error.as_dict(), "status": error.status}}


async def _entities_of(request: Request) -> tuple[list[Entity], list[dict]]:
    body, context = await read_body(request)
    names = Names(context)
    if not isinstance(body, list) or not body:
        raise bad_data("a batch is a non-empty JSON array")
    if len(body) > MAX_BATCH:
        raise NgsiError(413, "InvalidRequest", f"a batch holds at most {MAX_BATCH} entities")
    good, errors = [], []
    for raw in body:
        try:
            good.append(store.entity(names.entity_in(raw)))
        except NgsiError as exc:
            errors.append(_failure(raw.get("id", "") if isinstance(raw, dict) else "", exc))
    return good, errors


@router.post("/entityOperations/create")
async def batch_create(request: Request) -> Response:
    identity = await writer(request)
    entities, errors = await _entities_of(request)
    db = request.app.state.db
    there = await run_in_threadpool(_existing, db, [e.id for e in entities])
    fresh: dict[str, Entity] = {}
    for e in entities:
        if e.id in there or e.id in fresh:
            errors.append(_failure(e.id, _exists(e.id)))
        else:
            fresh[e.id] = e
    refused, pending = await _check_readings(db, list(fresh.values()))
    errors += [_failure(eid, err) for eid, err in refused.items()]
    kept = [e for e in fresh.values() if e.id not in refused]

    def write() -> set[str]:
        # Inserted only where no entity is: of two batches racing for an id, one stores it, the other is told
        # it exists, and the loser's readings are not stored either.
        if not kept:
            return set()
        with db.session() as s:
            made = store.insert_new(s, kept)
            won = [e for e in kept if e.id in made]
            if won:
                notify(s, [(e, set(e.attrs)) for e in won])
                audit.record(
                    s, identity, "ngsi.create", "ngsi_entity", None, {"ids": [e.id for e in won[:100]], "n": len(won)}
                )
            return made

    made = await run_in_threadpool(write)
    errors += [_failure(e.id, _exists(e.id)) for e in kept if e.id not in made]
    await _store_readings(db, pending, made)
    return _batch_result([e.id for e in kept if e.id in made], errors, 201)


def _exists(eid: str) -> NgsiError:
    return NgsiError(409, "AlreadyExists", f"an entity {eid} exists already")


@router.post("/entityOperations/upsert")
async def batch_upsert(request: Request) -> Response:
    identity = await writer(request)
    options = options_of(request)
    if not options <= {"update", "replace"} or len(options) > 1:
        raise bad_data("options is update or replace")
    entities, errors = await _entities_of(request)
    db = request.app.state.db
    merging = "update" in options

    # The stored entities are read whole only when they are merged into or may lend their dateObserved.
    whole = [e.id for e in entities if merging or e.type in store.SENSOR_TYPES]

    def current() -> tuple[set[str], dict[str, Entity]]:
        with db.session() as s:
            return store.exists(s, [e.id for e in entities]), store.find_many(s, whole)

    there, old = await run_in_threadpool(current)
    latest: dict[str, Entity] = {}
    for e in entities:
        base = latest.get(e.id) or (old.get(e.id) if merging else None)
        if base is None or not merging:
            latest[e.id] = e  # replace: the last one sent wins
        elif base.type != e.type:
            errors.append(_failure(e.id, bad_data("an update cannot change the entity's type")))
        else:
            store.merge(base, e.attrs)
            latest[e.id] = base
    refused = await _take_readings(db, entities, old)
    errors += [_failure(eid, err) for eid, err in refused.items()]
    kept = [e for e in latest.values() if e.id not in refused]
    await run_in_threadpool(_store_all, db, identity, kept, "ngsi.upsert")
    created = [e.id for e in kept if e.id not in there]
    if errors:
        return _batch_result([e.id for e in kept], errors, None)
    return _batch_result(created, [], 201 if created else None)


@router.post("/entityOperations/update")
async def batch_update(request: Request) -> Response:
    identity = await writer(request)
    overwrite = "noOverwrite" not in options_of(request)
    entities, errors = await _entities_of(request)
    db = request.app.state.db

    def current() -> dict[str, Entity]:
        with db.session() as s:
            return store.find_many(s, [e.id for e in entities])

    old = await run_in_threadpool(current)
    changed: dict[str, Entity] = {}
    sent: list[Entity] = []
    stored: dict[str, Entity] = {}
    for e in entities:
        base = changed.get(e.id) or old.get(e.id)
        if base is None:
            errors.append(_failure(e.id, store.missing(e.id)))
            continue
        before = Entity(base.id, base.type, dict(base.attrs))
        skipped = store.merge(base, e.attrs, overwrite=overwrite)
        changed[e.id] = base
        sent.append(Entity(e.id, e.type, {n: a for n, a in e.attrs.items() if n not in skipped}))
        stored.setdefault(e.id, before)
    refused = await _take_readings(db, sent, stored)
    errors += [_failure(eid, err) for eid, err in refused.items()]
    kept = [e for e in changed.values() if e.id not in refused]
    await run_in_threadpool(_store_all, db, identity, kept, "ngsi.update")
    return _batch_result([e.id for e in kept], errors, None)


@router.post("/entityOperations/delete")
async def batch_delete(request: Request) -> Response:
    identity = await writer(request)
    body, _ = await read_body(request)
    if not isinstance(body, list) or not body or not all(isinstance(i, str) for i in body):
        raise bad_data("a batch delete is a non-empty JSON array of entity ids")
    errors = []
    ids = []
    for eid in body:
        try:
            ids.append(store.refuse_owned(store.check_id(eid)))
        except NgsiError as exc:
            errors.append(_failure(eid, exc))
    db = request.app.state.db

    def write() -> set[str]:
        with db.session() as s:
            gone = store.remove(s, ids)
            if gone:
                audit.record(
                    s, identity, "ngsi.delete", "ngsi_entity", None, {"ids": sorted(gone)[:100], "n": len(gone)}
                )
            return gone

    gone = await run_in_threadpool(write)
    errors += [_failure(eid, store.missing(eid)) for eid in dict.fromkeys(ids) if eid not in gone]
    return _batch_result(sorted(gone), errors, None)


def notify(session, changes: list[tuple[Entity, set[str]]]) -> None:
    """Queue the subscriptions' notifications in the write's transaction."""
    # Imported here: the subscriptions' routes stand on this module's route class and writer check.
    from smartcity.sensing.ngsi_subscriptions import queue

    queue(session, changes)


def _existing(db, ids: list[str]) -> set[str]:
    with db.session() as s:
        return store.exists(s, ids)


def _store_all(db, identity: Identity, entities: list[Entity], action: str) -> None:
    if not entities:
        return
    with db.session() as s:
        store.upsert(s, entities)
        notify(s, [(e, set(e.attrs)) for e in entities])
        audit.record(
            s, identity, action, "ngsi_entity", None, {"ids": [e.id for e in entities[:100]], "n": len(entities)}
        )
