"""The NGSI-LD temporal API over the sensors' readings: /temporal/entities/{id} and /temporal/entities for
sensor entities (AirQualityObserved, NoiseLevelObserved), served from the readings tables (raw readings) and
their hourly/daily roll-ups (aggregated values). A sensor entity's id names its sensor by serial
(urn:ngsi-ld:AirQualityObserved:V02Q1940612).

timerel before/after/between with timeAt/endTimeAt (ISO 8601 with a zone); attrs; lastN (the newest N of each
attribute); options=temporalValues (the simplified [value, time] pairs); options=aggregatedValues with
aggrMethods (avg, min, max, sum, totalCount) and aggrPeriodDuration PT1H or P1D (the roll-ups' hours and the
city's days)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from smartcity.core.context import context_of
from smartcity.sensing import ngsi_entities as store
from smartcity.sensing.intake import SENSORS
from smartcity.sensing.ngsi_api import NgsiRoute, options_of
from smartcity.sensing.ngsi_entities import QUANTITY_OF, SENSOR_TYPES
from smartcity.sensing.ngsi_wire import NgsiError, answer, bad_data, request_context, response_type
from smartcity.sensing.quantities import BY_NAME
from smartcity.sensing.rollup import DAY, HOUR, series

PERIODS = {"PT1H": HOUR, "P1D": DAY}
METHODS = ("avg", "min", "max", "sum", "totalCount")
MAX_INSTANCES = 100_000
router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"], route_class=NgsiRoute, include_in_schema=False)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _epoch(name: str, raw: str | None) -> int:
    if raw is None:
        raise bad_data(f"{name} is needed by this timerel")
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_data(f"{name} must be an ISO 8601 date-time with a zone") from None
    if when.tzinfo is None:
        raise bad_data(f"{name} must carry a zone (…Z or +09:00)")
    return int(when.timestamp())


def _window(params) -> tuple[int, int]:
    """[start, end) of the timerel, in epoch seconds."""
    rel = params.get("timerel")
    if rel is None:
        if params.get("timeAt"):
            raise bad_data("timeAt needs timerel")
        return 0, int(time.time()) + 86400
    if rel == "before":
        return 0, _epoch("timeAt", params.get("timeAt"))
    if rel == "after":
        return _epoch("timeAt", params.get("timeAt")) + 1, 2**40
    if rel == "between":
        start, end = _epoch("timeAt", params.get("timeAt")), _epoch("endTimeAt", params.get("endTimeAt"))
        if end <= start:
            raise bad_data("endTimeAt must be after timeAt")
        return start, end
    raise bad_data("timerel is before, after or between")


def _attrs(params, etype: str) -> list[str]:
    wanted = [a.strip() for a in (params.get("attrs") or "").split(",") if a.strip()]
    names = [n for n in QUANTITY_OF if etype != "NoiseLevelObserved" or BY_NAME[QUANTITY_OF[n][0]].name == "noise"]
    if etype == "AirQualityObserved":
        names = [n for n in names if QUANTITY_OF[n][0] != "noise"]
    return [n for n in names if not wanted or n in wanted]


def temporal_entity(db, eid: str, etype: str, params, options: set[str]) -> dict | None:
    """One sensor entity's history: its attributes' instances (or aggregates) over the window."""
    serial = eid.rsplit(":", 1)[-1]
    sensor_id = context_of(db).slot(SENSORS).ids_of([serial])[0]
    if sensor_id is None:
        return None
    start, end = _window(params)
    last_n = params.get("lastN")
    if last_n is not None and (not last_n.isdigit() or int(last_n) < 1):
        raise bad_data("lastN must be a positive integer")
    out: dict = {"id": eid, "type": etype}
    aggregated = "aggregatedValues" in options
    if aggregated:
        methods = [m.strip() for m in (params.get("aggrMethods") or "").split(",") if m.strip()]
        if not methods or not set(methods) <= set(METHODS):
            raise bad_data(f"aggrMethods: one or more of {', '.join(METHODS)}")
        period = PERIODS.get(params.get("aggrPeriodDuration") or "P1D")
        if period is None:
            raise NgsiError(501, "OperationNotSupported", "aggrPeriodDuration is PT1H or P1D (the roll-ups)")
    with db.session() as s:
        for name in _attrs(params, etype):
            quantity, factor = QUANTITY_OF[name]
            code = BY_NAME[quantity].code
            if aggregated:
                rows = series(s, sensor_id, code, period, start - start % HOUR if period == HOUR else start, end)
                if last_n:
                    rows = rows[-int(last_n) :]
                if not rows:
                    continue
                attr: dict = {"type": "Property"}
                # Formatting the times was 60 % of a 30-day hourly answer's CPU (bench/bench_sensing.py): once
                # per period, not once per period and method.
                stamps = [(_iso(r["time"]), _iso(r["time"] + period)) for r in rows]
                for m in methods:
                    attr[m] = [[_aggregate(r, m, factor), lo, hi] for r, (lo, hi) in zip(rows, stamps, strict=True)]
                out[name] = attr
                continue
            rows = series(s, sensor_id, code, 0, start, end)[-MAX_INSTANCES:]
            if last_n:
                rows = rows[-int(last_n) :]
            if not rows:
                continue
            values = [(round(r["value"] / factor, 9) if factor != 1.0 else r["value"], _iso(r["time"])) for r in rows]
            if "temporalValues" in options:
                out[name] = {"type": "Property", "values": [list(v) for v in values]}
            else:
                out[name] = [{"type": "Property", "value": v, "observedAt": t} for v, t in values]
    return out


def _aggregate(row: dict, method: str, factor: float) -> float | int:
    if method == "totalCount":
        return row["count"]
    value = {"avg": row["mean"], "min": row["min"], "max": row["max"], "sum": row["mean"] * row["count"]}[method]
    return round(value / factor, 9) if factor != 1.0 else value


@router.get("/temporal/entities/{entity_id}")
async def temporal_retrieve(request: Request, entity_id: str) -> Response:
    media = response_type(request)
    await request_context(request)
    store.check_id(entity_id)
    etype = next((t for t in SENSOR_TYPES if f":{t}:" in entity_id), None)
    db = request.app.state.db
    found = None
    if etype is not None:
        options = options_of(request)
        found = await run_in_threadpool(temporal_entity, db, entity_id, etype, request.query_params, options)
    if found is None:
        raise store.missing(entity_id)
    return answer(request, found, media)


@router.get("/temporal/entities")
async def temporal_query(request: Request) -> Response:
    media = response_type(request)
    await request_context(request)
    params = request.query_params
    types = [t for t in (params.get("type") or "").split(",") if t]
    ids = [store.check_id(i) for i in (params.get("id") or "").split(",") if i]
    if not types and not ids:
        raise bad_data("a temporal query needs type or id")
    if params.get("timerel") is None:
        raise bad_data("a temporal query needs timerel")
    db = request.app.state.db
    spec = store.Query(types=types or None, ids=ids or None, readable_types=SENSOR_TYPES, limit=100)

    def read() -> list[dict]:
        with db.session() as s:
            found, _ = store.query(s, spec)
        out = []
        for e in found:
            entity = temporal_entity(db, e.id, e.type, params, options_of(request))
            if entity is not None:
                out.append(entity)
        return out

    return answer(request, await run_in_threadpool(read), media)
