"""Pages of the Seoul-style OpenAPI: a signed-in person's keys (/opendata/keys: issue, list, revoke) and the
publishers' services (/opendata/publish/services: a name for a resource and its filter columns).

Thin: the rules are in keys.py and seoul_api.py; issuing, revoking and declaring are audited there."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from smartcity.core.auth import Identity, Require
from smartcity.core.errors import InvalidInput, SmartCityError
from smartcity.core.web import error_text, language_of, render
from smartcity.opendata import keys, seoul_api

router = APIRouter(include_in_schema=False)
SignedIn = Annotated[Identity, Depends(Require("account.self"))]
Publisher = Annotated[Identity, Depends(Require("opendata.publish"))]


def _keys_page(request: Request, identity: Identity, status_code: int = 200, **extra) -> HTMLResponse:
    db = request.app.state.db
    with db.session() as s:
        mine = keys.mine(s, identity, keys.USAGE.get(db), keys.today(db))
    return render(
        request,
        "opendata/keys.html",
        status_code=status_code,
        keys=mine,
        quota=keys.daily_quota(db),
        new_key=extra.get("new_key"),
        error=extra.get("error"),
        name=extra.get("name", ""),
    )


@router.get("/opendata/keys", response_class=HTMLResponse)
def keys_page(request: Request, identity: SignedIn):
    return _keys_page(request, identity)


@router.post("/opendata/keys", response_class=HTMLResponse)
async def issue_key(request: Request, identity: SignedIn):
    name = str((await request.form()).get("name") or "")
    try:
        with request.app.state.db.session() as s:
            _row, key = keys.issue(s, identity, name)
    except InvalidInput as exc:
        return _keys_page(
            request, identity, 400, error=error_text(exc, language_of(request)), name=name[: keys.NAME_MAX]
        )
    return _keys_page(request, identity, 201, new_key=key)


@router.post("/opendata/keys/{key_id:int}/revoke")
def revoke_key(request: Request, key_id: int, identity: SignedIn):
    try:
        with request.app.state.db.session() as s:
            keys.revoke(s, identity, key_id)
    except SmartCityError as exc:
        return _keys_page(request, identity, exc.status, error=error_text(exc, language_of(request)))
    return RedirectResponse("/opendata/keys", status_code=303)


def _services_page(request: Request, status_code: int = 200, error: str | None = None, form=None) -> HTMLResponse:
    with request.app.state.db.session() as s:
        found = seoul_api.services(s)
    return render(
        request, "opendata/openapi_services.html", status_code=status_code, services=found, error=error, form=form or {}
    )


@router.get("/opendata/publish/services", response_class=HTMLResponse)
def services_page(request: Request, identity: Publisher):
    return _services_page(request)


@router.post("/opendata/publish/services", response_class=HTMLResponse)
async def declare(request: Request, identity: Publisher):
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("name", "resource", "filters")}
    filters = [f.strip() for f in values["filters"].split(",") if f.strip()]
    try:
        with request.app.state.db.session() as s:
            seoul_api.declare_service(s, identity, values["name"], values["resource"], filters)
    except SmartCityError as exc:
        return _services_page(request, exc.status, error_text(exc, language_of(request)), values)
    return RedirectResponse("/opendata/publish/services", status_code=303)
