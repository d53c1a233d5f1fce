"""CKAN's Action API over the catalogue: `/api/3/action/{action}` and `/api/action/{action}`, GET (query
parameters) or POST (a JSON object, as the `ckanapi` client sends), answered in CKAN's envelope:

    {"help": …, "success": true, "result": …}
    {"help": …, "success": false, "error": {"__type": …, "message": …, <field>: [problems]}}

with CKAN's status codes: 400 Bad request / Search Query Error, 403 Authorization Error, 404 Not Found Error,
409 Validation Error. The adapter only parses and renders; the catalogue and the datastore answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route

from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied, SmartCityError
from smartcity.core.i18n import N_
from smartcity.opendata import catalogue, datastore
from smartcity.opendata.models import Dataset, DatasetTag, Organisation, Resource

router = APIRouter(tags=["opendata"])
MAX_BODY = 1_000_000


class BadRequest(InvalidInput):
    """The request itself is not understood (CKAN's 400 "Bad request")."""

    status = 400
    code = "bad_request"


def _type_of(exc: SmartCityError) -> tuple[int, str]:
    if isinstance(exc, catalogue.SearchQueryError):
        return 400, "Search Query Error"
    if isinstance(exc, BadRequest):
        return 400, "Bad request"
    if isinstance(exc, NotFound):
        return 404, "Not Found Error"
    if isinstance(exc, PermissionDenied):
        return 403, "Authorization Error"
    if isinstance(exc, InvalidInput):
        return 409, "Validation Error"
    return exc.status if exc.status >= 400 else 500, "Internal Server Error"


def _help(request: Request) -> str:
    action = request.path_params.get("action") or request.url.path.rsplit("/", 1)[-1]
    return f"{str(request.base_url).rstrip('/')}/api/3/action/help_show?name={action}"


def render_error(request: Request, exc: SmartCityError) -> JSONResponse:
    """Any platform error under the Action API's paths, in CKAN's error envelope."""
    status, kind = _type_of(exc)
    error: dict[str, Any] = {"__type": kind, "message": f"{kind}: {exc.message}"}
    if kind == "Validation Error" and isinstance(exc.details, dict):
        error.update(exc.details)
    return JSONResponse({"help": _help(request), "success": False, "error": error}, status_code=status)


# --- parameters ---------------------------------------------------------------------------------------


async def _params(request: Request) -> dict[str, Any]:
    """A POST's JSON object, or the query's parameters (JSON-looking values decoded, repeated ones listed)."""
    if request.method == "POST":
        body = await request.body()
        if len(body) > MAX_BODY:
            raise BadRequest(N_("the request body is too large"))
        if not body.strip():
            return {}
        kind = request.headers.get("content-type", "")
        if "json" not in kind and not body.lstrip().startswith(b"{"):
            form = await request.form()
            return {k: form.getlist(k)[0] if len(form.getlist(k)) == 1 else form.getlist(k) for k in form}
        try:
            found = json.loads(body)
        except ValueError as exc:
            raise BadRequest(N_("JSON Error: {error}"), params={"error": str(exc)}) from None
        if not isinstance(found, dict):
            raise BadRequest(N_("JSON Error: the request body must be a JSON object"))
        return found
    return _query(request)


def _query(request: Request) -> dict[str, Any]:
    """The query's parameters, JSON-looking values decoded, repeated ones listed."""
    found: dict[str, Any] = {}
    for key in request.query_params:
        values = [_decoded(v) for v in request.query_params.getlist(key)]
        found[key] = values[0] if len(values) == 1 else values
    return found


def _decoded(value: str) -> Any:
    if value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _get(params: dict, *names: str, default: Any = None) -> Any:
    """A parameter by CKAN's name or the client's spelling of it (`facet.field` or `facet_field`)."""
    for name in names:
        if name in params:
            return params[name]
    return default


def _int(params: dict, field: str, default: int, *names: str) -> int:
    value = _get(params, field, *names, default=default)
    if isinstance(value, bool):
        raise datastore.FieldError(field, N_("{field} must be an integer"), field=field)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise datastore.FieldError(field, N_("{field} must be an integer"), field=field) from None


def _bool(params: dict, field: str, default: bool) -> bool:
    value = params.get(field, default)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise datastore.FieldError(field, N_("{field} must be true or false"), field=field)


def _required(params: dict, field: str) -> Any:
    value = params.get(field)
    if value in (None, ""):
        raise datastore.FieldError(field, N_("Missing value"))
    return value


def _strings(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise datastore.FieldError("facet.field", N_("facet.field must be a list of field names"))


# --- the actions --------------------------------------------------------------------------------------


def _dataset(session: Session, id_or_name: str) -> Dataset:
    found = session.scalar(select(Dataset).where((Dataset.uid == id_or_name) | (Dataset.name == id_or_name)))
    if found is None:
        raise NotFound(N_("Dataset not found"))
    if not found.published:
        raise PermissionDenied(N_("User not authorized to read package {id}"), params={"id": id_or_name})
    return found


def package_list(s: Session, p: dict, base: str) -> Any:
    query = select(Dataset.name).where(Dataset.published).order_by(Dataset.name)
    if "limit" in p:
        query = query.limit(max(0, _int(p, "limit", 0)))
    if "offset" in p:
        query = query.offset(max(0, _int(p, "offset", 0)))
    return list(s.scalars(query))


def package_search(s: Session, p: dict, base: str) -> Any:
    return catalogue.search_packages(
        s,
        base,
        q=str(_get(p, "q", default="") or ""),
        fq=str(_get(p, "fq", default="") or ""),
        sort=_get(p, "sort"),
        rows=_int(p, "rows", catalogue.ROWS_DEFAULT),
        start=_int(p, "start", 0),
        facet_fields=_strings(_get(p, "facet.field", "facet_field")),
        facet_limit=_int(p, "facet.limit", 50, "facet_limit"),
        facet_mincount=_int(p, "facet.mincount", 1, "facet_mincount"),
    )


def package_show(s: Session, p: dict, base: str) -> Any:
    return catalogue.package_dict(s, _dataset(s, str(_required(p, "id"))), base)


def _package_counts(s: Session) -> dict[int, int]:
    rows = s.execute(
        select(Dataset.organisation_id, func.count()).where(Dataset.published).group_by(Dataset.organisation_id)
    )
    return {org: n for org, n in rows if org is not None}


def organization_list(s: Session, p: dict, base: str) -> Any:
    sort = str(p.get("sort") or "name asc")
    column = Organisation.title_ko if sort.startswith("title") else Organisation.name
    query = select(Organisation).order_by(column.desc() if sort.endswith("desc") else column.asc())
    if "limit" in p:
        query = query.limit(max(0, _int(p, "limit", 0)))
    if "offset" in p:
        query = query.offset(max(0, _int(p, "offset", 0)))
    orgs = list(s.scalars(query))
    if not _bool(p, "all_fields", False):
        return [o.name for o in orgs]
    counts = _package_counts(s)
    return [catalogue.organisation_dict(o, counts.get(o.id, 0)) for o in orgs]


def organization_show(s: Session, p: dict, base: str) -> Any:
    key = str(_required(p, "id"))
    org = s.scalar(select(Organisation).where((Organisation.uid == key) | (Organisation.name == key)))
    if org is None:
        raise NotFound(N_("Organization was not found."))
    found = catalogue.organisation_dict(org, _package_counts(s).get(org.id, 0))
    if _bool(p, "include_datasets", False):
        datasets = s.scalars(
            select(Dataset)
            .where(Dataset.organisation_id == org.id, Dataset.published)
            .order_by(Dataset.name)
            .limit(1000)
        )
        found["packages"] = [catalogue.package_dict(s, d, base) for d in datasets]
    return found


def tag_list(s: Session, p: dict, base: str) -> Any:
    query = (
        select(DatasetTag.tag)
        .join(Dataset, Dataset.id == DatasetTag.dataset_id)
        .where(Dataset.published)
        .group_by(DatasetTag.tag)
        .order_by(DatasetTag.tag)
    )
    wanted = p.get("query")
    if wanted:
        query = query.where(func.lower(DatasetTag.tag).contains(str(wanted).lower(), autoescape=True))
    tags = list(s.scalars(query))
    if _bool(p, "all_fields", False):
        return [{"name": t, "display_name": t, "vocabulary_id": None} for t in tags]
    return tags


def resource_show(s: Session, p: dict, base: str) -> Any:
    key = str(_required(p, "id"))
    found = s.execute(
        select(Resource, Dataset).join(Dataset, Dataset.id == Resource.dataset_id).where(Resource.uid == key)
    ).first()
    if found is None:
        raise NotFound(N_("Resource was not found."))
    resource, dataset = found
    if not dataset.published:
        raise PermissionDenied(N_("User not authorized to read resource {id}"), params={"id": key})
    return catalogue.resource_dict(resource, dataset, base)


def datastore_search(s: Session, p: dict, base: str) -> Any:
    filters = p.get("filters")
    if isinstance(filters, str):
        filters = _decoded(filters) if filters.strip() else None
    return datastore.search(
        s,
        str(_required(p, "resource_id")),
        filters=filters,
        q=p.get("q"),
        distinct_rows=_bool(p, "distinct", False),
        fields=p.get("fields"),
        sort=p.get("sort"),
        limit=_int(p, "limit", datastore.LIMIT_DEFAULT),
        offset=_int(p, "offset", 0),
        include_total=_bool(p, "include_total", True),
        records_format=str(p.get("records_format") or "objects"),
    )


def datastore_search_sql(s: Session, p: dict, base: str) -> Any:
    return datastore.search_sql(s, _required(p, "sql"))


ACTIONS: dict[str, Callable[[Session, dict, str], Any]] = {
    "package_list": package_list,
    "current_package_list_with_resources": lambda s, p, b: package_search(s, {**p, "rows": p.get("limit", 10)}, b)[
        "results"
    ],
    "package_search": package_search,
    "package_show": package_show,
    "organization_list": organization_list,
    "organization_show": organization_show,
    "tag_list": tag_list,
    "resource_show": resource_show,
    "datastore_search": datastore_search,
    "datastore_search_sql": datastore_search_sql,
    "status_show": lambda s, p, b: {"ckan_version": "2.10.0", "site_url": b, "extensions": ["datastore"]},
}


# The OpenAPI description of the Action API's answers: CKAN's envelope, not the platform's error shape (every error
# under these paths is rendered by render_error, whatever its status).
_CKAN_ERROR = {
    "type": "object",
    "required": ["help", "success", "error"],
    "properties": {
        "help": {"type": "string"},
        "success": {"type": "boolean", "enum": [False]},
        "error": {
            "type": "object",
            "required": ["__type", "message"],
            "properties": {"__type": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": True,
        },
    },
}
_CKAN_OK = {
    "type": "object",
    "required": ["help", "success", "result"],
    "properties": {"help": {"type": "string"}, "success": {"type": "boolean", "enum": [True]}, "result": {}},
}
CKAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "CKAN's envelope with the action's result",
        "content": {"application/json": {"schema": _CKAN_OK}},
    },
    **{
        status: {"description": text, "content": {"application/json": {"schema": _CKAN_ERROR}}}
        for status, text in {
            400: "Bad request or Search Query Error",
            401: "Not signed in or no valid API key",
            403: "Authorization Error",
            404: "Not Found Error",
            409: "Validation Error",
            413: "Too large",
            422: "Invalid input",
            429: "Too many requests",
            500: "Internal Server Error",
            503: "Unavailable, retry later",
        }.items()
    },
}


# One route per method: one api_route with GET and POST would give both operations the same OpenAPI operationId.
@router.get("/api/3/action/{action}", responses=CKAN_RESPONSES)
@router.post("/api/3/action/{action}", responses=CKAN_RESPONSES)
@router.get("/api/action/{action}", responses=CKAN_RESPONSES)
@router.post("/api/action/{action}", responses=CKAN_RESPONSES)
async def action(request: Request, action: str) -> Response:
    """One CKAN action (see ACTIONS); errors in CKAN's envelope (render_error)."""
    fn = ACTIONS.get(action)
    if fn is None:
        raise BadRequest(N_("Action name not known: {name}"), params={"name": action})
    params = await _params(request)
    base = str(request.base_url).rstrip("/")
    db = request.app.state.db

    def run() -> Any:
        with db.session() as s:
            return fn(s, params, base)

    result = await run_in_threadpool(run)
    return Answer({"help": _help(request), "success": True, "result": result})


def search_rows(request: Request) -> Response:
    """GET datastore_search: a bare Starlette route (sync, so in the thread pool) put first in the app's routes
    by `on_install`: no walk through the included routers, no dependency solving for the most called action.
    The same parameters, answer and errors (raised to the platform's handlers, rendered by render_error) as
    the action route, which still serves POST."""
    params = _query(request)
    with request.app.state.db.session() as s:
        result = datastore_search(s, params, str(request.base_url).rstrip("/"))
    return Answer({"help": _help(request), "success": True, "result": result})


def search_packages_get(request: Request) -> Response:
    """GET package_search as a bare route (see search_rows): a CKAN client's GET skips the router walk and
    FastAPI's request handling, ~0.9 ms of the ~9 ms of CPU a call took at 5,000 datasets."""
    params = _query(request)
    with request.app.state.db.session() as s:
        result = package_search(s, params, str(request.base_url).rstrip("/"))
    return Answer({"help": _help(request), "success": True, "result": result})


class _SearchRowsRoute(Route):
    """The bare GET route; other methods go on to the action route (POST is what ckanapi sends)."""

    def matches(self, scope):
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            return Match.NONE, {}
        return super().matches(scope)


def on_install(app) -> None:
    """Put GET datastore_search and package_search first in the app's routes (see search_rows)."""
    for prefix in ("/api/3/action", "/api/action"):
        for name, endpoint in (("datastore_search", search_rows), ("package_search", search_packages_get)):
            route = _SearchRowsRoute(f"{prefix}/{name}", endpoint, methods=["GET"], include_in_schema=False)
            app.router.routes.insert(0, route)


class Answer(JSONResponse):
    """An action's answer encoded by orjson: a page of rows is thousands of values, and the standard library's
    encoder took a tenth of datastore_search's time. The same JSON (UTF-8, no NaN: null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_jsonable, option=orjson.OPT_NON_STR_KEYS)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
