"""Debate comments, a proposal's or a standalone debate's alike: the thread as read (a tree, pinned and sorted),
votes up and down, a moderator's hiding, and citizens' reports of single comments with the moderators' queue.

A comment belongs to one thread: its proposal (`proposal_id`) or its debate (`debate_id`); it is as visible as
that thread (a hidden proposal or debate: moderators only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.db import Database, utcnow
from smartcity.core.errors import Conflict, InvalidInput, NotFound
from smartcity.core.i18n import N_
from smartcity.core.models import User
from smartcity.participation.common import REASON_MAX, insert_once, signed_in, text
from smartcity.participation.models import Comment, CommentVote, Debate, Proposal

HIDDEN_COMMENT = N_("a moderator has hidden this comment: it takes no replies or votes")
SORTS = {"newest": N_("Newest"), "supported": N_("Most supported"), "oldest": N_("Oldest")}
NO_COMMENT = N_("no comment {id}")


@dataclass
class Said:
    """A debate comment as read: who said it, whether the thread's author did (pinned on top), the reader's
    own vote, and the replies under it."""

    comment: Comment
    name: str
    by_author: bool
    my_vote: int = 0
    replies: list[Said] = field(default_factory=list)
    body: str | None = None  # None: hidden by a moderator, and the reader is no moderator (a notice instead)


def _heard(comment: Comment, name: str, by_author: bool, moderator: bool) -> Said:
    if comment.hidden and not moderator:
        return Said(comment, "", False, body=None)
    return Said(comment, name, by_author, body=comment.body)


def _order(sort: str):
    if sort not in SORTS:
        raise InvalidInput(N_("unknown order; orders are: {known}"), params={"known": ", ".join(SORTS)})
    if sort == "supported":
        return lambda said: (-(said.comment.up - said.comment.down), -said.comment.up, said.comment.id)
    if sort == "newest":
        return lambda said: -said.comment.id
    return lambda said: said.comment.id


def thread(session: Session, identity: Identity, where, author_id: int, sort: str = "oldest") -> list[Said]:
    """The comments `where` selects (one thread) as a tree: the thread author's top comments pinned first, then
    the others in the order asked (oldest, newest, most supported: ups less downs); replies under their
    comment, in the same order. The caller has checked the thread is visible to `identity`."""
    key = _order(sort)
    rows = session.execute(
        select(Comment, User.display_name, User.username)
        .join(User, User.id == Comment.user_id)
        .where(where)
        .order_by(Comment.id)
    )
    moderator = identity.can("participation.moderate")
    said = {c.id: _heard(c, shown or name, c.user_id == author_id, moderator) for c, shown, name in rows}
    if identity.user_id is not None and said:
        mine = session.execute(
            select(CommentVote.comment_id, CommentVote.value)
            .join(Comment, Comment.id == CommentVote.comment_id)
            .where(where, CommentVote.user_id == identity.user_id)
        )
        for cid, value in mine:
            said[cid].my_vote = value
    top: list[Said] = []
    for one in said.values():
        parent = said.get(one.comment.parent_id) if one.comment.parent_id else None
        (parent.replies if parent else top).append(one)
    for one in said.values():
        one.replies.sort(key=key)
    return sorted(top, key=lambda one: (not one.by_author, key(one)))


def visible_comment(session: Session, identity: Identity, comment_id: int, lock: bool = False) -> Comment:
    """A comment whose thread the reader may see; otherwise it does not exist."""
    row = None
    if 0 < comment_id < 2**31:  # PostgreSQL's integer: a larger id is no comment, not a database error
        query = select(Comment).where(Comment.id == comment_id)
        row = session.scalar(query.with_for_update() if lock else query)
    if row is not None:
        owner = session.get(Debate, row.debate_id) if row.debate_id else session.get(Proposal, row.proposal_id)
        if owner is None or (owner.hidden and not identity.can("participation.moderate")):
            row = None
    if row is None:
        raise NotFound(NO_COMMENT, params={"id": comment_id})
    return row


def thread_of(row: Comment) -> dict:
    """The thread a comment is in, as audit details name it."""
    return {"debate": row.debate_id} if row.debate_id else {"proposal": row.proposal_id}


def vote_comment(db: Database, identity: Identity, comment_id: int, value: int | None) -> Comment:
    """Vote a debate comment up (+1) or down (-1), change one's vote, or withdraw it (None); one vote per
    person. The comment's row is locked first and its counts recounted from the votes, so concurrent votes
    cannot lose one another."""
    person = signed_in(identity)
    if value not in (1, -1, None):
        raise InvalidInput(N_("a vote is +1 (up) or -1 (down)"))
    with db.session() as s:
        row = visible_comment(s, identity, comment_id, lock=True)
        if row.hidden:
            raise Conflict(HIDDEN_COMMENT, code="hidden")
        mine = (CommentVote.comment_id == comment_id, CommentVote.user_id == person)
        if value is None:
            s.execute(delete(CommentVote).where(*mine))
        elif not insert_once(s, CommentVote, comment_id=comment_id, user_id=person, value=value):
            s.execute(update(CommentVote).where(*mine).values(value=value))
        counts = dict(
            s.execute(
                select(CommentVote.value, func.count())
                .where(CommentVote.comment_id == comment_id)
                .group_by(CommentVote.value)
            ).all()
        )
        s.execute(update(Comment).where(Comment.id == comment_id).values(up=counts.get(1, 0), down=counts.get(-1, 0)))
        s.refresh(row)
        s.expunge(row)
        return row


def hide_comment(session: Session, identity: Identity, comment_id: int, reason: str, hidden: bool = True) -> Comment:
    """Hide one debate comment (or show it again) with the reason, audited: the public reads a notice in its
    place, its replies stay; moderators still read it, with the reason."""
    from smartcity.participation import comment_reports

    check(identity, "participation.moderate")
    row = visible_comment(session, identity, comment_id)
    why = text(reason, "reason", 3, REASON_MAX)
    row.hidden, row.hidden_reason = hidden, why if hidden else None
    session.flush()
    detail = {"reason": why, **thread_of(row)}
    audit.record(session, identity, "hide" if hidden else "unhide", "participation.comment", row.id, detail)
    if hidden:
        comment_reports.settle(session, row, "hidden")
    return row


def hidden_comments(session: Session, identity: Identity) -> list[tuple[Comment, Proposal | Debate]]:
    """Moderators: the hidden debate comments, most recent first, with their threads (proposal or debate)."""
    check(identity, "participation.moderate")
    rows = session.execute(
        select(Comment, Proposal, Debate)
        .outerjoin(Proposal, Proposal.id == Comment.proposal_id)
        .outerjoin(Debate, Debate.id == Comment.debate_id)
        .where(Comment.hidden.is_(True))
        .order_by(Comment.id.desc())
    )
    return [(c, p or d) for c, p, d in rows]


def comment_proposal(session: Session, comment_id: int) -> int | None:
    """The proposal a debate comment belongs to (None for a standalone debate's)."""
    if not 0 < comment_id < 2**31:
        return None
    return session.scalar(select(Comment.proposal_id).where(Comment.id == comment_id))


def comment_debate(session: Session, comment_id: int) -> int | None:
    """The standalone debate a comment belongs to (None for a proposal's)."""
    if not 0 < comment_id < 2**31:
        return None
    return session.scalar(select(Comment.debate_id).where(Comment.id == comment_id))


def add_to(session: Session, row: Comment) -> int:
    """Store a new comment (its thread already checked open); its id."""
    row.created_at = row.created_at or utcnow()
    row.up, row.down = 0, 0
    session.add(row)
    session.flush()
    return row.id
