"""Pages of standalone debates, in Korean and English: the list with its search, a new debate, a debate with
its arguments for and against (argue, reply, vote, and the moderators' hiding); and the form any signed-in
citizen uses to report one comment, on a proposal's debate or here. Thin: the rules are in debates.py and
comment_reports.py; without JavaScript every form works."""

from __future__ import annotations

from datetime import date, datetime, time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.errors import InvalidInput, NotFound, SmartCityError
from smartcity.core.i18n import N_
from smartcity.core.models import District
from smartcity.core.web import error_text, language_of, render
from smartcity.participation import comment_reports, comments, debates, follows
from smartcity.participation.common import settings_of

router = APIRouter(include_in_schema=False)
P = "/participation/debates"
NO_PAGE = N_("no such page")


def _districts(request: Request) -> list[District]:
    with request.app.state.db.session() as s:
        return list(s.scalars(select(District).order_by(District.code)))


@router.get(P, response_class=HTMLResponse)
def list_page(request: Request, identity: CurrentIdentity):
    """Debates, newest first, searched by words, district and tag (a plain GET form)."""
    asked = request.query_params
    q, district, tag = asked.get("q", "")[:200], asked.get("district") or None, asked.get("tag") or None
    with request.app.state.db.session() as s:
        found = debates.search(s, identity, q, district, tag and tag[: debates.TAG_MAX], limit=100)
    return render(
        request,
        "participation/debates_list.html",
        debates=found,
        q=q,
        district=district,
        tag=tag,
        districts=_districts(request),
        is_open=debates.is_open,
    )


def _new_page(request: Request, status_code: int = 200, error: str | None = None, form=None) -> HTMLResponse:
    return render(
        request,
        "participation/debates_new.html",
        status_code=status_code,
        districts=_districts(request),
        error=error,
        form=form or {},
    )


@router.get(f"{P}/new", response_class=HTMLResponse)
def new_page(request: Request, identity: Identity = Depends(Require("participation.take_part"))):
    return _new_page(request)


def _closing(request: Request, value: str) -> datetime | None:
    """A closing date from the form: the end of that day in the city's time zone."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(N_("a date is written YYYY-MM-DD"), details={"field": "closes_on"}) from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=request.app.state.profile.tz)


@router.post(f"{P}/new", response_class=HTMLResponse)
async def create(request: Request, identity: Identity = Depends(Require("participation.take_part"))):
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    try:
        new = debates.NewDebate(
            form.get("title", ""),
            form.get("description", ""),
            form.get("district_code") or None,
            form.get("tags", ""),
            _closing(request, form.get("closes_on", "")),
        )
        with request.app.state.db.session() as s:
            debate_id = debates.create(s, identity, new).id
    except SmartCityError as exc:
        return _new_page(request, exc.status, error_text(exc, language_of(request)), form)
    return RedirectResponse(f"{P}/{debate_id}", status_code=303)


def _debate_page(request: Request, debate_id: int, identity: Identity, status_code=200, error=None):
    sort = request.query_params.get("sort", "oldest")
    if sort not in comments.SORTS:
        sort = "oldest"
    with request.app.state.db.session() as s:
        debate = debates.get(s, identity, debate_id)
        said = debates.arguments(s, identity, debate_id, sort)
        listed = debates.search_one(s, debate)
        following = follows.following(s, identity, debates.KIND, debate_id)
        district = (
            s.scalar(select(District).where(District.code == debate.district_code)) if debate.district_code else None
        )
    return render(
        request,
        "participation/debates_show.html",
        status_code=status_code,
        d=debate,
        district=district,
        listed=listed,
        sides=debates.sides(said),
        stances=debates.STANCES,
        reasons=comment_reports.REASONS,
        sort=sort,
        sorts=comments.SORTS,
        debate_open=debates.is_open(debate),
        reply_depth=settings_of(request.app.state.db).reply_depth,
        moderator=identity.can("participation.moderate"),
        following=following,
        error=error,
    )


@router.get(P + "/{debate_id:int}", response_class=HTMLResponse)
def debate_page(request: Request, debate_id: int, identity: CurrentIdentity):
    return _debate_page(request, debate_id, identity)


def _number(value) -> int:
    try:
        return int(str(value)) if value not in (None, "") else 0
    except ValueError:
        return 0


@router.post(P + "/{debate_id:int}/{action}", response_class=HTMLResponse)
async def act(request: Request, debate_id: int, action: str, identity: CurrentIdentity):
    """The debate page's forms: argue (or reply), vote on an argument, follow, and the moderators' hide and
    show of one argument or of the whole debate."""
    form = await request.form()
    db = request.app.state.db
    back = f"{P}/{debate_id}"
    try:
        if action == "argue":
            parent = _number(form.get("parent_id")) or None
            stance = str(form.get("stance") or "") or None
            said = debates.argue(db, identity, debate_id, str(form.get("body") or ""), stance, parent)
            back += f"#comment-{said}"
        elif action in ("vote", "hide-comment", "unhide-comment"):
            comment_id = _number(form.get("comment_id"))
            with db.session() as s:
                if debates.get(s, identity, debate_id).id != comments.comment_debate(s, comment_id):
                    raise NotFound(NO_PAGE)
                if action != "vote":
                    reason = str(form.get("reason") or "")
                    comments.hide_comment(s, identity, comment_id, reason, action == "hide-comment")
            if action == "vote":
                value = {"up": 1, "down": -1}.get(str(form.get("value")))
                comments.vote_comment(db, identity, comment_id, value)
            back += f"#comment-{comment_id}"
            if action != "vote" and form.get("next") == "moderation":
                back = "/participation/moderation"
        elif action in ("follow", "unfollow"):
            with db.session() as s:
                follows.follow(s, identity, debates.KIND, debate_id, action == "follow")
        elif action in ("hide", "unhide"):
            with db.session() as s:
                debates.hide(s, identity, debate_id, str(form.get("reason") or ""), action == "hide")
        else:
            raise NotFound(NO_PAGE)
    except SmartCityError as exc:
        return _debate_page(request, debate_id, identity, exc.status, error_text(exc, language_of(request)))
    return RedirectResponse(back, status_code=303)


@router.post("/participation/comments/{comment_id:int}/report", response_class=HTMLResponse)
async def report(request: Request, comment_id: int, identity: CurrentIdentity):
    """Report one comment (a proposal's debate or a debate's argument), then back to it with a thank-you."""
    form = await request.form()
    db = request.app.state.db
    with db.session() as s:
        comment_reports.report(s, identity, comment_id, str(form.get("reason") or ""), str(form.get("text") or ""))
        row = comments.visible_comment(s, identity, comment_id)
        place = f"{P}/{row.debate_id}" if row.debate_id else f"/participation/proposals/{row.proposal_id}"
    return RedirectResponse(f"{place}?reported={comment_id}#comment-{comment_id}", status_code=303)


@router.post("/participation/comments/{comment_id:int}/dismiss-reports", response_class=HTMLResponse)
async def dismiss(request: Request, comment_id: int, identity: Identity = Depends(Require("participation.moderate"))):
    """Moderators: keep the comment, settle its reports; back to the moderation page."""
    with request.app.state.db.session() as s:
        comment_reports.dismiss(s, identity, comment_id)
    return RedirectResponse("/participation/moderation", status_code=303)
