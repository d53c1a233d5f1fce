"""Pages of public hearings, in Korean and English, for the phone first: the list, a new hearing (officials),
and a hearing's page — documents, schedule, the live session (questions refreshed as events arrive, by
static/build/hearings.js), comments, minutes. Its forms work without JavaScript; with it, the live
session's forms are sent in the background (header X-Live: answered 204, or the error's text) so the page
stays where it is. Thin: the rules are in hearings.py."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.errors import InvalidInput, NotFound, SmartCityError
from smartcity.core.i18n import N_
from smartcity.core.web import error_text, language_of, render
from smartcity.participation import follows, hearings

router = APIRouter(include_in_schema=False)
P = "/participation/hearings"
PARTS = {"questions": "participation/hearings_questions.html", "comments": "participation/hearings_comments.html"}
NO_PAGE = "no such page"


def _local(request: Request):
    tz = request.app.state.profile.tz

    def local(when: datetime | None) -> str:
        return when.astimezone(tz).strftime("%Y-%m-%d %H:%M") if when else ""

    return local


def _context(request: Request) -> dict:
    return {"phases": hearings.PHASES, "local": _local(request), "minutes_html": hearings.render_minutes}


@router.get(P, response_class=HTMLResponse)
def list_page(request: Request, identity: CurrentIdentity):
    with request.app.state.db.session() as s:
        found = [hearings.view(s, identity, h.id, full=False) for h in hearings.listing(s, 100)]
    return render(request, "participation/hearings_list.html", hearings=found, **_context(request))


def _new_page(request: Request, status_code: int = 200, error: str | None = None, form=None) -> HTMLResponse:
    return render(request, "participation/hearings_new.html", status_code=status_code, error=error, form=form or {})


@router.get(f"{P}/new", response_class=HTMLResponse)
def new_page(request: Request, identity: Identity = Depends(Require("participation.hearings"))):
    return _new_page(request)


def _time(request: Request, value: str, field: str) -> datetime:
    """A datetime-local field, read in the city's time zone."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=request.app.state.profile.tz)
    except ValueError:
        raise InvalidInput(
            N_("give a date and time, e.g. 2025-03-01T19:00"), code="bad_time", details={"field": field}
        ) from None


@router.post(f"{P}/new", response_class=HTMLResponse)
async def create(request: Request, identity: Identity = Depends(Require("participation.hearings"))):
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    try:
        when = {
            k: _time(request, form.get(k, ""), k)
            for k in ("comments_open_at", "starts_at", "ends_at", "comments_close_at")
        }
        new = hearings.NewHearing(
            topic_ko=form.get("topic_ko", ""),
            topic_en=form.get("topic_en", ""),
            summary_ko=form.get("summary_ko", ""),
            summary_en=form.get("summary_en", ""),
            **when,
        )
        with request.app.state.db.session() as s:
            hearing = hearings.create(s, identity, new)
    except SmartCityError as exc:
        return _new_page(request, exc.status, error_text(exc, language_of(request)), form)
    return RedirectResponse(f"{P}/{hearing.id}", status_code=303)


def _hearing_page(request: Request, hearing_id: int, identity: Identity, status_code: int = 200, error=None):
    with request.app.state.db.session() as s:
        shown = hearings.view(s, identity, hearing_id)
    part = request.query_params.get("part")
    template = PARTS.get(part or "", "participation/hearings_show.html")
    return render(request, template, status_code=status_code, h=shown, error=error, **_context(request))


@router.get(P + "/{hearing_id:int}", response_class=HTMLResponse)
def hearing_page(request: Request, hearing_id: int, identity: CurrentIdentity):
    """The hearing; `?part=questions` or `?part=comments`: that part alone, for the live page to refresh."""
    return _hearing_page(request, hearing_id, identity)


@router.get(P + "/{hearing_id:int}/documents/{document_id:int}")
def document(request: Request, hearing_id: int, document_id: int):
    with request.app.state.db.session() as s:
        found, path = hearings.document_file(s, hearing_id, document_id)
    if not path.exists():
        raise NotFound(N_("no document {id}"), params={"id": document_id})
    # Served as what it was checked to be, never sniffed: a text file is shown as text, whatever it holds.
    headers = {"X-Content-Type-Options": "nosniff"}
    if found.media_type != "application/pdf":
        headers["Content-Security-Policy"] = "sandbox"
    return FileResponse(
        path, media_type=found.media_type, filename=found.filename, content_disposition_type="inline", headers=headers
    )


async def _upload(form, field: str) -> hearings.Upload | None:
    file = form.get(field)
    if not isinstance(file, UploadFile) or not file.filename:
        return None
    return hearings.Upload(file.filename, await file.read())


@router.post(P + "/{hearing_id:int}/{action}", response_class=HTMLResponse)
async def act(request: Request, hearing_id: int, action: str, identity: CurrentIdentity) -> Response:
    """The hearing page's forms."""
    form = await request.form()
    db = request.app.state.db
    text = str(form.get("body") or "")
    item = int(form["item"]) if str(form.get("item") or "").isdigit() else 0
    try:
        if action in ("vote", "unvote"):
            hearings.upvote(db, identity, hearing_id, item, action == "vote")
        else:
            upload = await _upload(form, "file")
            with db.session() as s:
                if action == "ask":
                    hearings.ask(s, identity, hearing_id, text)
                elif action == "comment":
                    hearings.comment(s, identity, hearing_id, text)
                elif action == "answering":
                    hearings.mark_answering(s, identity, hearing_id, item or None)
                elif action == "answer":
                    hearings.answer(s, identity, hearing_id, item, text)
                elif action in ("hide-question", "hide-comment"):
                    what = action.removeprefix("hide-")
                    hearings.hide(s, identity, hearing_id, what, item, str(form.get("reason") or ""))
                elif action == "end":
                    hearings.end_session(s, identity, hearing_id)
                elif action == "document":
                    if upload is None:
                        raise InvalidInput(N_("choose a file to upload"), code="no_file")
                    hearings.add_document(s, identity, hearing_id, upload)
                elif action == "minutes":
                    hearings.publish_minutes(s, identity, hearing_id, text, upload)
                elif action in ("follow", "unfollow"):
                    sms = form.get("sms") == "on"
                    follows.follow(s, identity, hearings.KIND, hearing_id, action == "follow", sms=sms)
                else:
                    raise NotFound(N_(NO_PAGE))
    except SmartCityError as exc:
        message = error_text(exc, language_of(request))
        if request.headers.get("x-live"):
            return PlainTextResponse(message, status_code=exc.status)
        return _hearing_page(request, hearing_id, identity, exc.status, message)
    if request.headers.get("x-live"):
        return Response(status_code=204)
    anchor = {"ask": "#live", "vote": "#live", "unvote": "#live", "comment": "#comments"}.get(action, "")
    return RedirectResponse(f"{P}/{hearing_id}{anchor}", status_code=303)


@router.post("/participation/follows/{kind}/{object_id:int}", response_class=HTMLResponse)
async def follow_form(request: Request, kind: str, object_id: int, identity: CurrentIdentity) -> Response:
    """A follow button for any kind's page (a form with `on`=1 or 0 and optional `sms`=on): back to the page."""
    form = await request.form()
    with request.app.state.db.session() as s:
        on = form.get("on", "1") != "0"
        follows.follow(s, identity, kind, object_id, on, sms=form.get("sms") == "on")
    return RedirectResponse(follows.FOLLOWABLE[kind].url.format(id=object_id), status_code=303)
