"""The core's pages: the city map, sign-in and sign-out, language choice."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from smartcity.core import accounts, audit
from smartcity.core.auth import Identity, Require, verify_csrf
from smartcity.core.errors import InvalidInput, NotFound, SmartCityError, TooManyRequests
from smartcity.core.events import publish
from smartcity.core.i18n import translate
from smartcity.core.module import HomeAction
from smartcity.core.web import STATIC, THEME_COLOUR, add_nav, asset, language_of, render

router = APIRouter(include_in_schema=False)
add_nav("Accounts", "/admin/users", "users.manage")
add_nav("Audit log", "/admin/audit", "audit.read")


HOME_ACTIONS: list[HomeAction] = []
HOME_PINS: list[str] = []


def add_home_action(action: HomeAction) -> None:
    """One of the site's main actions on the home page (core.module.install adds those modules declare)."""
    if all(a.href != action.href for a in HOME_ACTIONS):
        HOME_ACTIONS.append(action)


def add_home_pins(url: str) -> None:
    """Recent items on the home page's map: `url` answers GeoJSON points (declared by modules, see add_home_action)."""
    if url not in HOME_PINS:
        HOME_PINS.append(url)


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


@router.get("/", response_class=HTMLResponse)
def map_page(request: Request):
    """The home page: what the site is for in one line, the main actions, recent items on the city map."""
    return render(request, "map.html", actions=HOME_ACTIONS, pins=HOME_PINS)


# --- the installable app (docs/reports-pages.md, "On the phone") ----------------------------------------------


@router.get("/manifest.webmanifest")
def web_manifest(request: Request):
    """The web app manifest, in the page's language (the link in base.html says which)."""
    lang = language_of(request)
    city = request.app.state.profile.name(lang)

    def icon(name: str, size: int, purpose: str) -> dict:
        return {"src": asset(f"icons/{name}"), "sizes": f"{size}x{size}", "type": "image/png", "purpose": purpose}

    manifest = {
        "id": "/",
        "name": translate(lang, "{city} Smart City", city=city),
        "short_name": city,
        "description": translate(
            lang, "%(city)s's city services in one place: tell the city what needs fixing and follow what is done."
        ).replace("%(city)s", city),
        "lang": lang,
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME_COLOUR,
        "background_color": "#f9fafb",
        "icons": [
            icon("icon-192.png", 192, "any"),
            icon("icon-512.png", 512, "any"),
            icon("icon-maskable-512.png", 512, "maskable"),
        ],
    }
    return JSONResponse(manifest, media_type="application/manifest+json")


@router.get("/sw.js")
def service_worker(request: Request):
    """The service worker (web/src/sw.js, built), served from the root so that its scope is the whole site;
    the city's languages and main pages go before it, so a new profile or module installs a new worker."""
    built = STATIC / "build" / "sw.js"
    if not built.exists():
        return Response("// the web build (web/build.mjs) has not run\n", 404, media_type="text/javascript")
    profile = request.app.state.profile
    site = {
        "languages": list(profile.languages),
        "language": profile.language,
        "pages": ["/", *(a.href for a in HOME_ACTIONS)],
    }
    body = f"self.SHELL = {json.dumps(site)};\n{built.read_text()}"
    # Browsers check for a new worker on navigation; it must not be served stale by a cache in between.
    return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/offline", response_class=HTMLResponse)
def offline(request: Request):
    """What the service worker shows for a page that cannot be opened without a connection."""
    return render(request, "offline.html", actions=HOME_ACTIONS)


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str = "/"):
    return render(request, "signin.html", next=_safe_next(next), failed=False)


@router.post("/signin", dependencies=[Depends(verify_csrf)])
def signin(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/")):
    db = request.app.state.db
    ip = request.client.host if request.client else None
    throttle = request.app.state.signin_throttle
    if throttle.blocked(username.strip(), ip):
        with db.session() as s:
            audit.record(s, "anonymous", "signin_throttled", "user", None, {"username": username[:80]}, ip=ip)
        raise TooManyRequests("too many failed sign-ins; wait a few minutes and try again")
    with db.session() as s:
        user = accounts.authenticate(s, username.strip(), password)
        if user is None:
            throttle.failed(username.strip(), ip)
            audit.record(s, "anonymous", "signin_failed", "user", None, {"username": username[:80]}, ip=ip)
        else:
            audit.record(s, user.username, "signin", "user", user.id, ip=ip)
    if user is None:
        return render(request, "signin.html", status_code=401, next=_safe_next(next), failed=True, username=username)
    throttle.succeeded(username.strip())
    # A fresh session on sign-in: no fixation of a session made before.
    request.session.clear()
    request.session["uid"] = user.id
    if user.language:
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie("lang", user.language, max_age=365 * 24 * 3600, samesite="lax")
        return response
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/signout", dependencies=[Depends(verify_csrf)])
def signout(request: Request):
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@router.get("/lang/{code}")
def choose_language(request: Request, code: str, next: str = "/"):
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in request.app.state.profile.languages:
        response.set_cookie("lang", code, max_age=365 * 24 * 3600, samesite="lax")
    return response


# --- administration: accounts and the audit log ----------------------------------------------------


def _units(session):
    from sqlalchemy import select

    from smartcity.core.models import Department

    return list(session.scalars(select(Department).order_by(Department.kind, Department.code)))


def _accounts_page(request: Request, s, *, status_code: int = 200, form: dict | None = None, errors=None):
    return render(
        request,
        "admin_users.html",
        status_code=status_code,
        users=accounts.list_users(s),
        units=_units(s),
        roles=accounts.roles_for(request.app.state.context.modules),
        form=form or {},
        errors=errors,
    )


@router.get("/admin/users", response_class=HTMLResponse)
def admin_users(request: Request, identity: Annotated[Identity, Depends(Require("users.manage"))]):
    with request.app.state.db.session() as s:
        return _accounts_page(request, s)


async def _posted(request: Request) -> dict[str, str]:
    """The posted form's fields, read on the event loop; the handler that uses them runs in a thread."""
    return {k: str(v).strip() for k, v in (await request.form()).items() if k != "csrf_token"}


# A plain def: hashing the password (argon2) and the store's writes run in the thread pool, not on the event
# loop that also serves live streams.
@router.post("/admin/users", response_class=HTMLResponse)
def admin_create_user(
    request: Request,
    identity: Annotated[Identity, Depends(Require("users.manage"))],
    form: Annotated[dict[str, str], Depends(_posted)],
):
    db = request.app.state.db
    try:
        with db.session() as s:
            user = accounts.create_user(
                s,
                accounts.NewUser(
                    username=form.get("username", ""),
                    password=form.get("password", ""),
                    role=form.get("role", ""),
                    display_name=form.get("display_name", ""),
                    email=form.get("email") or None,
                    phone=form.get("phone") or None,
                    department=form.get("department") or None,
                    language=form.get("language") or None,
                ),
                actor=identity,
            )
            publish(
                s,
                "user.created",
                {"id": user.id, "username": user.username, "role": user.role},
                audience="users.manage",
            )
    except SmartCityError as exc:
        form.pop("password", None)
        with db.session() as s:
            return _accounts_page(request, s, status_code=exc.status, form=form, errors=exc)
    return RedirectResponse("/admin/users", status_code=303)


def _account_page(request: Request, s, user, *, status_code: int = 200, form: dict | None = None, errors=None):
    return render(
        request,
        "admin_user.html",
        status_code=status_code,
        user=user,
        units=_units(s),
        roles=accounts.roles_for(request.app.state.context.modules),
        form=form
        or {
            "display_name": user.display_name,
            "email": user.email or "",
            "department": user.department.code if user.department else "",
            "role": user.role,
        },
        errors=errors,
    )


def _user(s, user_id: int):
    from smartcity.core.models import User

    user = s.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def admin_user(request: Request, user_id: int, identity: Annotated[Identity, Depends(Require("users.manage"))]):
    with request.app.state.db.session() as s:
        return _account_page(request, s, _user(s, user_id))


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
def admin_update_user(
    request: Request,
    user_id: int,
    identity: Annotated[Identity, Depends(Require("users.manage"))],
    form: Annotated[dict[str, str], Depends(_posted)],
):
    db = request.app.state.db
    change = accounts.AccountChange(
        display_name=form.get("display_name", ""),
        email=form.get("email") or None,
        department=form.get("department") or None,
        role=form.get("role", ""),
    )
    try:
        with db.session() as s:
            accounts.update_user(s, user_id, change, actor=identity)
    except InvalidInput as exc:
        with db.session() as s:
            return _account_page(request, s, _user(s, user_id), status_code=exc.status, form=form, errors=exc)
    return RedirectResponse(f"/admin/users/{user_id}", status_code=303)


@router.post("/admin/users/{user_id}/active", response_class=HTMLResponse)
def admin_set_active(
    request: Request,
    user_id: int,
    identity: Annotated[Identity, Depends(Require("users.manage"))],
    form: Annotated[dict[str, str], Depends(_posted)],
):
    db = request.app.state.db
    try:
        with db.session() as s:
            accounts.set_active(s, user_id, form.get("active") == "1", actor=identity)
    except InvalidInput as exc:
        with db.session() as s:
            return _account_page(request, s, _user(s, user_id), status_code=exc.status, errors=exc)
    return RedirectResponse(f"/admin/users/{user_id}", status_code=303)


def _day(value: str | None, field: str, tz) -> datetime | None:
    """The start of a day (YYYY-MM-DD) in the city's time zone."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        message = f"{field} is a date written YYYY-MM-DD"
        raise InvalidInput(message, code="invalid_date", details={"field": field}) from None
    return datetime.combine(day, time(), tzinfo=tz)


@router.get("/admin/audit", response_class=HTMLResponse)
def admin_audit(
    request: Request,
    identity: Annotated[Identity, Depends(Require("audit.read", audited=True))],
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
):
    tz = request.app.state.profile.tz
    last_day = _day(until, "until", tz)
    query = audit.AuditQuery(
        actor=actor.strip() or None,
        action=action.strip() or None,
        object_type=object_type.strip() or None,
        object_id=object_id.strip() or None,
        since=_day(since, "since", tz),
        until=last_day + timedelta(days=1) if last_day else None,  # the last day is included
        before=before,
    )
    filters = {
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "since": since,
        "until": until,
    }
    language = language_of(request)
    with request.app.state.db.session() as s:
        found = audit.page(s, query)
        told = audit.words(language)
        names = audit.names_on(s, found.entries, language, told)
        rows = [
            (e, audit.sentence(e, language, told), audit.detail_items(e, language, told, names)) for e in found.entries
        ]
        # Reading the log is itself in the log: who looked, for what.
        asked = {k: v for k, v in filters.items() if v} | ({"before": before} if before else {})
        audit.record(s, identity, "read_audit", "audit_log", None, asked or None, ip=_ip(request))
        more = {k: v for k, v in filters.items() if v}
        return render(
            request,
            "admin_audit.html",
            rows=rows,
            filters=filters,
            actions=sorted(audit.SENTENCES),
            next_url=f"/admin/audit?{urlencode(more | {'before': found.next_before})}" if found.next_before else None,
            readable=audit.readable,
        )


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None
