"""Public updates to a report from outside the staff's screens: a partner system's (mySociety
servicerequestupdates) or a citizen's comment, the route a wanted status takes through the workflow, and the
feed of public updates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.auth import Identity
from smartcity.core.errors import InvalidInput, NotAuthenticated, PermissionDenied
from smartcity.reports.common import (
    CLOSED_STATUSES,
    MAX_UPDATE,
    OPEN_STATUSES,
    STATUSES,
    TRANSITIONS,
    _check_media_urls,
    _clean_text,
    _now,
    _raise_problems,
)
from smartcity.reports.models import ReportUpdate
from smartcity.reports.notifications import _notify_reporter
from smartcity.reports.views import can_work, get_report
from smartcity.reports.workflow import _changed, _set_status, _timeline


def add_update(
    session: Session,
    identity: Identity,
    report_id: int,
    text: str,
    *,
    status: str | None = None,
    external_id: str | None = None,
    author: str | None = None,
) -> ReportUpdate:
    """A public update from a partner system (mySociety servicerequestupdates) or a citizen's comment.

    Partners (API keys) and staff may change the status: "closed" (Open311) closes an open report (as
    fixed), "open" reopens a closed one; the internal statuses are accepted as in `partner_update`; a
    status the workflow cannot reach is refused (InvalidInput "illegal_transition"). A repeated
    external_id returns the earlier entry (idempotent)."""
    wanted = status.lower() if status else None
    loose = wanted in ("open", "closed")
    return _update(
        session, identity, report_id, text, wanted, loose=loose, external_id=external_id, author=author, strict=True
    ).entry


@dataclass
class UpdateOutcome:
    """What became of an update: its timeline entry, the report's status after it and, when the asked
    status was not applied, why (the text is kept all the same)."""

    entry: ReportUpdate
    status: str
    refused: str | None = None
    repeated: bool = False
    notices: list[dict] = field(default_factory=list)  # optional fields dropped: {field, problem}


def partner_update(
    session: Session,
    identity: Identity,
    report_id: int,
    text: str,
    *,
    status: str | None,
    loose: bool = False,
    external_id: str | None = None,
    media_url: str | None = None,
    author: str | None = None,
) -> UpdateOutcome:
    """A partner system's update (mySociety servicerequestupdates): its text is never lost.

    `status` is one of STATUSES, or with `loose` Open311's two words ("open": any open status, reopening
    a closed report; "closed": fixed if the report was open, else left as it is). A closed report (not a
    duplicate) reaches an open-side status through a reopen, as the workflow allows in two steps.
    "closed" as such means closed without a fix. A status the workflow cannot reach (or "duplicate",
    which needs the parent) leaves the status as it is: the text is kept as a public update and
    `refused` says why; a malformed media_url is dropped and noted. A repeated external_id returns the
    earlier entry (idempotent)."""
    return _update(
        session,
        identity,
        report_id,
        text,
        status,
        loose=loose,
        external_id=external_id,
        media_url=media_url,
        author=author,
        strict=False,
    )


def status_route(current: str, target: str) -> list[str] | None:
    """The steps from `current` to `target` the workflow allows: [] (already there), [target], or a reopen
    first (["open", target]) for a closed report other than a duplicate; None when there is no way."""
    if target == current:
        return []
    if target in TRANSITIONS[current]:
        return [target]
    if (
        current in CLOSED_STATUSES
        and current != "duplicate"
        and "open" in TRANSITIONS[current]
        and target in TRANSITIONS["open"]
    ):
        return ["open", target]
    return None


def _update(
    session: Session,
    identity: Identity,
    report_id: int,
    text: str,
    wanted: str | None,
    *,
    loose: bool,
    strict: bool,
    external_id: str | None = None,
    media_url: str | None = None,
    author: str | None = None,
) -> UpdateOutcome:
    report = get_report(session, report_id, lock=True)
    partner = identity.via == "key" or can_work(identity, report)
    if wanted and not partner:
        raise PermissionDenied("only the responsible unit or a partner system may change the status")
    if not identity.authenticated:
        raise NotAuthenticated("sign in or present an API key to add an update")
    external_id = str(external_id)[:100] if external_id else None
    if external_id:
        seen = session.scalar(
            select(ReportUpdate).where(ReportUpdate.report_id == report.id, ReportUpdate.external_id == external_id)
        )
        if seen is not None:
            return UpdateOutcome(seen, report.status, repeated=True)
    problems: list[dict] = []
    notices: list[dict] | None = None if strict else []
    text = _clean_text(text, "description", MAX_UPDATE, problems, required=True)
    media = _check_media_urls([media_url] if media_url else [], problems, notices)
    _raise_problems(problems, "the update is not valid")
    old = report.status
    now = _now()
    target, refused, route = old, None, []
    if wanted:
        if wanted not in STATUSES:
            raise InvalidInput(f"unknown status {wanted!r}", code="invalid_status")
        target = wanted
        if loose and wanted == "closed":
            target = "fixed" if old in OPEN_STATUSES else old
        elif loose and wanted == "open" and old in OPEN_STATUSES:
            target = old
        route = status_route(old, target) if target != "duplicate" else None
        if route is None:
            why = (
                "a duplicate needs the report it duplicates"
                if target == "duplicate"
                else f"a report cannot go from {old} to {target}"
            )
            if strict:
                raise InvalidInput(
                    why,
                    code="illegal_transition",
                    details={"from": old, "to": target, "allowed": sorted(TRANSITIONS[old])},
                )
            refused, route = f"{why}; the status stays {old}", []
    for step in route:
        _set_status(report, step, now)
    if route and report.status in OPEN_STATUSES and old in CLOSED_STATUSES:
        report.parent_id = None
    if route and wanted == "closed" and not loose:
        report.fixed_at = None  # "closed" as such: closed without a fix (mySociety's NO_FURTHER_ACTION)
    changed = report.status != old
    entry = _timeline(
        session,
        report,
        identity,
        "status" if changed else "update",
        old if changed else None,
        report.status if changed else None,
        text,
        public=True,
        actor_label=author[:200] if author else None,
        external_id=external_id,
        at=now,
    )
    entry.media_url = media[0] if media else None
    _changed(
        session,
        report,
        identity,
        entry,
        {"old": old, "new": report.status, "external_id": external_id, "route": route, "refused": refused},
    )
    if changed or partner:
        _notify_reporter(session, report, "status" if changed else "update", text=text)
    return UpdateOutcome(entry, report.status, refused, notices=notices or [])


def updates_since(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    report_id: int | None = None,
    limit: int = 1000,
) -> list[ReportUpdate]:
    """Public timeline entries (status changes and updates) in a time window, oldest first: the feed of
    mySociety's GET servicerequestupdates."""
    q = select(ReportUpdate).where(
        ReportUpdate.public.is_(True), ReportUpdate.kind.in_(("status", "update", "reassign", "feedback"))
    )
    if start:
        q = q.where(ReportUpdate.at >= start)
    if end:
        q = q.where(ReportUpdate.at <= end)
    if report_id is not None:
        q = q.where(ReportUpdate.report_id == int(report_id))
    return list(session.scalars(q.order_by(ReportUpdate.at, ReportUpdate.id).limit(min(limit, 10_000))))
