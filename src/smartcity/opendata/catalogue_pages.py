"""Pages of the Open Data Plaza's catalogue: the public's search with facets, a dataset, a resource's row preview
(paged, sorted by a column), map and chart; the publisher's pages to describe a dataset, load a CSV/XLSX file
with a progress view and its defects listed, and publish or withdraw it.

A load runs off the request, in a thread of its own (opendata/loading.py reads and types the file,
publishing.publish_loaded stores it as a new version in one transaction); its progress is a row in the store
(opendata/load_progress.py), so any serving process shows it, and the page polls it. Reads are in
catalogue_views.py; every rule of loading and publishing is in loading.py and publishing.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.datastructures import FormData, UploadFile

from smartcity.core.auth import Identity, Require, resolve_identity
from smartcity.core.errors import InvalidInput, NotFound, SmartCityError, TooLarge
from smartcity.core.i18n import N_, translate
from smartcity.core.jobs import in_background
from smartcity.core.web import error_text, language_of, render
from smartcity.core.words import tokens
from smartcity.opendata import catalogue_views as V
from smartcity.opendata import downloads, load_progress, loading, publishing, search
from smartcity.opendata.catalogue import LICENCES
from smartcity.opendata.documents import KIND as DOCUMENT
from smartcity.opendata.models import Dataset, DatasetTag, Organisation

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)  # pages: not API operations
Publisher = Annotated[Identity, Depends(Require("opendata.publish"))]
MAX_UPLOAD_BYTES = 300 * 1024 * 1024  # a file is held in memory while it is typed: 1,000,000 rows fit well under
_FORM_SLACK = 64 * 1024
_CHUNK = 1024 * 1024
FREQUENCIES = ("continuous", "daily", "weekly", "monthly", "quarterly", "annual", "irregular")
FREQUENCY_LABELS = {
    "continuous": N_("Continuously"),
    "continual": N_("Continuously"),  # what live datasets were given before (feeds.py now says continuous)
    "daily": N_("Daily"),
    "weekly": N_("Weekly"),
    "monthly": N_("Monthly"),
    "quarterly": N_("Quarterly"),
    "annual": N_("Yearly"),
    "irregular": N_("Irregularly"),
}
REFRESH_S = 2  # without the page's script, a running load's page reloads itself this often
TYPE_NAMES = {
    "boolean": N_("true or false"),
    "integer": N_("whole number"),
    "float": N_("number"),
    "date": N_("date"),
    "datetime": N_("date and time"),
    "text": N_("text"),
}
_NOT_A = re.compile(r"not a (\w+)")
_FIELDS = re.compile(r"(\d+) fields where the header has (\d+) \(broken quoting\?\)")


def problem_text(problem: str, lang: str) -> str:
    """A defect as the loader words it (loading.py, in English), in the page's language."""
    if (m := _NOT_A.fullmatch(problem)) and m[1] in TYPE_NAMES:
        return translate(lang, N_("not a {type}"), type=translate(lang, TYPE_NAMES[m[1]]))
    if m := _FIELDS.fullmatch(problem):
        message = N_("{count} fields where the header has {header} (broken quoting?)")
        return translate(lang, message, count=m[1], header=m[2])
    if problem.startswith("broken quoting:"):
        return translate(lang, N_("broken quoting: {detail}"), detail=problem.split(":", 1)[1].strip())
    return problem


def _db(request: Request):
    return request.app.state.db


def _int(value: Any, default: int = 0) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default


# --- the public's pages ---------------------------------------------------------------------------------


@router.get("/opendata", response_class=HTMLResponse)
def plaza(request: Request):
    params = request.query_params
    q = params.get("q", "")[:200]
    filters = {name: params.getlist(name) for name in V.FACET_FIELDS if params.getlist(name)}
    start = _int(params.get("start"))
    lang = language_of(request)
    with _db(request).session() as s:
        found = V.browse(s, q, filters, start, lang)
        # Datasets and documents share one index; the plaza lists datasets and says how many published
        # documents the same words find, so a search here does not miss the Information Communication Plaza.
        documents = search.search(s, q, [DOCUMENT], limit=0).total if tokens(q) else 0

    def link(toggle: tuple[str, str] | None = None, at: int = 0) -> str:
        """The plaza's URL with this search, a facet value added or taken off, at a result offset."""
        chosen = {k: list(v) for k, v in found.filters.items()}
        if toggle is not None:
            values = chosen.setdefault(toggle[0], [])
            values.remove(toggle[1]) if toggle[1] in values else values.append(toggle[1])
        pairs = [("q", q)] if q else []
        pairs += [(k, v) for k in V.FACET_FIELDS for v in chosen.get(k, [])]
        if at:
            pairs.append(("start", str(at)))
        return "/opendata" + (f"?{urlencode(pairs)}" if pairs else "")

    return render(
        request,
        "opendata/catalogue_home.html",
        found=found,
        facet_fields=V.FACET_FIELDS,
        link=link,
        documents=documents,
        documents_link="/opendata/documents?" + urlencode({"q": q}),
    )


@router.get("/opendata/datasets/{name}", response_class=HTMLResponse)
def dataset_page(request: Request, name: str):
    identity = resolve_identity(request)
    with _db(request).session() as s:
        view = V.dataset_view(s, name, language_of(request), identity)
    return render(
        request,
        "opendata/catalogue_dataset.html",
        view=view,
        frequency=FREQUENCY_LABELS.get(view.dataset.update_frequency, view.dataset.update_frequency),
        publisher=V.can_publish(identity),
    )


@router.get("/opendata/resources/{uid}", response_class=HTMLResponse)
def resource_page(request: Request, uid: str):
    identity = resolve_identity(request)
    params = request.query_params
    desc = params.get("order") == "desc"
    with _db(request).session() as s:
        ref = V.visible_resource(s, uid, identity, language_of(request))
        try:
            rows = V.rows_page(
                s,
                ref.resource,
                sort=params.get("sort") or None,
                desc=desc,
                start=_int(params.get("start")),
                limit=_int(params.get("limit"), V.ROWS_PAGE) or V.ROWS_PAGE,
            )
        except InvalidInput:
            rows = V.rows_page(s, ref.resource, sort=None, desc=False, start=0, limit=V.ROWS_PAGE)
        version = V.latest_version(s, ref.resource)
    return render(
        request,
        "opendata/catalogue_resource.html",
        ref=ref,
        rows=rows,
        version=version,
        points=V.point_columns(ref.resource),
        geojson=downloads.point_columns(ref.resource.columns) is not None and ref.dataset.published,
        numeric=V.numeric_columns(ref.resource),
    )


@router.get("/opendata/resources/{uid}/points.geojson")
def resource_points(request: Request, uid: str):
    with _db(request).session() as s:
        ref = V.visible_resource(s, uid, resolve_identity(request))
        return JSONResponse(V.points(s, ref.resource), media_type="application/geo+json")


@router.get("/opendata/resources/{uid}/chart.json")
def resource_chart(request: Request, uid: str):
    with _db(request).session() as s:
        ref = V.visible_resource(s, uid, resolve_identity(request))
        return JSONResponse(V.histogram(s, ref.resource, request.query_params.get("column")))


@router.get("/opendata/resources/{uid}/versions/{number:int}/download")
def version_download(request: Request, uid: str, number: int):
    """A version's file as it was published (the current one, or an older one kept)."""
    with _db(request).session() as s:
        ref = V.visible_resource(s, uid, resolve_identity(request))
        version = V.version_of(s, ref.resource, number)
        path = publishing.version_file(s, version)
        name = version.file_name or Path(path).name
    if not path.exists():
        raise NotFound(N_("version {number} has no stored file"), params={"number": number})
    kind = "text/csv; charset=utf-8" if name.lower().endswith(".csv") else "application/octet-stream"
    return FileResponse(path, media_type=kind, filename=name)


# --- the publisher's pages ------------------------------------------------------------------------------


@router.get("/opendata/publish", response_class=HTMLResponse)
def publish_home(request: Request, identity: Publisher):
    with _db(request).session() as s:
        datasets = V.every_dataset(s, language_of(request))
    return render(request, "opendata/catalogue_publish.html", datasets=datasets)


DATASET_FIELDS = (
    "name",
    "title_ko",
    "title_en",
    "description_ko",
    "description_en",
    "organisation",
    "licence",
    "publisher",
    "update_frequency",
    "spatial",
    "temporal_start",
    "temporal_end",
    "theme",
    "tags",
)


def _edit_page(
    request: Request,
    form: dict[str, str],
    *,
    dataset=None,
    status_code: int = 200,
    error: str | None = None,
    upload_error: str | None = None,
):
    lang = language_of(request)
    with _db(request).session() as s:
        orgs = V.organisations(s, lang)
        view = V.dataset_view(s, dataset, lang, resolve_identity(request)) if dataset else None
    return render(
        request,
        "opendata/catalogue_edit.html",
        status_code,
        form=form,
        view=view,
        organisations=orgs,
        licences=LICENCES,
        frequencies=[(f, FREQUENCY_LABELS[f]) for f in FREQUENCIES],
        error=error,
        upload_error=upload_error,
        max_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
    )


def _dataset_form(request: Request, name: str) -> dict[str, str]:
    with _db(request).session() as s:
        d = V.visible_dataset(s, name, resolve_identity(request))
        org = s.get(Organisation, d.organisation_id) if d.organisation_id else None
        tags = s.scalars(select(DatasetTag.tag).where(DatasetTag.dataset_id == d.id).order_by(DatasetTag.tag))
        form = {f: str(getattr(d, f, "") or "") for f in DATASET_FIELDS if hasattr(d, f)}
        form["organisation"] = org.name if org else ""
        form["tags"] = ", ".join(tags)
        form["licence"] = d.licence
        return form


@router.get("/opendata/publish/datasets/new", response_class=HTMLResponse)
def new_dataset(request: Request, identity: Publisher):
    return _edit_page(request, {"licence": "KOGL-Type1", "update_frequency": "irregular"})


@router.get("/opendata/publish/datasets/{name}", response_class=HTMLResponse)
def edit_dataset(request: Request, name: str, identity: Publisher):
    return _edit_page(request, _dataset_form(request, name), dataset=name)


async def _form(request: Request) -> FormData:
    return await request.form()


def _info(form: FormData) -> tuple[dict[str, str], publishing.DatasetInfo]:
    given = {f: str(form.get(f) or "").strip() for f in DATASET_FIELDS}
    if given["licence"] not in LICENCES:
        given["licence"] = "KOGL-Type1"
    if given["update_frequency"] not in FREQUENCIES:
        given["update_frequency"] = "irregular"
    info = publishing.DatasetInfo(
        name=given["name"],
        title_ko=given["title_ko"],
        title_en=given["title_en"],
        description_ko=given["description_ko"],
        description_en=given["description_en"],
        organisation=given["organisation"] or None,
        licence=given["licence"],
        publisher=given["publisher"],
        update_frequency=given["update_frequency"],
        spatial=given["spatial"],
        temporal_start=given["temporal_start"] or None,
        temporal_end=given["temporal_end"] or None,
        theme=given["theme"],
        tags=[t for t in given["tags"].replace("\n", ",").split(",") if t.strip()],
    )
    return given, info


@router.post("/opendata/publish/datasets")
def create_dataset(request: Request, identity: Publisher, form: Annotated[FormData, Depends(_form)]):
    given, info = _info(form)
    try:
        if not info.name:
            raise InvalidInput(N_("a dataset needs a name"), code="name")
        if not info.title_ko and not info.title_en:
            raise InvalidInput(N_("a dataset needs a title"), code="title")
        with _db(request).session() as s:
            if s.scalar(_exists(info.name)) is not None:
                raise InvalidInput(N_("a dataset named {name} exists already"), code="name", params={"name": info.name})
            name = publishing.save_dataset(s, identity, info).name
            # A new dataset waits for its files: nothing is public until its publisher publishes it.
            publishing.set_published(s, identity, name, False)
    except InvalidInput as exc:
        return _edit_page(request, given, status_code=422, error=error_text(exc, language_of(request)))
    return RedirectResponse(f"/opendata/publish/datasets/{name}", status_code=303)


def _exists(name: str):
    return select(Dataset.id).where(Dataset.name == name)


@router.post("/opendata/publish/datasets/{name}")
def update_dataset(request: Request, name: str, identity: Publisher, form: Annotated[FormData, Depends(_form)]):
    given, info = _info(form)
    given["name"] = info.name = name
    try:
        if not info.title_ko and not info.title_en:
            raise InvalidInput(N_("a dataset needs a title"), code="title")
        with _db(request).session() as s:
            publishing.get_dataset(s, name)
            publishing.save_dataset(s, identity, info)
    except InvalidInput as exc:
        return _edit_page(request, given, dataset=name, status_code=422, error=error_text(exc, language_of(request)))
    return RedirectResponse(f"/opendata/publish/datasets/{name}?saved=1", status_code=303)


@router.post("/opendata/publish/datasets/{name}/published")
def set_published(request: Request, name: str, identity: Publisher, form: Annotated[FormData, Depends(_form)]):
    """Publish the dataset (seen by everyone, searchable, in the APIs) or withdraw it; audited."""
    wanted = str(form.get("published") or "") == "1"
    with _db(request).session() as s:
        publishing.set_published(s, identity, name, wanted)
    return RedirectResponse(f"/opendata/publish/datasets/{name}", status_code=303)


# --- loading a file, off the request ---------------------------------------------------------------------


def status_json(load: load_progress.LoadView, lang: str) -> dict[str, Any]:
    """A load as its page's script reads it (the page itself renders the same)."""
    found: dict[str, Any] = {
        "id": load.id,
        "dataset": load.dataset,
        "file": load.filename,
        "size": load.size,
        "state": load.state,
        "total": load.total,
        "stored": load.stored,
        "problem_count": load.problem_count,
        "seconds": load.seconds,
    }
    if load.error is not None:
        found["error"] = error_text(load.error, lang)
    if load.result is not None and load.state == "done":
        r = load.result
        found.update(r)
        found["problems"] = [p | {"problem": problem_text(p["problem"], lang)} for p in r.get("problems", [])]
    return found


def run_load(
    db, tracker: load_progress.Tracker, identity: Identity, data: bytes, dataset: str, filename: str, resource_name: str
) -> None:
    """Read, type and publish the file (the thread's work); whatever happens ends in the load's row."""
    try:
        loaded = loading.load_bytes(data, filename)
        tracker.typed(len(loaded.rows), loaded.problem_count)
        fmt = loading.format_of(filename)
        with db.session() as s:
            found = publishing.get_dataset(s, dataset)
            published = publishing.publish_loaded(
                s, identity, found, resource_name, loaded, data, filename, fmt=fmt, progress=tracker
            )
        tracker.done(published)
    except SmartCityError as exc:
        tracker.failed(exc)
    except Exception:  # the page must end either way; the cause is in the log
        log.exception("loading %s into %s failed", filename, dataset)
        tracker.failed(SmartCityError(N_("the file could not be loaded")))


def capped_body(limit: Callable[[], int], refusal: Callable[[], SmartCityError]) -> type[APIRoute]:
    """A route whose request body stops being read once it passes `limit()` bytes. A chunked upload declares
    no length, and Starlette's form parser would otherwise spool all of it to disk before the route saw it."""

    class Capped(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def capped(request: Request):
                seen = 0
                receive = request.receive

                async def counted():
                    nonlocal seen
                    message = await receive()
                    if message["type"] == "http.request":
                        seen += len(message.get("body", b""))
                        if seen > limit():
                            raise refusal()
                    return message

                return await handler(Request(request.scope, counted))

            return capped

    return Capped


def _too_large() -> TooLarge:
    return TooLarge(N_("a file is at most {mb} MB"), params={"mb": MAX_UPLOAD_BYTES // (1024 * 1024)})


def _declared_size(request: Request) -> None:
    """Refuse a body declared too large before anything reads it (the CSRF check reads the form)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + _FORM_SLACK:
        raise _too_large()


async def _read(file: UploadFile) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := await file.read(_CHUNK):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise _too_large()
        parts.append(chunk)
    return b"".join(parts)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def upload(request: Request, name: str, _size: Annotated[None, Depends(_declared_size)], identity: Publisher):
    """Start loading a file: answers at once with the load's page (JSON for the page's script)."""
    form = await request.form(max_files=1, max_fields=10)
    file = form.get("file")
    resource_name = str(form.get("resource") or "").strip()[:200]
    try:
        if not isinstance(file, UploadFile) or not file.filename:
            raise InvalidInput(N_("choose a file to upload"), code="file")
        loading.format_of(file.filename)
        data = await _read(file)
        with _db(request).session() as s:
            publishing.get_dataset(s, name)
    except InvalidInput as exc:
        message = error_text(exc, language_of(request))
        if _wants_json(request):
            return JSONResponse({"error": message}, status_code=exc.status)
        return _edit_page(
            request, _dataset_form(request, name), dataset=name, status_code=exc.status, upload_error=message
        )
    filename = Path(file.filename).name
    resource_name = resource_name or Path(filename).stem
    tracker = load_progress.start(
        _db(request), dataset=name, resource=resource_name, filename=filename, size=len(data), owner=identity.label
    )
    db = _db(request)
    in_background(
        db, f"opendata-load-{tracker.id[:8]}", run_load, db, tracker, identity, data, name, filename, resource_name
    )
    url = f"/opendata/publish/loads/{tracker.id}"
    if _wants_json(request):
        return JSONResponse({"load": tracker.id, "url": url, "status": f"{url}.json"}, status_code=202)
    return RedirectResponse(url, status_code=303)


router.add_api_route(
    "/opendata/publish/datasets/{name}/upload",
    upload,
    methods=["POST"],
    route_class_override=capped_body(lambda: MAX_UPLOAD_BYTES + _FORM_SLACK, _too_large),
)


def _load(request: Request, load_id: str, identity: Identity) -> load_progress.LoadView:
    """A load its own publisher (or an administrator) follows."""
    load = load_progress.find(_db(request), load_id)
    if load is None or not (load.owner == identity.label or identity.can("opendata.manage")):
        raise NotFound(N_("no load {id}"), params={"id": load_id})
    return load


@router.get("/opendata/publish/loads/{load_id}.json")
def load_status(request: Request, load_id: str, identity: Publisher):
    status = status_json(_load(request, load_id, identity), language_of(request))
    return JSONResponse(status, headers={"Cache-Control": "no-store"})


@router.get("/opendata/publish/loads/{load_id}", response_class=HTMLResponse)
def load_page(request: Request, load_id: str, identity: Publisher):
    load = _load(request, load_id, identity)
    return render(
        request,
        "opendata/catalogue_load.html",
        load=load,
        status=status_json(load, language_of(request)),
        refresh_s=REFRESH_S,
    )
