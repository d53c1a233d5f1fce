"""The web shell: templates and their translations (the city profile's languages), language choice, error
rendering, request metrics."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import BaseModel, Field, create_model

from smartcity.core.auth import csrf_token, resolve_identity
from smartcity.core.errors import NotAuthenticated, SmartCityError
from smartcity.core.i18n import gettext as gettext  # re-exported: modules have long imported it from here
from smartcity.core.i18n import language_name, localized, translate, translations

PACKAGE = Path(__file__).parent.parent
STATIC = Path(__file__).parent / "static"
THEME_COLOUR = "#1d4ed8"  # the brand's blue: app.css's --brand, the icons' background (web/icons.mjs)


# --- translations ---------------------------------------------------------------------------------


def language_of(request: Request) -> str:
    """?lang= beats the lang cookie, which beats the city's default language."""
    profile = request.app.state.profile
    for candidate in (request.query_params.get("lang"), request.cookies.get("lang")):
        if candidate in profile.languages:
            return candidate
    return profile.language


# --- navigation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NavLink:
    label: str  # an English msgid, translated when rendered
    href: str
    permission: str | None = None


NAV: list[NavLink] = []


def add_nav(label: str, href: str, permission: str | None = None) -> None:
    """A module adds its entry to the top navigation, shown to those holding `permission`."""
    if all(link.href != href for link in NAV):
        NAV.append(NavLink(label, href, permission))


# --- templates ------------------------------------------------------------------------------------


@cache
def environment() -> Environment:
    loaders = [FileSystemLoader(str(Path(__file__).parent / "templates"))]
    loaders += [FileSystemLoader(str(p)) for p in sorted(PACKAGE.glob("*/templates")) if p.parent.name != "core"]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson_attr"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.filters["urlquote"] = lambda v: quote(str(v), safe="")
    return env


def asset(name: str) -> str:
    """URL of a built front-end asset with its content hash (the build's assets.json; the service worker
    precaches these very URLs), else its modification time, to bust caches."""
    stamp = _asset_hashes(_mtime(STATIC / "build" / "assets.json")).get(name)
    if stamp is None:
        stamp = str(int(_mtime(STATIC / "build" / name)))
    return f"/static/build/{name}?v={stamp}"


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0


@lru_cache(maxsize=2)
def _asset_hashes(mtime: float) -> dict[str, str]:
    # Keyed by the file's modification time: a new build is read again, an unchanged one never.
    path = STATIC / "build" / "assets.json"
    return json.loads(path.read_text()) if mtime else {}


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    language = language_of(request)
    trans = translations(language)
    profile = request.app.state.profile
    env = environment()
    tmpl = env.get_template(template)
    identity = resolve_identity(request)
    html = tmpl.render(
        request=request,
        lang=language,
        _=trans.ugettext,
        gettext=trans.ugettext,
        ngettext=trans.ungettext,
        identity=identity,
        csrf_token=csrf_token(request) if "session" in request.scope else "",
        profile=profile,
        # A name kept per language, in the page's language (the city's default where it has none).
        localized=lambda source, field="name": localized(source, field, language, profile.language),
        languages=[(code, language_name(code)) for code in profile.languages],
        settings=request.app.state.settings,
        asset=asset,
        theme_colour=THEME_COLOUR,
        nav=[link for link in NAV if link.permission is None or identity.can(link.permission)],
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    if request.query_params.get("lang") == language:
        response.set_cookie("lang", language, max_age=365 * 24 * 3600, samesite="lax")
    return response


def body_of(cls: type, *, exclude: Iterable[str] = (), name: str = "", **overrides: Any) -> type[BaseModel]:
    """A JSON request body with the fields of the dataclass `cls` (types and defaults), less `exclude` (what
    the path or the platform gives), a field's type changed by `overrides` (a type, or (type, default)):
    what a service takes is declared once, in the service. The same serves a response model that mirrors a
    read model (`name` is the schema's name; default `<cls>Body`)."""
    hints = get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        given = overrides.get(f.name, hints[f.name])
        fields[f.name] = given if isinstance(given, tuple) else (given, default)
    return create_model(name or f"{cls.__name__}Body", __doc__=cls.__doc__, **fields)


# OpenAPI description of a route answering GeoJSON (pass as `responses=` with `response_class=Response`).
GEOJSON_RESPONSES = {
    200: {
        "content": {"application/geo+json": {"schema": {"type": "object"}}},
        "description": "A GeoJSON FeatureCollection",
    }
}
CSV_RESPONSES = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV, UTF-8"}}


# --- errors ---------------------------------------------------------------------------------------

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
        }
    },
}
# Documented on every route of the platform's API: the one error shape, with the statuses it may carry.
ERROR_RESPONSES = {
    status: {"description": text, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for status, text in {
        400: "Bad request",
        401: "Not signed in or no valid API key",
        403: "Not allowed",
        404: "Not found",
        409: "Conflict with the current state",
        413: "Too large",
        422: "Invalid input",
        429: "Too many requests",
        503: "Unavailable, retry later",
    }.items()
}

# --- errors (rendering) ---------------------------------------------------------------------------------------

ErrorRenderer = Callable[[Request, SmartCityError], Response]
_error_formats: list[tuple[str, ErrorRenderer]] = []


def register_error_format(path_prefix: str, renderer: ErrorRenderer) -> None:
    """Let a protocol adapter answer errors under its path in its own format (Open311, OsmAnd…)."""
    _error_formats.append((path_prefix, renderer))
    _error_formats.sort(key=lambda item: -len(item[0]))


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path.endswith(".json"):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_response(request: Request, exc: SmartCityError) -> Response:
    for prefix, renderer in _error_formats:
        if request.url.path.startswith(prefix):
            return renderer(request, exc)
    if wants_html(request):
        if isinstance(exc, NotAuthenticated):
            from fastapi.responses import RedirectResponse

            return RedirectResponse(f"/signin?next={quote(request.url.path)}", status_code=303)
        text = error_text(exc, language_of(request))
        return render(
            request, "error.html", status_code=exc.status, error=exc, error_text=text, back=_way_back(request)
        )
    return JSONResponse(exc.to_dict(), status_code=exc.status)


def error_text(exc: SmartCityError, language: str) -> str:
    """What went wrong, in `language`: the error's template (its msgid) from the catalogues, filled in with its
    params (Korean particles settled), else the English message itself."""
    try:
        return translate(language, exc.template, **exc.params) if exc.params else gettext(language, exc.template)
    except (KeyError, IndexError, ValueError):  # a translation naming a value the error does not carry
        return exc.message


def _way_back(request: Request) -> str | None:
    """The page the reader came from, as a path on this site; None for another site's page (the error page
    must not become a link to anywhere a referrer names) or the failing page itself."""
    from urllib.parse import urlsplit

    referrer = urlsplit(request.headers.get("referer", ""))
    if referrer.scheme not in ("http", "https") or referrer.netloc != request.url.netloc:
        return None
    path = referrer.path or "/"
    if not path.startswith("/") or path.startswith("//") or path == request.url.path:
        return None
    return path + (f"?{referrer.query}" if referrer.query else "")


def server_error_response(request: Request, exc: Exception) -> Response:
    """An unexpected failure: the error page in the reader's language (JSON for the API), nothing of its
    cause shown (the server logs it with its traceback)."""
    error = SmartCityError("something went wrong on the platform's side; try again shortly")
    # Who is asking is not looked up again: the store may be what failed.
    if getattr(request.state, "identity", None) is None:
        from smartcity.core.auth import ANONYMOUS

        request.state.identity = ANONYMOUS
    try:
        return error_response(request, error)
    except Exception:  # noqa: BLE001 - the page itself failed: the plainest answer still says what happened
        return Response("500 Internal Server Error", status_code=500, media_type="text/plain")


# --- metrics --------------------------------------------------------------------------------------


class Metrics:
    """The app's Prometheus figures, in a registry of its own: HTTP requests, intake by protocol, and what
    is read at each scrape (intake queues, the notification outbox, SSE subscribers, scheduled jobs), beside
    the process's own (CPU, memory, file descriptors, garbage collection).

    Modules count through `count_intake(protocol, result)` and show a queue with `watch_queue(name, depth)`;
    the metric names stay the core's, so a dashboard needs no module's name."""

    def __init__(self, db=None):
        self.registry = CollectorRegistry()
        self.db = db
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "smartcity_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "smartcity_http_request_seconds",
            "Time to answer an HTTP request",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )
        self.intake = Counter(
            "smartcity_intake",
            "Records received by an intake, by protocol and result (stored, duplicate, or an error code); "
            'rate(smartcity_intake_total{result="stored"}[1m]) is what is stored per second',
            ["protocol", "result"],
            registry=self.registry,
        )
        self._intake_children: dict[tuple[str, str], Any] = {}
        self._queues: dict[str, Callable[[], int]] = {}
        self.registry.register(_ReadAtScrape(self))

    def count_intake(self, protocol: str, result: str, n: int = 1) -> None:
        """Count `n` records of `protocol` that ended as `result`."""
        if not n:
            return
        child = self._intake_children.get((protocol, result))
        if child is None:  # a labelled child is looked up once: the lookup costs more than the increment
            child = self._intake_children[(protocol, result)] = self.intake.labels(protocol, result)
        child.inc(n)

    def watch_queue(self, name: str, depth: Callable[[], int]) -> None:
        """Show `depth()` (records accepted, not yet stored) as smartcity_intake_queue_depth{queue=name}."""
        self._queues[name] = depth

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _ReadAtScrape:
    """Figures that are state, not events: read when Prometheus asks (the outbox from the store, so every
    process shows the same backlog)."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self) -> list:
        return []  # nothing read at registration (the store may not be migrated yet)

    def collect(self):
        queues = GaugeMetricFamily(
            "smartcity_intake_queue_depth", "Records accepted by an intake and not yet stored", labels=["queue"]
        )
        for name, depth in list(self.metrics._queues.items()):
            queues.add_metric([name], depth())
        yield queues
        db = self.metrics.db
        if db is None:
            return
        from smartcity.core.notify import outbox_counts

        yield GaugeMetricFamily(
            "smartcity_sse_subscribers",
            "Live event stream (SSE) subscribers in this process",
            value=db.events.subscriber_count,
        )
        outbox = GaugeMetricFamily(
            "smartcity_notifications_outbox",
            "Notifications in the outbox: pending (the backlog) and failed (given up after every attempt)",
            labels=["status"],
        )
        for status, n in outbox_counts(db).items():
            outbox.add_metric([status], n)
        yield outbox
        families = {
            "job_runs": ("smartcity_job_runs", "Scheduled job runs in this process", "job"),
            "job_failures": ("smartcity_job_failures", "Scheduled job runs that raised, in this process", "job"),
            "notification_failures": (
                "smartcity_notification_failures",
                "Notification delivery attempts that failed (retried until the last), by channel, in this process",
                "channel",
            ),
        }
        for key, (name, help_text, label) in families.items():
            family = CounterMetricFamily(name, help_text, labels=[label])
            for value, n in db.tally.counts(key).items():
                family.add_metric([value], n)
            yield family


class MetricsMiddleware:
    """Pure ASGI middleware (cheap on hot paths) that counts requests by route template and status."""

    # Beyond this many label sets (methods are the client's to make up) children are looked up each time.
    MAX_KEPT = 4096

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics
        # .labels() validates and locks on every call, half of this layer's cost: each label set's
        # children are kept once made (the registry keeps them anyway; nothing removes them).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            key = (scope["method"], name, status[0])
            children = self._children.get(key)
            if children is None:
                children = (
                    self.metrics.requests.labels(key[0], name, str(key[2])),
                    self.metrics.latency.labels(name),
                )
                if len(self._children) < self.MAX_KEPT:
                    self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
