"""Pages of the Information Communication Plaza: the public's published documents (list, search, one, its
masked text), and the publisher's upload and review screen (accept, undo, add a mask, publish).

Thin: every rule is in opendata/documents.py; a refusal to show a document under review is audited there."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.datastructures import FormData, UploadFile

from smartcity.core.auth import Identity, Require
from smartcity.core.errors import InvalidInput, SmartCityError, TooLarge
from smartcity.core.i18n import N_
from smartcity.core.render import json_response
from smartcity.core.web import error_text, language_of, render
from smartcity.opendata import documents as D
from smartcity.opendata.catalogue_pages import capped_body

router = APIRouter(include_in_schema=False)  # pages (and their JSON twins): not API operations
Publisher = Annotated[Identity, Depends(Require("opendata.publish"))]
PAGE = 20
_CHUNK = 1024 * 1024
_FORM_SLACK = 64 * 1024  # the form's other fields around the file


def _db(request: Request):
    return request.app.state.db


async def _form(request: Request) -> FormData:
    return await request.form()


Form = Annotated[FormData, Depends(_form)]


def _offset(request: Request) -> int:
    try:
        return max(0, int(request.query_params.get("start", "0")))
    except ValueError:
        return 0


def _found(request: Request) -> tuple[D.DocumentList, int, str | None]:
    q = request.query_params.get("q", "")[:200]
    organisation = request.query_params.get("organisation") or None
    start = _offset(request)
    with _db(request).session() as s:
        return D.published(s, q, PAGE, start, organisation), start, organisation


@router.get("/opendata/documents", response_class=HTMLResponse)
def public_list(request: Request):
    found, start, organisation = _found(request)
    return render(
        request, "opendata/documents_list.html", found=found, start=start, page=PAGE, organisation=organisation
    )


@router.get("/opendata/documents.json")
def public_list_json(request: Request):
    """The list page's data: the same search, as JSON."""
    found, start, _organisation = _found(request)
    return json_response({**asdict(found), "start": start, "limit": PAGE})


@router.get("/opendata/documents/{uid}.json")
def public_json(request: Request, uid: str):
    with _db(request).session() as s:
        return json_response(asdict(D.public_document(s, uid)))


@router.get("/opendata/documents/{uid}.txt", response_class=PlainTextResponse)
def public_text(request: Request, uid: str):
    with _db(request).session() as s:
        document = D.public_document(s, uid)
    return PlainTextResponse(
        f"{document.title}\n\n{document.text}",
        headers={"Content-Disposition": f'attachment; filename="{document.uid}.txt"'},
    )


@router.get("/opendata/documents/{uid}", response_class=HTMLResponse)
def public_show(request: Request, uid: str):
    with _db(request).session() as s:
        document = D.public_document(s, uid)
    return render(request, "opendata/documents_show.html", document=document)


@router.get("/opendata/publish/documents", response_class=HTMLResponse)
def publish_home(request: Request, identity: Publisher):
    with _db(request).session() as s:
        mine = D.mine(s, identity)
    return render(request, "opendata/documents_publish.html", mine=mine, error=None, form={})


async def _read_upload(request: Request, file: UploadFile) -> bytes:
    """The file's bytes, refused past the limit without reading the rest."""
    parts: list[bytes] = []
    size = 0
    while chunk := await file.read(_CHUNK):
        size += len(chunk)
        if size > D.MAX_BYTES:
            raise _too_large()
        parts.append(chunk)
    return b"".join(parts)


def _too_large() -> TooLarge:
    return TooLarge(N_("a document is at most {mb} MB"), params={"mb": D.MAX_BYTES // (1024 * 1024)})


def _declared_size(request: Request) -> None:
    """Refuse a body declared too large before anything reads it (the CSRF check reads the form)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > D.MAX_BYTES + _FORM_SLACK:
        raise _too_large()


async def upload(request: Request, _size: Annotated[None, Depends(_declared_size)], identity: Publisher):
    form = await request.form(max_files=1, max_fields=20)
    file = form.get("file")
    fields = {k: str(form.get(k) or "") for k in ("title", "names", "organisation")}
    try:
        if not isinstance(file, UploadFile) or not file.filename:
            raise InvalidInput(N_("choose a file to upload"), code="file")
        data = await _read_upload(request, file)
        item = D.Upload(
            filename=file.filename,
            data=data,
            title=fields["title"],
            names=[n for line in fields["names"].splitlines() for n in line.split(",")],
            organisation=fields["organisation"].strip() or None,
        )
        with _db(request).session() as s:
            uid = D.upload(s, identity, item).uid
    except InvalidInput as exc:
        with _db(request).session() as s:
            mine = D.mine(s, identity)
        message = error_text(exc, language_of(request))
        return render(request, "opendata/documents_publish.html", 422, mine=mine, error=message, form=fields)
    return RedirectResponse(f"/opendata/publish/documents/{uid}", status_code=303)


router.add_api_route(
    "/opendata/publish/documents",
    upload,
    methods=["POST"],
    response_class=HTMLResponse,
    route_class_override=capped_body(lambda: D.MAX_BYTES + _FORM_SLACK, _too_large),
)


def _review_page(request: Request, identity: Identity, uid: str, status_code: int = 200, error: str | None = None):
    review = D.guarded(_db(request), identity, uid, lambda s: D.review(s, identity, uid))
    return render(request, "opendata/documents_review.html", status_code, review=review, error=error)


@router.get("/opendata/publish/documents/{uid}", response_class=HTMLResponse)
def review_page(request: Request, uid: str, identity: Publisher):
    return _review_page(request, identity, uid)


def _act(request: Request, identity: Identity, uid: str, work) -> HTMLResponse | RedirectResponse:
    """Run one review action; back to the review screen, with the reason on it when it was refused."""
    try:
        D.guarded(_db(request), identity, uid, work)
    except SmartCityError as exc:
        if exc.status >= 500 or exc.code == "not_yours" or exc.status == 404:
            raise
        return _review_page(request, identity, uid, exc.status, error_text(exc, language_of(request)))
    return RedirectResponse(f"/opendata/publish/documents/{uid}", status_code=303)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@router.post("/opendata/publish/documents/{uid}/masks")
def add_mask(request: Request, uid: str, identity: Publisher, form: Form):
    text = str(form.get("text") or "")
    start, end = _int(form.get("start")), _int(form.get("end"))
    return _act(request, identity, uid, lambda s: D.add_mask(s, identity, uid, text, start, end))


@router.post("/opendata/publish/documents/{uid}/masks/{mask_id:int}")
def decide(request: Request, uid: str, mask_id: int, identity: Publisher, form: Form):
    decision = str(form.get("decision") or "")
    return _act(request, identity, uid, lambda s: D.decide(s, identity, uid, mask_id, decision))


@router.post("/opendata/publish/documents/{uid}/accept-all")
def accept_all(request: Request, uid: str, identity: Publisher):
    return _act(request, identity, uid, lambda s: D.accept_all(s, identity, uid))


@router.post("/opendata/publish/documents/{uid}/publish")
def publish(request: Request, uid: str, identity: Publisher):
    result = _act(request, identity, uid, lambda s: D.publish(s, identity, uid))
    if isinstance(result, RedirectResponse):
        return RedirectResponse(f"/opendata/documents/{uid}", status_code=303)
    return result
