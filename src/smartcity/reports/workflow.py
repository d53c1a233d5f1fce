"""The staff workflow: support, status transitions, assignment, notes, bulk actions, reassignment, merge
and feedback (partner and citizen updates: `updates`)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied
from smartcity.core.events import publish
from smartcity.core.i18n import localized
from smartcity.core.models import User
from smartcity.reports.common import (
    CLOSED_STATUSES,
    MAX_UPDATE,
    OPEN_STATUSES,
    STATUSES,
    TRANSITIONS,
    _citizen,
    _clean_text,
    _now,
    _raise_problems,
    reports_settings,
    settings_of,
)
from smartcity.reports.models import Report, ReportPhoto, ReportSupport, ReportUpdate, ResponseTemplate
from smartcity.reports.notifications import _notify_reporter, feedback_token
from smartcity.reports.photos import Upload, process
from smartcity.reports.routing import _unit
from smartcity.reports.views import _require_work, event_data, get_report


def supporter_key(identity: Identity, fingerprint: str | None = None) -> str:
    """How a supporter is counted once: a user, a key, or a hashed browser fingerprint."""
    if identity.user_id:
        return f"user:{identity.user_id}"
    if identity.key_id:
        return f"key:{identity.key_id}:{hashlib.sha256((fingerprint or '').encode()).hexdigest()[:24]}"
    if not fingerprint:
        raise InvalidInput("an anonymous supporter needs a fingerprint", code="no_fingerprint")
    return f"anon:{hashlib.sha256(fingerprint.encode()).hexdigest()[:32]}"


def support(session: Session, identity: Identity, report_id: int, *, fingerprint: str | None = None) -> int:
    """Say "me too" on an open report; counted once per supporter, never by its signed-in reporter (403
    "own_report"). Returns the support count."""
    report = get_report(session, report_id, lock=True)
    if report.status not in OPEN_STATUSES:
        raise InvalidInput("only open reports can be supported", code="report_closed")
    if identity.user_id and identity.user_id == report.reporter_id:
        # A reporter's own "me too" would inflate the count that tells staff how many people are affected.
        raise PermissionDenied("you cannot support your own report", code="own_report")
    who = supporter_key(identity, fingerprint)
    if (
        session.scalar(
            select(ReportSupport.id).where(ReportSupport.report_id == report.id, ReportSupport.supporter == who)
        )
        is not None
    ):
        return report.support_count
    session.add(ReportSupport(report_id=report.id, supporter=who))
    report.support_count += 1
    report.updated_at = _now()
    _timeline(session, report, identity, "support", None, None, "", public=True, actor_label=_citizen(identity))
    session.flush()
    return report.support_count


def _timeline(
    session: Session,
    report: Report,
    identity: Identity,
    kind: str,
    old: str | None,
    new: str | None,
    text: str,
    *,
    public: bool,
    actor_label: str | None = None,
    external_id: str | None = None,
    at: datetime | None = None,
) -> ReportUpdate:
    entry = ReportUpdate(
        report_id=report.id,
        at=at or _now(),
        actor_id=identity.user_id,
        actor=actor_label or identity.label,
        kind=kind,
        public=public,
        old_value=old[:200] if old else None,
        new_value=new[:200] if new else None,
        text=text,
        status=report.status,
        external_id=external_id,
    )
    session.add(entry)
    return entry


def _changed(session: Session, report: Report, identity: Identity, entry: ReportUpdate, detail: dict) -> None:
    """Book-keeping shared by every change: updated time, audit entry, public event."""
    report.updated_at = entry.at
    audit.record(session, identity, entry.kind, "report", report.id, detail)
    if entry.public:
        publish(session, "report.updated", {**event_data(report), "kind": entry.kind})


def _template_text(session: Session, template_id: int | None, language: str, status: str) -> str:
    """A response template's text for an update to `status`; a template written for another status is
    refused (InvalidInput "template_status"), so a "fixed" answer is never sent while acknowledging."""
    if template_id is None:
        return ""
    tpl = session.get(ResponseTemplate, template_id)
    if tpl is None:
        raise NotFound("no such response template")
    if tpl.status and tpl.status != status:
        raise InvalidInput(
            f"the response template {tpl.title!r} is for the status {tpl.status}, not {status}",
            code="template_status",
            details=[
                {
                    "field": "template_id",
                    "code": "template_status",
                    "problem": f"this template is for the status {tpl.status}, not {status}",
                    "template_status": tpl.status,
                    "status": status,
                }
            ],
        )
    return localized(tpl, "text", language)


def _set_status(report: Report, status: str, now: datetime) -> None:
    report.status = status
    if status == "acknowledged" and report.acknowledged_at is None:
        report.acknowledged_at = now
    if status == "fixed":
        report.fixed_at = now
    if status in CLOSED_STATUSES and status != "fixed":
        report.closed_at = now
    if status in OPEN_STATUSES:
        report.fixed_at = None if status == "open" else report.fixed_at
        report.closed_at = None


def transition(
    session: Session,
    identity: Identity,
    report_id: int,
    status: str,
    *,
    text: str = "",
    template_id: int | None = None,
    parent_id: int | None = None,
    after_photo: Upload | None = None,
) -> Report:
    """Move a report to a new status (staff of its unit). `text` (or a response template) is the public
    answer; the reporter is notified. `duplicate` needs `parent_id` (it merges into that report). Marking
    it fixed may carry an `after_photo` (the reporters' photo pipeline: checked, re-encoded, no metadata),
    shown on the public page as "after"; with any other status it is refused."""
    if status == "duplicate":
        if parent_id is None:
            raise InvalidInput("a duplicate needs the report it duplicates", code="parent_required")
        merge(session, identity, parent_id, [report_id], text=text)
        return get_report(session, report_id)
    report = get_report(session, report_id, lock=True)
    _require_work(identity, report)
    if status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}", code="invalid_status")
    if status not in TRANSITIONS[report.status]:
        raise InvalidInput(
            f"a report cannot go from {report.status} to {status}",
            code="illegal_transition",
            details={"from": report.status, "to": status, "allowed": sorted(TRANSITIONS[report.status])},
        )
    problems: list[dict] = []
    # The template is checked even when the text was written over it: the choice itself must suit the status.
    canned = _template_text(session, template_id, report.language, status)
    text = _clean_text(text, "text", MAX_UPDATE, problems) or canned
    if after_photo is not None and status != "fixed":
        problems.append({"field": "after_photo", "code": "after_photo_not_fixed", "problem": "only when marking fixed"})
    _raise_problems(problems, "the update is not valid")
    settings = settings_of(session)
    # Checked and re-encoded before anything changes: a bad photo leaves the report as it was.
    photo = process(after_photo, reports_settings(session).max_photo_bytes) if after_photo else None
    old = report.status
    now = _now()
    if photo is not None:
        from smartcity.reports.intake import _store_photos  # intake builds on this module

        taken = session.scalar(
            select(func.count())
            .select_from(ReportPhoto)
            .where(ReportPhoto.report_id == report.id, ReportPhoto.stage == "after")
        )
        _store_photos(session, settings, report.id, [photo], start=taken or 0, stage="after")
    _set_status(report, status, now)
    if status in OPEN_STATUSES and old in CLOSED_STATUSES:
        report.parent_id = None
    entry = _timeline(session, report, identity, "status", old, status, text, public=True, at=now)
    _changed(session, report, identity, entry, {"old": old, "new": status})
    _notify_reporter(session, report, "status", text=text)
    return report


def assign(session: Session, identity: Identity, report_id: int, user_id: int | None) -> Report:
    """Give a report to a person of its unit (or take it back with None). Internal."""
    report = get_report(session, report_id, lock=True)
    _require_work(identity, report)
    old = session.get(User, report.assignee_id).username if report.assignee_id else None
    new = None
    if user_id is not None:
        user = session.get(User, int(user_id))
        if user is None or not user.active or user.department_id != report.unit_id:
            raise InvalidInput("the assignee must be an active member of the report's unit", code="invalid_assignee")
        new = user.username
    report.assignee_id = user_id
    entry = _timeline(session, report, identity, "assign", old, new, "", public=False)
    _changed(session, report, identity, entry, {"old": old, "new": new})
    return report


def add_note(session: Session, identity: Identity, report_id: int, text: str, *, public: bool = False) -> ReportUpdate:
    """Staff write an internal note (public=False) or a public update (public=True, the reporter is told)."""
    report = get_report(session, report_id, lock=True)
    _require_work(identity, report)
    problems: list[dict] = []
    text = _clean_text(text, "text", MAX_UPDATE, problems, required=True)
    _raise_problems(problems, "the note is not valid")
    entry = _timeline(session, report, identity, "update" if public else "note", None, None, text, public=public)
    _changed(session, report, identity, entry, {"public": public})
    if public:
        _notify_reporter(session, report, "update", text=text)
    return entry


MAX_BULK = 200  # reports one bulk action may touch (a queue page is 50)


@dataclass
class BulkOutcome:
    """What a bulk action did: the reports changed, and those refused with the reason (code, message)."""

    done: list[int] = field(default_factory=list)
    refused: dict[int, dict] = field(default_factory=dict)


def bulk_action(
    db,
    identity: Identity,
    report_ids: Iterable[int],
    *,
    status: str | None = None,
    text: str = "",
    template_id: int | None = None,
    department: str | None = None,
    assignee_id: int | None = None,
) -> BulkOutcome:
    """One change for several reports of the queue: a status (with one template or text), another unit,
    or an assignee; exactly one of them.

    Each report is changed in a transaction of its own, through the same function as one by one (so each is
    checked, audited and its reporter told as usual): a report that cannot take the change (another unit's,
    a status it cannot reach) is refused and left as it was, and the others go through. What applies to the
    whole request (no reports, several actions, a template of another status) is refused before any report
    is touched."""
    check(identity, "reports.work")
    ids = list(dict.fromkeys(int(i) for i in report_ids))
    if not ids:
        raise InvalidInput("choose at least one report", code="no_reports")
    if len(ids) > MAX_BULK:
        raise InvalidInput(f"at most {MAX_BULK} reports at once", code="too_many_reports")
    chosen = [name for name, v in (("status", status), ("department", department), ("assignee", assignee_id)) if v]
    if len(chosen) != 1:
        raise InvalidInput("choose one change: a status, a department or an assignee", code="one_action")
    if template_id is not None:
        if not status:
            raise InvalidInput("a response template goes with a status", code="template_status")
        with db.session() as s:
            _template_text(s, template_id, "en", status)  # only its check matters here: the text is per report
    outcome = BulkOutcome()
    for report_id in ids:
        try:
            with db.session() as s:
                if status:
                    transition(s, identity, report_id, status, text=text, template_id=template_id)
                elif department:
                    reassign(s, identity, report_id, department, reason=text)
                else:
                    assign(s, identity, report_id, assignee_id)
        except (InvalidInput, PermissionDenied, NotFound) as exc:
            outcome.refused[report_id] = {"code": exc.code, "message": exc.message}
        else:
            outcome.done.append(report_id)
    return outcome


def reassign(session: Session, identity: Identity, report_id: int, department_code: str, *, reason: str = "") -> Report:
    """Send a report to another unit (staff of the current unit, or administrators). The timeline keeps
    the history; the assignee is cleared. Publicly visible: the citizen sees who has it now."""
    report = get_report(session, report_id, lock=True)
    _require_work(identity, report)
    unit = _unit(session, department_code)
    if unit is None or unit.kind != "department":
        raise InvalidInput(f"unknown department {department_code!r}", code="unknown_department")
    if unit.id == report.unit_id:
        raise InvalidInput("the report is already with that unit", code="same_unit")
    problems: list[dict] = []
    reason = _clean_text(reason, "reason", MAX_UPDATE, problems)
    _raise_problems(problems, "the reassignment is not valid")
    old = report.unit.code
    report.unit_id, report.assignee_id = unit.id, None
    session.flush()
    session.refresh(report, ["unit"])
    entry = _timeline(session, report, identity, "reassign", old, unit.code, reason, public=True)
    _changed(session, report, identity, entry, {"old": old, "new": unit.code})
    return report


def merge(session: Session, identity: Identity, parent_id: int, child_ids: Iterable[int], *, text: str = "") -> Report:
    """Mark reports as duplicates of a parent: each child points to it and closes as `duplicate`; their
    supports (and their reporters, as supporters) move to the parent. Staff of the units involved."""
    parent = get_report(session, parent_id, lock=True)
    _require_work(identity, parent)
    if parent.status == "duplicate":
        raise InvalidInput("the parent is itself a duplicate", code="invalid_parent")
    children = []
    for cid in child_ids:
        child = get_report(session, cid, lock=True)
        if child.id == parent.id:
            raise InvalidInput("a report cannot duplicate itself", code="invalid_parent")
        _require_work(identity, child)
        if child.status == "duplicate":
            raise InvalidInput(f"report {child.id} is already a duplicate", code="illegal_transition")
        children.append(child)
    problems: list[dict] = []
    text = _clean_text(text, "text", MAX_UPDATE, problems)
    _raise_problems(problems, "the merge is not valid")
    now = _now()
    have = set(session.scalars(select(ReportSupport.supporter).where(ReportSupport.report_id == parent.id)))
    parent_reporter = f"user:{parent.reporter_id}" if parent.reporter_id else None
    for child in children:
        moved = 0
        for sup in session.scalars(select(ReportSupport).where(ReportSupport.report_id == child.id)):
            if sup.supporter in have or sup.supporter == parent_reporter:
                session.delete(sup)
            else:
                sup.report_id = parent.id
                have.add(sup.supporter)
                moved += 1
        reporter = f"user:{child.reporter_id}" if child.reporter_id else f"report:{child.id}"
        if reporter not in have and reporter != parent_reporter:
            session.add(ReportSupport(report_id=parent.id, supporter=reporter))
            have.add(reporter)
            moved += 1
        parent.support_count += moved
        child.support_count = 0
        # Duplicates of the child now duplicate the parent.
        session.execute(update(Report).where(Report.parent_id == child.id).values(parent_id=parent.id))
        old = child.status
        child.parent_id = parent.id
        _set_status(child, "duplicate", now)
        entry = _timeline(
            session, child, identity, "status", old, "duplicate", text or f"#{parent.id}", public=True, at=now
        )
        _changed(session, child, identity, entry, {"old": old, "new": "duplicate", "parent": parent.id})
        _notify_reporter(session, child, "duplicate", text=text, parent=parent)
    entry = _timeline(
        session, parent, identity, "merge", None, ",".join(str(c.id) for c in children), "", public=False, at=now
    )
    _changed(session, parent, identity, entry, {"children": [c.id for c in children]})
    session.flush()
    return parent


def is_reporter(session: Session, identity: Identity, report: Report, token: str | None) -> bool:
    if identity.user_id and identity.user_id == report.reporter_id:
        return True
    return bool(token) and hmac.compare_digest(str(token), feedback_token(report, settings_of(session)))


def feedback(
    session: Session,
    identity: Identity,
    report_id: int,
    *,
    fixed: bool,
    rating: int | None = None,
    comment: str = "",
    token: str | None = None,
) -> Report:
    """After a fix the reporter (signed in, or with the secret link) confirms it (→ closed) or says it is
    not fixed (→ reopened, back to the unit), and may rate the work 1–5."""
    report = get_report(session, report_id, lock=True)
    if not is_reporter(session, identity, report, token):
        raise PermissionDenied("only the reporter can confirm or reopen this report", code="not_reporter")
    if report.status != "fixed":
        raise InvalidInput("the report is not marked fixed", code="not_fixed")
    problems: list[dict] = []
    comment = _clean_text(comment, "comment", MAX_UPDATE, problems)
    if rating is not None and (not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5):
        problems.append({"field": "rating", "code": "invalid_rating", "problem": "must be a whole number 1 to 5"})
    _raise_problems(problems, "the feedback is not valid")
    old, now = report.status, _now()
    if rating is not None:
        report.rating = rating
    _set_status(report, "closed" if fixed else "open", now)
    text = comment
    if rating is not None:
        text = f"★{rating} {comment}".strip()
    entry = _timeline(
        session, report, identity, "feedback", old, report.status, text, public=True, actor_label="reporter", at=now
    )
    _changed(session, report, identity, entry, {"old": old, "new": report.status, "rating": rating})
    return report
