"""How the audit page tells the reports service's entries (core.audit.AuditWords, Module.audit)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.audit import AuditWords
from smartcity.core.i18n import N_, gettext, localized
from smartcity.reports.common import STATUS_NAMES, status_name
from smartcity.reports.models import Category


def _status(language: str, value: Any) -> str | None:
    # "old"/"new" hold a status for a status change, a user or a unit for the others: only statuses are named.
    return status_name(value, language) if isinstance(value, str) and value in STATUS_NAMES else None


SOURCE_NAMES = {
    "web": N_("the web form"),
    "open311": N_("an Open311 client"),
    "cli": N_("the command line"),
    "call120": N_("the 120 call centre"),
    "demo": N_("the demo"),
    "api": N_("the API"),
}


def _source(language: str, value: Any) -> str | None:
    return gettext(language, SOURCE_NAMES[value]) if value in SOURCE_NAMES else None


def _categories(session: Session, language: str, codes: set[str]) -> dict[str, str]:
    rows = session.scalars(select(Category).where(Category.code.in_(codes)))
    return {c.code: localized(c, "name", language) for c in rows}


WORDS = AuditWords(
    subjects={
        "report": N_("report"),
        "report_category": N_("report category"),
        "report_campaign": N_("campaign"),
        "report_template": N_("response template"),
        "report_route": N_("routing rule"),
        "report_subscription": N_("report subscription"),
    },
    actions={
        "status": N_("{actor} changed the status of {subject}"),
        "assign": N_("{actor} assigned {subject}"),
        "reassign": N_("{actor} sent {subject} to another department"),
        "note": N_("{actor} added an internal note to {subject}"),
        "merge": N_("{actor} merged duplicates into {subject}"),
        "feedback": N_("{actor} rated the answer to {subject}"),
        "purge_contacts": N_("{actor} erased the old contact details of {subject}"),
        "fetch_media": N_("{actor} fetched the photos of {subject}"),
        "subscribe": N_("{actor} subscribed to {subject}"),
        "unsubscribe": N_("{actor} unsubscribed from {subject}"),
    },
    actors={"job:media_url": N_("the photo fetching job"), "job:retention": N_("the contact retention job")},
    keys={
        "old": N_("before"),
        "new": N_("after"),
        "unit": N_("department"),
        "parent": N_("kept report"),
        "children": N_("merged reports"),
        "public": N_("shown to the public"),
        "rating": N_("rating"),
        "external_id": N_("number in the other system"),
    },
    values={"report:old": _status, "report:new": _status, "report:source": _source},
    lookups={"report:category": _categories},
)
