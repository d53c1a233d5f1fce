"""JSON routes of the sensing module: readings in by HTTP batch (a JSON array), the quantities, the sensors and
a sensor's series (public: the city publishes its sensors' readings), the latest refused readings (staff)."""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from smartcity.core.auth import Identity, Require
from smartcity.core.errors import InvalidInput, TooLarge
from smartcity.sensing import service

router = APIRouter(prefix="/api/sensing", tags=["sensing"])
Sender = Annotated[Identity, Depends(Require("sensing.submit"))]
Manager = Annotated[Identity, Depends(Require("sensing.manage"))]
MAX_BODY = 8 * 1024 * 1024
MAX_READINGS = 50_000


def json_batch(body: bytes, max_bytes: int, max_items: int, what: str) -> list:
    """A batch body: a JSON array (or one object) of at most `max_items`, in at most `max_bytes` (every sensing
    batch endpoint's rule and errors)."""
    if len(body) > max_bytes:
        raise TooLarge(f"a batch is at most {max_bytes} bytes", code="too_large")
    try:
        items = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the body is not JSON: {exc}", code="malformed_json") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise InvalidInput(f"the body must be a JSON array of {what}", code="malformed")
    if len(items) > max_items:
        raise TooLarge(f"a batch holds at most {max_items} {what}", code="too_many")
    return items


@router.post("/readings")
async def post_readings(request: Request, _sender: Sender) -> dict:
    """A batch of readings, a JSON array of {"sensor", "quantity", "time", "value"}: each stored once (a repeat
    counts as a duplicate) or refused with its index, code and reason (also recorded for staff)."""
    readings = json_batch(await request.body(), MAX_BODY, MAX_READINGS, "readings")
    outcome = await service.submit_readings(request.app.state.db, readings, "http")
    return outcome.as_dict()


@router.get("/quantities")
def quantities() -> dict:
    return {
        "quantities": [
            {"name": q.name, "unit": q.unit, "label": q.label, "min": q.low, "max": q.high} for q in service.QUANTITIES
        ]
    }


@router.get("/sensors")
def sensors(request: Request, district: str | None = None) -> dict:
    with request.app.state.db.session() as s:
        rows = service.sensors(s, district)
    return {"sensors": rows, "count": len(rows)}


@router.get("/sensors/{serial}/series")
def sensor_series(
    request: Request,
    serial: str,
    quantity: str,
    resolution: str = "raw",
    start: Annotated[int | None, Query(ge=0, le=2**40, description="epoch seconds; default: a day before end")] = None,
    end: Annotated[int | None, Query(ge=0, le=2**40, description="epoch seconds; default: now")] = None,
) -> dict:
    """One sensor's quantity over [start, end): raw readings, or hourly/daily min, max, mean and count."""
    end = int(time.time()) + 1 if end is None else end
    start = end - 86400 if start is None else start
    with request.app.state.db.session() as s:
        return service.reading_series(s, serial, quantity, start, end, resolution)


@router.get("/rejections")
def rejections(request: Request, _manager: Manager, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """The latest refused readings with their reasons, newest first."""
    with request.app.state.db.session() as s:
        return {"rejections": service.rejections(s, limit)}
