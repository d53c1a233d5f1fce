"""HTML pages of the safety service: the guardian view (mobile) and the district control-room console.

Thin, like api.py: each page reads through the privacy-checked service functions (audited), so a
guardian opening someone else's ward, or an operator of another district opening an incident, gets the
403 page and an audit entry. The pages are live: their scripts (web/src/safety-*.js) listen to the
event stream and re-fetch the page's parts (`?part=…`), rendered by the same templates as the page.
Every console action also works as a plain form post (CSRF token in the form) without JavaScript.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from smartcity.core.auth import Identity, Require, check, resolve_identity, verify_csrf
from smartcity.core.db import from_store
from smartcity.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from smartcity.core.i18n import localized
from smartcity.core.models import User
from smartcity.core.web import language_of, render
from smartcity.safety import guardian, service
from smartcity.safety.incidents import queue_order
from smartcity.safety.settings import SafetySettings

router = APIRouter(include_in_schema=False)
# Every page here shows someone's whereabouts: a refusal by role is audited too.
Guardian = Annotated[Identity, Depends(Require("safety.guard", audited=True))]
Operator = Annotated[Identity, Depends(Require("safety.operate", audited=True))]
Manager = Annotated[Identity, Depends(Require("safety.manage", audited=True))]

RECENTLY_RESOLVED = 10
PIN_FIELDS = ("id", "kind", "status", "lat", "lon", "person_name", "zone")  # what the console map draws


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


def _minutes_ago(value: str | None) -> int | None:
    """Whole minutes since an ISO time (the live state's last fix), for "last seen N minutes ago"."""
    if not value:
        return None
    return max(0, int((datetime.now(UTC) - from_store(value)).total_seconds() // 60))


def _replay_day(request: Request, day: str | None) -> tuple[date | None, datetime | None, datetime | None]:
    """The past day a guardian asked to replay (city time) and its bounds in UTC; None for today. A day
    outside the retention period is refused: nothing is kept from before it."""
    if not day:
        return None, None, None
    tz = request.app.state.profile.tz
    try:
        chosen = date.fromisoformat(day)
    except ValueError:
        raise InvalidInput("a day is given as YYYY-MM-DD", code="invalid_day") from None
    today = datetime.now(tz).date()
    keep = request.app.state.settings.of(SafetySettings).retention_days
    if not today - timedelta(days=keep) <= chosen <= today:
        raise InvalidInput(f"a day within the last {keep} days", code="invalid_day")
    start = datetime.combine(chosen, datetime.min.time(), tz)
    return chosen, start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC) - timedelta(microseconds=1)


def _guardian_view(
    request: Request,
    identity: Identity,
    person_id: int | None,
    part: str | None,
    issued: dict | None = None,
    day: str | None = None,
    prefs_error: str | None = None,
    device_error: str | None = None,
    status_code: int = 200,
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
        replay, since, until = _replay_day(request, day)
        data = {
            "person": ward,
            "position": position,
            "track": service.track(s, identity, person_id, since=since, until=until, ip=_ip(request)),
            "zones": service.zone_view(s, identity, person_id, ip=_ip(request)),
            "replay": replay.isoformat() if replay else None,
        }
        alerts = service.alerts(s, identity, person_id, limit=50)
        devices = service.ward_devices(s, identity, person_id)
        prefs = guardian.alert_preferences(s, identity, person_id)
        incidents = guardian.ward_incidents(s, identity, person_id)
    tz = request.app.state.profile.tz
    today = datetime.now(tz).date()
    keep = request.app.state.settings.of(SafetySettings).retention_days
    response = _page(
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
        prefs=prefs,
        prefs_error=prefs_error,
        device_error=device_error,
        incidents=incidents,
        urgent=[i for i in incidents if i["active"]],
        last_seen=_minutes_ago(position["fix_time"]) if position else None,
        replay=replay,
        today=today.isoformat(),
        oldest_day=(today - timedelta(days=keep)).isoformat(),
        track=data["track"] if replay else [],
    )
    response.status_code = status_code
    return response


@router.get("/safety/guardian", response_class=HTMLResponse)
def guardian_home(request: Request, identity: Guardian, part: str | None = None):
    """The guardian's first ward (or an explanation when there is none yet)."""
    return _guardian_view(request, identity, None, part)


@router.get("/safety/guardian/{person_id}", response_class=HTMLResponse)
def guardian_ward(
    request: Request, person_id: int, identity: Guardian, part: str | None = None, day: str | None = None
):
    """One ward: current position, today's path (or a past day's, `day`), zones (with the editor), the
    ward's emergencies and their progress, alert history and the guardian's alert preferences."""
    return _guardian_view(request, identity, person_id, part, day=day)


@router.post("/safety/guardian/{person_id}/alerts", dependencies=[Depends(verify_csrf)])
def alert_preferences_form(
    request: Request,
    person_id: int,
    identity: Guardian,
    kinds: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies a Form default
    channel: str = Form(""),
    quiet_start: str = Form(""),
    quiet_end: str = Form(""),
    cooldown_minutes: str = Form(""),
):
    """The guardian's alert preferences (the kinds ticked are the kinds that come); back to the ward. A bad
    value stores nothing: the page again, with the reason."""
    try:
        minutes = int(cooldown_minutes) if cooldown_minutes.strip() else None
    except ValueError:
        minutes = -1  # refused below with the service's own message
    with request.app.state.db.session() as s:
        off = [k for k in service.EVENT_KINDS if k not in kinds and k not in guardian.ALWAYS_ON]
        try:
            guardian.set_alert_preferences(
                s,
                identity,
                person_id,
                off=off,
                channel=channel,
                quiet_start=quiet_start,
                quiet_end=quiet_end,
                cooldown_minutes=minutes,
            )
        except InvalidInput as exc:
            s.rollback()
            error = exc.code
        else:
            error = None
    if error:
        return _guardian_view(request, identity, person_id, None, prefs_error=error, status_code=422)
    return RedirectResponse(f"/safety/guardian/{person_id}#alert-prefs", status_code=303)


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


@router.post("/safety/guardian/{person_id}/devices", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)])
def add_device_form(
    request: Request,
    person_id: int,
    identity: Guardian,
    identifier: str = Form(""),
    protocol: str = Form("osmand"),
    name: str = Form(""),
):
    """A guardian adds a device to their ward; an OwnTracks device's password is shown in this answer only."""
    with request.app.state.db.session() as s:
        try:
            device = guardian.add_ward_device(s, identity, person_id, identifier, protocol, name)
        except (InvalidInput, Conflict) as exc:
            s.rollback()
            error, issued = exc.code, None
        else:
            error, issued = None, {"device_id": device.id, "secret": device.issued_secret}
    if error:
        return _guardian_view(request, identity, person_id, None, device_error=error, status_code=422)
    response = _guardian_view(request, identity, person_id, None, issued=issued)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the consent register (the service's managers; what `smartcity safety consent` does) -------------


def _register(request: Request, identity: Identity, error: str | None = None, status_code: int = 200):
    with request.app.state.db.session() as s:
        persons = guardian.consent_register(s, identity)
        usernames = guardian.guardian_usernames(s)
    response = _page(request, "safety/consents.html", persons=persons, usernames=usernames, error=error)
    response.status_code = status_code
    return response


@router.get("/safety/consents", response_class=HTMLResponse)
def consents_page(request: Request, identity: Manager):
    """Persons, their guardians and the consent behind each link; record and withdraw consents."""
    return _register(request, identity)


@router.post("/safety/consents", dependencies=[Depends(verify_csrf)])
def record_consent_form(
    request: Request,
    identity: Manager,
    person_id: int = Form(...),
    username: str = Form(""),
    given_by: str = Form(""),
    basis: str = Form(""),
):
    with request.app.state.db.session() as s:
        try:
            guardian.record_consent_as(s, identity, person_id, username, given_by, basis)
        except (InvalidInput, NotFound) as exc:
            s.rollback()
            error = exc.code
        else:
            error = None
    if error:
        return _register(request, identity, error, 422)
    return RedirectResponse("/safety/consents", status_code=303)


@router.post("/safety/consents/{person_id}/{user_id}/withdraw", dependencies=[Depends(verify_csrf)])
def withdraw_consent_form(request: Request, person_id: int, user_id: int, identity: Manager):
    with request.app.state.db.session() as s:
        guardian.withdraw_consent_as(s, identity, person_id, user_id)
    return RedirectResponse("/safety/consents", status_code=303)


# --- the control room -----------------------------------------------------------------------------


def _queue(session, identity: Identity) -> tuple[list[dict], list[dict]]:
    """Active incidents in priority order (SOS before danger, then the longest waiting), and the district's most
    recently resolved ones."""
    active = service.list_incidents(session, identity, active=True)
    active.sort(key=queue_order)
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
        pins=[{k: d[k] for k in PIN_FIELDS} for d in active],
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
