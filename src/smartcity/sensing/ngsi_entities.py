"""The NGSI-LD broker's entities: checked into normalized form, stored (ngsi_store), read, queried, merged,
deleted; the service under ngsi_api.py, which never sees SQL. Sensor entities (Smart Data Models'
AirQualityObserved and NoiseLevelObserved) also carry readings: `readings_of` turns one into the sensing
intake's readings, so that what arrives through NGSI-LD lands in the same tables, refused by the same rules.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from smartcity.core.db import utcnow
from smartcity.sensing import ngsi_sql
from smartcity.sensing.ngsi_query import GeoQuery, Node, point_of
from smartcity.sensing.ngsi_store import NgsiCensus, NgsiEntity
from smartcity.sensing.ngsi_wire import NgsiError, bad_data, not_found

ATTRIBUTE_TYPES = ("Property", "GeoProperty", "Relationship", "LanguageProperty")
# Types anyone may read: the city publishes its sensors' observations and its public Wi-Fi.
PUBLIC_TYPES = ("AirQualityObserved", "NoiseLevelObserved", "AccessPoint", "Device", "Streetlight")
# Types other modules own (served read-only from the assets registry, ngsi_assets.py) → their asset kind.
OWNED_TYPES = {"Camera": "cctv", "AccessPoint": "wifi", "Device": "sensor"}
SENSOR_TYPES = ("AirQualityObserved", "NoiseLevelObserved")
# Smart Data Models attribute → (the sensing quantity, the factor to its unit).
QUANTITY_OF = {
    "pm10": ("pm10", 1.0),
    "pm25": ("pm25", 1.0),
    "temperature": ("temperature", 1.0),
    "relativeHumidity": ("humidity", 100.0),  # a 0–1 fraction in the data model, % in the store
    "windSpeed": ("wind", 1.0),
    "illuminance": ("illuminance", 1.0),
    "uVIndexMax": ("uv", 1.0),
    "LAeq": ("noise", 1.0),
    "LAS": ("noise", 1.0),
}
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_NAME = re.compile(r"^[A-Za-z_@][\w.:/#-]*$")
MAX_LIMIT = 1000


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def attribute(name: str, raw: Any) -> dict:
    """One attribute in normalized form (a bare value or a GeoJSON geometry read as the concise form)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in ("id", "type", "@context"):
        raise bad_data(f"{name!r} is not a valid attribute name")
    if not _finite(raw):
        raise bad_data(f"attribute {name}: numbers must be finite")
    if not isinstance(raw, dict):
        return {"type": "Property", "value": raw}
    if raw.get("type") in ("Point", "Polygon", "LineString", "MultiPoint", "MultiPolygon", "MultiLineString"):
        raw = {"type": "GeoProperty", "value": raw}
    kind = raw.get("type")
    if kind is None:
        if "object" in raw:
            kind = "Relationship"
        elif "value" in raw:
            kind = "Property"
        else:
            raise bad_data(f"attribute {name}: an object needs a type and a value (or object)")
    if kind not in ATTRIBUTE_TYPES:
        raise bad_data(f"attribute {name}: type {kind!r} is not Property, GeoProperty or Relationship")
    out = {"type": kind}
    if kind == "Relationship":
        target = raw.get("object")
        if not isinstance(target, str) or not _URI.match(target):
            raise bad_data(f"relationship {name}: object must be a URI")
    elif kind == "LanguageProperty":
        if not isinstance(raw.get("languageMap"), dict):
            raise bad_data(f"attribute {name}: a LanguageProperty needs a languageMap")
    elif "value" not in raw or raw["value"] is None:
        raise bad_data(f"attribute {name}: a {kind} needs a value")
    if kind == "GeoProperty":
        geometry = raw["value"]
        if not (isinstance(geometry, dict) and isinstance(geometry.get("type"), str) and "coordinates" in geometry):
            raise bad_data(f"GeoProperty {name}: the value must be a GeoJSON geometry")
        if geometry["type"] == "Point" and point_of({"value": geometry}) is None:
            raise bad_data(f"GeoProperty {name}: a Point is [longitude, latitude] within range")
    for key, sub in raw.items():
        if key == "type":
            continue
        if key in ("value", "object", "languageMap", "observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt"):
            out[key] = sub
        elif isinstance(sub, dict):
            out[key] = attribute(key, sub)  # a sub-attribute
        else:
            raise bad_data(f"attribute {name}: {key!r} is not a member of an attribute")
    if "observedAt" in out and not _datetime(out["observedAt"]):
        raise bad_data(f"attribute {name}: observedAt must be a date-time with a zone (…Z)")
    return out


def _datetime(value: Any) -> bool:
    from datetime import datetime

    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def attributes(raw: dict) -> dict:
    return {name: attribute(name, value) for name, value in raw.items() if name not in ("id", "type", "@context")}


@dataclass
class Entity:
    id: str
    type: str
    attrs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"id": self.id, "type": self.type, **self.attrs}


def entity(raw: Any) -> Entity:
    """A request's entity checked: an object with an id (a URI), a type and valid attributes."""
    if not isinstance(raw, dict):
        raise bad_data("an entity must be a JSON object")
    eid, etype = raw.get("id"), raw.get("type")
    if not isinstance(eid, str) or not _URI.match(eid) or len(eid) > 512:
        raise bad_data("an entity needs an id that is a URI (urn:ngsi-ld:Type:name)")
    if not isinstance(etype, str) or not _NAME.match(etype) or len(etype) > 256:
        raise bad_data("an entity needs a type (a name)")
    refuse_owned(eid, etype)
    return Entity(eid, etype, attributes(raw))


def check_id(eid: str) -> str:
    if not _URI.match(eid):
        raise bad_data(f"{eid!r} is not a URI")
    return eid


def refuse_owned(eid: str, etype: str | None = None) -> str:
    """Writes to the entities other modules own (their type, or an id in their type's namespace) are refused:
    the assets registry is where cameras, access points and sensors change."""
    owner = (
        etype if etype in OWNED_TYPES else next((t for t in OWNED_TYPES if eid.startswith(f"urn:ngsi-ld:{t}:")), None)
    )
    if owner is not None:
        raise NgsiError(422, "OperationNotSupported", f"{owner} entities are read-only here (the assets registry's)")
    return eid


# --- readings -----------------------------------------------------------------------------------------------


def readings_of(e: Entity, stored: Entity | None = None) -> list[dict]:
    """The readings the attributes sent for a sensor entity carry, as the sensing intake takes them: the
    sensor's serial is the id's last part (urn:ngsi-ld:AirQualityObserved:V02Q1940612), the time each
    attribute's observedAt, else the dateObserved sent, else the stored entity's (`stored`)."""
    if e.type not in SENSOR_TYPES:
        return []
    dated = e.attrs.get("dateObserved") or (stored.attrs.get("dateObserved") if stored else None) or {}
    serial = e.id.rsplit(":", 1)[-1]
    when = dated.get("value")
    out = []
    for name, (quantity, factor) in QUANTITY_OF.items():
        attr = e.attrs.get(name)
        if attr is None or attr.get("type") != "Property":
            continue
        value = attr.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            # 0.55 × 100 is 55.00000000000001 in binary: the fraction's own digits are what was meant.
            value = round(value * factor, 9) if factor != 1.0 else value
        out.append({"sensor": serial, "quantity": quantity, "time": attr.get("observedAt", when), "value": value})
    return out


# --- the store ----------------------------------------------------------------------------------------------


def _row(e: Entity) -> dict:
    point = point_of(e.attrs.get("location"))
    now = utcnow()
    return {
        "id": e.id,
        "type": e.type,
        "attrs": json.dumps(e.attrs, ensure_ascii=False),
        "lat": point[0] if point else None,
        "lon": point[1] if point else None,
        "created_at": now,
        "modified_at": now,
    }


def _entity(row: NgsiEntity) -> Entity:
    return Entity(row.id, row.type, json.loads(row.attrs))


def find(session: Session, eid: str) -> Entity | None:
    row = session.get(NgsiEntity, eid)
    return _entity(row) if row else None


def find_many(session: Session, ids: Iterable[str]) -> dict[str, Entity]:
    """The stored entities among `ids`, by id (one query per 500)."""
    ids = list(dict.fromkeys(ids))
    found: dict[str, Entity] = {}
    for at in range(0, len(ids), 500):
        for row in session.scalars(select(NgsiEntity).where(NgsiEntity.id.in_(ids[at : at + 500]))):
            found[row.id] = _entity(row)
    return found


def exists(session: Session, ids: Iterable[str]) -> set[str]:
    ids = list(ids)
    found: set[str] = set()
    for at in range(0, len(ids), 500):
        found.update(session.scalars(select(NgsiEntity.id).where(NgsiEntity.id.in_(ids[at : at + 500]))))
    return found


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _sqlite_write_lock(session: Session) -> None:
    """SQLite's driver reads outside a transaction until the first write: a write that changes nothing takes
    the store's write lock first, so no other writer commits between the caller's reads and its writes."""
    session.execute(text("UPDATE sensing_ngsi_census SET entities = entities WHERE 0"))


def _locked(session: Session, ids: list[str]) -> dict[str, tuple[str, str]]:
    """The stored (type, attributes JSON) of the entities among `ids`, locked until the transaction ends: what
    a write replaces is what the census is told it replaced."""
    if not ids:
        return {}
    postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres:
        _sqlite_write_lock(session)
    found: dict[str, tuple[str, str]] = {}
    for at in range(0, len(ids), 500):
        stmt = select(NgsiEntity.id, NgsiEntity.type, NgsiEntity.attrs).where(NgsiEntity.id.in_(ids[at : at + 500]))
        if postgres:
            stmt = stmt.order_by(NgsiEntity.id).with_for_update()
        for eid, etype, attrs in session.execute(stmt):
            found[eid] = (etype, attrs)
    return found


def _tally(delta: dict[tuple[str, str, str], int], etype: str, attrs: dict, sign: int) -> None:
    """Add (sign 1) or take away (-1) one entity's share of the census: the type's entity count, and each
    attribute's (name, attribute type)."""
    key = (etype, "", "")
    delta[key] = delta.get(key, 0) + sign
    for name, attr in attrs.items():
        kind = attr.get("type") if isinstance(attr, dict) else None
        key = (etype, name, kind if isinstance(kind, str) else "")
        delta[key] = delta.get(key, 0) + sign


def _recount(session: Session, gone: Iterable[tuple[str, str]], came: Iterable[Entity]) -> None:
    """Move the census from the entities replaced or deleted (`gone`: type, attributes JSON) to those stored
    (`came`), in the write's transaction. Only the counts that change are written: a value update writes none."""
    delta: dict[tuple[str, str, str], int] = {}
    for e in came:
        _tally(delta, e.type, e.attrs, 1)
    for etype, attrs in gone:
        _tally(delta, etype, json.loads(attrs), -1)
    # In key order: two writers touching the same counts lock them in the same order.
    changes = [{"type": t, "name": n, "kind": k, "entities": d} for (t, n, k), d in sorted(delta.items()) if d != 0]
    if not changes:
        return
    stmt = _insert(session)(NgsiCensus)
    stmt = stmt.on_conflict_do_update(
        index_elements=["type", "name", "kind"], set_={"entities": NgsiCensus.entities + stmt.excluded.entities}
    )
    session.execute(stmt, changes)
    if any(c["entities"] < 0 for c in changes):
        types = sorted({c["type"] for c in changes if c["entities"] < 0})
        session.execute(delete(NgsiCensus).where(NgsiCensus.type.in_(types), NgsiCensus.entities <= 0))


def _insert_rows(session: Session, entities: list[Entity]) -> set[str]:
    stmt = _insert(session)(NgsiEntity).on_conflict_do_nothing(index_elements=["id"]).returning(NgsiEntity.id)
    made: set[str] = set()
    for at in range(0, len(entities), 500):
        made.update(session.scalars(stmt, [_row(e) for e in entities[at : at + 500]]))
    return made


def upsert(session: Session, entities: list[Entity]) -> None:
    """Store entities whole: new ones created, existing ones replaced (their creation time kept)."""
    latest = list({e.id: e for e in entities}.values())
    if not latest:
        return
    old = _locked(session, [e.id for e in latest])
    todo = [e for e in latest if e.id not in old]
    # An id another writer creates meanwhile is not inserted twice: it is read (locked) once its writer commits,
    # and replaced like any stored entity; one deleted again in between is inserted on the next round.
    while todo:
        made = _insert_rows(session, todo)
        raced = _locked(session, [e.id for e in todo if e.id not in made])
        old.update(raced)
        todo = [e for e in todo if e.id not in made and e.id not in raced]
    replaced = [e for e in latest if e.id in old]
    if replaced:
        stmt = _insert(session)(NgsiEntity)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={c: stmt.excluded[c] for c in ("type", "attrs", "lat", "lon", "modified_at")},
        )
        session.execute(stmt, [_row(e) for e in replaced])
    _recount(session, old.values(), latest)


def insert_new(session: Session, entities: list[Entity]) -> set[str]:
    """Store the entities whose id no entity has (one row each, nothing replaced); the ids stored. Two writers
    of one id: the second waits on the first's row and stores nothing."""
    if not entities:
        return set()
    made = _insert_rows(session, entities)
    first: dict[str, Entity] = {}
    for e in entities:
        first.setdefault(e.id, e)  # of one id sent twice, the first is stored
    _recount(session, (), (e for eid, e in first.items() if eid in made))
    return made


def save(session: Session, e: Entity) -> None:
    """An entity read with `find` and changed, written back."""
    old = _locked(session, [e.id])
    if e.id not in old:
        raise missing(e.id)
    row = session.get(NgsiEntity, e.id)
    values = _row(e)
    for key in ("type", "attrs", "lat", "lon", "modified_at"):
        setattr(row, key, values[key])
    _recount(session, old.values(), [e])


def remove(session: Session, ids: list[str]) -> set[str]:
    """Delete entities; the ids that were there."""
    old = _locked(session, list(dict.fromkeys(ids)))
    if old:
        session.execute(delete(NgsiEntity).where(NgsiEntity.id.in_(list(old))))
        _recount(session, old.values(), ())
    return set(old)


def merge(current: Entity, new: dict, *, overwrite: bool = True) -> list[str]:
    """Append attributes to an entity; the names not written (kept, with noOverwrite)."""
    skipped = []
    for name, attr in new.items():
        if name in current.attrs and not overwrite:
            skipped.append(name)
        else:
            current.attrs[name] = attr
    return skipped


# --- queries ------------------------------------------------------------------------------------------------


@dataclass
class Query:
    types: list[str] | None = None
    ids: list[str] | None = None
    id_pattern: re.Pattern | None = None
    q: Node | None = None
    # q's attribute names are the request's terms: its names turn them into the stored ones (ngsi_context.Names).
    names: Any = None
    geo: GeoQuery | None = None
    readable_types: tuple[str, ...] | None = None  # None: every type
    limit: int = 20
    offset: int = 0

    def q_test(self, e: Entity) -> bool:
        d = e.as_dict()
        return self.q is None or self.q(self.names.attrs_out(d) if self.names is not None else d)


def query(session: Session, spec: Query) -> tuple[list[Entity], int]:
    """The entities a query matches, a page of them (limit/offset, by id) and how many match in all. Every
    filter the store can answer is SQL (ngsi_sql); when one cannot be, the rows SQL narrowed down to are tested
    in Python and paged here, so the page and the count are the same either way."""
    dialect = session.get_bind().dialect.name
    stmt = select(NgsiEntity)
    allowed = set(spec.types or ()) or None
    if spec.readable_types is not None:
        allowed = (allowed or set(spec.readable_types)) & set(spec.readable_types)
    # With a geo-query the types are checked here, not in SQL: given a type filter, SQLite's planner picks
    # the type index and reads every entity of the type (measured: 10 ms over 25,000) instead of the box.
    if allowed is not None and spec.geo is None:
        stmt = stmt.where(NgsiEntity.type.in_(sorted(allowed)))
    if spec.ids:
        stmt = stmt.where(NgsiEntity.id.in_(spec.ids))
    exact = spec.geo is None
    if spec.geo is not None:
        box = spec.geo.box()
        stmt = stmt.where(NgsiEntity.lat.is_not(None))
        if box is not None:
            south, west, north, east = box
            stmt = stmt.where(NgsiEntity.lat.between(south, north), NgsiEntity.lon.between(west, east))
    if spec.id_pattern is not None:
        clauses, pushed = ngsi_sql.id_pattern(dialect, spec.id_pattern.pattern)
        stmt, exact = stmt.where(*clauses), exact and pushed
    if spec.q is not None:
        clause, pushed = ngsi_sql.q_filter(dialect, spec.q, spec.names.stored if spec.names is not None else str)
        if clause is not None:
            stmt = stmt.where(clause)
        exact = exact and pushed
    ngsi_sql.prepare(session)
    if exact:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(stmt.order_by(NgsiEntity.id).offset(spec.offset).limit(spec.limit))
        return [_entity(r) for r in rows], total
    matched = []
    for row in session.scalars(stmt.order_by(NgsiEntity.id)):
        if allowed is not None and row.type not in allowed:
            continue
        if spec.id_pattern is not None and not spec.id_pattern.fullmatch(row.id):
            continue
        if spec.geo is not None and not spec.geo.admits(row.lat, row.lon):
            continue
        e = _entity(row)
        if not spec.q_test(e):
            continue
        matched.append(e)
    return matched[spec.offset : spec.offset + spec.limit], len(matched)


@dataclass
class Census:
    """What the stored entities are: how many of each type, and per type each attribute's name, its attribute
    types (Property, Relationship …) and how many entities carry it."""

    entities: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, dict[str, tuple[set[str], int]]] = field(default_factory=dict)

    def add(self, etype: str, name: str, kind: str | None, n: int) -> None:
        kinds, count = self.attributes.setdefault(etype, {}).get(name, (set(), 0))
        self.attributes[etype][name] = (kinds | ({kind} if kind else set()), count + n)


def _wanted(readable_types: tuple[str, ...] | None, types: list[str] | None) -> set[str] | None:
    wanted = set(types) if types is not None else None
    if readable_types is not None:
        wanted = (wanted if wanted is not None else set(readable_types)) & set(readable_types)
    return wanted


def census(session: Session, readable_types: tuple[str, ...] | None, types: list[str] | None = None) -> Census:
    """The census of the stored entities of the types the caller may read (`types`: of these only), as the
    writes keep it (sensing_ngsi_census)."""
    wanted = _wanted(readable_types, types)
    out = Census()
    stmt = select(NgsiCensus.type, NgsiCensus.name, NgsiCensus.kind, NgsiCensus.entities).where(NgsiCensus.entities > 0)
    if wanted is not None:
        if not wanted:
            return out
        stmt = stmt.where(NgsiCensus.type.in_(sorted(wanted)))
    for etype, name, kind, n in session.execute(stmt):
        if name == "":
            out.entities[etype] = n
        else:
            out.add(etype, name, kind or None, n)
    return out


def _counted(session: Session, wanted: set[str] | None) -> list[tuple[str, str, str, int]]:
    """The census's rows as a count over every stored entity gives them (the store's JSON functions): (type,
    '', '', entities) per type and (type, attribute, its attribute type or '', entities) per attribute; only the
    `wanted` types when given."""
    counts = select(NgsiEntity.type, func.count()).group_by(NgsiEntity.type)
    if wanted is not None:
        counts = counts.where(NgsiEntity.type.in_(sorted(wanted)))
    out = [(etype, "", "", n) for etype, n in session.execute(counts)]
    if session.get_bind().dialect.name == "postgresql":
        sql = (
            "SELECT e.type, j.key, COALESCE(j.value ->> 'type', ''), count(*) FROM sensing_ngsi_entities AS e, "
            "jsonb_each(CAST(e.attrs AS jsonb)) AS j {where} GROUP BY 1, 2, 3"
        )
    else:
        sql = (
            "SELECT e.type, j.key, COALESCE(json_extract(j.value, '$.type'), ''), count(*) "
            "FROM sensing_ngsi_entities AS e, json_each(e.attrs) AS j {where} GROUP BY 1, 2, 3"
        )
    stmt = text(sql.format(where="WHERE e.type IN :types" if wanted is not None else ""))
    params = {}
    if wanted is not None:
        stmt, params = stmt.bindparams(bindparam("types", expanding=True)), {"types": sorted(wanted)}
    out += [tuple(row) for row in session.execute(stmt, params)]
    return out


def scan_census(session: Session, readable_types: tuple[str, ...] | None, types: list[str] | None = None) -> Census:
    """The same census counted over every stored entity's attributes: what the kept census must always equal
    (tests), too slow to answer with at 100,000 entities."""
    wanted = _wanted(readable_types, types)
    out = Census()
    if wanted is not None and not wanted:
        return out
    for etype, name, kind, n in _counted(session, wanted):
        if name == "":
            out.entities[etype] = n
        else:
            out.add(etype, name, kind or None, n)
    return out


@dataclass(frozen=True)
class CensusDifference:
    """One census row that is not what a full count of the entities gives (`kept` 0: the row is missing;
    `counted` 0: the row should not be there)."""

    type: str
    name: str  # '' for the type's entity count
    kind: str
    kept: int
    counted: int


def census_differences(session: Session) -> list[CensusDifference]:
    """Where the kept census (sensing_ngsi_census) and a full count of the entities disagree, in key order."""
    kept = {
        (t, n, k): e
        for t, n, k, e in session.execute(
            select(NgsiCensus.type, NgsiCensus.name, NgsiCensus.kind, NgsiCensus.entities)
        )
    }
    counted = {(t, n, k): e for t, n, k, e in _counted(session, None)}
    return [
        CensusDifference(*key, kept.get(key, 0), counted.get(key, 0))
        for key in sorted(kept.keys() | counted.keys())
        if kept.get(key, 0) != counted.get(key, 0) or (key in kept and kept[key] <= 0)
    ]


def repair_census(session: Session) -> list[CensusDifference]:
    """Make the census a full count of the entities again, in the caller's transaction; the rows it changed.

    The census is locked first, against the writers' own census updates: on PostgreSQL SHARE ROW EXCLUSIVE,
    which waits for every transaction that has moved the census to end (so the count sees its entities) and
    makes every writer that reaches its census update later wait for this transaction (its entities are not in
    the count, and its change is added to the repaired rows). A row lock could not do this: a write may add a
    row the census does not have yet. On SQLite the store's one write lock does the same."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE sensing_ngsi_census IN SHARE ROW EXCLUSIVE MODE"))
    else:
        _sqlite_write_lock(session)
    found = census_differences(session)
    gone = [d for d in found if d.counted == 0]
    for d in gone:
        session.execute(
            delete(NgsiCensus).where(NgsiCensus.type == d.type, NgsiCensus.name == d.name, NgsiCensus.kind == d.kind)
        )
    fixed = [{"type": d.type, "name": d.name, "kind": d.kind, "entities": d.counted} for d in found if d.counted]
    if fixed:
        stmt = _insert(session)(NgsiCensus)
        stmt = stmt.on_conflict_do_update(
            index_elements=["type", "name", "kind"], set_={"entities": stmt.excluded.entities}
        )
        session.execute(stmt, fixed)
    return found


# --- renderings ---------------------------------------------------------------------------------------------


def projected(e: Entity, pick: set[str] | None, omit: set[str] | None, key_values: bool) -> dict:
    """An entity as answered: only the picked members, without the omitted ones, normalized or keyValues."""
    out: dict[str, Any] = {}
    for name, value in e.as_dict().items():
        if pick is not None and name not in pick:
            continue
        if omit is not None and name in omit:
            continue
        if key_values and isinstance(value, dict):
            if value.get("type") == "Relationship":
                value = value.get("object")
            elif value.get("type") == "LanguageProperty":
                value = {"languageMap": value.get("languageMap")}
            else:
                value = value.get("value")
        out[name] = value
    return out


def missing(eid: str) -> NgsiError:
    return not_found(f"no entity {eid}")
