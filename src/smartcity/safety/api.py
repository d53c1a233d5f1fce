"""JSON routes of the safety service for the guardian view and the control-room console.

Thin: every route calls a privacy-checked service function, which audits each read of a location and
each refusal. Guardians (`safety.guard`) read their wards and edit their safe zones; operators
(`safety.operate`) work their district's incident queue. Cookie sessions send the CSRF token in the
`X-CSRF-Token` header; API keys need none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smartcity.core.auth import Identity, Require
from smartcity.core.errors import InvalidInput
from smartcity.safety import service

router = APIRouter(prefix="/api/safety", tags=["safety"])
# Every route here reads or changes someone's whereabouts: a refusal by role is audited too.
Guardian = Annotated[Identity, Depends(Require("safety.guard", audited=True))]
Operator = Annotated[Identity, Depends(Require("safety.operate", audited=True))]


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (e.g. 2024-05-01T09:00:00+09:00)", code="invalid_time")
    return value


# --- guardians ------------------------------------------------------------------------------------


@router.get("/wards")
def wards(request: Request, identity: Guardian) -> dict:
    """The persons the caller is a consented guardian of (no locations)."""
    with request.app.state.db.session() as s:
        return {"wards": service.wards(s, identity)}


@router.get("/wards/{person_id}/position")
def position(request: Request, person_id: int, identity: Guardian) -> dict:
    """The ward's newest position (`position` is null before the first fix). Audited."""
    with request.app.state.db.session() as s:
        return {"person_id": person_id, "position": service.current_position(s, identity, person_id, ip=_ip(request))}


@router.get("/wards/{person_id}/track")
def track(
    request: Request,
    person_id: int,
    identity: Guardian,
    since: Annotated[
        datetime | None, Query(description="ISO 8601 with zone; default: today's start (3 h back at least)")
    ] = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 5000,
) -> dict:
    """The ward's positions, oldest first (default: today in the city's time zone, reaching at least three hours
    back). Audited."""
    since, until = _aware(since, "since"), _aware(until, "until")
    with request.app.state.db.session() as s:
        points = service.track(s, identity, person_id, since=since, until=until, limit=limit, ip=_ip(request))
        return {"person_id": person_id, "track": points}


@router.get("/wards/{person_id}/alerts")
def alerts(
    request: Request, person_id: int, identity: Guardian, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict:
    """The ward's alert history, newest first. Audited."""
    with request.app.state.db.session() as s:
        return {"person_id": person_id, "alerts": service.alerts(s, identity, person_id, limit=limit)}


@router.get("/wards/{person_id}/zones")
def zones(request: Request, person_id: int, identity: Guardian) -> dict:
    """The ward's safe zones and the danger zones (a child's home and school: the location rule). Audited."""
    with request.app.state.db.session() as s:
        return {"person_id": person_id, "zones": service.zone_view(s, identity, person_id, ip=_ip(request))}


@router.post("/wards/{person_id}/consent/withdraw")
def withdraw_consent(request: Request, person_id: int, identity: Guardian, delete_history: bool = False) -> dict:
    """Withdraw the consent behind the caller's guardian link: the links resting on it close and, when no
    consent is left, the person's devices are refused at once. `delete_history` (only when no consent is
    left) also deletes the person's stored positions and alerts."""
    with request.app.state.db.session() as s:
        return service.withdraw_as_guardian(s, identity, person_id, with_history=delete_history)


class ScheduleWindow(BaseModel):
    days: list[int] = Field(description="0 = Monday … 6 = Sunday")
    start: str = Field(description="HH:MM, city time")
    end: str = Field(description="HH:MM, after start")


class ZoneBody(BaseModel):
    """A circle (lat, lon, radius_m) or a polygon (GeoJSON Polygon geometry), with an optional weekly schedule."""

    name: str = Field(max_length=200)
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    polygon: dict[str, Any] | None = None
    schedule: list[ScheduleWindow] = Field(default_factory=list)

    def zone_in(self) -> service.ZoneIn:
        return service.ZoneIn(
            self.name, self.lat, self.lon, self.radius_m, self.polygon, [w.model_dump() for w in self.schedule] or None
        )


@router.post("/wards/{person_id}/zones", status_code=201)
def create_zone(request: Request, person_id: int, body: ZoneBody, identity: Guardian) -> dict:
    """Add a safe zone for the ward. 422 (nothing stored) for a bad shape or schedule."""
    with request.app.state.db.session() as s:
        zone = service.save_zone(s, identity, person_id, body.zone_in())
        return service.zone_to_dict(zone)


@router.put("/wards/{person_id}/zones/{zone_id}")
def update_zone(request: Request, person_id: int, zone_id: int, body: ZoneBody, identity: Guardian) -> dict:
    """Change one of the ward's safe zones."""
    with request.app.state.db.session() as s:
        zone = service.save_zone(s, identity, person_id, body.zone_in(), zone_id=zone_id)
        return service.zone_to_dict(zone)


@router.delete("/wards/{person_id}/zones/{zone_id}", status_code=204)
def delete_zone(request: Request, person_id: int, zone_id: int, identity: Guardian) -> Response:
    with request.app.state.db.session() as s:
        service.remove_zone(s, identity, person_id, zone_id)
    return Response(status_code=204)


# --- the control room -----------------------------------------------------------------------------


@router.get("/incidents")
def incidents(request: Request, identity: Operator, active: bool = True) -> dict:
    """The operator's district queue, newest first (locations only while an incident is not resolved)."""
    with request.app.state.db.session() as s:
        return {"district": identity.district_code, "incidents": service.list_incidents(s, identity, active=active)}


@router.get("/incidents/{incident_id}")
def incident(request: Request, incident_id: int, identity: Operator) -> dict:
    """One incident with the person, their position and recent track and the nearest cameras (while open)."""
    with request.app.state.db.session() as s:
        return service.incident_view(s, identity, incident_id, ip=_ip(request))


def _answer(session, inc) -> dict:
    person = service.get_person(session, inc.person_id)
    return service.incident_to_dict(inc, with_location=inc.status != "resolved") | {"person_name": person.name}


@router.post("/incidents/{incident_id}/acknowledge")
def acknowledge(request: Request, incident_id: int, identity: Operator) -> dict:
    """Take the incident (open → acknowledged)."""
    with request.app.state.db.session() as s:
        return _answer(s, service.acknowledge(s, identity, incident_id))


class DispatchBody(BaseModel):
    agency: str = Field(description="112 (police) or 119 (fire and rescue)")
    reference: str = Field(default="", max_length=100)
    notes: str = Field(default="", max_length=4000)


@router.post("/incidents/{incident_id}/dispatch")
def dispatch(request: Request, incident_id: int, body: DispatchBody, identity: Operator) -> dict:
    """Hand over to police (112) or fire and rescue (119), with their reference."""
    with request.app.state.db.session() as s:
        return _answer(s, service.dispatch(s, identity, incident_id, body.agency, body.reference, body.notes))


class ResolveBody(BaseModel):
    resolution: str = Field(default="", max_length=4000)


@router.post("/incidents/{incident_id}/resolve")
def resolve(request: Request, incident_id: int, identity: Operator, body: ResolveBody | None = None) -> dict:
    """Close the incident; its operators no longer see the person's location."""
    with request.app.state.db.session() as s:
        return _answer(s, service.resolve(s, identity, incident_id, body.resolution if body else ""))
