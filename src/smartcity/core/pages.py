"""The core's pages: the city map, sign-in and sign-out, language choice."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from smartcity.core import accounts, audit
from smartcity.core.auth import Identity, Require, verify_csrf
from smartcity.core.errors import SmartCityError, TooManyRequests
from smartcity.core.events import publish
from smartcity.core.web import add_nav, render

router = APIRouter(include_in_schema=False)
add_nav("Accounts", "/admin/users", "users.manage")
add_nav("Audit log", "/admin/audit", "audit.read")


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


@router.get("/", response_class=HTMLResponse)
def map_page(request: Request):
    return render(request, "map.html")


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


@router.get("/admin/users", response_class=HTMLResponse)
def admin_users(request: Request, identity: Annotated[Identity, Depends(Require("users.manage"))]):
    with request.app.state.db.session() as s:
        return render(
            request,
            "admin_users.html",
            users=accounts.list_users(s),
            units=_units(s),
            roles=accounts.ROLES,
            form={},
            errors=None,
        )


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
            return render(
                request,
                "admin_users.html",
                status_code=exc.status,
                users=accounts.list_users(s),
                units=_units(s),
                roles=accounts.ROLES,
                form=form,
                errors=exc,
            )
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/admin/audit", response_class=HTMLResponse)
def admin_audit(
    request: Request,
    identity: Annotated[Identity, Depends(Require("audit.read"))],
    object_type: str | None = None,
    object_id: str | None = None,
):
    with request.app.state.db.session() as s:
        rows = audit.entries(s, object_type=object_type or None, object_id=object_id or None, limit=300)
        return render(
            request, "admin_audit.html", entries=rows, object_type=object_type or "", object_id=object_id or ""
        )
