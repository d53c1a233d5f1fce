"""HTML pages of the safety service: the guardian view (mobile) and the district control-room console.

Thin, like api.py: each page reads through the privacy-checked service functions (audited), so a
guardian opening someone else's ward, or an operator of another district opening an incident, gets the
403 page and an audit entry. The pages are live: their scripts (web/src/safety-*.js) listen to the
event stream and re-fetch the page's parts (`?part=…`), rendered by the same templates as the page.
Every console action also works as a plain form post (CSRF token in the form) without JavaScript.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from smartcity.core.auth import Identity, Require, check, resolve_identity, verify_csrf
from smartcity.core.db import from_store
from smartcity.core.errors import PermissionDenied
from smartcity.core.i18n import localized
from smartcity.core.models import User
from smartcity.core.web import language_of, render
from smartcity.safety import service

router = APIRouter(include_in_schema=False)
# Every page here shows someone's whereabouts: a refusal by role is audited too.
Guardian = Annotated[Identity, Depends(Require("safety.guard", audited=True))]
Operator = Annotated[Identity, Depends(Require("safety.operate", audited=True))]

STATUS_RANK = {"open": 0, "acknowledged": 1, "dispatched": 2, "resolved": 3}
RECENTLY_RESOLVED = 10


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _local(request: Request):
    """A template helper: an ISO time (UTC) as the city's local time, short when it is today."""
    tz = request.app.state.profile.tz

    def fmt(value, with_seconds: bool = False) -> str:
        if not value:
            return ""
        at = from_store(value).astimezone(tz)
        clock = at.strftime("%H:%M:%S" if with_seconds else "%H:%M")
        return clock if at.date() == datetime.now(tz).date() else f"{at:%Y-%m-%d} {clock}"

    return fmt


def _page(request: Request, template: str, **context) -> HTMLResponse:
    return render(request, template, local=_local(request), city_tz=request.app.state.profile.timezone, **context)


@router.get("/safety")
def safety_home(request: Request):
    """Guardians go to their wards, operators to their console (administrators, who sit in no control room,
    to the guardian's page)."""
    identity = resolve_identity(request)
    if identity.can("safety.control_room"):
        return RedirectResponse("/safety/console", status_code=303)
    check(identity, "safety.guard")
    return RedirectResponse("/safety/guardian", status_code=303)


# --- guardians ------------------------------------------------------------------------------------


def _guardian_view(
    request: Request, identity: Identity, person_id: int | None, part: str | None, issued: dict | None = None
):
    db = request.app.state.db
    with db.session() as s:
        wards = service.wards(s, identity)
        if person_id is None:
            if not wards:
                return _page(request, "safety/guardian.html", wards=[], ward=None)
            person_id = wards[0]["id"]
        ward = next((w for w in wards if w["id"] == person_id), None)
        if part == "alerts":
            return _page(request, "safety/_alerts.html", alerts=service.alerts(s, identity, person_id, limit=50))
        if part == "zones":
            zones = service.zone_view(s, identity, person_id, ip=_ip(request))
            return _page(request, "safety/_zones.html", zones=zones)
        # The privacy rule decides (and audits a refusal) before anything else is read.
        position = service.current_position(s, identity, person_id, ip=_ip(request))
        if ward is None:  # an administrator reading is refused above; this is a safety net
            raise PermissionDenied("you may not see this person's location")
        data = {
            "person": ward,
            "position": position,
            "track": service.track(s, identity, person_id, ip=_ip(request)),
            "zones": service.zone_view(s, identity, person_id, ip=_ip(request)),
        }
        alerts = service.alerts(s, identity, person_id, limit=50)
        devices = service.ward_devices(s, identity, person_id)
    return _page(
        request,
        "safety/guardian.html",
        wards=wards,
        ward=ward,
        data=data,
        alerts=alerts,
        zones=data["zones"],
        position=position,
        devices=devices,
        issued=issued,
    )


@router.get("/safety/guardian", response_class=HTMLResponse)
def guardian_home(request: Request, identity: Guardian, part: str | None = None):
    """The guardian's first ward (or an explanation when there is none yet)."""
    return _guardian_view(request, identity, None, part)


@router.get("/safety/guardian/{person_id}", response_class=HTMLResponse)
def guardian_ward(request: Request, person_id: int, identity: Guardian, part: str | None = None):
    """One ward: current position, today's path, zones (with the editor) and alert history."""
    return _guardian_view(request, identity, person_id, part)


@router.post("/safety/guardian/{person_id}/withdraw")
def withdraw_form(request: Request, person_id: int, identity: Guardian, delete_history: str = Form("")):
    """The guardian withdraws their consent (and, if asked, deletes the history); back to their wards."""
    with request.app.state.db.session() as s:
        service.withdraw_as_guardian(s, identity, person_id, with_history=bool(delete_history))
    return RedirectResponse("/safety/guardian", status_code=303)


@router.post(
    "/safety/guardian/{person_id}/devices/{device_id}/secret",
    response_class=HTMLResponse,
    dependencies=[Depends(verify_csrf)],
)
def device_secret_form(request: Request, person_id: int, device_id: int, identity: Guardian):
    """A new secret for a ward's OwnTracks device, shown in this answer only (it is not kept: a reload of the
    page does not show it again)."""
    with request.app.state.db.session() as s:
        secret = service.renew_ward_device_secret(s, identity, person_id, device_id)
    response = _guardian_view(request, identity, person_id, None, issued={"device_id": device_id, "secret": secret})
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the control room -----------------------------------------------------------------------------


def _queue(session, identity: Identity) -> tuple[list[dict], list[dict]]:
    """Active incidents, most urgent first (open before acknowledged before dispatched; newest first
    within each), and the district's most recently resolved ones."""
    active = service.list_incidents(session, identity, active=True)
    active.sort(key=lambda d: (STATUS_RANK[d["status"]], -d["id"]))
    done = [d for d in service.list_incidents(session, identity, active=False, limit=50) if d["status"] == "resolved"]
    return active, done[:RECENTLY_RESOLVED]


def _names(session, view: dict) -> dict[int, str]:
    ids = {view.get(f"{step}_by") for step in ("acknowledged", "dispatched", "resolved")} - {None}
    if not ids:
        return {}
    return {u.id: u.display_name or u.username for u in session.scalars(select(User).where(User.id.in_(ids)))}


def _console(request: Request, identity: Identity, incident_id: int | None, part: str | None):
    db = request.app.state.db
    with db.session() as s:
        view, names = None, {}
        if part != "queue":
            if incident_id is None:
                active, _ = _queue(s, identity)
                incident_id = active[0]["id"] if active else None
            if incident_id is not None:
                view = service.incident_view(s, identity, incident_id, ip=_ip(request))
                names = _names(s, view)
        if part == "detail":
            return _page(request, "safety/_incident.html", inc=view, names=names)
        active, done = _queue(s, identity)
    template = "safety/_queue.html" if part == "queue" else "safety/console.html"
    profile = request.app.state.profile
    area = next((d for d in profile.districts if d.code == identity.district_code), None)
    district = localized(area, "name", language_of(request), profile.language) if area else identity.district_code
    return _page(
        request,
        template,
        active=active,
        done=done,
        inc=view,
        names=names,
        selected=view["id"] if view else None,
        district=district,
    )


@router.get("/safety/console", response_class=HTMLResponse)
def console(request: Request, identity: Operator, part: str | None = None):
    """The district control room's live console: the queue, and the most urgent incident."""
    return _console(request, identity, None, part)


@router.get("/safety/console/{incident_id}", response_class=HTMLResponse)
def console_incident(request: Request, incident_id: int, identity: Operator, part: str | None = None):
    return _console(request, identity, incident_id, part)


def _back(incident_id: int) -> RedirectResponse:
    return RedirectResponse(f"/safety/console/{incident_id}", status_code=303)


@router.post("/safety/console/{incident_id}/acknowledge")
def acknowledge_form(request: Request, incident_id: int, identity: Operator):
    with request.app.state.db.session() as s:
        service.acknowledge(s, identity, incident_id)
    return _back(incident_id)


@router.post("/safety/console/{incident_id}/dispatch")
def dispatch_form(
    request: Request,
    incident_id: int,
    identity: Operator,
    agency: str = Form(""),
    reference: str = Form(""),
    notes: str = Form(""),
):
    with request.app.state.db.session() as s:
        service.dispatch(s, identity, incident_id, agency, reference[:100], notes[:4000])
    return _back(incident_id)


@router.post("/safety/console/{incident_id}/resolve")
def resolve_form(request: Request, incident_id: int, identity: Operator, resolution: str = Form("")):
    with request.app.state.db.session() as s:
        service.resolve(s, identity, incident_id, resolution[:4000])
    return _back(incident_id)
