"""Proposals the Democracy Seoul way: a citizen proposes, others like it; enough likes open a public debate,
enough debate participants make an official answer due. The rules live here; api.py and pages.py are thin.

Race safety: a like (or a debate participant) is one INSERT … ON CONFLICT DO NOTHING on a (proposal, person)
unique key, then one UPDATE of the proposal's counter guarded by its phase; passing a threshold is one more
UPDATE guarded by the phase it leaves. Both stores lock the proposal's row for the rest of the transaction
(PostgreSQL's row lock, SQLite's one writer), so when two last likes arrive at once the second sees the phase
already moved and moves nothing: the proposal moves, and its followers hear of it, exactly once."""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.context import context_of
from smartcity.core.db import Database, utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TooManyRequests
from smartcity.core.i18n import N_
from smartcity.core.models import District
from smartcity.participation import follows
from smartcity.participation.comments import (  # noqa: F401  the proposal debate's surface, as it was
    HIDDEN_COMMENT,
    SORTS,
    Said,
    comment_proposal,
    hidden_comments,
    hide_comment,
    thread,
    vote_comment,
)
from smartcity.participation.common import BODY_MAX, REASON_MAX, TEXT_MAX, TITLE_MAX, settings_of  # noqa: F401
from smartcity.participation.common import insert_once as _insert_once
from smartcity.participation.common import signed_in as _signed_in
from smartcity.participation.common import text as _text
from smartcity.participation.models import (
    ANSWER_DUE,
    ANSWERED,
    DEBATE,
    EXPIRED,
    OPEN,
    AbuseReport,
    Comment,
    FollowUp,
    Like,
    Participant,
    Proposal,
    ProposalEdit,
    ProposalImage,
)

CATEGORIES = {
    "transport": N_("Transport"),
    "safety": N_("Safety"),
    "environment": N_("Environment"),
    "welfare": N_("Welfare"),
    "culture": N_("Culture"),
    "economy": N_("Economy"),
    "housing": N_("Housing"),
    "other": N_("Other"),
}
STATUSES = {
    OPEN: N_("Collecting likes"),
    DEBATE: N_("Public debate"),
    ANSWER_DUE: N_("Official answer due"),
    ANSWERED: N_("Answered"),
    EXPIRED: N_("Expired"),
}
ANSWERS = {
    "accepted": N_("Accepted"),
    "partly": N_("Partly accepted"),
    "under_review": N_("Under review"),
    "rejected": N_("Rejected"),
}
KIND = "proposal"  # as follows.FOLLOWABLE names proposals
POINT_MESSAGE = N_("a map point needs both latitude and longitude")
NO_PAGE = N_("no such page")


@dataclass
class NewProposal:
    title: str
    body: str
    category: str
    district_code: str | None = None
    lat: float | None = None
    lon: float | None = None


def _same_title(title: str):
    """A title as duplicates are told apart: case and spaces do not make a new proposal."""
    return "".join(title.casefold().split())


def _no_duplicate(session: Session, title: str, other_than: int | None = None) -> None:
    """Refuse a title a shown, unexpired proposal already has (spam and accidental double posts)."""
    squeezed = func.replace(func.replace(func.lower(Proposal.title), " ", ""), "\t", "")
    query = select(Proposal.id, Proposal.title).where(
        Proposal.hidden.is_(False), Proposal.status != EXPIRED, squeezed == _same_title(title)
    )
    if other_than is not None:
        query = query.where(Proposal.id != other_than)
    # lower() folds ASCII only on SQLite: the comparison is finished here, on the few rows it let through.
    for found, existing in session.execute(query.limit(20)):
        if _same_title(existing) == _same_title(title):
            raise Conflict(
                N_("a proposal with this title already exists (number {id}): like it instead"),
                params={"id": found},
                code="duplicate",
                details={"field": "title", "proposal_id": found},
            )


def _within_daily_limit(session: Session, author: int, now: datetime) -> None:
    most = settings_of(session.info["db"]).proposals_per_day
    written = session.scalar(
        select(func.count())
        .select_from(Proposal)
        .where(Proposal.author_id == author, Proposal.created_at > now - timedelta(days=1))
    )
    if written >= most:
        raise TooManyRequests(
            N_("you have written {count} proposals in the last 24 hours, as many as one person may; try again later"),
            params={"count": written},
            code="too_many_proposals",
        )


def screen(db: Database, identity: Identity, title: str) -> None:
    """The spam checks of a new proposal, run by every surface before `create`, in a transaction of their own
    so that a refusal is audited (`refuse`, with why) although the request fails. `create` checks again."""
    author = _signed_in(identity)
    with db.session() as s:
        try:
            _within_daily_limit(s, author, utcnow())
            _no_duplicate(s, (title or "").strip())
        except (TooManyRequests, Conflict) as exc:
            detail = {"why": exc.code, **({"proposal_id": exc.details["proposal_id"]} if exc.details else {})}
            audit.record(s, identity, "refuse", "participation.proposal", None, detail)
            refused = exc
        else:
            return
    raise refused


def create(session: Session, identity: Identity, new: NewProposal) -> Proposal:
    """Store a citizen's proposal; its author follows it. Texts are kept as written (pages escape them).
    Against spam: at most `proposals_per_day` per person in 24 hours, and no second proposal of a shown title."""
    author = _signed_in(identity)
    title = _text(new.title, "title", 5, TITLE_MAX)
    body = _text(new.body, "body", 20, BODY_MAX)
    _within_daily_limit(session, author, utcnow())
    _no_duplicate(session, title)
    if new.category not in CATEGORIES:
        raise InvalidInput(N_("unknown category; categories are: {known}"), params={"known": ", ".join(CATEGORIES)})
    district = new.district_code or None
    if district and session.scalar(select(District.id).where(District.code == district)) is None:
        raise InvalidInput(N_("no district {code}"), params={"code": district}, code="unknown_district")
    if (new.lat is None) != (new.lon is None):
        raise InvalidInput(POINT_MESSAGE)
    if new.lat is not None:
        from smartcity.core.geo import geo_index

        geo_index(session.info["db"]).locate(new.lat, new.lon)  # OutsideCity, or a bad coordinate
    now = utcnow()
    window = settings_of(session.info["db"]).window_days
    proposal = Proposal(
        author_id=author,
        title=title,
        body=body,
        category=new.category,
        district_code=district,
        lat=new.lat,
        lon=new.lon,
        status=OPEN,
        likes=0,
        participants=0,
        hidden=False,
        created_at=now,
        closes_at=now + timedelta(days=window),
    )
    session.add(proposal)
    session.flush()
    follows.follow(session, identity, KIND, proposal.id)
    audit.record(session, identity, "create", "participation.proposal", proposal.id, {"category": new.category})
    return proposal


def get(session: Session, identity: Identity, proposal_id: int) -> Proposal:
    """A proposal; a hidden one only for moderators (to everyone else it does not exist)."""
    proposal = session.get(Proposal, proposal_id)
    if proposal is None or (proposal.hidden and not identity.can("participation.moderate")):
        raise NotFound(N_("no proposal {id}"), params={"id": proposal_id})
    return proposal


def listing(session: Session, identity: Identity, status: str | None = None, limit: int = 50, offset: int = 0):
    query = select(Proposal)
    if not identity.can("participation.moderate"):
        query = query.where(Proposal.hidden.is_(False))
    if status:
        if status not in STATUSES:
            raise InvalidInput(N_("unknown status; statuses are: {known}"), params={"known": ", ".join(STATUSES)})
        query = query.where(Proposal.status == status)
    return list(session.scalars(query.order_by(Proposal.id.desc()).limit(max(1, min(limit, 200))).offset(offset)))


def _department_for(db: Database, category: str) -> str | None:
    pairs = (p.partition("=") for p in settings_of(db).departments.split(","))
    chosen = {k.strip(): v.strip() for k, _, v in pairs if k.strip() and v.strip()}
    return chosen.get(category) or context_of(db).profile.fallback_unit


def _move(session: Session, proposal: Proposal, now: datetime) -> str | None:
    """Move the proposal past a threshold it has reached; the phase it entered, or None. The UPDATE names the
    phase it leaves, so of two transactions reaching the threshold at once only the first moves it."""
    db = session.info["db"]
    rules = settings_of(db)
    rows = update(Proposal).where(Proposal.id == proposal.id)
    if proposal.status == OPEN and proposal.likes >= rules.debate_likes:
        values = dict(status=DEBATE, debate_at=now, closes_at=now + timedelta(days=rules.window_days))
        values["department_code"] = _department_for(db, proposal.category)
        moved = session.execute(rows.where(Proposal.status == OPEN).values(**values)).rowcount
    elif proposal.status == DEBATE and proposal.participants >= rules.answer_participants:
        values = dict(status=ANSWER_DUE, answer_due_at=now + timedelta(days=rules.answer_days))
        moved = session.execute(rows.where(Proposal.status == DEBATE).values(**values)).rowcount
    else:
        return None
    if not moved:
        return None
    session.refresh(proposal)
    audit.record(session, "participation", "advance", "participation.proposal", proposal.id, {"to": proposal.status})
    _tell_followers(session, proposal)
    return proposal.status


def _bump(session: Session, proposal_id: int, phase: str, counter, by: int, now: datetime) -> Proposal:
    changed = session.execute(
        update(Proposal)
        .where(Proposal.id == proposal_id, Proposal.status == phase, Proposal.closes_at > now)
        .where(Proposal.hidden.is_(False))
        .values({counter: counter + by})
    ).rowcount
    if not changed:
        raise Conflict(
            N_("this proposal is not open for that now") if phase == OPEN else N_("the debate is not open"),
            code="not_open",
        )
    proposal = session.get(Proposal, proposal_id)
    session.refresh(proposal)
    return proposal


def like(db: Database, identity: Identity, proposal_id: int) -> Proposal:
    """Like a proposal collecting likes; liking again changes nothing. May open its debate."""
    person = _signed_in(identity)
    with db.session() as s:
        get(s, identity, proposal_id)
        now = utcnow()
        if _insert_once(s, Like, proposal_id=proposal_id, user_id=person, created_at=now):
            proposal = _bump(s, proposal_id, OPEN, Proposal.likes, 1, now)
            _move(s, proposal, now)
        return get(s, identity, proposal_id)


def unlike(db: Database, identity: Identity, proposal_id: int) -> Proposal:
    """Withdraw a like while the proposal still collects likes (not after it moved on)."""
    person = _signed_in(identity)
    with db.session() as s:
        get(s, identity, proposal_id)
        gone = s.execute(delete(Like).where(Like.proposal_id == proposal_id, Like.user_id == person)).rowcount
        if gone:
            _bump(s, proposal_id, OPEN, Proposal.likes, -1, utcnow())
        return get(s, identity, proposal_id)


def liked(session: Session, identity: Identity, proposal_id: int) -> bool:
    if identity.user_id is None:
        return False
    found = select(Like.id).where(Like.proposal_id == proposal_id, Like.user_id == identity.user_id)
    return session.scalar(found) is not None


def comment(db: Database, identity: Identity, proposal_id: int, body: str, parent_id: int | None = None) -> int:
    """Speak in a proposal's public debate, or reply to a comment in it (at most `reply_depth` deep); the id of
    the new comment. The debate is open from the likes' threshold (`debate_at`) to its window's end
    (`closes_at`) or the participants' threshold, whichever comes first. A person counts once as a participant;
    the participant that reaches the threshold makes an answer due."""
    person = _signed_in(identity)
    text = _text(body, "comment", 2, TEXT_MAX)
    with db.session() as s:
        get(s, identity, proposal_id)
        now = utcnow()
        depth = 0
        if parent_id is not None:
            parent = s.get(Comment, parent_id)
            if parent is None or parent.proposal_id != proposal_id:
                raise NotFound(N_("no comment {id} in this debate"), params={"id": parent_id})
            if parent.hidden:
                raise Conflict(HIDDEN_COMMENT, code="hidden")
            depth = parent.depth + 1
            most = settings_of(db).reply_depth
            if depth > most:
                raise InvalidInput(
                    N_("replies go at most {count} levels deep: reply to a comment higher up"),
                    params={"count": most},
                    code="too_deep",
                )
        if _insert_once(s, Participant, proposal_id=proposal_id, user_id=person):
            proposal = _bump(s, proposal_id, DEBATE, Proposal.participants, 1, now)
            _move(s, proposal, now)
        else:
            # One who spoke already: the same window, without counting them again.
            still_open = select(Proposal.id).where(
                Proposal.id == proposal_id, Proposal.status == DEBATE, Proposal.closes_at > now
            )
            if s.scalar(still_open) is None:
                raise Conflict(N_("the debate is not open"), code="not_open")
        row = Comment(proposal_id=proposal_id, user_id=person, body=text, created_at=now, parent_id=parent_id)
        row.depth, row.up, row.down = depth, 0, 0
        s.add(row)
        s.flush()
        return row.id


def debate_open(proposal: Proposal, now: datetime | None = None) -> bool:
    """Whether the proposal's debate takes words now: in its debate phase, before the window's end."""
    return proposal.status == DEBATE and not proposal.hidden and proposal.closes_at > (now or utcnow())


def debate(session: Session, identity: Identity, proposal_id: int, sort: str = "oldest") -> list[Said]:
    """A proposal's debate as a tree, the proposal's author's top comments pinned first (comments.thread)."""
    proposal = get(session, identity, proposal_id)
    return thread(session, identity, Comment.proposal_id == proposal_id, proposal.author_id, sort)


@dataclass
class Version:
    """One version of a proposal's text: the first as written, then one per edit; `diff` (for staff) says
    what changed from the version before."""

    title: str
    body: str
    written_at: datetime
    diff: list[str] = field(default_factory=list)


def edit(session: Session, identity: Identity, proposal_id: int, title: str, body: str) -> Proposal:
    """The author's edit of a proposal while it collects likes; the text it replaces is kept (and shown)."""
    person = _signed_in(identity)
    get(session, identity, proposal_id)
    proposal = session.scalar(select(Proposal).where(Proposal.id == proposal_id).with_for_update())
    if proposal.author_id != person:
        raise PermissionDenied(N_("only its author may edit a proposal"), code="not_author")
    if proposal.status != OPEN or proposal.hidden:
        raise Conflict(N_("a proposal can be edited only while it collects likes"), code="not_open")
    title = _text(title, "title", 5, TITLE_MAX)
    body = _text(body, "body", 20, BODY_MAX)
    if (title, body) == (proposal.title, proposal.body):
        return proposal
    if _same_title(title) != _same_title(proposal.title):
        _no_duplicate(session, title, other_than=proposal.id)
    now = utcnow()
    was = proposal.edited_at or proposal.created_at
    session.add(ProposalEdit(proposal_id=proposal.id, title=proposal.title, body=proposal.body, written_at=was))
    proposal.title, proposal.body, proposal.edited_at = title, body, now
    session.flush()
    audit.record(session, identity, "edit", "participation.proposal", proposal.id)
    return proposal


def history(session: Session, identity: Identity, proposal_id: int) -> list[Version]:
    """Every version of a proposal's text, the first first and the current last. Staff (who answer or
    moderate) get each version's changes from the one before as a unified diff."""
    proposal = get(session, identity, proposal_id)
    earlier = session.scalars(
        select(ProposalEdit).where(ProposalEdit.proposal_id == proposal_id).order_by(ProposalEdit.id)
    )
    versions = [Version(e.title, e.body, e.written_at) for e in earlier]
    versions.append(Version(proposal.title, proposal.body, proposal.edited_at or proposal.created_at))
    if identity.can("participation.answer") or identity.can("participation.moderate"):
        for before, after in zip(versions, versions[1:], strict=False):
            old = [before.title, "", *before.body.splitlines()]
            new = [after.title, "", *after.body.splitlines()]
            after.diff = list(difflib.unified_diff(old, new, lineterm="", n=1))[2:]
    return versions


def follow(session: Session, identity: Identity, proposal_id: int, on: bool = True, sms: bool = False) -> bool:
    """Follow a proposal (or stop): the same row as PUT /api/participation/follows/proposal/<id> writes."""
    return follows.follow(session, identity, KIND, proposal_id, on, sms=sms)


NEWS = {
    DEBATE: N_("The proposal “{title}” has enough likes: its public debate is open."),
    ANSWER_DUE: N_("The proposal “{title}” has enough debate participants: the city owes it an official answer."),
    ANSWERED: N_("The city has answered the proposal “{title}”."),
    EXPIRED: N_("The proposal “{title}” did not reach its threshold in time and is closed."),
}


def _tell_followers(session: Session, proposal: Proposal) -> int:
    """Queue the proposal's news to each follower (the author follows from the start) in their language, by
    web push, email, and SMS for those who asked (follows.notify_followers)."""
    return follows.notify_followers(
        session,
        KIND,
        proposal.id,
        NEWS[proposal.status],
        subject=N_("Your proposal's news"),
        params={"title": proposal.title},
    )


def queue(session: Session, identity: Identity) -> list[Proposal]:
    """The proposals a department owes something: in debate, answer due, or answered 'under review'; the
    caller's department's (administrators: every department's), soonest due first."""
    check(identity, "participation.answer")
    query = select(Proposal).where(
        Proposal.hidden.is_(False),
        or_(Proposal.status.in_((DEBATE, ANSWER_DUE)), Proposal.answer_status == "under_review"),
    )
    if identity.role != "admin":
        query = query.where(Proposal.department_code == identity.department_code)
    due = func.coalesce(Proposal.answer_due_at, Proposal.closes_at)
    return list(session.scalars(query.order_by(due, Proposal.id)))


def _responsible(session: Session, identity: Identity, proposal_id: int) -> Proposal:
    check(identity, "participation.answer")
    proposal = get(session, identity, proposal_id)
    if identity.role != "admin" and proposal.department_code != identity.department_code:
        raise PermissionDenied(N_("this proposal is another department's to answer"), code="other_department")
    return proposal


def answer(session: Session, identity: Identity, proposal_id: int, status: str, reasons: str) -> Proposal:
    """The official answer: accepted, partly, under review or rejected, with the reasons; followers hear of it."""
    proposal = _responsible(session, identity, proposal_id)
    if status not in ANSWERS:
        raise InvalidInput(N_("unknown answer; answers are: {known}"), params={"known": ", ".join(ANSWERS)})
    if proposal.status not in (DEBATE, ANSWER_DUE, ANSWERED):
        raise Conflict(N_("only a proposal in debate or owed an answer can be answered"), code="not_due")
    proposal.answer_status, proposal.answer = status, _text(reasons, "reasons", 10, TEXT_MAX)
    proposal.status, proposal.answered_at = ANSWERED, utcnow()
    session.flush()
    audit.record(session, identity, "answer", "participation.proposal", proposal.id, {"status": status})
    _tell_followers(session, proposal)
    return proposal


def follow_up(session: Session, identity: Identity, proposal_id: int, body: str) -> FollowUp:
    """What was done after the answer, and when (the row's time)."""
    proposal = _responsible(session, identity, proposal_id)
    if proposal.status != ANSWERED:
        raise Conflict(N_("a follow-up comes after the official answer"), code="not_answered")
    row = FollowUp(proposal_id=proposal.id, author_id=identity.user_id, body=_text(body, "follow-up", 5, TEXT_MAX))
    session.add(row)
    session.flush()
    audit.record(session, identity, "follow_up", "participation.proposal", proposal.id)
    return row


def follow_ups(session: Session, proposal_id: int) -> list[FollowUp]:
    return list(session.scalars(select(FollowUp).where(FollowUp.proposal_id == proposal_id).order_by(FollowUp.id)))


def hide(session: Session, identity: Identity, proposal_id: int, reason: str, hidden: bool = True) -> Proposal:
    """Hide a proposal (or show it again) with the reason, audited; a hidden proposal is gone for all but moderators."""
    check(identity, "participation.moderate")
    proposal = get(session, identity, proposal_id)
    why = _text(reason, "reason", 3, REASON_MAX)
    proposal.hidden, proposal.hidden_reason = hidden, why if hidden else None
    action = "hide" if hidden else "unhide"
    audit.record(session, identity, action, "participation.proposal", proposal.id, {"reason": why})
    return proposal


def report_abuse(session: Session, identity: Identity, proposal_id: int, reason: str) -> bool:
    """Report a proposal as abusive; once per person (a second report changes nothing). True when new."""
    person = _signed_in(identity)
    get(session, identity, proposal_id)
    why = _text(reason, "reason", 3, REASON_MAX)
    added = _insert_once(session, AbuseReport, proposal_id=proposal_id, user_id=person, reason=why, created_at=utcnow())
    if added:
        audit.record(session, identity, "report_abuse", "participation.proposal", proposal_id)
    return added


def abuse_reports(session: Session, identity: Identity) -> list[tuple[int, int, list[str]]]:
    """Proposals reported as abusive and still shown: (proposal id, reports, reasons), most reported first."""
    check(identity, "participation.moderate")
    rows = session.execute(
        select(AbuseReport.proposal_id, AbuseReport.reason)
        .join(Proposal, Proposal.id == AbuseReport.proposal_id)
        .where(Proposal.hidden.is_(False))
        .order_by(AbuseReport.id)
    )
    found: dict[int, list[str]] = {}
    for pid, reason in rows:
        found.setdefault(pid, []).append(reason)
    return sorted(((pid, len(r), r) for pid, r in found.items()), key=lambda t: (-t[1], t[0]))


def add_images(session: Session, identity: Identity, proposal_id: int, files: list[tuple[str, bytes]]) -> list[int]:
    """The author's pictures for a proposal while it collects likes (at most `max_images` in all): each checked
    and re-encoded without metadata (a phone's photo says where it was taken) before anything is stored; one
    bad file refuses them all, and a rolled-back transaction leaves no file."""
    from smartcity.core import images

    person = _signed_in(identity)
    proposal = get(session, identity, proposal_id)
    if proposal.author_id != person:
        raise PermissionDenied(N_("only its author may add pictures to a proposal"), code="not_author")
    if proposal.status != OPEN:
        raise Conflict(N_("pictures can be added only while the proposal collects likes"), code="not_open")
    db = session.info["db"]
    rules = settings_of(db)
    has = session.scalar(
        select(func.count()).select_from(ProposalImage).where(ProposalImage.proposal_id == proposal_id)
    )
    if has + len(files) > rules.max_images:
        raise InvalidInput(
            N_("a proposal may carry at most {count} pictures"),
            params={"count": rules.max_images},
            code="too_many_images",
        )
    cleaned = [images.clean(data, name, rules.max_image_bytes) for name, data in files]
    store = images.Files(session, images.uploads_root(context_of(db).settings.var_dir), "participation")
    added = []
    for one in cleaned:
        name = uuid.uuid4().hex
        row = ProposalImage(
            proposal_id=proposal_id,
            path=store.write(one.image, ".jpg", name),
            thumb_path=store.write(one.thumb, ".thumb.jpg", name),
            width=one.width,
            height=one.height,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        added.append(row.id)
    if added:
        audit.record(session, identity, "add_images", "participation.proposal", proposal_id, {"count": len(added)})
    return added


def images_of(session: Session, proposal_id: int) -> list[ProposalImage]:
    query = select(ProposalImage).where(ProposalImage.proposal_id == proposal_id).order_by(ProposalImage.id)
    return list(session.scalars(query))


def image_file(session: Session, identity: Identity, image_id: int, thumb: bool = False):
    """The file of a proposal's picture, for serving: as public as its proposal (hidden: moderators only)."""
    from smartcity.core import images

    row = session.get(ProposalImage, image_id)
    if row is None:
        raise NotFound(N_("no picture {id}"), params={"id": image_id})
    get(session, identity, row.proposal_id)
    root = images.uploads_root(context_of(session.info["db"]).settings.var_dir)
    path = root / (row.thumb_path if thumb else row.path)
    if not path.is_file():
        raise NotFound(N_("no picture {id}"), params={"id": image_id})
    return path


def hidden(session: Session, identity: Identity) -> list[Proposal]:
    """Moderators: the hidden proposals, most recently created first (each with its reason)."""
    check(identity, "participation.moderate")
    return list(session.scalars(select(Proposal).where(Proposal.hidden.is_(True)).order_by(Proposal.id.desc())))


def expire(db: Database, now: datetime | None = None) -> list[int]:
    """Close as expired the proposals whose window ended before they reached its threshold (the job)."""
    now = now or utcnow()
    done = []
    with db.session() as s:
        due = s.scalars(select(Proposal.id).where(Proposal.status.in_((OPEN, DEBATE)), Proposal.closes_at <= now)).all()
        for pid in due:
            moved = s.execute(
                update(Proposal)
                .where(Proposal.id == pid, Proposal.status.in_((OPEN, DEBATE)), Proposal.closes_at <= now)
                .values(status=EXPIRED)
            ).rowcount
            if moved:
                proposal = s.get(Proposal, pid)
                s.refresh(proposal)
                audit.record(s, "job:participation.expire", "expire", "participation.proposal", pid)
                _tell_followers(s, proposal)
                done.append(pid)
    return done
