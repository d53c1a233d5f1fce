"""Citizens' reports of single debate comments (a proposal's comments and a standalone debate's arguments):
one per person per comment, with a reason; the moderators' queue of reported comments (counts and reasons);
a moderator hides the comment (its author is told) or dismisses the reports. Every step is audited."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from smartcity.core import audit, notify
from smartcity.core.auth import Identity, check
from smartcity.core.context import context_of
from smartcity.core.db import utcnow
from smartcity.core.errors import Conflict, InvalidInput, TooManyRequests
from smartcity.core.i18n import N_, translate
from smartcity.core.models import User
from smartcity.participation.comments import HIDDEN_COMMENT, thread_of, visible_comment
from smartcity.participation.common import REASON_MAX, insert_once, settings_of, signed_in, text
from smartcity.participation.models import Comment, CommentReport, Debate, Proposal

REASONS = {
    "spam": N_("Spam or advertising"),
    "abuse": N_("Abuse or harassment"),
    "personal_data": N_("Someone's personal data"),
    "off_topic": N_("Off topic"),
    "other": N_("Something else"),
}
HIDDEN_TITLE = N_("Your comment was hidden")
HIDDEN_NEWS = N_("A moderator has hidden your comment: {reason}")


def report(session: Session, identity: Identity, comment_id: int, reason: str, words: str = "") -> bool:
    """Report a comment, once per person (a second report changes nothing; True when new). `reason` is one of
    REASONS; "other" needs the person's own words. At most `comment_reports_per_hour` reports an hour."""
    person = signed_in(identity)
    if reason not in REASONS:
        raise InvalidInput(
            N_("unknown reason; reasons are: {known}"), params={"known": ", ".join(REASONS)}, code="bad_reason"
        )
    said = text(words, "text", 3 if reason == "other" else 0, REASON_MAX) or None
    row = visible_comment(session, identity, comment_id)
    if row.hidden:
        raise Conflict(HIDDEN_COMMENT, code="hidden")
    now = utcnow()
    most = settings_of(session.info["db"]).comment_reports_per_hour
    made = session.scalar(
        select(func.count())
        .select_from(CommentReport)
        .where(CommentReport.user_id == person, CommentReport.created_at > now - timedelta(hours=1))
    )
    if made >= most:
        raise TooManyRequests(
            N_("you have reported {count} comments in the last hour, as many as one person may; try again later"),
            params={"count": made},
            code="too_many_reports",
        )
    added = insert_once(
        session, CommentReport, comment_id=row.id, user_id=person, reason=reason, text=said, created_at=now
    )
    if added:
        audit.record(session, identity, "report_abuse", "participation.comment", row.id, {"reason": reason})
    return added


@dataclass
class Reported:
    """A reported comment still to decide: its thread, how many reported it, and why (reason → count, and the
    reporters' own words; never who they are)."""

    comment: Comment
    thread: Proposal | Debate
    count: int
    reasons: dict[str, int] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)


def queue(session: Session, identity: Identity) -> list[Reported]:
    """Moderators: the shown comments with open reports, most reported first."""
    check(identity, "participation.moderate")
    rows = session.execute(
        select(CommentReport.reason, CommentReport.text, Comment, Proposal, Debate)
        .join(Comment, Comment.id == CommentReport.comment_id)
        .outerjoin(Proposal, Proposal.id == Comment.proposal_id)
        .outerjoin(Debate, Debate.id == Comment.debate_id)
        .where(CommentReport.settled.is_(None), Comment.hidden.is_(False))
        .order_by(CommentReport.id)
    )
    found: dict[int, Reported] = {}
    for reason, words, comment, proposal, debate in rows:
        one = found.setdefault(comment.id, Reported(comment, proposal or debate, 0))
        one.count += 1
        one.reasons[reason] = one.reasons.get(reason, 0) + 1
        if words:
            one.words.append(words)
    return sorted(found.values(), key=lambda r: (-r.count, r.comment.id))


def dismiss(session: Session, identity: Identity, comment_id: int) -> int:
    """Moderators: the comment stays; its open reports are settled as dismissed (how many), audited."""
    check(identity, "participation.moderate")
    row = visible_comment(session, identity, comment_id)
    settled = settle(session, row, "dismissed")
    audit.record(
        session, identity, "dismiss_reports", "participation.comment", row.id, {"reports": settled, **thread_of(row)}
    )
    return settled


def settle(session: Session, row: Comment, how: str) -> int:
    """Close the comment's open reports (`how`: hidden or dismissed); when hidden, its author is told, in their
    language, by web push and email. How many reports were settled."""
    settled = session.execute(
        update(CommentReport)
        .where(CommentReport.comment_id == row.id, CommentReport.settled.is_(None))
        .values(settled=how)
    ).rowcount
    if how == "hidden":
        author = session.get(User, row.user_id)
        if author is not None and author.active:
            language = author.language or context_of(session.info["db"]).profile.language
            title = translate(language, HIDDEN_TITLE)
            news = translate(language, HIDDEN_NEWS, reason=row.hidden_reason or "")
            place = (
                f"/participation/debates/{row.debate_id}"
                if row.debate_id
                else f"/participation/proposals/{row.proposal_id}"
            )
            url, ref = f"{place}#comment-{row.id}", f"comment:{row.id}"
            notify.queue_push(session, author.id, title, news, url=url, topic="participation.comment", ref=ref)
            if author.email:
                notify.queue(
                    session,
                    "email",
                    author.email,
                    news,
                    subject=title,
                    topic="participation.comment",
                    ref=ref,
                    user_id=author.id,
                    url=url,
                )
    return settled
