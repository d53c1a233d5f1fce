"""What every part of the reports service shares: statuses, limits, settings, text and link checks."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from smartcity.core.auth import Identity
from smartcity.core.city import CityProfile
from smartcity.core.context import AppContext, context_of
from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput
from smartcity.core.i18n import NP_, localized, translations
from smartcity.core.params import bbox as parse_bbox  # noqa: F401 - re-exported by the service facade
from smartcity.reports.settings import ReportsSettings
from smartcity.settings import Settings

H3_RES = 9


HEAT_RES = 8


NEARBY_M = 50.0


MAX_TITLE = 200


MAX_DESCRIPTION = 4000


MAX_ADDRESS = 300


MAX_UPDATE = 4000


MAX_PAGE_SIZE = 1000


STATUSES = ("open", "acknowledged", "in_progress", "fixed", "closed", "duplicate", "not_responsible", "referred")


OPEN_STATUSES = frozenset({"open", "acknowledged", "in_progress"})


CLOSED_STATUSES = frozenset(STATUSES) - OPEN_STATUSES


_REOPEN = {"open", "in_progress"}


TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "in_progress", "fixed", "closed", "duplicate", "not_responsible", "referred"}),
    "acknowledged": frozenset({"in_progress", "fixed", "closed", "duplicate", "not_responsible", "referred"}),
    "in_progress": frozenset({"acknowledged", "fixed", "closed", "duplicate", "not_responsible", "referred"}),
    "fixed": frozenset({"closed"} | _REOPEN),
    "closed": frozenset(_REOPEN),
    "duplicate": frozenset(_REOPEN),
    "not_responsible": frozenset(_REOPEN),
    "referred": frozenset(_REOPEN),
}


# What each status is called (English msgids, context "report status" in the catalogues).
STATUS_NAMES = {
    "open": NP_("report status", "Open"),
    "acknowledged": NP_("report status", "Acknowledged"),
    "in_progress": NP_("report status", "In progress"),
    "fixed": NP_("report status", "Fixed"),
    "closed": NP_("report status", "Closed"),
    "duplicate": NP_("report status", "Duplicate"),
    "not_responsible": NP_("report status", "Not our responsibility"),
    "referred": NP_("report status", "Referred"),
}


SOURCES = ("web", "open311", "cli", "call120", "demo", "api")


DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")


def status_name(status: str, language: str) -> str:
    """A status in words, in `language`."""
    name = STATUS_NAMES.get(status)
    return translations(language).upgettext("report status", name) if name else status


def open311_status(status: str) -> str:
    """Open311 knows only "open" and "closed"."""
    return "open" if status in OPEN_STATUSES else "closed"


def context(session: Session) -> AppContext:
    """The settings, profile and modules of the store `session` belongs to."""
    return context_of(session.info["db"])


def settings_of(session: Session) -> Settings:
    return context(session).settings


def reports_settings(session: Session) -> ReportsSettings:
    return context(session).settings_of(ReportsSettings)


def profile_of(session: Session) -> CityProfile:
    return context(session).profile


def uploads_root(settings: Settings) -> Path:
    return Path(settings.var_dir) / "uploads"


def _now() -> datetime:
    return utcnow()


def _clean_text(value: Any, name: str, limit: int, problems: list[dict], required: bool = False) -> str:
    """Text is stored as given (HTML included: it is shown escaped), minus control characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        problems.append({"field": name, "code": "invalid", "problem": "must be text"})
        return ""
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", value).strip()
    if required and not text:
        problems.append({"field": name, "code": "required", "problem": "is required"})
    if len(text) > limit:
        problems.append(
            {
                "field": name,
                "code": "too_long",
                "problem": f"is longer than {limit} characters",
                "length": len(text),
                "limit": limit,
            }
        )
    return text


def _raise_problems(problems: list[dict], message: str = "the report is not valid") -> None:
    if problems:
        raise InvalidInput(message, code=problems[0].get("code_top") or problems[0]["code"], details=problems)


# The package's names for core.i18n.localized (a name kept per language, of a row or a mapping).
_loc = _dloc = localized


MAX_MEDIA_URL = 2000


def _check_media_urls(urls: list[str], problems: list[dict], notices: list[dict] | None = None) -> list[str]:
    """Absolute http(s) links, kept as given (never fetched here); a malformed one is a problem, or with
    `notices` (lenient) dropped and noted."""
    kept: list[str] = []
    for url in urls:
        url = (url or "").strip()
        if not url:
            continue
        scheme, _, rest = url.partition("://")
        if (
            scheme.lower() in ("http", "https")
            and rest
            and len(url) <= MAX_MEDIA_URL
            and not re.search(r"[\s\x00-\x1f\x7f<>\"]", url)
        ):
            if url not in kept:
                kept.append(url)
            continue
        problem = {
            "field": "media_url",
            "code": "invalid_media_url",
            "problem": f"is not an http(s) link of at most {MAX_MEDIA_URL} characters: {url[:80]!r}",
        }
        (notices if notices is not None else problems).append(problem)
    return kept


def _citizen(identity: Identity) -> str:
    return identity.label if identity.authenticated else "citizen"
