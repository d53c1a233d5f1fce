"""How the audit page tells the participation module's entries (core.audit.AuditWords, Module.audit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smartcity.core.audit import AuditWords
from smartcity.core.i18n import N_, gettext
from smartcity.participation.service import ANSWERS, CATEGORIES, STATUSES


def _named(*tables: Mapping[str, str]):
    def describe(language: str, value: Any) -> str | None:
        for table in tables:
            if value in table:
                return gettext(language, table[value])
        return None

    return describe


WORDS = AuditWords(
    subjects={"participation.proposal": N_("proposal")},
    actions={
        "advance": N_("{actor} moved {subject} to its next step"),
        "answer": N_("{actor} answered {subject}"),
        "follow_up": N_("{actor} added a follow-up to {subject}"),
        "report_abuse": N_("{actor} reported {subject} as abusive"),
        "expire": N_("{actor} closed {subject} as expired"),
        "hide": N_("{actor} hid {subject}"),
        "unhide": N_("{actor} showed {subject} again"),
    },
    actors={
        "participation": N_("the participation service"),
        "job:participation.expire": N_("the proposal expiry job"),
    },
    keys={"to": N_("next step")},
    values={
        "participation.proposal:to": _named(STATUSES),
        "participation.proposal:status": _named(ANSWERS, STATUSES),
        "participation.proposal:category": _named(CATEGORIES),
    },
)
