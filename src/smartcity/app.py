"""Builds the ASGI application from the settings: the store, the city profile, the core routes and what
every module declares (core.module)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from smartcity import __version__
from smartcity.core import api as core_api
from smartcity.core import pages as core_pages
from smartcity.core import push, push_api
from smartcity.core.auth import SigninThrottle
from smartcity.core.context import attach
from smartcity.core.db import Database
from smartcity.core.errors import InvalidInput, NotFound, SmartCityError
from smartcity.core.events import streams_end_on_stop
from smartcity.core.jobs import Scheduler, wait_for_background
from smartcity.core.module import Module, declare, discover, install, jobs
from smartcity.core.web import (
    ERROR_RESPONSES,
    STATIC,
    Metrics,
    MetricsMiddleware,
    asset,
    error_response,
    server_error_response,
)
from smartcity.settings import Settings, get_settings

log = logging.getLogger("smartcity")


def create_app(
    settings: Settings | None = None, db: Database | None = None, modules: Sequence[Module] | None = None
) -> FastAPI:
    """The platform: the store, the city profile, the core routes and what each module declares (`modules`,
    default: `core.module.discover()`, which honours SMARTCITY_MODULES)."""
    settings = settings or get_settings()
    db = db or Database(settings.database_url)
    modules = tuple(discover(settings.modules) if modules is None else modules)
    declare(modules)
    context = attach(db, settings, modules)
    profile = context.profile
    startup, shutdown = [], []

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await db.events.start()
        scheduler = Scheduler(db, settings, jobs(modules)) if settings.run_jobs else None
        if scheduler:
            scheduler.start()
        for hook in startup:
            await hook(app)
        # What is loaded by now (modules, templates, indexes) lives as long as the process: keep the cyclic garbage
        # collector from walking it in every full collection (a pause of every request in flight).
        gc.collect()
        gc.freeze()
        try:
            with streams_end_on_stop(db.events):
                yield
        finally:
            # Jobs and the work requests left running (a file's load) end, in their own rows, while what they
            # stand on (modules' writers, the event bus) still runs.
            if scheduler:
                await asyncio.to_thread(scheduler.stop)
            await asyncio.to_thread(wait_for_background, db)
            for hook in reversed(shutdown):
                await hook(app)
            await db.events.stop()

    app = FastAPI(
        title="smartcity",
        version=__version__,
        description="Open smart-city platform API. Errors share one shape: "
        '`{"error": {"code": "...", "message": "...", "details": ...}}`.',
        docs_url=None,  # served below from the platform's own copy of Swagger UI, not a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.settings, app.state.db, app.state.profile = settings, db, profile
    app.state.context = context
    app.state.metrics = Metrics(db)
    app.state.signin_throttle = SigninThrottle()
    app.state.startup, app.state.shutdown = startup, shutdown

    @app.exception_handler(SmartCityError)
    async def platform_error(request: Request, exc: SmartCityError):
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        return error_response(request, InvalidInput("the request is not valid", details=details))

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception):
        # A number or text the store cannot hold (an id past 64 bits, say) is the caller's error, not ours.
        return error_response(
            request, InvalidInput("a value is out of the range the platform accepts", code="out_of_range")
        )

    # Starlette's outermost layer answers with this, then lets the server log the exception as well.
    app.add_exception_handler(Exception, server_error_response)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error_response(request, NotFound("nothing here"))
        err = SmartCityError(str(exc.detail), code=f"http_{exc.status_code}")
        err.status = exc.status_code
        response = error_response(request, err)
        response.headers.update(getattr(exc, "headers", None) or {})  # e.g. Allow on a 405
        return response

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        """The API's documentation, working offline: Swagger UI from the web build (web/build.mjs)."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "",
            title=f"{app.title} API",
            swagger_js_url=asset("swagger-ui/swagger-ui-bundle.js"),
            swagger_css_url=asset("swagger-ui/swagger-ui.css"),
            swagger_favicon_url=asset("swagger-ui/favicon-32x32.png"),
            swagger_ui_parameters={"docExpansion": "none", "defaultModelsExpandDepth": -1},
        )

    app.include_router(core_api.router)
    app.include_router(core_pages.router)
    app.include_router(push_api.router)
    push.ensure_vapid_key(settings)  # first start: made here, not on the first subscription of several workers
    install(app, context)

    STATIC.mkdir(parents=True, exist_ok=True)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.signing_key(),
        session_cookie="smartcity_session",
        max_age=settings.session_max_age,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
